//! `ha_status()`: what this node knows of itself and its cluster, as JSON.

use openraft::ServerState;
use serde_json::{json, Value};

use super::lifecycle::{members, Node};
use crate::clock::rfc3339_s as rfc3339;

/// The status document (fields documented in docs/SQL.md).
pub fn of(node: &Node) -> Value {
    let metrics = node.metrics();
    let membership = metrics.membership_config.membership().clone();
    let voters: Vec<_> = membership.voter_ids().collect();
    let members = members(node);
    let stopped_reason = node.stopped_reason(&metrics);
    let registry = node.trust.get();
    let now = crate::clock::unix_now_s();
    let role = match (&stopped_reason, metrics.state) {
        (None, _) if node.is_removed() => "removed",
        (Some(_), _) | (None, ServerState::Shutdown) => "stopped",
        (None, ServerState::Leader) => "leader",
        (None, ServerState::Follower) => "follower",
        (None, ServerState::Candidate) => "candidate",
        (None, ServerState::Learner) => "learner",
    };
    let leader_addr =
        metrics.current_leader.and_then(|id| members.get(&id)).map(|m| m.addr.clone());
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
        "purged_index": metrics.purged.map(|p| p.index()),
        "log_bytes": node.log.bytes_on_disk().ok(),
        "log_bytes_max": node.log_bytes_max,
        "members": members
            .iter()
            .map(|(id, member)| {
                let cert_expires_at = registry.admission(*id).map(|a| rfc3339(a.cert_not_after_unix_s));
                json!({"id": id, "addr": member.addr, "voter": voters.contains(id), "cert_expires_at": cert_expires_at})
            })
            .collect::<Vec<_>>(),
        "cluster_id": node.cluster_id().to_string(),
        "cert_expires_at": rfc3339(node.cert_not_after_unix_s()),
        // Outstanding join tokens: ids and expiry only; a secret is never stored, let alone shown.
        "tokens": registry
            .outstanding_tokens(now)
            .map(|(id, record)| json!({"id": id.to_string(), "role": record.role.to_string(), "uses_left": record.uses_left, "expires_at": rfc3339(record.expires_at_unix_s)}))
            .collect::<Vec<_>>(),
        "state_dir": node.state_dir().root().display().to_string(),
        "stopped_reason": stopped_reason,
        "snapshot_transfers": node.client.transfers().in_flight(),
        // The URL only: the setting's credentials are never shown.
        "archive": node.archive.status(&node.archive_view, metrics.last_applied.map(|a| a.index())),
        "last_snapshot_transfer": node.client.transfers().last_ended(),
    })
}
