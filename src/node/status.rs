//! `ha_status()`: what this node knows of itself and its cluster, as JSON.

use openraft::ServerState;
use serde_json::{json, Value};

use super::lifecycle::{members, Node};

/// The status document (fields documented in docs/SQL.md).
pub fn of(node: &Node) -> Value {
    let metrics = node.metrics();
    let membership = metrics.membership_config.membership().clone();
    let voters: Vec<_> = membership.voter_ids().collect();
    let members = members(node);
    let stopped_reason = node.stopped_reason(&metrics);
    let role = match (&stopped_reason, metrics.state) {
        (Some(_), _) | (None, ServerState::Shutdown) => "stopped",
        (None, ServerState::Leader) => "leader",
        (None, ServerState::Follower) => "follower",
        (None, ServerState::Candidate) => "candidate",
        (None, ServerState::Learner) => "learner",
    };
    let leader_addr = metrics.current_leader.and_then(|id| members.get(&id)).map(|m| m.addr.clone());
    json!({
        "node_id": node.id(),
        "addr": node.member_addr(),
        "listen_addr": node.listen_addr(),
        "role": role,
        "term": metrics.current_term,
        "leader_id": metrics.current_leader,
        "leader_addr": leader_addr,
        "commit_index": metrics.local_committed.map(|c| c.index()),
        "applied_index": metrics.last_applied.map(|a| a.index()),
        "last_log_index": metrics.last_log_index,
        "snapshot_index": metrics.snapshot.map(|s| s.index()),
        "log_bytes": node.log.bytes_on_disk().ok(),
        "log_bytes_max": node.log_bytes_max,
        "members": members
            .iter()
            .map(|(id, member)| json!({"id": id, "addr": member.addr, "voter": voters.contains(id)}))
            .collect::<Vec<_>>(),
        "state_dir": node.state_dir().root().display().to_string(),
        "stopped_reason": stopped_reason,
        "snapshot_transfers": node.client.transfers().in_flight(),
        "last_snapshot_transfer": node.client.transfers().last_ended(),
    })
}
