//! Why an instance could not start or stop cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;

use concord_client::ClientError;
use concord_client::sqlx;

/// Startup and shutdown failures of a shop instance (request errors are answered
/// over HTTP instead, see `http`).
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The data directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or its tables created.
    #[error("database {}: {what}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why.
        source: sqlx::Error,
    },
    /// The settings could not be read from the config center.
    #[error("cannot read config {item}: {source}")]
    Config {
        /// `namespace/group/id`.
        item: String,
        /// Why.
        source: ClientError,
    },
    /// Registering or deregistering the instance failed.
    #[error("cannot {what} {instance}: {reason}")]
    Registry {
        /// `register` or `deregister`.
        what: &'static str,
        /// `service/id`.
        instance: String,
        /// Why.
        reason: String,
    },
    /// The HTTP server stopped with an error.
    #[error("serving failed: {0}")]
    Serve(String),
    /// Any other I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
