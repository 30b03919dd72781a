//! `concord services ...`.

use concord_api::registry::{
    HealthStatus, Instance, InstanceFilter, InstanceSpec, ServiceDetail, ServiceList,
};
use concord_api::watch::{ServiceEvent, ServiceEventKind};
use concord_client::Client;

use crate::cli::ServicesCommand;
use crate::output::{Output, Table};

/// Runs one service registry subcommand.
pub async fn run(
    client: &Client,
    command: ServicesCommand,
    out: &mut Output,
) -> anyhow::Result<()> {
    match command {
        ServicesCommand::Ls => {
            let list = client.list_services().await?;
            out.either(&list, || render_list(&list))?;
        }
        ServicesCommand::Namespaces => {
            let list = client.list_namespaces().await?;
            out.either(&list, || {
                let mut table = Table::new(&["NAMESPACE", "SERVICES", "INSTANCES"]);
                for n in &list.namespaces {
                    table.row(vec![
                        n.name.clone(),
                        n.services.to_string(),
                        n.instances.to_string(),
                    ]);
                }
                table.render()
            })?;
        }
        ServicesCommand::Get {
            name,
            tags,
            passing,
            meta,
        } => {
            let filter = InstanceFilter {
                passing,
                tags,
                meta,
            };
            let detail = client.discover(&name, &filter).await?;
            out.either(&detail, || render_detail(&detail))?;
        }
        ServicesCommand::Maintenance {
            name,
            id,
            state,
            reason,
        } => {
            let reason = (state == "on").then_some(reason.as_str());
            let r = client.maintenance(&name, &id, reason).await?;
            out.either(&r, || {
                format!(
                    "OK revision={} status={}",
                    r.revision,
                    r.instance.status.as_str()
                )
            })?;
        }
        ServicesCommand::Check {
            name,
            id,
            check,
            verb,
            output,
        } => {
            let status = match verb.as_str() {
                "pass" => HealthStatus::Passing,
                "warn" => HealthStatus::Warning,
                _ => HealthStatus::Critical,
            };
            let r = client
                .update_ttl_check(&name, &id, &check, status, output.as_deref())
                .await?;
            out.either(&r, || {
                format!("OK revision={} status={}", r.revision, r.status.as_str())
            })?;
        }
        ServicesCommand::Register {
            name,
            id,
            address,
            port,
            tags,
            meta,
            weight,
            ttl,
            checks,
        } => {
            let checks = match checks {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| anyhow::anyhow!("--checks is not a JSON array of checks: {e}"))?,
                None => Vec::new(),
            };
            let spec = InstanceSpec {
                address,
                port,
                tags,
                meta: meta.into_iter().collect(),
                weight,
                ttl_secs: ttl,
                checks,
                ..InstanceSpec::default()
            };
            let r = client.register(&name, &id, &spec).await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        ServicesCommand::Deregister { name, id } => {
            let r = client.deregister(&name, &id).await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        ServicesCommand::Heartbeat { name, id } => {
            let r = client.heartbeat(&name, &id).await?;
            out.either(&r, || {
                format!("OK revision={} ttl={}s", r.revision, r.ttl_secs)
            })?;
        }
        ServicesCommand::Watch { name, from } => watch(client, &name, from, out).await?,
    }
    Ok(())
}

fn render_list(list: &ServiceList) -> String {
    let mut table = Table::new(&["NAME", "PASSING", "INSTANCES"]);
    for s in &list.services {
        table.row(vec![
            s.name.clone(),
            s.passing.to_string(),
            s.instances.to_string(),
        ]);
    }
    table.render()
}

fn render_detail(detail: &ServiceDetail) -> String {
    let mut table = Table::new(&[
        "ID", "STATUS", "ADDRESS", "PORT", "WEIGHT", "TTL", "TAGS", "META",
    ]);
    for i in &detail.instances {
        table.row(vec![
            i.id.clone(),
            i.status.as_str().to_owned(),
            i.address.clone(),
            i.port.to_string(),
            i.weight.to_string(),
            i.ttl_secs
                .map_or_else(|| "-".to_owned(), |t| format!("{t}s")),
            dash_if_empty(i.tags.join(",")),
            dash_if_empty(
                i.meta
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]);
    }
    table.render()
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() { "-".to_owned() } else { s }
}

/// Streams instance changes until Ctrl-C/SIGTERM (exit 0) or the stream breaks (error).
async fn watch(
    client: &Client,
    name: &str,
    from: Option<u64>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let events = client.watch_service(name, from).await?;
    crate::follow::follow(events, out, event_line).await
}

/// `7 REGISTER orders/o1 10.0.0.5:8080`.
fn event_line(event: &ServiceEvent) -> String {
    let kind = match event.kind {
        ServiceEventKind::Register => "REGISTER",
        ServiceEventKind::Update => "UPDATE",
        ServiceEventKind::Deregister => "DEREGISTER",
        ServiceEventKind::Expire => "EXPIRE",
    };
    format!(
        "{} {kind} {}/{} {}",
        event.revision,
        event.service,
        event.instance.id,
        endpoint(&event.instance)
    )
}

/// `host:port`, bracketing IPv6 literals.
fn endpoint(i: &Instance) -> String {
    if i.address.contains(':') {
        format!("[{}]:{}", i.address, i.port)
    } else {
        format!("{}:{}", i.address, i.port)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use concord_api::registry::ServiceSummary;

    use super::*;

    fn instance() -> Instance {
        Instance {
            id: "o1".into(),
            address: "10.0.0.5".into(),
            port: 8080,
            tags: vec!["v2".into(), "eu".into()],
            meta: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
            weight: 100,
            ttl_secs: Some(10),
            status: HealthStatus::Passing,
            checks: Vec::new(),
            maintenance: None,
        }
    }

    #[test]
    fn tables() {
        let list = ServiceList {
            revision: 1,
            namespace: "default".into(),
            services: vec![ServiceSummary {
                name: "orders".into(),
                instances: 2,
                passing: 1,
            }],
        };
        assert_eq!(
            render_list(&list),
            "NAME    PASSING  INSTANCES\norders  1        2\n"
        );
        let detail = ServiceDetail {
            revision: 1,
            namespace: "default".into(),
            name: "orders".into(),
            instances: vec![instance()],
        };
        assert_eq!(
            render_detail(&detail),
            "ID  STATUS   ADDRESS   PORT  WEIGHT  TTL  TAGS   META\no1  passing  10.0.0.5  8080  100     10s  v2,eu  zone=a\n"
        );
    }

    #[test]
    fn watch_lines() {
        let mut e = ServiceEvent {
            revision: 7,
            kind: ServiceEventKind::Expire,
            namespace: "default".into(),
            service: "orders".into(),
            instance: instance(),
        };
        assert_eq!(event_line(&e), "7 EXPIRE orders/o1 10.0.0.5:8080");
        e.instance.address = "::1".into();
        assert_eq!(event_line(&e), "7 EXPIRE orders/o1 [::1]:8080");
    }
}
