//! `concord txn ...`: distributed transactions, for operators (list, inspect,
//! retry or resolve stuck ones) and for scripts (submit a request from JSON).

use anyhow::Context;
use concord_api::transactions::{TxnAccepted, TxnList, TxnRequest, TxnView};
use concord_client::{Client, TxnAnswer};

use crate::cli::TxnCommand;
use crate::cmd_config::read_content;
use crate::output::{Output, Table, one_line, or_dash};

/// Longest reason shown in a table cell; `txn get` has the full text.
const REASON_WIDTH: usize = 60;

/// Runs one transaction subcommand.
pub async fn run(client: &Client, command: TxnCommand, out: &mut Output) -> anyhow::Result<()> {
    match command {
        TxnCommand::Ls {
            status,
            limit,
            after,
        } => {
            let list = client
                .list_transactions(status, limit, after.as_deref())
                .await?;
            out.either(&list, || render_list(&list))?;
        }
        TxnCommand::Get { id } => {
            let view = client
                .get_transaction(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("transaction {id:?} not found"))?;
            out.json(&view)?;
        }
        TxnCommand::Retry { id } => {
            let accepted = client.retry_transaction(&id).await?;
            out.either(&accepted, || accepted_line(&accepted))?;
        }
        TxnCommand::Resolve { id, reason } => {
            let accepted = client.resolve_transaction(&id, &reason).await?;
            out.either(&accepted, || accepted_line(&accepted))?;
        }
        TxnCommand::Submit { file } => {
            let text = read_content(&file)?;
            let request: TxnRequest = serde_json::from_str(&text).with_context(|| {
                format!("{} is not a transaction request in JSON", file.display())
            })?;
            match client.create_transaction(&request).await? {
                TxnAnswer::Finished(view) => out.either(&view, || view_line(&view))?,
                TxnAnswer::Accepted(accepted) => {
                    out.either(&accepted, || accepted_line(&accepted))?
                }
            }
        }
    }
    Ok(())
}

/// `txn order-1 running`: the id first, so `awk '{print $2}'` finds it.
fn accepted_line(accepted: &TxnAccepted) -> String {
    format!("txn {} {}", accepted.id, accepted.status)
}

/// As [`accepted_line`], with the reason a finished transaction aborted or got stuck.
fn view_line(view: &TxnView) -> String {
    match &view.reason {
        Some(reason) => format!("txn {} {} reason={reason:?}", view.id, view.status),
        None => format!("txn {} {}", view.id, view.status),
    }
}

fn render_list(list: &TxnList) -> String {
    let mut table = Table::new(&["ID", "MODE", "STATUS", "STEPS", "CREATED", "REASON"]);
    for t in &list.transactions {
        table.row(vec![
            t.id.clone(),
            t.mode.as_str().to_owned(),
            t.status.as_str().to_owned(),
            t.steps.to_string(),
            t.created_at.clone(),
            or_dash(
                t.reason
                    .as_deref()
                    .map(|r| one_line(r.as_bytes(), REASON_WIDTH)),
            ),
        ]);
    }
    let mut text = table.render();
    if let Some(next) = &list.next {
        text.push_str(&format!("next page: --after {next}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use concord_api::transactions::{TxnMode, TxnStatus, TxnSummary};

    use super::*;

    fn summary(id: &str, status: TxnStatus, reason: Option<&str>) -> TxnSummary {
        TxnSummary {
            id: id.into(),
            mode: TxnMode::TwoPc,
            status,
            created_at: "2025-01-01T00:00:00Z".into(),
            steps: 2,
            reason: reason.map(Into::into),
            revision: 4,
        }
    }

    #[test]
    fn table_lists_transactions_and_the_next_page() {
        let list = TxnList {
            transactions: vec![
                summary("a", TxnStatus::Succeeded, None),
                summary("b", TxnStatus::Stuck, Some("commit failed:\n503")),
            ],
            next: Some("b".into()),
            revision: 9,
        };
        assert_eq!(
            render_list(&list),
            "ID  MODE  STATUS     STEPS  CREATED               REASON\n\
             a   2pc   succeeded  2      2025-01-01T00:00:00Z  -\n\
             b   2pc   stuck      2      2025-01-01T00:00:00Z  commit failed:\\n503\n\
             next page: --after b\n"
        );
    }

    #[test]
    fn answer_lines() {
        let accepted = TxnAccepted {
            id: "o-1".into(),
            status: TxnStatus::Running,
        };
        assert_eq!(accepted_line(&accepted), "txn o-1 running");
    }
}
