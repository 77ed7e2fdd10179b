//! SQLite outbox: events persisted before publishing, removed on broker acknowledgement.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, ffi, params};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

// `meta.count` is kept equal to the number of rows by triggers, so `push` and `len` need no
// full-table COUNT(*) even when the store holds its whole capacity.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT    NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    retain  INTEGER NOT NULL,
    created REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('count', (SELECT COUNT(*) FROM outbox));
CREATE TRIGGER IF NOT EXISTS outbox_count_insert AFTER INSERT ON outbox BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'count';
END;
CREATE TRIGGER IF NOT EXISTS outbox_count_delete AFTER DELETE ON outbox BEGIN
    UPDATE meta SET value = value - 1 WHERE key = 'count';
END;
";

/// Errors of the durable outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The store could not be opened, created or set up.
    #[error("cannot open outbox {path}")]
    Open {
        /// The store's path.
        path: PathBuf,
        /// What SQLite (or creating the parent directory) reported.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement on an open store failed.
    #[error("outbox {path}: {action} failed")]
    Sql {
        /// The store's path.
        path: PathBuf,
        /// What the outbox was doing, e.g. `insert`.
        action: &'static str,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
}

/// One stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Position in the store; strictly increasing in insertion order, never reused.
    pub seq: i64,
    /// The event's id.
    pub id: String,
    /// The MQTT topic to publish to.
    pub topic: String,
    /// The message body.
    pub payload: Vec<u8>,
    /// Whether the broker should retain the message.
    pub retain: bool,
}

/// A bounded, crash-safe FIFO of messages waiting for a broker acknowledgement.
///
/// Every committed `push` is on disk (WAL, `synchronous=FULL`) before it returns, so a killed
/// process loses nothing it was told was stored. The type is `Send + Sync`, so a task may hold
/// it across `.await`; its calls block on disk I/O, though.
#[derive(Debug)]
pub struct Outbox {
    // A `Connection` is not `Sync`; the mutex makes `&Outbox` shareable and is never contended
    // for `&mut self` calls, which use `get_mut`.
    conn: Mutex<Connection>,
    path: PathBuf,
    capacity: usize,
}

impl Outbox {
    /// Opens or creates the store at `path`, creating its parent directory if missing.
    ///
    /// The store keeps at most `capacity` messages; a capacity of 0 is treated as 1.
    pub fn open(path: &Path, capacity: usize) -> Result<Outbox, OutboxError> {
        let open_err = |source| OutboxError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // `rusqlite::Error` has no I/O variant, so the reason travels as SQLite's message.
            std::fs::create_dir_all(parent).map_err(|e| {
                let reason = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    format!("{} exists and is not a directory", parent.display())
                } else {
                    format!("cannot create directory {}: {e}", parent.display())
                };
                open_err(rusqlite::Error::SqliteFailure(
                    ffi::Error::new(ffi::SQLITE_CANTOPEN),
                    Some(reason),
                ))
            })?;
        }
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err)?;
        tx.execute_batch(SCHEMA).map_err(open_err)?;
        tx.commit().map_err(open_err)?;
        Ok(Outbox {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            capacity: capacity.max(1),
        })
    }

    /// Appends a message, first deleting the oldest ones if the store already holds `capacity`.
    ///
    /// Returns how many messages this call dropped. Insert and trim commit together.
    pub fn push(
        &mut self,
        id: &str,
        topic: &str,
        payload: &[u8],
        retain: bool,
    ) -> Result<u64, OutboxError> {
        let path = &self.path;
        let tx = self
            .conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(path, "begin push"))?;
        let count = read_meta(&tx, "count").map_err(sql_err(path, "count"))?;
        let excess = count
            .saturating_add(1)
            .saturating_sub(to_i64(self.capacity));
        let mut dropped = 0;
        if excess > 0 {
            dropped = tx
                .prepare_cached(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
                )
                .and_then(|mut stmt| stmt.execute([excess]))
                .map_err(sql_err(path, "trim"))?;
            tx.prepare_cached("UPDATE meta SET value = value + ?1 WHERE key = 'dropped'")
                .and_then(|mut stmt| stmt.execute([to_i64(dropped)]))
                .map_err(sql_err(path, "count dropped"))?;
        }
        tx.prepare_cached(
            "INSERT INTO outbox (id, topic, payload, retain, created) \
             VALUES (?1, ?2, ?3, ?4, unixepoch('subsec'))",
        )
        .and_then(|mut stmt| stmt.execute(params![id, topic, payload, retain]))
        .map_err(sql_err(path, "insert"))?;
        tx.commit().map_err(sql_err(path, "commit push"))?;
        Ok(dropped as u64)
    }

    /// Up to `limit` oldest messages with `seq > after` (pass 0 for the start), oldest first.
    pub fn pending_after(&self, after: i64, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, id, topic, payload, retain FROM outbox \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql_err(&self.path, "read pending"))?;
        stmt.query_map(params![after, to_i64(limit)], |row| {
            Ok(Pending {
                seq: row.get(0)?,
                id: row.get(1)?,
                topic: row.get(2)?,
                payload: row.get(3)?,
                retain: row.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path, "read pending"))
    }

    /// Deletes one acknowledged message; a `seq` that is already gone is not an error.
    pub fn remove(&mut self, seq: i64) -> Result<(), OutboxError> {
        self.conn
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .prepare_cached("DELETE FROM outbox WHERE seq = ?1")
            .and_then(|mut stmt| stmt.execute([seq]))
            .map_err(sql_err(&self.path, "remove"))?;
        Ok(())
    }

    /// Messages stored now.
    pub fn len(&self) -> Result<usize, OutboxError> {
        let count = read_meta(&self.conn(), "count").map_err(sql_err(&self.path, "count"))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Whether no message is stored.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Total messages dropped for lack of room since the store was created; survives reopening.
    pub fn dropped(&self) -> Result<u64, OutboxError> {
        let dropped =
            read_meta(&self.conn(), "dropped").map_err(sql_err(&self.path, "read dropped"))?;
        Ok(u64::try_from(dropped).unwrap_or(0))
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection for a `&self` call.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave a transaction open: `Transaction`
        // rolls back when dropped during unwinding.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Maps a SQLite failure during `action` to [`OutboxError::Sql`].
fn sql_err(path: &Path, action: &'static str) -> impl FnOnce(rusqlite::Error) -> OutboxError {
    move |source| OutboxError::Sql {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Reads one counter from the `meta` table; a missing row reads as 0.
fn read_meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// Converts a count to a SQL integer, saturating (SQLite integers are `i64`).
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("state").join("outbox.sqlite")
    }

    fn push_n(outbox: &mut Outbox, from: usize, to: usize) {
        for i in from..to {
            let payload = format!("{{\"n\":{i}}}");
            outbox
                .push(
                    &format!("e{i}"),
                    "edgemass/cam/event",
                    payload.as_bytes(),
                    i % 2 == 0,
                )
                .unwrap();
        }
    }

    fn ids(pending: &[Pending]) -> Vec<&str> {
        pending.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn outbox_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Outbox>();
    }

    #[test]
    fn push_pending_remove_round_trip_keeps_insertion_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&store(&dir), 10).unwrap();
        assert!(outbox.is_empty().unwrap());
        assert_eq!(outbox.push("a", "t/1", b"one", true).unwrap(), 0);
        assert_eq!(outbox.push("b", "t/2", b"", false).unwrap(), 0);
        assert_eq!(outbox.push("c", "t/3", &[0, 255, 7], false).unwrap(), 0);
        assert_eq!(outbox.len().unwrap(), 3);

        let pending = outbox.pending_after(0, 10).unwrap();
        assert_eq!(ids(&pending), ["a", "b", "c"]);
        assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(pending[0].topic, "t/1");
        assert_eq!(pending[0].payload, b"one");
        assert!(pending[0].retain);
        assert_eq!(pending[1].payload, b"");
        assert!(!pending[1].retain);
        assert_eq!(pending[2].payload, [0, 255, 7]);

        outbox.remove(pending[1].seq).unwrap();
        assert_eq!(ids(&outbox.pending_after(0, 10).unwrap()), ["a", "c"]);
        outbox.remove(pending[0].seq).unwrap();
        outbox.remove(pending[2].seq).unwrap();
        assert!(outbox.is_empty().unwrap());
        assert!(outbox.pending_after(0, 10).unwrap().is_empty());
    }

    #[test]
    fn removing_an_already_removed_message_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&store(&dir), 10).unwrap();
        outbox.push("a", "t", b"x", false).unwrap();
        let seq = outbox.pending_after(0, 1).unwrap()[0].seq;
        outbox.remove(seq).unwrap();
        outbox.remove(seq).unwrap();
        outbox.remove(12345).unwrap();
        assert_eq!(outbox.len().unwrap(), 0);
    }

    #[test]
    fn full_store_drops_the_oldest_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut outbox = Outbox::open(&path, 3).unwrap();
        push_n(&mut outbox, 0, 3);
        assert_eq!(outbox.dropped().unwrap(), 0);
        assert_eq!(outbox.push("e3", "t", b"x", false).unwrap(), 1);
        assert_eq!(outbox.push("e4", "t", b"x", false).unwrap(), 1);
        assert_eq!(outbox.len().unwrap(), 3);
        assert_eq!(outbox.dropped().unwrap(), 2);
        assert_eq!(
            ids(&outbox.pending_after(0, 10).unwrap()),
            ["e2", "e3", "e4"]
        );

        drop(outbox);
        let outbox = Outbox::open(&path, 3).unwrap();
        assert_eq!(outbox.dropped().unwrap(), 2);
        assert_eq!(outbox.len().unwrap(), 3);
    }

    #[test]
    fn reopening_with_a_smaller_capacity_trims_on_the_next_push() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut outbox = Outbox::open(&path, 10).unwrap();
        push_n(&mut outbox, 0, 5);
        drop(outbox);

        let mut outbox = Outbox::open(&path, 2).unwrap();
        assert_eq!(outbox.len().unwrap(), 5);
        assert_eq!(outbox.push("e5", "t", b"x", false).unwrap(), 4);
        assert_eq!(ids(&outbox.pending_after(0, 10).unwrap()), ["e4", "e5"]);
        assert_eq!(outbox.dropped().unwrap(), 4);
    }

    #[test]
    fn zero_capacity_keeps_the_newest_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&store(&dir), 0).unwrap();
        push_n(&mut outbox, 0, 3);
        assert_eq!(ids(&outbox.pending_after(0, 10).unwrap()), ["e2"]);
        assert_eq!(outbox.dropped().unwrap(), 2);
    }

    #[test]
    fn pending_messages_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut outbox = Outbox::open(&path, 100).unwrap();
        push_n(&mut outbox, 0, 5);
        let first = outbox.pending_after(0, 1).unwrap()[0].seq;
        outbox.remove(first).unwrap();
        let before = outbox.pending_after(0, 100).unwrap();
        // Leaking the connection skips the close-time checkpoint, like `kill -9`: the rows
        // exist only in the WAL file.
        std::mem::forget(outbox);
        assert!(path.with_extension("sqlite-wal").exists());

        let reopened = Outbox::open(&path, 100).unwrap();
        assert_eq!(reopened.pending_after(0, 100).unwrap(), before);
        assert_eq!(reopened.len().unwrap(), 4);
    }

    #[test]
    fn pending_messages_survive_a_clean_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut outbox = Outbox::open(&path, 100).unwrap();
        push_n(&mut outbox, 0, 5);
        let before = outbox.pending_after(0, 100).unwrap();
        drop(outbox);

        let reopened = Outbox::open(&path, 100).unwrap();
        assert_eq!(reopened.pending_after(0, 100).unwrap(), before);
    }

    #[test]
    fn seq_keeps_increasing_after_all_rows_are_deleted_and_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut outbox = Outbox::open(&path, 100).unwrap();
        push_n(&mut outbox, 0, 3);
        let last = outbox.pending_after(0, 100).unwrap().last().unwrap().seq;
        for p in outbox.pending_after(0, 100).unwrap() {
            outbox.remove(p.seq).unwrap();
        }
        assert!(outbox.is_empty().unwrap());
        drop(outbox);

        let mut outbox = Outbox::open(&path, 100).unwrap();
        outbox.push("next", "t", b"x", false).unwrap();
        let next = outbox.pending_after(0, 100).unwrap();
        assert_eq!(ids(&next), ["next"]);
        assert!(next[0].seq > last, "{} should exceed {last}", next[0].seq);
    }

    #[test]
    fn pending_after_pages_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(&store(&dir), 100).unwrap();
        push_n(&mut outbox, 0, 7);
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = outbox.pending_after(after, 3).unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            after = last.seq;
            seen.extend(page.into_iter().map(|p| p.id));
        }
        let expected: Vec<String> = (0..7).map(|i| format!("e{i}")).collect();
        assert_eq!(seen, expected);
        assert!(outbox.pending_after(0, 0).unwrap().is_empty());
    }

    #[test]
    fn a_second_connection_sees_committed_writes_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir);
        let mut writer = Outbox::open(&path, 100).unwrap();
        push_n(&mut writer, 0, 3);

        let mut reader = Outbox::open(&path, 100).unwrap();
        assert_eq!(
            reader.pending_after(0, 100).unwrap(),
            writer.pending_after(0, 100).unwrap()
        );

        let first = reader.pending_after(0, 1).unwrap()[0].seq;
        reader.remove(first).unwrap();
        writer.push("e3", "t", b"x", false).unwrap();
        assert_eq!(
            ids(&reader.pending_after(0, 100).unwrap()),
            ["e1", "e2", "e3"]
        );
        assert_eq!(writer.len().unwrap(), 3);
    }

    #[test]
    fn unwritable_path_is_an_open_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let path = file.join("outbox.sqlite");

        let err = Outbox::open(&path, 10).unwrap_err();
        assert!(matches!(err, OutboxError::Open { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_open_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();

        let err = Outbox::open(&path, 10).unwrap_err();
        assert!(matches!(err, OutboxError::Open { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
