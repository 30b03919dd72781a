//! `concord members ...`: list, add and remove cluster members.

use concord_api::cluster::{AddMemberRequest, MembersResponse};
use concord_client::Client;

use crate::cli::MembersCommand;
use crate::output::{Output, Table, or_dash};

/// Runs one membership subcommand; each prints the member list it ends with.
pub async fn run(client: &Client, command: MembersCommand, out: &mut Output) -> anyhow::Result<()> {
    let members = match command {
        MembersCommand::Ls => client.members().await?,
        MembersCommand::Add {
            id,
            peer_addr,
            client_addr,
            voter,
        } => {
            let request = AddMemberRequest {
                id,
                peer_addr,
                client_addr,
                voter,
            };
            client.add_member(&request).await?
        }
        MembersCommand::Remove { id } => client.remove_member(id).await?,
    };
    out.either(&members, || render(&members))?;
    Ok(())
}

fn render(members: &MembersResponse) -> String {
    let mut table = Table::new(&["ID", "PEER", "CLIENT", "ROLE", "LEADER"]);
    for m in &members.members {
        table.row(vec![
            m.id.to_string(),
            m.peer_addr.clone(),
            or_dash(Some(&m.client_addr).filter(|a| !a.is_empty())),
            m.role.as_str().to_owned(),
            if m.is_leader { "*" } else { "" }.to_owned(),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use concord_api::cluster::{ClusterMember, MemberRole};

    use super::*;

    #[test]
    fn renders_a_table() {
        let text = render(&MembersResponse {
            members: vec![
                ClusterMember {
                    id: 1,
                    peer_addr: "127.0.0.1:7611".into(),
                    client_addr: "127.0.0.1:7610".into(),
                    role: MemberRole::Voter,
                    is_leader: true,
                },
                ClusterMember {
                    id: 4,
                    peer_addr: "127.0.0.1:7641".into(),
                    client_addr: String::new(),
                    role: MemberRole::Learner,
                    is_leader: false,
                },
            ],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(
            lines[1].contains("voter") && lines[1].trim_end().ends_with('*'),
            "{text}"
        );
        assert!(
            lines[2].contains("learner") && lines[2].contains(" - "),
            "{text}"
        );
    }
}
