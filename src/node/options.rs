//! The optional last argument of `ha_init` and `ha_join`: how this node presents itself to
//! the cluster. Given as a JSON object (`'{"advertise":"10.0.0.5:7001","token":"dqvfs-join1..."}'`),
//! or, for the common cases, the bare join token or the bare role (`'learner'`). Also the
//! options of `ha_token`, and the syntax check of a member address.

use serde::Deserialize;

use crate::error::Error;
use crate::transport::limits::SNAPSHOT_BYTES_MAX;
use crate::transport::wire::Secret;
use crate::trust::registry::{TOKEN_TTL_MAX_S, TOKEN_USES_MAX};

/// How a node takes part in the cluster: the trust module's role, so a token's role and a
/// node's options speak of the same thing.
pub use crate::trust::Role;

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
    /// The join token (`ha_join` only; not needed to resume a node that has joined).
    pub token: Option<Secret>,
    /// Largest snapshot image this node accepts from the leader, in bytes (default and upper
    /// bound: the transport's [`SNAPSHOT_BYTES_MAX`]); a larger one is refused before any of
    /// it is read. For this run of the node.
    pub snapshot_bytes_max: Option<u64>,
}

/// Smallest accepted bound on snapshot images (an empty database is a few pages).
pub const SNAPSHOT_BYTES_MAX_MIN: u64 = 1 << 20;

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
            match trimmed {
                "voter" => StartOptions { role: Role::Voter, ..StartOptions::default() },
                "learner" => StartOptions { role: Role::Learner, ..StartOptions::default() },
                // A join token; decoding it later says what is wrong with it.
                token if token.starts_with(TOKEN_FAMILY) => StartOptions { token: Some(Secret(token.to_owned())), ..StartOptions::default() },
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid options '{text}': expected a join token (from ha_token()), 'voter', 'learner' or a JSON object such as '{{\"advertise\":\"10.0.0.5:7001\"}}'"
                    )))
                }
            }
        };
        if options
            .snapshot_bytes_max
            .is_some_and(|bytes| !(SNAPSHOT_BYTES_MAX_MIN..=SNAPSHOT_BYTES_MAX).contains(&bytes))
        {
            return Err(Error::InvalidArgument(format!(
                "invalid options '{text}': snapshot_bytes_max must be {SNAPSHOT_BYTES_MAX_MIN}..={SNAPSHOT_BYTES_MAX}"
            )));
        }
        if options.log_bytes_max.is_some_and(|bytes| bytes < LOG_BYTES_MAX_MIN) {
            return Err(Error::InvalidArgument(format!(
                "invalid options '{text}': log_bytes_max must be at least {LOG_BYTES_MAX_MIN} (16 MiB)"
            )));
        }
        Ok(options)
    }
}

/// How every join token starts, whatever its version (`dqvfs-join1.`): enough to tell a token
/// from a misspelt option, while a token of another version still gets the decoder's message.
const TOKEN_FAMILY: &str = "dqvfs-join";

/// Longest member address accepted (what a DNS name and a port can need).
pub const MEMBER_ADDR_BYTES_MAX: usize = 255;

/// Checks the syntax of a member address that arrives over the network (`host:port`, at most
/// [`MEMBER_ADDR_BYTES_MAX`] bytes, a port 1-65535, a host of letters, digits, `.-_:[]`):
/// addresses enter the replicated membership, so a malformed one would poison every node.
/// Names are not resolved here (that would block, and a member may move).
pub fn check_member_addr(addr: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Error::InvalidArgument(format!("invalid member address ({} bytes): {why}", addr.len()))
    };
    if addr.len() > MEMBER_ADDR_BYTES_MAX {
        return Err(invalid("longer than 255 bytes"));
    }
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c)) {
        return Err(invalid("the host must be a name or an IP address"));
    }
    match port.parse::<u16>() {
        Ok(1..) => Ok(()),
        _ => Err(invalid("the port must be 1-65535")),
    }
}

/// Options of `ha_token`: `'voter'`, `'learner'`, or a JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenOptions {
    /// The role the token grants.
    pub role: Role,
    /// Seconds until it expires (default one hour).
    pub ttl_s: u64,
    /// How many joins it admits (default one).
    pub uses: u32,
    /// Member addresses written into the token, for the joiner's information.
    pub seeds: Vec<String>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions { role: Role::Voter, ttl_s: 3600, uses: 1, seeds: Vec::new() }
    }
}

/// Most seed addresses a token carries.
const SEEDS_MAX: usize = 8;

impl TokenOptions {
    /// Parses `ha_token`'s argument (`None`: the defaults).
    pub fn parse(text: Option<&str>) -> Result<TokenOptions, Error> {
        let Some(text) = text.map(str::trim) else { return Ok(TokenOptions::default()) };
        let options = match text {
            "voter" => TokenOptions::default(),
            "learner" => TokenOptions { role: Role::Learner, ..TokenOptions::default() },
            json if json.starts_with('{') => serde_json::from_str(json).map_err(|e| {
                Error::InvalidArgument(format!(
                    "invalid token options '{text}': {e}; expected 'voter', 'learner' or a JSON object with \"role\", \"ttl_s\", \"uses\", \"seeds\""
                ))
            })?,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid token options '{text}': expected 'voter', 'learner' or a JSON object such as '{{\"ttl_s\":600,\"uses\":3}}'"
                )))
            }
        };
        if !(1..=TOKEN_TTL_MAX_S).contains(&options.ttl_s) {
            return Err(Error::InvalidArgument(format!(
                "invalid token options: ttl_s must be 1..={TOKEN_TTL_MAX_S}"
            )));
        }
        if !(1..=TOKEN_USES_MAX).contains(&options.uses) {
            return Err(Error::InvalidArgument(format!(
                "invalid token options: uses must be 1..={TOKEN_USES_MAX}"
            )));
        }
        if options.seeds.len() > SEEDS_MAX {
            return Err(Error::InvalidArgument(format!(
                "invalid token options: at most {SEEDS_MAX} seeds"
            )));
        }
        options.seeds.iter().try_for_each(|seed| check_member_addr(seed))?;
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
        let options =
            StartOptions::parse(r#"{"advertise":"127.0.0.1:9001","role":"learner"}"#).unwrap();
        assert_eq!(
            options,
            StartOptions {
                advertise: Some("127.0.0.1:9001".into()),
                role: Role::Learner,
                log_bytes_max: None,
                token: None,
                snapshot_bytes_max: None
            }
        );
        assert_eq!(
            StartOptions::parse(" dqvfs-join1.abc ").unwrap().token,
            Some(Secret("dqvfs-join1.abc".into()))
        );
        let options =
            StartOptions::parse(r#"{"token":"dqvfs-join1.abc","advertise":"127.0.0.1:9001"}"#)
                .unwrap();
        assert_eq!(options.token, Some(Secret("dqvfs-join1.abc".into())));
        assert_eq!(
            StartOptions::parse(r#"{"log_bytes_max":67108864}"#).unwrap().log_bytes_max,
            Some(64 << 20)
        );
    }

    #[test]
    fn bad_options_name_the_problem() {
        // Goal: typos are refused, not ignored (a misspelt key must not silently change nothing).
        for (bad, why) in [
            ("leader", "expected a join token"),
            (r#"{"advertize":"127.0.0.1:1"}"#, "unknown field `advertize`"),
            (r#"{"role":"boss"}"#, "unknown variant `boss`"),
            ("{not json", "invalid options"),
            (r#"{"log_bytes_max":1000}"#, "at least"),
        ] {
            let message = StartOptions::parse(bad).unwrap_err().to_string();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn member_addresses_are_checked_without_resolving() {
        // Goal: addresses from the network are bounded and well-formed before they can enter
        // the membership; a 1 MiB address or a zero port is refused with the reason.
        assert!(check_member_addr("127.0.0.1:7001").is_ok());
        assert!(check_member_addr("node-2.example.org:7001").is_ok());
        assert!(check_member_addr("[::1]:7001").is_ok());
        let huge = format!("{}:7001", "a".repeat(1 << 20));
        for (bad, why) in [
            (huge.as_str(), "255 bytes"),
            ("127.0.0.1", "no port"),
            ("h:0", "1-65535"),
            (":1", "host"),
            ("a b:1", "host"),
        ] {
            let message = check_member_addr(bad).unwrap_err().to_string();
            assert!(message.contains(why), "{}: {message}", &bad[..bad.len().min(20)]);
        }
    }

    #[test]
    fn token_options_parse_and_are_bounded() {
        // Goal: ha_token's shorthand and JSON forms are understood; out-of-range values refused.
        assert_eq!(TokenOptions::parse(None).unwrap(), TokenOptions::default());
        assert_eq!(TokenOptions::parse(Some("learner")).unwrap().role, Role::Learner);
        let options =
            TokenOptions::parse(Some(r#"{"ttl_s":60,"uses":3,"seeds":["127.0.0.1:7001"]}"#))
                .unwrap();
        assert_eq!((options.ttl_s, options.uses, options.seeds.len()), (60, 3, 1));
        for (bad, why) in [
            (r#"{"ttl_s":0}"#, "ttl_s"),
            (r#"{"uses":0}"#, "uses"),
            (r#"{"ttl":5}"#, "unknown field"),
            (r#"{"seeds":["nope"]}"#, "no port"),
            ("admin", "expected 'voter', 'learner'"),
        ] {
            let message = TokenOptions::parse(Some(bad)).unwrap_err().to_string();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }
}
