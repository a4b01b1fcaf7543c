//! Reads from a SQLite file on the thread that asks, without sqlx's
//! worker thread.
//!
//! sqlx runs every SQLite statement on a thread of its own per connection
//! and hands the query and each row across with channels. For a lookup by
//! key that hand-off is most of the cost: under `wrk` half of the app
//! server's CPU went to switching between its runtime thread and sqlx's
//! worker, against ~5 µs of SQLite's own work. A read-only statement on a
//! database file therefore runs here, on a read-only connection kept per
//! runtime thread (WAL lets readers run beside the writer and see every
//! committed write). Writes, transactions, in-memory databases and
//! PostgreSQL stay on sqlx. Blocking the runtime thread is bounded: a read
//! that finds the database locked waits at most `BUSY`.
//!
//! Uses rusqlite 0.39, the release built on the same libsqlite3-sys as
//! sqlx 0.9 (one SQLite in the binary).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::db::{Arg, Cell, Row};

/// The longest a read waits for a lock on the runtime thread.
const BUSY: Duration = Duration::from_millis(100);
/// Databases one thread keeps a connection to.
const KEPT: usize = 8;
/// Prepared statements kept per connection.
const STATEMENTS: usize = 64;

thread_local! {
    /// By database (see [`Source`]), the most recently opened last.
    static CONNECTIONS: RefCell<Vec<(u64, Connection)>> = const { RefCell::new(Vec::new()) };
}

/// One opened database: its file, and a number no other `Source` of this
/// process has, so a file deleted and made again under the same name is
/// never read through a connection to the old one.
#[derive(Clone, Debug)]
pub struct Source {
    id: u64,
    path: PathBuf,
}

impl Source {
    pub fn new(path: PathBuf) -> Source {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Source {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            path,
        }
    }
}

/// The database file of a `sqlite:` URL, when it names one (not
/// `sqlite::memory:`, whose database exists only on its own connection).
pub fn file_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || rest.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Another program holding a SQLite database's write lock: an exclusive
/// transaction on a connection of its own, rolled back when dropped. The
/// app's writes wait their busy timeout and then fail, as they would
/// behind any other program (`weblab experiment status` shows the 500).
pub struct WriteLock(Connection);

impl WriteLock {
    /// Takes the write lock of the database at `url`; `None` when the URL
    /// names no SQLite file (PostgreSQL, an in-memory database).
    pub fn take(url: &str) -> Result<Option<WriteLock>, String> {
        let Some(path) = file_of(url) else {
            return Ok(None);
        };
        let conn = Connection::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch("BEGIN EXCLUSIVE")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(WriteLock(conn)))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY)?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

/// What a read did: its rows (at most `max`), or `None` when the
/// statement is not a read (the caller runs it on sqlx instead).
pub fn read(
    source: &Source,
    sql: &str,
    args: &[Arg],
    max: usize,
) -> rusqlite::Result<Option<Vec<Row>>> {
    CONNECTIONS.with(|conns| {
        let mut conns = conns.borrow_mut();
        let at = match conns.iter().position(|(id, _)| *id == source.id) {
            Some(i) => i,
            None => {
                if conns.len() == KEPT {
                    conns.remove(0);
                }
                conns.push((source.id, open(&source.path)?));
                conns.len() - 1
            }
        };
        run(&conns[at].1, sql, args, max)
    })
}

/// `$1`…`$16` by index, so binding does not format a name per parameter.
const NAMES: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

fn run(
    conn: &Connection,
    sql: &str,
    args: &[Arg],
    max: usize,
) -> rusqlite::Result<Option<Vec<Row>>> {
    let mut stmt = conn.prepare_cached(sql)?;
    if !stmt.readonly() {
        return Ok(None);
    }
    // `$n` parameters are named in SQLite; bound by name, so their order
    // in the text does not matter.
    for (i, a) in args.iter().enumerate() {
        let at = match NAMES.get(i) {
            Some(name) => stmt.parameter_index(name)?,
            None => stmt.parameter_index(&format!("${}", i + 1))?,
        };
        let Some(at) = at else {
            continue;
        };
        match a {
            Arg::Int(v) => stmt.raw_bind_parameter(at, v)?,
            Arg::Text(v) => stmt.raw_bind_parameter(at, v)?,
            Arg::NullInt | Arg::NullText => stmt.raw_bind_parameter(at, rusqlite::types::Null)?,
        }
    }
    let width = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while out.len() < max
        && let Some(r) = rows.next()?
    {
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
            });
        }
        out.push(Row(cells));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_are_read_here() {
        assert_eq!(
            file_of("sqlite:///tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(
            file_of("sqlite://data/app.db"),
            Some(PathBuf::from("data/app.db"))
        );
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("sqlite://file.db?mode=memory"), None);
        assert_eq!(file_of("postgres://u@h/db"), None);
    }

    #[test]
    fn reads_bind_by_name_and_writes_are_left_to_sqlx() {
        let dir = std::env::temp_dir().join(format!("weblab-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let source = Source::new(path.clone());
        {
            let w = Connection::open(&path).unwrap();
            w.execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER, name TEXT, x REAL); \
                 INSERT INTO t VALUES (1, 'one', 0.5), (2, NULL, 1.5);",
            )
            .unwrap();
        }
        // $2 before $1 in the text: still bound to the right values.
        let rows = read(
            &source,
            "SELECT id, name, x FROM t WHERE name IS $2 OR id = $1 ORDER BY id",
            &[Arg::Int(2), Arg::Text("one".into())],
            usize::MAX,
        )
        .unwrap()
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0[1], Cell::Text("one".into()));
        assert_eq!(rows[1].0[1], Cell::Null);
        assert_eq!(rows[1].0[2], Cell::Real(1.5));
        // `max` stops the read early.
        let first = read(&source, "SELECT id FROM t ORDER BY id", &[], 1)
            .unwrap()
            .unwrap();
        assert_eq!(first, vec![Row(vec![Cell::Int(1)])]);
        // A write is not run here.
        let w = read(&source, "DELETE FROM t WHERE id = $1", &[Arg::Int(1)], 1).unwrap();
        assert!(w.is_none());
        let count = read(&source, "SELECT COUNT(*) FROM t", &[], 1)
            .unwrap()
            .unwrap();
        assert_eq!(count[0].0[0], Cell::Int(2));
        // The file made again under the same name, as a new database: read
        // through a new connection, not the one still open on the old file.
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_file(dir.join("t.db-wal"));
        let _ = std::fs::remove_file(dir.join("t.db-shm"));
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (9);")
            .unwrap();
        let again = Source::new(path.clone());
        let rows = read(&again, "SELECT id FROM t", &[], usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(rows, vec![Row(vec![Cell::Int(9)])]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
