//! `concord status`.

use concord_api::status::Status;
use concord_client::Client;

use crate::output::{Output, Table, or_dash};

/// Prints the node's view of the cluster.
pub async fn run(client: &Client, out: &mut Output) -> anyhow::Result<()> {
    let status = client.status().await?;
    out.either(&status, || render(&status))?;
    Ok(())
}

fn render(s: &Status) -> String {
    let leader = match s.leader_id {
        None => "none (election in progress or no quorum)".to_owned(),
        Some(id) if id == s.node_id => format!("{id} (this node)"),
        Some(id) => id.to_string(),
    };
    let mut text = format!(
        "node:      {}\nleader:    {leader}\nterm:      {}\nrevision:  {}\ncommitted: {}\napplied:   {}\n",
        s.node_id, s.term, s.revision, s.commit_index, s.applied_index
    );
    if !s.members.is_empty() {
        let mut table = Table::new(&["ID", "PEER", "CLIENT", "VOTER", "ROLE"]);
        for m in &s.members {
            let role = if Some(m.id) == s.leader_id {
                "leader"
            } else {
                "follower"
            };
            table.row(vec![
                m.id.to_string(),
                m.peer_addr.clone(),
                or_dash(Some(&m.client_addr).filter(|a| !a.is_empty())),
                if m.voter { "yes" } else { "no" }.to_owned(),
                role.to_owned(),
            ]);
        }
        text.push('\n');
        text.push_str(&table.render());
    }
    text
}

#[cfg(test)]
mod tests {
    use concord_api::status::Member;

    use super::*;

    #[test]
    fn renders_leader_and_members() {
        let s = Status {
            node_id: 1,
            leader_id: Some(1),
            term: 2,
            revision: 9,
            commit_index: 12,
            applied_index: 12,
            members: vec![Member {
                id: 1,
                peer_addr: "127.0.0.1:7601".into(),
                client_addr: String::new(),
                voter: true,
            }],
        };
        let text = render(&s);
        assert!(text.contains("leader:    1 (this node)"), "{text}");
        assert!(
            text.contains("1   127.0.0.1:7601  -       yes    leader"),
            "{text}"
        );
    }
}
