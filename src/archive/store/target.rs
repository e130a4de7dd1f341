//! Where an archive lives: the parsed `ha_archive(url, options)` arguments.
//!
//! An [`ArchiveTarget`] is replicated through Raft and kept in private state files, so it is
//! plain data (serde) and carries the credentials given in the options. Invariants: every
//! field was checked and bounded by [`ArchiveTarget::parse`]; `Debug`, `Display` and
//! [`ArchiveTarget::display_url`] never show a credential (not even the access key id).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::StoreError;

/// Longest archive URL accepted, in bytes.
pub const URL_BYTES_MAX: usize = 1024;
/// Longest value of one option, in bytes.
pub const OPTION_BYTES_MAX: usize = 1024;
/// Longest options JSON text accepted, in bytes (every key at its longest, with room).
pub const OPTIONS_JSON_BYTES_MAX: usize = 16 * 1024;
/// The option keys [`ArchiveTarget::parse`] knows; any other key is refused.
pub const STORE_OPTION_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "allow_http",
];

/// Where an archive lives, as configured by `ha_archive(url, options)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveTarget {
    pub(super) location: Location,
}

/// The two kinds of archive location.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Location {
    /// A directory (`file:///abs/dir`): a local or mounted disk.
    Dir {
        /// Absolute path, no trailing `/`, no `.` or `..` segment.
        path: String,
    },
    /// An S3 bucket, with an optional prefix below which the archive lives.
    S3(S3Target),
}

/// An `s3://bucket/prefix` location and its options.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct S3Target {
    pub(super) bucket: String,
    /// `""` for the bucket's root, else `a/b` (no leading or trailing `/`).
    pub(super) prefix: String,
    /// `http(s)://host[:port]`; `None`: `AWS_ENDPOINT_URL(_S3)` at open, else AWS's.
    pub(super) endpoint: Option<String>,
    /// `None`: `AWS_REGION` / `AWS_DEFAULT_REGION` at open, else `us-east-1`.
    pub(super) region: Option<String>,
    /// `bucket` in the path (MinIO, most self-hosted servers) instead of the host name.
    pub(super) path_style: bool,
    /// `None`: allowed exactly when the endpoint is `http://`.
    pub(super) allow_http: Option<bool>,
    /// `None`: the AWS environment of the node that uploads, read at open.
    pub(super) credentials: Option<S3Credentials>,
}

/// Static credentials given in the options. No `Debug`: they are never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct S3Credentials {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: String,
    pub(super) session_token: Option<String>,
}

impl ArchiveTarget {
    /// Parses `file:///abs/dir` or `s3://bucket/optional/prefix` and the options JSON object
    /// (absent, `null` or `{}` for none). Options, all for `s3://` only: `endpoint`
    /// (`http(s)://host:port`), `region`, `path_style` (bool), `access_key_id`,
    /// `secret_access_key`, `session_token`, `allow_http` (bool; default true exactly when
    /// the endpoint is `http://`). Unknown keys are refused by name. Without credentials in
    /// the options, the node that uploads reads the usual AWS environment variables when it
    /// opens the store.
    pub fn parse(url: &str, options_json: Option<&str>) -> Result<ArchiveTarget, StoreError> {
        if url.len() > URL_BYTES_MAX {
            return Err(invalid(format!("the archive URL is longer than {URL_BYTES_MAX} bytes")));
        }
        let options = parse_options(options_json)?;
        let location = if let Some(rest) = url.strip_prefix("file://") {
            if let Some(key) = options.first_key() {
                return Err(invalid(format!("option {key:?} applies to s3:// archives only")));
            }
            Location::Dir { path: parse_dir(rest)? }
        } else if let Some(rest) = url.strip_prefix("s3://") {
            Location::S3(parse_s3(rest, options)?)
        } else {
            return Err(invalid(
                "the archive URL must be file:///absolute/dir or s3://bucket[/prefix]".into(),
            ));
        };
        Ok(ArchiveTarget { location })
    }

    /// The URL without credentials (they are never in it), for `ha_status()` and logs.
    pub fn display_url(&self) -> String {
        match &self.location {
            Location::Dir { path } => format!("file://{path}"),
            Location::S3(s3) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
            Location::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// True for an `s3://` target.
    pub fn is_s3(&self) -> bool {
        matches!(self.location, Location::S3(_))
    }
}

impl fmt::Display for ArchiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())?;
        if let Location::S3(S3Target { endpoint: Some(endpoint), .. }) = &self.location {
            write!(f, " at {endpoint}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ArchiveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ArchiveTarget");
        out.field("url", &self.display_url());
        if let Location::S3(s3) = &self.location {
            out.field("endpoint", &s3.endpoint)
                .field("region", &s3.region)
                .field("path_style", &s3.path_style)
                .field("allow_http", &s3.allow_http)
                .field(
                    "credentials",
                    &match s3.credentials {
                        Some(_) => "<given in the options, not shown>",
                        None => "<from the environment at open>",
                    },
                );
        }
        out.finish()
    }
}

fn invalid(reason: String) -> StoreError {
    StoreError::InvalidTarget { reason }
}

/// The options object, checked for unknown keys and sizes, but not yet for meaning.
struct Options(serde_json::Map<String, serde_json::Value>);

impl Options {
    fn first_key(&self) -> Option<&str> {
        self.0.keys().next().map(String::as_str)
    }

    /// A string option, bounded, without control characters.
    fn string(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        match self.0.remove(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(value)) => {
                if value.is_empty() || value.len() > OPTION_BYTES_MAX {
                    return Err(invalid(format!(
                        "option {key:?} must be 1 to {OPTION_BYTES_MAX} bytes long"
                    )));
                }
                if value.chars().any(char::is_control) {
                    return Err(invalid(format!("option {key:?} holds a control character")));
                }
                Ok(Some(value))
            }
            Some(_) => Err(invalid(format!("option {key:?} must be a string"))),
        }
    }

    fn bool(&mut self, key: &str) -> Result<Option<bool>, StoreError> {
        match self.0.remove(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(value)) => Ok(Some(value)),
            Some(_) => Err(invalid(format!("option {key:?} must be true or false"))),
        }
    }
}

fn parse_options(options_json: Option<&str>) -> Result<Options, StoreError> {
    let Some(text) = options_json else {
        return Ok(Options(serde_json::Map::new()));
    };
    if text.len() > OPTIONS_JSON_BYTES_MAX {
        return Err(invalid(format!(
            "the archive options are longer than {OPTIONS_JSON_BYTES_MAX} bytes"
        )));
    }
    // The parser's message names a line and column, never the text, so no secret leaks.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the archive options are not valid JSON: {e}")))?;
    let map = match value {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map,
        _ => return Err(invalid("the archive options must be a JSON object".into())),
    };
    if let Some(key) = map.keys().find(|key| !STORE_OPTION_KEYS.contains(&key.as_str())) {
        let shown: String = key.chars().take(64).collect();
        return Err(invalid(format!(
            "unknown archive option {shown:?} (known: {})",
            STORE_OPTION_KEYS.join(", ")
        )));
    }
    Ok(Options(map))
}

/// `/abs/dir` after `file://`: absolute, no host, no `.`/`..`/empty segment.
fn parse_dir(rest: &str) -> Result<String, StoreError> {
    if !rest.starts_with('/') {
        return Err(invalid(
            "a file URL needs an absolute path and no host: file:///absolute/dir".into(),
        ));
    }
    let path = rest.trim_end_matches('/');
    if path.is_empty() {
        return Err(invalid("the archive directory may not be / itself".into()));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err(invalid("the archive directory holds a control character".into()));
    }
    if path[1..].split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(invalid(
            "the archive directory may not hold empty, '.' or '..' segments".into(),
        ));
    }
    if path.contains(['?', '#', '%']) {
        return Err(invalid(
            "the archive directory may not hold '?', '#' or '%' (no query, fragment or escapes)"
                .into(),
        ));
    }
    Ok(path.to_owned())
}

fn parse_s3(rest: &str, mut options: Options) -> Result<S3Target, StoreError> {
    if rest.contains(['?', '#']) {
        return Err(invalid(
            "an s3:// URL has no query or fragment: give endpoint, region and credentials in the options"
                .into(),
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(bucket)?;
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        super::check_name(prefix).map_err(|reason| {
            invalid(format!("the s3:// prefix {prefix:?} is not usable: {reason}"))
        })?;
    }
    let endpoint = options.string("endpoint")?;
    if let Some(endpoint) = &endpoint {
        check_endpoint(endpoint)?;
    }
    let region = options.string("region")?;
    if let Some(region) = &region {
        if !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(invalid("option \"region\" must be letters, digits and '-'".into()));
        }
    }
    let path_style = options.bool("path_style")?.unwrap_or(false);
    let allow_http = options.bool("allow_http")?;
    if allow_http == Some(false) && endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
        return Err(invalid(
            "the endpoint is http:// but allow_http is false: use https:// or allow http".into(),
        ));
    }
    let access_key_id = options.string("access_key_id")?;
    let secret_access_key = options.string("secret_access_key")?;
    let session_token = options.string("session_token")?;
    let credentials = match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Some(S3Credentials { access_key_id, secret_access_key, session_token })
        }
        (None, None) if session_token.is_none() => None,
        _ => {
            return Err(invalid(
                "give access_key_id and secret_access_key together (session_token only with them), or none to use the AWS environment"
                    .into(),
            ))
        }
    };
    debug_assert!(options.0.is_empty(), "every known option is consumed");
    Ok(S3Target {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
        endpoint,
        region,
        path_style,
        allow_http,
        credentials,
    })
}

/// S3's bucket naming rules: 3 to 63 of `a-z 0-9 . -`, starting and ending alphanumeric.
fn check_bucket(bucket: &str) -> Result<(), StoreError> {
    let chars_ok = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && chars_ok && ends_ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{:?} is not a bucket name: 3 to 63 lowercase letters, digits, '.' or '-'",
            bucket.chars().take(80).collect::<String>()
        )))
    }
}

/// `http(s)://host[:port][/]`: no user info (it would be a credential in a URL), path or query.
pub(super) fn check_endpoint(endpoint: &str) -> Result<(), StoreError> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| invalid("option \"endpoint\" must start with http:// or https://".into()))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if authority.is_empty() || !authority.chars().all(ok_char) {
        return Err(invalid(
            "option \"endpoint\" must be http(s)://host[:port], without user, path or query".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN";

    fn s3(target: &ArchiveTarget) -> &S3Target {
        match &target.location {
            Location::S3(s3) => s3,
            Location::Dir { .. } => panic!("not s3: {target:?}"),
        }
    }

    fn err(url: &str, options: Option<&str>) -> String {
        match ArchiveTarget::parse(url, options) {
            Ok(target) => panic!("{url} {options:?} was accepted as {target:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn file_urls() {
        let target = ArchiveTarget::parse("file:///var/backups/db/", None).unwrap();
        assert!(target.location == Location::Dir { path: "/var/backups/db".into() });
        assert_eq!(target.display_url(), "file:///var/backups/db");
        assert!(!target.is_s3());
        assert!(ArchiveTarget::parse("file:///mnt/nfs", Some("{}")).is_ok());
        assert!(ArchiveTarget::parse("file:///mnt/nfs", Some("null")).is_ok());
        assert!(err("file://host/dir", None).contains("absolute path and no host"));
        assert!(err("file://relative", None).contains("absolute path"));
        assert!(err("file:///", None).contains("may not be /"));
        assert!(err("file:///a/../etc", None).contains("'..'"));
        assert!(err("file:///a//b", None).contains("empty"));
        assert!(err("file:///a/b?x=1", None).contains("query"));
        assert!(err("file:///a", Some(r#"{"region":"x"}"#)).contains("s3:// archives only"));
    }

    #[test]
    fn s3_urls_and_options() {
        let options = format!(
            r#"{{"endpoint":"http://127.0.0.1:9000","region":"eu-west-3","path_style":true,
               "access_key_id":"{KEY_ID}","secret_access_key":"{SECRET}","session_token":"{TOKEN}"}}"#
        );
        let target = ArchiveTarget::parse("s3://my-bucket/db/one/", Some(&options)).unwrap();
        let t = s3(&target);
        assert_eq!((t.bucket.as_str(), t.prefix.as_str()), ("my-bucket", "db/one"));
        assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(t.region.as_deref(), Some("eu-west-3"));
        assert!(t.path_style);
        assert_eq!(t.allow_http, None, "defaults at open from the endpoint's scheme");
        let creds = t.credentials.as_ref().expect("credentials given");
        assert_eq!(creds.secret_access_key, SECRET);
        assert_eq!(creds.session_token.as_deref(), Some(TOKEN));
        assert_eq!(target.display_url(), "s3://my-bucket/db/one");
        assert!(target.is_s3());

        let bare = ArchiveTarget::parse("s3://bucket", None).unwrap();
        assert_eq!(bare.display_url(), "s3://bucket");
        assert!(s3(&bare).credentials.is_none());
        assert!(!s3(&bare).path_style);
    }

    #[test]
    fn credentials_never_shown() {
        let options = format!(
            r#"{{"endpoint":"https://s3.example.com","access_key_id":"{KEY_ID}",
               "secret_access_key":"{SECRET}","session_token":"{TOKEN}"}}"#
        );
        let target = ArchiveTarget::parse("s3://bucket/p", Some(&options)).unwrap();
        for shown in [
            format!("{target:?}"),
            format!("{target:#?}"),
            target.to_string(),
            target.display_url(),
        ] {
            for secret in [SECRET, KEY_ID, TOKEN] {
                assert!(!shown.contains(secret), "{secret} shown in {shown}");
            }
        }
        assert!(target.to_string().contains("https://s3.example.com"));
        assert!(format!("{target:?}").contains("not shown"));
        // Errors about credentials do not echo them either.
        let half = format!(r#"{{"secret_access_key":"{SECRET}"}}"#);
        let message = err("s3://bucket", Some(&half));
        assert!(message.contains("together") && !message.contains(SECRET), "{message}");
        let bad_json = format!(r#"{{"secret_access_key":"{SECRET}"#);
        let message = err("s3://bucket", Some(&bad_json));
        assert!(message.contains("not valid JSON") && !message.contains(SECRET), "{message}");
    }

    #[test]
    fn serde_round_trip_keeps_everything() {
        let options = format!(
            r#"{{"endpoint":"http://h:1","allow_http":true,"access_key_id":"{KEY_ID}","secret_access_key":"{SECRET}"}}"#
        );
        for target in [
            ArchiveTarget::parse("s3://bucket/a/b", Some(&options)).unwrap(),
            ArchiveTarget::parse("file:///srv/archive", None).unwrap(),
        ] {
            let bytes = rmp_serde::to_vec(&target).unwrap();
            let back: ArchiveTarget = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, target);
        }
    }

    #[test]
    fn bad_s3_urls_and_options() {
        assert!(err("http://bucket", None).contains("file:///absolute/dir or s3://"));
        assert!(err("s3://", None).contains("not a bucket name"));
        assert!(err("s3://Upper", None).contains("not a bucket name"));
        assert!(err("s3://ab", None).contains("not a bucket name"));
        assert!(err("s3://-bucket", None).contains("not a bucket name"));
        assert!(err("s3://bucket?region=x", None).contains("no query"));
        assert!(err("s3://bucket/a/../b", None).contains("prefix"));
        assert!(err("s3://bucket//a", None).contains("prefix"));
        assert!(err("s3://bucket", Some(r#"{"regoin":"x"}"#))
            .contains("unknown archive option \"regoin\""));
        assert!(err("s3://bucket", Some("[1]")).contains("JSON object"));
        assert!(err("s3://bucket", Some(r#"{"path_style":"yes"}"#)).contains("true or false"));
        assert!(err("s3://bucket", Some(r#"{"region":5}"#)).contains("string"));
        assert!(err("s3://bucket", Some(r#"{"region":""}"#)).contains("1 to"));
        assert!(err("s3://bucket", Some(r#"{"region":"eu west"}"#)).contains("region"));
        for endpoint in ["ftp://h", "http://", "http://user:pw@h:1", "https://h/path", "http://h?x"]
        {
            let options = format!(r#"{{"endpoint":"{endpoint}"}}"#);
            assert!(err("s3://bucket", Some(&options)).contains("endpoint"), "{endpoint}");
        }
        let contradiction = r#"{"endpoint":"http://h:1","allow_http":false}"#;
        assert!(err("s3://bucket", Some(contradiction)).contains("allow_http"));
        let token_alone = r#"{"session_token":"t"}"#;
        assert!(err("s3://bucket", Some(token_alone)).contains("together"));
    }

    #[test]
    fn lengths_are_bounded() {
        let long_url = format!("s3://bucket/{}", "a".repeat(URL_BYTES_MAX));
        assert!(err(&long_url, None).contains("longer than"));
        let long_option = format!(r#"{{"region":"{}"}}"#, "a".repeat(OPTION_BYTES_MAX + 1));
        assert!(err("s3://bucket", Some(&long_option)).contains("1 to 1024 bytes"));
        let long_json = format!("{{{}}}", " ".repeat(OPTIONS_JSON_BYTES_MAX));
        assert!(err("s3://bucket", Some(&long_json)).contains("longer than"));
    }
}
