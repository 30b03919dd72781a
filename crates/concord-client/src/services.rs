//! Service registry endpoints (`/v1/services/...`).

use std::time::Duration;

use concord_api::registry::{
    CheckUpdateRequest, CheckUpdateResponse, HealthStatus, HeartbeatResponse, InstanceFilter,
    InstanceSpec, MaintenanceRequest, NamespaceList, RegisterResponse, RevisionResponse,
    ServiceDetail, ServiceList,
};

use crate::client::Client;
use crate::encode::{Query, encode_segment};
use crate::error::ClientError;

fn instance_path(service: &str, id: &str) -> String {
    format!(
        "/v1/services/{}/instances/{}",
        encode_segment(service),
        encode_segment(id)
    )
}

fn service_path(service: &str) -> String {
    format!("/v1/services/{}", encode_segment(service))
}

/// Renders a blocking-query wait the way the server parses durations (`30s`, `1500ms`).
fn format_wait(wait: Duration) -> String {
    if wait.subsec_millis() == 0 {
        format!("{}s", wait.as_secs())
    } else {
        format!("{}ms", wait.as_millis())
    }
}

impl Client {
    /// `PUT /v1/services/{service}/instances/{id}`: registers (or replaces) an
    /// instance. With `ttl_secs` set the instance is ephemeral and must be kept
    /// alive with [`Client::heartbeat`].
    pub async fn register(
        &self,
        service: &str,
        id: &str,
        spec: &InstanceSpec,
    ) -> Result<RegisterResponse, ClientError> {
        let url = self.url(
            &instance_path(service, id),
            &self.namespace_query(Query::default()),
        );
        self.send_json(self.http().put(url).json(spec)).await
    }

    /// `PUT /v1/services/{service}/instances/{id}/heartbeat`: extends an
    /// ephemeral instance's TTL. `not_found` means it already expired: register again.
    pub async fn heartbeat(
        &self,
        service: &str,
        id: &str,
    ) -> Result<HeartbeatResponse, ClientError> {
        let path = format!("{}/heartbeat", instance_path(service, id));
        let url = self.url(&path, &self.namespace_query(Query::default()));
        self.send_json(self.http().put(url)).await
    }

    /// `DELETE /v1/services/{service}/instances/{id}`: removes an instance
    /// (`not_found` when it is not registered).
    pub async fn deregister(
        &self,
        service: &str,
        id: &str,
    ) -> Result<RevisionResponse, ClientError> {
        let url = self.url(
            &instance_path(service, id),
            &self.namespace_query(Query::default()),
        );
        self.send_json(self.http().delete(url)).await
    }

    /// `PUT /v1/services/{service}/instances/{id}/maintenance`: takes the instance
    /// out of passing results (`Some(reason)`) or puts it back (`None`).
    pub async fn maintenance(
        &self,
        service: &str,
        id: &str,
        reason: Option<&str>,
    ) -> Result<RegisterResponse, ClientError> {
        let path = format!("{}/maintenance", instance_path(service, id));
        let url = self.url(&path, &self.namespace_query(Query::default()));
        let body = MaintenanceRequest {
            enabled: reason.is_some(),
            reason: reason.map(str::to_owned),
        };
        self.send_json(self.http().put(url).json(&body)).await
    }

    /// `PUT .../checks/{check}/pass|warn|fail`: reports a TTL check's status
    /// (`Passing`, `Warning` or `Critical`), with an optional output note.
    pub async fn update_ttl_check(
        &self,
        service: &str,
        id: &str,
        check: &str,
        status: HealthStatus,
        output: Option<&str>,
    ) -> Result<CheckUpdateResponse, ClientError> {
        let verb = match status {
            HealthStatus::Passing => "pass",
            HealthStatus::Warning => "warn",
            HealthStatus::Critical | HealthStatus::Maintenance => "fail",
        };
        let path = format!(
            "{}/checks/{}/{verb}",
            instance_path(service, id),
            encode_segment(check)
        );
        let url = self.url(&path, &self.namespace_query(Query::default()));
        let body = CheckUpdateRequest {
            output: output.map(str::to_owned),
        };
        self.send_json(self.http().put(url).json(&body)).await
    }

    /// `GET /v1/namespaces`: every namespace with its service and instance counts.
    pub async fn list_namespaces(&self) -> Result<NamespaceList, ClientError> {
        let q = self.read_query();
        self.get_json("/v1/namespaces", &q).await
    }

    /// `GET /v1/services`: every service with its instance count.
    pub async fn list_services(&self) -> Result<ServiceList, ClientError> {
        let q = self.namespace_query(self.read_query());
        self.get_json("/v1/services", &q).await
    }

    /// `GET /v1/services/{service}?tag=..`: the instances of a service, keeping
    /// only those carrying every given tag.
    pub async fn get_service(
        &self,
        service: &str,
        tags: &[String],
    ) -> Result<ServiceDetail, ClientError> {
        let q = self.service_query(tags);
        self.get_json(&service_path(service), &q).await
    }

    /// `GET /v1/services/{service}?passing=true&tag=..&meta=k:v`: the instances
    /// matching every condition of `filter`.
    pub async fn discover(
        &self,
        service: &str,
        filter: &InstanceFilter,
    ) -> Result<ServiceDetail, ClientError> {
        let mut q = self.service_query(&filter.tags);
        if filter.passing {
            q.push("passing", "true");
        }
        for (k, v) in &filter.meta {
            q.push("meta", format!("{k}:{v}"));
        }
        self.get_json(&service_path(service), &q).await
    }

    /// `GET /v1/services/{service}?index=M&wait=W`: a blocking query that
    /// answers once the service changed after revision `index`, or after `wait`
    /// with the unchanged state. Feed the answer's `revision` back in as the next
    /// `index` to follow a service without a watch stream.
    pub async fn get_service_blocking(
        &self,
        service: &str,
        tags: &[String],
        index: u64,
        wait: Duration,
    ) -> Result<ServiceDetail, ClientError> {
        let mut q = self.service_query(tags);
        q.push("index", index).push("wait", format_wait(wait));
        self.get_json(&service_path(service), &q).await
    }

    fn service_query(&self, tags: &[String]) -> Query {
        let mut q = self.namespace_query(self.read_query());
        for tag in tags {
            q.push("tag", tag);
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths_encode_segments() {
        assert_eq!(
            instance_path("orders", "host:1/a"),
            "/v1/services/orders/instances/host%3A1%2Fa"
        );
        assert_eq!(service_path("a b"), "/v1/services/a%20b");
    }

    #[test]
    fn waits_use_server_duration_syntax() {
        assert_eq!(format_wait(Duration::from_secs(30)), "30s");
        assert_eq!(format_wait(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_wait(Duration::ZERO), "0s");
    }

    #[test]
    fn tags_repeat_in_the_query() {
        let c = Client::new("h");
        let q = c.service_query(&["v2".into(), "zone a".into()]);
        assert_eq!(q.as_str(), "?tag=v2&tag=zone%20a");
    }
}
