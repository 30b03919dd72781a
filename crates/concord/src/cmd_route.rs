//! `concord route ...`: gateway routes.

use anyhow::Context;
use concord_api::gateway::{RouteList, RouteSpec, StoredRoute};
use concord_client::Client;

use crate::cli::RouteCommand;
use crate::cmd_config::read_content;
use crate::output::{Output, Table};

/// Runs one route subcommand.
pub async fn run(client: &Client, command: RouteCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        RouteCommand::Put { name, file } => {
            let text = read_content(&file)?;
            let route: RouteSpec = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a route in JSON", file.display()))?;
            let r = client.route_put(&name, &route).await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
        RouteCommand::Ls => {
            let list = client.route_list().await?;
            out.either(&list, || render_list(&list))?;
        }
        RouteCommand::Get { name } => {
            let route = client
                .route_get(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("route {name:?} not found"))?;
            out.either(&route, || render_route(&route))?;
        }
        RouteCommand::Del { name } => {
            let r = client.route_delete(&name).await?;
            out.either(&r, || format!("OK revision={}", r.revision))?;
        }
    }
    Ok(())
}

fn target(route: &RouteSpec) -> String {
    match &route.service {
        Some(s) => s.clone(),
        None => route
            .split
            .iter()
            .map(|t| format!("{}:{}", t.service, t.weight))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn path(route: &RouteSpec) -> String {
    let m = &route.matches;
    m.path_exact
        .as_ref()
        .map(|p| format!("={p}"))
        .or_else(|| m.path_prefix.as_ref().map(|p| format!("{p}*")))
        .or_else(|| m.path_regex.as_ref().map(|p| format!("~{p}")))
        .unwrap_or_else(|| "*".to_owned())
}

fn render_list(list: &RouteList) -> String {
    let mut table = Table::new(&["NAME", "HOST", "PATH", "TARGET", "LB", "PRIORITY"]);
    for r in &list.routes {
        table.row(vec![
            r.name.clone(),
            r.route
                .matches
                .host
                .clone()
                .unwrap_or_else(|| "*".to_owned()),
            path(&r.route),
            target(&r.route),
            r.route.lb.clone().unwrap_or_else(|| "p2c_ewma".to_owned()),
            r.route.priority.to_string(),
        ]);
    }
    table.render()
}

fn render_route(route: &StoredRoute) -> String {
    let json = serde_json::to_string_pretty(&route.route).unwrap_or_default();
    format!("# {} (revision {})\n{json}\n", route.name, route.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_match_and_target() {
        let route: RouteSpec = serde_json::from_str(
            r#"{"match":{"path_prefix":"/api","host":"shop.local"},"split":[{"service":"a","weight":90},{"service":"b","weight":10}]}"#,
        )
        .unwrap();
        let list = RouteList {
            revision: 3,
            routes: vec![StoredRoute {
                name: "shop".into(),
                route,
                revision: 3,
            }],
        };
        assert_eq!(
            render_list(&list),
            "NAME  HOST        PATH   TARGET     LB        PRIORITY\nshop  shop.local  /api*  a:90,b:10  p2c_ewma  0\n"
        );
    }
}
