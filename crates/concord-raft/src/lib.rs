//! openraft glue for Concord.
