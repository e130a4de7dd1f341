//! The optional last argument of `ha_init` and `ha_join`: how this node presents itself to
//! the cluster. Given as a JSON object (`'{"advertise":"10.0.0.5:7001","role":"learner"}'`)
//! or, for the common case, the bare role (`'learner'`).

use serde::Deserialize;

use crate::error::Error;

/// How a node takes part in the cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Counts for quorum and may lead.
    #[default]
    Voter,
    /// Replicates and serves reads, but neither votes nor leads (a read replica).
    Learner,
}

/// Options of a node start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartOptions {
    /// The `host:port` other members reach this node at, when that is not the address it
    /// listens on (behind NAT or a proxy).
    pub advertise: Option<String>,
    /// Voter (default) or learner.
    #[serde(default)]
    pub role: Role,
    /// Bound on the Raft log's size on disk for this run (default [`LOG_BYTES_MAX_DEFAULT`]):
    /// past it, the node snapshots and drops the log the snapshot covers.
    pub log_bytes_max: Option<u64>,
}

/// Default bound on the Raft log's size on disk.
pub const LOG_BYTES_MAX_DEFAULT: u64 = 256 << 20;

/// Smallest accepted bound: below a few segments' worth the node would snapshot constantly.
pub const LOG_BYTES_MAX_MIN: u64 = 16 << 20;

impl StartOptions {
    /// Parses the SQL argument: a JSON object, or a bare role name.
    pub fn parse(text: &str) -> Result<StartOptions, Error> {
        let trimmed = text.trim();
        let options = if trimmed.starts_with('{') {
            serde_json::from_str(trimmed).map_err(|e| {
                Error::InvalidArgument(format!(
                    "invalid options '{text}': {e}; expected a JSON object with \"advertise\" ('host:port') and/or \"role\" ('voter' or 'learner')"
                ))
            })?
        } else {
            let role = match trimmed {
                "voter" => Role::Voter,
                "learner" => Role::Learner,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid options '{text}': expected 'voter', 'learner' or a JSON object such as '{{\"advertise\":\"10.0.0.5:7001\"}}'"
                    )))
                }
            };
            StartOptions { role, ..StartOptions::default() }
        };
        if options.log_bytes_max.is_some_and(|bytes| bytes < LOG_BYTES_MAX_MIN) {
            return Err(Error::InvalidArgument(format!(
                "invalid options '{text}': log_bytes_max must be at least {LOG_BYTES_MAX_MIN} (16 MiB)"
            )));
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_objects_parse() {
        // Goal: both the bare role and the JSON object forms are understood.
        assert_eq!(StartOptions::parse("learner").unwrap().role, Role::Learner);
        assert_eq!(StartOptions::parse(" voter ").unwrap(), StartOptions::default());
        let options = StartOptions::parse(r#"{"advertise":"127.0.0.1:9001","role":"learner"}"#).unwrap();
        assert_eq!(options, StartOptions { advertise: Some("127.0.0.1:9001".into()), role: Role::Learner, log_bytes_max: None });
        assert_eq!(StartOptions::parse(r#"{"log_bytes_max":67108864}"#).unwrap().log_bytes_max, Some(64 << 20));
    }

    #[test]
    fn bad_options_name_the_problem() {
        // Goal: typos are refused, not ignored (a misspelt key must not silently change nothing).
        for (bad, why) in [
            ("leader", "expected 'voter', 'learner'"),
            (r#"{"advertize":"127.0.0.1:1"}"#, "unknown field `advertize`"),
            (r#"{"role":"boss"}"#, "unknown variant `boss`"),
            ("{not json", "invalid options"),
            (r#"{"log_bytes_max":1000}"#, "at least"),
        ] {
            let message = StartOptions::parse(bad).unwrap_err().to_string();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }
}
