//! The transaction coordinator's server side: turning requests into log records,
//! records into API views, and the leader's driver that makes the participant calls.

pub(crate) mod call;
pub(crate) mod convert;
pub(crate) mod driver;
pub(crate) mod metrics;
pub(crate) mod retention;
