//! The learner: a member that receives everything (the other checks include it like any
//! node), never a voter, and a node that serves reads.

use super::Findings;
use crate::cluster::Cluster;
use crate::history::{History, OpKind, Outcome};

/// The leader's membership lists each learner as a non-voter and exactly `voters` voters, and
/// each learner served at least one bank read.
pub fn check(cluster: &Cluster, history: &History, voters: usize, findings: &mut Findings) {
    let learners: Vec<_> = cluster.members().into_iter().filter(|member| member.learner).collect();
    let Some(leader) = cluster.leader() else {
        findings.violation("no leader to ask for the membership".into());
        return;
    };
    match cluster.status(leader) {
        Ok(status) => {
            let members = status["members"].as_array().cloned().unwrap_or_default();
            let voting = members.iter().filter(|member| member["voter"] == true).count();
            if voting != voters {
                findings.violation(format!(
                    "the leader lists {voting} voters, expected {voters}: {}",
                    status["members"]
                ));
            }
            for learner in &learners {
                let listed = members.iter().find(|member| member["id"].as_u64() == learner.raft_id);
                match listed {
                    Some(member) if member["voter"] == false => {}
                    Some(member) => findings
                        .violation(format!("learner n{} is listed as {member}", learner.slot + 1)),
                    None => findings.violation(format!(
                        "learner n{} (id {:?}) is not a member: {}",
                        learner.slot + 1,
                        learner.raft_id,
                        status["members"]
                    )),
                }
            }
        }
        Err(error) => findings.violation(format!("the leader's status: {error:#}")),
    }
    let ops = history.ops();
    for learner in &learners {
        let served = ops
            .iter()
            .filter(|op| {
                op.node == learner.slot
                    && op.outcome == Outcome::Ok
                    && matches!(op.kind, OpKind::ReadTotal { .. })
            })
            .count();
        if served == 0 {
            findings.violation(format!("learner n{} served no bank read", learner.slot + 1));
        } else {
            findings.notes.push(format!(
                "learner n{}: {served} bank reads served, never a voter",
                learner.slot + 1
            ));
        }
    }
}
