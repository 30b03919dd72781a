//! Gateway routes (`/v1/gateway/routes/...`): what gateways follow by watch.

use concord_api::gateway::{RouteEvent, RouteList, RouteSpec, StoredRoute};
use concord_api::registry::RevisionResponse;

use crate::client::Client;
use crate::encode::{Query, encode_segment};
use crate::error::ClientError;
use crate::watch::{WatchPayload, WatchStream};

fn route_path(name: &str) -> String {
    format!("/v1/gateway/routes/{}", encode_segment(name))
}

impl WatchPayload for RouteEvent {
    fn accepts(event_name: &str) -> bool {
        matches!(event_name, "put" | "delete")
    }
    fn revision(&self) -> u64 {
        self.revision
    }
}

impl Client {
    /// `PUT /v1/gateway/routes/{name}`: creates or replaces a route; the server
    /// validates it (`invalid_argument` naming the field otherwise).
    pub async fn route_put(
        &self,
        name: &str,
        route: &RouteSpec,
    ) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&route_path(name), &Query::default());
        self.send_json(self.http().put(url).json(route)).await
    }

    /// `GET /v1/gateway/routes/{name}`; `None` when there is no such route.
    pub async fn route_get(&self, name: &str) -> Result<Option<StoredRoute>, ClientError> {
        match self.get_json(&route_path(name), &self.read_query()).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/gateway/routes`: every route, by name.
    pub async fn route_list(&self) -> Result<RouteList, ClientError> {
        self.get_json("/v1/gateway/routes", &self.read_query())
            .await
    }

    /// `DELETE /v1/gateway/routes/{name}` (`not_found` when absent).
    pub async fn route_delete(&self, name: &str) -> Result<RevisionResponse, ClientError> {
        let url = self.url(&route_path(name), &Query::default());
        self.send_json(self.http().delete(url)).await
    }

    /// `GET /v1/watch?routes=true`: every route change after `from_revision`
    /// (default: from now), resumable like every watch.
    pub async fn watch_routes(
        &self,
        from_revision: Option<u64>,
    ) -> Result<WatchStream<RouteEvent>, ClientError> {
        let mut q = Query::default();
        q.push("routes", "true")
            .push_opt("from_revision", from_revision);
        self.watch(&q).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_encode_the_name() {
        assert_eq!(route_path("orders"), "/v1/gateway/routes/orders");
        assert_eq!(route_path("a b"), "/v1/gateway/routes/a%20b");
    }
}
