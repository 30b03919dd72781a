//! The shop demo: three small services built on the Concord SDK, to show what a
//! fleet gets from Concord end to end.
//!
//! * `users` keeps accounts with balances, `inventory` keeps items with stock and
//!   a price, `orders` places orders. Each service has its own SQLite database
//!   (one file, shared by all instances of that service, so any instance can
//!   answer any request).
//! * `orders` places an order as a **saga** run by the Concord coordinator:
//!   reserve the stock, debit the balance, confirm the order, each with its
//!   compensation. Every participant call goes through the
//!   [barrier](concord_client::participant), so retries and reordered calls have
//!   exactly one effect, and a business refusal (not enough stock or money)
//!   answers 409 so the coordinator compensates what already happened.
//! * Every instance registers itself with an HTTP health check
//!   ([`concord_client::Registration`]), reads its settings from the
//!   configuration center and follows them live ([`concord_client::ConfigWatcher`]),
//!   and `orders` calls `users` and `inventory` through discovery
//!   ([`concord_client::ServiceClient`]).
//!
//! `concord demo` runs two instances of each as child processes
//! (`concord shop SERVICE ...`), behind the gateway; see the README's quick tour.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

mod db;
mod error;
mod http;
mod inventory;
mod orders;
mod server;
mod users;

pub use error::ShopError;
pub use inventory::InventorySettings;
pub use orders::OrderSettings;
pub use server::ShopServer;
pub use users::UserSettings;

/// The configuration namespace holding the shop's settings: each service reads
/// `shop/<service>/settings.json`.
pub const CONFIG_NAMESPACE: &str = "shop";

/// The configuration item id of every service's settings (format json).
pub const SETTINGS_ID: &str = "settings.json";

/// One of the shop's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Accounts and balances.
    Users,
    /// Items, stock and prices.
    Inventory,
    /// Orders, placed by saga.
    Orders,
}

impl Service {
    /// Every service, in the order they are best started (orders calls the others).
    pub const ALL: [Service; 3] = [Service::Users, Service::Inventory, Service::Orders];

    /// The registry name of the service, also its config group and gateway route.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Users => "users",
            Service::Inventory => "inventory",
            Service::Orders => "orders",
        }
    }

    /// The settings a fresh deployment starts with, as published to
    /// `shop/<service>/settings.json`.
    pub fn default_settings(self) -> serde_json::Value {
        match self {
            Service::Users => serde_json::to_value(UserSettings::default()),
            Service::Inventory => serde_json::to_value(InventorySettings::default()),
            Service::Orders => serde_json::to_value(OrderSettings::default()),
        }
        .expect("settings serialize")
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.as_str() == s)
            .ok_or_else(|| {
                format!("unknown shop service {s:?}: expected users, inventory or orders")
            })
    }
}

/// How to run one instance of a service.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concord server URLs (any node of the cluster).
    pub servers: Vec<String>,
    /// Where to listen; port 0 picks a free one. The bound address is what gets
    /// registered, so it must be reachable by the Concord servers (health checks
    /// and saga calls) and the gateway.
    pub listen: SocketAddr,
    /// The service's data directory; its SQLite database is `<dir>/<service>.db`,
    /// shared by every instance given the same directory.
    pub data_dir: PathBuf,
    /// The instance id in the registry, unique within the service.
    pub instance_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.as_str().parse::<Service>(), Ok(service));
        }
        assert!("payments".parse::<Service>().is_err());
    }

    #[test]
    fn default_settings_are_what_the_services_read() {
        let orders: OrderSettings =
            serde_json::from_value(Service::Orders.default_settings()).unwrap();
        assert_eq!(orders, OrderSettings::default());
        // Missing fields fall back to the defaults, so `{}` is a valid item.
        let users: UserSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(users, UserSettings::default());
    }
}
