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
    let registry = node.trust.get();
    let now = super::admission::unix_now();
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
        "archive": node.archive.status(
            node.archive_view.get().as_ref(),
            metrics.last_applied.map(|a| a.index()),
        ),
        "last_snapshot_transfer": node.client.transfers().last_ended(),
    })
}

/// A time as RFC 3339 UTC (`2026-12-04T09:31:49Z`), from seconds since the Unix epoch.
fn rfc3339(unix_s: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), so no date crate is needed for one format.
    let days = unix_s / 86_400;
    let seconds = unix_s % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_print_as_rfc3339() {
        // Goal: expiry times in ha_status() are exact calendar dates, leap years included.
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_376_709), "2026-12-04T09:31:49Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
