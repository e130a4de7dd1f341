//! The SQLite WAL and wal-index formats: reading committed frames and appending new ones.
