//! `concord services ...`.

use concord_api::registry::{Instance, InstanceSpec, ServiceDetail, ServiceList};
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
        ServicesCommand::Get { name, tags } => {
            let detail = client.get_service(&name, &tags).await?;
            out.either(&detail, || render_detail(&detail))?;
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
        } => {
            let spec = InstanceSpec {
                address,
                port,
                tags,
                meta: meta.into_iter().collect(),
                weight,
                ttl_secs: ttl,
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
    let mut table = Table::new(&["NAME", "INSTANCES"]);
    for s in &list.services {
        table.row(vec![s.name.clone(), s.instances.to_string()]);
    }
    table.render()
}

fn render_detail(detail: &ServiceDetail) -> String {
    let mut table = Table::new(&["ID", "ADDRESS", "PORT", "WEIGHT", "TTL", "TAGS", "META"]);
    for i in &detail.instances {
        table.row(vec![
            i.id.clone(),
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
        }
    }

    #[test]
    fn tables() {
        let list = ServiceList {
            revision: 1,
            services: vec![ServiceSummary {
                name: "orders".into(),
                instances: 2,
            }],
        };
        assert_eq!(render_list(&list), "NAME    INSTANCES\norders  2\n");
        let detail = ServiceDetail {
            revision: 1,
            name: "orders".into(),
            instances: vec![instance()],
        };
        assert_eq!(
            render_detail(&detail),
            "ID  ADDRESS   PORT  WEIGHT  TTL  TAGS   META\no1  10.0.0.5  8080  100     10s  v2,eu  zone=a\n"
        );
    }

    #[test]
    fn watch_lines() {
        let mut e = ServiceEvent {
            revision: 7,
            kind: ServiceEventKind::Expire,
            service: "orders".into(),
            instance: instance(),
        };
        assert_eq!(event_line(&e), "7 EXPIRE orders/o1 10.0.0.5:8080");
        e.instance.address = "::1".into();
        assert_eq!(event_line(&e), "7 EXPIRE orders/o1 [::1]:8080");
    }
}
