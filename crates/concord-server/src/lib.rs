//! A Concord node.
