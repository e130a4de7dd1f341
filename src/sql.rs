//! The `ha_*` SQL functions: their names, argument parsing, and dispatch to the node.
//! Every function is documented with its exact SQL form in docs/SQL.md.

use std::path::PathBuf;

use crate::error::Error;
use crate::node::{self, StartOptions, TokenOptions};
use crate::raft::types::NodeId;

/// A SQL argument value.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An INTEGER.
    Integer(i64),
    /// A REAL.
    Real(f64),
    /// TEXT (or a BLOB read as text).
    Text(String),
}

/// A SQL function result.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlOutput {
    /// NULL.
    Null,
    /// An INTEGER.
    Integer(i64),
    /// TEXT.
    Text(String),
}

/// The connection a function was called on.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Full path of the connection's main database (None for in-memory or temp databases).
    pub main_db: Option<PathBuf>,
    /// Whether the main database was opened through the `ha` VFS.
    pub through_ha: bool,
}

/// The SQL functions, in the order `Function::ALL` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Function {
    /// `ha_init(addr [, options])`
    Init = 1,
    /// `ha_join(addr, peer [, options])`
    Join,
    /// `ha_status()`
    Status,
    /// `ha_leave()`
    Leave,
    /// `ha_remove(node_id)`
    Remove,
    /// `ha_barrier()`
    Barrier,
    /// `ha_transfer(node_id)`
    Transfer,
    /// `ha_last_error()`
    LastError,
    /// `ha_token([options])`
    Token,
    /// `ha_archive(url [, options])`, `ha_archive(NULL)`
    Archive,
    /// `ha_restore(url [, options])`
    Restore,
}

impl Function {
    /// Every function we register.
    pub const ALL: &'static [Function] = &[
        Function::Init,
        Function::Join,
        Function::Token,
        Function::Status,
        Function::Leave,
        Function::Remove,
        Function::Barrier,
        Function::Transfer,
        Function::LastError,
        Function::Archive,
        Function::Restore,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Init => "ha_init",
            Function::Join => "ha_join",
            Function::Status => "ha_status",
            Function::Leave => "ha_leave",
            Function::Remove => "ha_remove",
            Function::Barrier => "ha_barrier",
            Function::Transfer => "ha_transfer",
            Function::LastError => "ha_last_error",
            Function::Token => "ha_token",
            Function::Archive => "ha_archive",
            Function::Restore => "ha_restore",
        }
    }

    /// The usage line shown when the arguments are wrong.
    fn usage(self) -> &'static str {
        match self {
            Function::Init => "ha_init(addr [, options]): addr is 'host:port' to listen on, e.g. ha_init('127.0.0.1:7001'); options a JSON object such as '{\"advertise\":\"10.0.0.5:7001\"}'",
            Function::Join => "ha_join(addr, peer, token): addr is 'host:port' to listen on, peer the 'host:port' of any member, token what ha_token() returned on a voter (or a JSON object such as '{\"token\":\"...\",\"advertise\":\"10.0.0.5:7002\"}')",
            Function::Token => "ha_token([options]): options 'voter' (default), 'learner', or a JSON object such as '{\"ttl_s\":600,\"uses\":3,\"role\":\"learner\"}'",
            Function::Status => "ha_status() takes no arguments",
            Function::Leave => "ha_leave() takes no arguments",
            Function::Remove => "ha_remove(node_id): node_id is the integer id of a member",
            Function::Barrier => "ha_barrier() takes no arguments",
            Function::Transfer => "ha_transfer(node_id): node_id is the integer id of a voter to lead next",
            Function::LastError => "ha_last_error() takes no arguments",
            Function::Archive => "ha_archive(url [, options]): url is 's3://bucket/prefix' or 'file:///dir', options a JSON object such as '{\"endpoint\":\"http://127.0.0.1:9000\",\"interval_ms\":1000}'; ha_archive(NULL) stops archiving",
            Function::Restore => "ha_restore(url [, options]): on an empty database that is not a node; options a JSON object such as '{\"at\":\"2026-12-04T09:31:49Z\"}' or '{\"index\":1234}' (default: the last archived transaction)",
        }
    }

    /// The function with this id (its `repr`).
    pub fn from_id(id: usize) -> Option<Function> {
        Function::ALL.iter().copied().find(|f| *f as usize == id)
    }
}

/// Runs `function` for `caller` with `args`.
pub fn call(function: Function, caller: &Caller, args: &[SqlValue]) -> Result<SqlOutput, Error> {
    let usage = || Error::InvalidArgument(format!("wrong arguments: {}", function.usage()));
    let db = || node_database(function, caller);
    match (function, args) {
        (Function::Init, [SqlValue::Text(addr), options @ ..]) if options.len() <= 1 => {
            let (addr, options) = (parse_addr(addr)?, parse_options(options.first(), &usage)?);
            Ok(id_output(node::init(&db()?, &addr, &options)?))
        }
        (Function::Join, [SqlValue::Text(addr), SqlValue::Text(peer), options @ ..])
            if options.len() <= 1 =>
        {
            let (addr, peer) = (parse_addr(addr)?, parse_addr(peer)?);
            let options = parse_options(options.first(), &usage)?;
            Ok(id_output(node::join(&db()?, &addr, &peer, &options)?))
        }
        (Function::Token, options) if options.len() <= 1 => {
            let options = match options.first() {
                None | Some(SqlValue::Null) => TokenOptions::parse(None)?,
                Some(SqlValue::Text(text)) => TokenOptions::parse(Some(text))?,
                Some(_) => return Err(usage()),
            };
            Ok(SqlOutput::Text(node::token(&db()?, options)?))
        }
        (Function::Status, []) => Ok(SqlOutput::Text(node::status(&db()?)?.to_string())),
        (Function::Leave, []) => node::leave(&db()?).map(|()| SqlOutput::Null),
        (Function::Remove, [SqlValue::Integer(id)]) => {
            let id = NodeId::try_from(*id).map_err(|_| usage())?;
            node::remove(&db()?, id).map(|()| SqlOutput::Null)
        }
        (Function::Barrier, []) => node::barrier(&db()?)
            .map(|index| SqlOutput::Integer(i64::try_from(index).unwrap_or(i64::MAX))),
        (Function::Transfer, [SqlValue::Integer(id)]) => {
            let id = NodeId::try_from(*id).map_err(|_| usage())?;
            node::transfer(&db()?, id).map(|()| SqlOutput::Null)
        }
        (Function::Archive, [SqlValue::Null]) => {
            node::archive(&db()?, None).map(|()| SqlOutput::Null)
        }
        (Function::Archive, [SqlValue::Text(url), options @ ..]) if options.len() <= 1 => {
            let options = text_option(options.first(), &usage)?;
            let setting = crate::archive::setting::ArchiveSetting::parse(url, options)?;
            node::archive(&db()?, Some(setting)).map(|()| SqlOutput::Null)
        }
        (Function::Restore, [SqlValue::Text(url), options @ ..]) if options.len() <= 1 => {
            let options = text_option(options.first(), &usage)?;
            let request = crate::archive::restore::RestoreRequest::parse(url, options)?;
            let index = node::restore(&db()?, &request)?;
            Ok(SqlOutput::Integer(i64::try_from(index).unwrap_or(i64::MAX)))
        }
        (Function::LastError, []) => {
            Ok(crate::vfs::last_error::message().map_or(SqlOutput::Null, SqlOutput::Text))
        }
        _ => Err(usage()),
    }
}

fn id_output(id: NodeId) -> SqlOutput {
    SqlOutput::Integer(i64::try_from(id).unwrap_or(i64::MAX))
}

/// An optional TEXT argument (absent or NULL: None).
fn text_option<'a>(
    value: Option<&'a SqlValue>,
    usage: &dyn Fn() -> Error,
) -> Result<Option<&'a str>, Error> {
    match value {
        None | Some(SqlValue::Null) => Ok(None),
        Some(SqlValue::Text(text)) => Ok(Some(text)),
        Some(_) => Err(usage()),
    }
}

/// The main database of the caller, which must have been opened through `ha`.
fn node_database(function: Function, caller: &Caller) -> Result<PathBuf, Error> {
    match (&caller.main_db, caller.through_ha) {
        (Some(path), true) => Ok(path.clone()),
        (None, _) => Err(Error::InvalidArgument(format!(
            "{} needs a database file: this connection's main database is in memory or temporary",
            function.name()
        ))),
        (Some(_), false) => Err(Error::NotThroughHa { function: function.name() }),
    }
}

/// The optional options argument: absent or NULL means the defaults.
fn parse_options(
    value: Option<&SqlValue>,
    usage: &dyn Fn() -> Error,
) -> Result<StartOptions, Error> {
    let options = match value {
        None | Some(SqlValue::Null) => StartOptions::default(),
        Some(SqlValue::Text(text)) => StartOptions::parse(text)?,
        Some(_) => return Err(usage()),
    };
    if let Some(advertise) = &options.advertise {
        parse_addr(advertise)?;
    }
    Ok(options)
}

/// Checks a `host:port` address; names are resolved, so `localhost:7001` works.
fn parse_addr(text: &str) -> Result<String, Error> {
    use std::net::ToSocketAddrs;
    let invalid = |why: &str| {
        Error::InvalidArgument(format!(
            "invalid address '{text}': {why}; expected 'host:port', e.g. '127.0.0.1:7001'"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err(invalid("the port must be 1-65535")),
        Ok(_) => {}
    }
    let mut resolved = text.to_socket_addrs().map_err(|e| invalid(&e.to_string()))?;
    resolved.next().ok_or_else(|| invalid("it resolves to nothing"))?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        // Goal: malformed addresses are refused with a message naming the problem.
        assert!(parse_addr("127.0.0.1:7001").is_ok());
        for (bad, why) in [
            ("127.0.0.1", "no port"),
            (":7001", "no host"),
            ("127.0.0.1:0", "1-65535"),
            ("127.0.0.1:99999", "1-65535"),
        ] {
            let message = parse_addr(bad).unwrap_err().to_string();
            assert!(message.contains(why), "{bad}: {message}");
        }
    }

    #[test]
    fn wrong_arity_and_types_give_usage() {
        // Goal: every function refuses wrong arguments before touching any database.
        let caller = Caller { main_db: Some("/nonexistent/x.db".into()), through_ha: true };
        for (function, args) in [
            (Function::Init, vec![]),
            (Function::Init, vec![SqlValue::Integer(1)]),
            (Function::Join, vec![SqlValue::Text("127.0.0.1:1".into())]),
            (Function::Status, vec![SqlValue::Null]),
            (Function::Remove, vec![SqlValue::Text("1".into())]),
            (Function::Remove, vec![SqlValue::Integer(-1)]),
        ] {
            let error = call(function, &caller, &args).unwrap_err();
            assert!(error.to_string().starts_with("wrong arguments: ha_"), "{function:?}: {error}");
        }
    }

    #[test]
    fn function_ids_round_trip() {
        // Goal: the id passed through SQLite's user-data pointer maps back to its function.
        for function in Function::ALL {
            assert_eq!(Function::from_id(*function as usize), Some(*function));
        }
        assert_eq!(Function::from_id(0), None);
    }
}
