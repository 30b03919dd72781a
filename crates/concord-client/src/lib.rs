//! Typed async client for Concord.
