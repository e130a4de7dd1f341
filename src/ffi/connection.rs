//! Connections the node opens itself, through the host's SQLite: to check a database before
//! it becomes a node, to checkpoint it, and to copy it into a snapshot image.

use std::ffi::{c_int, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use super::sys::*;
use crate::error::Error;

/// An open connection owned by the node; closed on drop.
pub struct Connection {
    db: NonNull<sqlite3>,
}

// SAFETY: connections are opened in SQLite's serialized mode (FULLMUTEX), so they may be
// used from any thread.
unsafe impl Send for Connection {}

/// Which VFS a node connection goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    /// `ha`: the node's own view of its database (checks, checkpoints, snapshot copies).
    Ha,
    /// The wrapped default VFS: for snapshot image files, which are not nodes.
    Plain,
}

impl Connection {
    /// Opens the database at `path`.
    pub fn open(path: &Path, through: Through) -> Result<Connection, Error> {
        let uri = file_uri(path, through)?;
        let mut db: *mut sqlite3 = std::ptr::null_mut();
        let flags =
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX;
        // SAFETY: valid C string and out-pointer; a NULL VFS name means the URI decides.
        let rc = unsafe { sqlite3_open_v2(uri.as_ptr(), &mut db, flags, std::ptr::null()) };
        let Some(db) = NonNull::new(db) else {
            return Err(Error::Sqlite {
                code: rc,
                message: "out of memory opening a connection".into(),
            });
        };
        let connection = Connection { db };
        if rc != SQLITE_OK {
            return Err(connection.error(rc));
        }
        // SAFETY: open connection.
        unsafe { sqlite3_extended_result_codes(db.as_ptr(), 1) };
        // SAFETY: open connection.
        unsafe { sqlite3_busy_timeout(db.as_ptr(), 5_000) };
        Ok(connection)
    }

    fn error(&self, rc: c_int) -> Error {
        // SAFETY: open connection; errmsg returns a valid string owned by SQLite.
        let message = unsafe { CStr::from_ptr(sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned();
        Error::Sqlite { code: rc, message }
    }

    /// Runs SQL that returns no rows.
    pub fn exec(&self, sql: &str) -> Result<(), Error> {
        let sql =
            CString::new(sql).map_err(|_| Error::InvalidArgument("SQL with a NUL byte".into()))?;
        let mut message: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: open connection, valid SQL string, no callback.
        let rc = unsafe {
            sqlite3_exec(self.db.as_ptr(), sql.as_ptr(), None, std::ptr::null_mut(), &mut message)
        };
        if !message.is_null() {
            // SAFETY: allocated by SQLite.
            unsafe { sqlite3_free(message.cast()) };
        }
        if rc == SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// Runs a query and returns the first column of its first row as text (None: no row
    /// or NULL).
    pub fn query_text(&self, sql: &str) -> Result<Option<String>, Error> {
        let sql =
            CString::new(sql).map_err(|_| Error::InvalidArgument("SQL with a NUL byte".into()))?;
        let mut stmt: *mut sqlite3_stmt = std::ptr::null_mut();
        // SAFETY: open connection, valid SQL, out-pointer.
        let rc = unsafe {
            sqlite3_prepare_v2(self.db.as_ptr(), sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        if rc != SQLITE_OK {
            return Err(self.error(rc));
        }
        // SAFETY: a prepared statement (or NULL for empty SQL, which step/finalize accept).
        let result = unsafe {
            match sqlite3_step(stmt) {
                SQLITE_ROW if sqlite3_column_type(stmt, 0) != SQLITE_NULL => {
                    let text = sqlite3_column_text(stmt, 0);
                    Ok((!text.is_null())
                        .then(|| CStr::from_ptr(text.cast()).to_string_lossy().into_owned()))
                }
                SQLITE_ROW | SQLITE_DONE => Ok(None),
                rc => Err(self.error(rc)),
            }
        };
        // SAFETY: finalising the statement we prepared.
        unsafe { sqlite3_finalize(stmt) };
        result
    }

    /// Copies this connection's main database, page for page, into `dest`'s.
    pub fn backup_into(&self, dest: &Connection) -> Result<(), Error> {
        // SAFETY: two open connections; "main" names exist.
        let backup = unsafe {
            sqlite3_backup_init(
                dest.db.as_ptr(),
                c"main".as_ptr(),
                self.db.as_ptr(),
                c"main".as_ptr(),
            )
        };
        if backup.is_null() {
            // SAFETY: open connection.
            return Err(dest.error(unsafe { sqlite3_extended_errcode(dest.db.as_ptr()) }));
        }
        // SAFETY: a live backup object; -1 copies everything in one read transaction.
        let rc = unsafe { sqlite3_backup_step(backup, -1) };
        // SAFETY: finishing the backup we started.
        let finish_rc = unsafe { sqlite3_backup_finish(backup) };
        match (rc, finish_rc) {
            (SQLITE_DONE, SQLITE_OK) => Ok(()),
            (SQLITE_DONE, rc) | (rc, _) => Err(dest.error(rc)),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: we own the connection and close it once; statements are all finalised.
        unsafe { sqlite3_close(self.db.as_ptr()) };
    }
}

/// `file:` URI for `path`, percent-encoding what URIs reserve.
fn file_uri(path: &Path, through: Through) -> Result<CString, Error> {
    let path = path
        .to_str()
        .ok_or_else(|| Error::InvalidArgument(format!("path {} is not UTF-8", path.display())))?;
    let mut uri = String::from("file:");
    for c in path.chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    match through {
        Through::Ha => uri.push_str("?vfs=ha"),
        Through::Plain => {
            // SAFETY: the wrapped VFS is registered for the process lifetime; its name is a C string.
            let name = unsafe { CStr::from_ptr(super::vfs::inner_vfs().as_ref().zName) };
            uri.push_str(&format!("?vfs={}", name.to_string_lossy()));
        }
    }
    CString::new(uri).map_err(|_| Error::InvalidArgument("path with a NUL byte".into()))
}
