//! The database: SQLite embedded by default, PostgreSQL when the URL says
//! so, both through sqlx's `Any` driver with the same `$1` SQL.
//!
//! Every statement goes through [`Sql`] (or a [`Tx`] opened from it), which
//! records one span per statement with its text, its parameter count, the
//! rows it returned or touched and its time, so no query needs tracing code
//! of its own (C47, C49). Transactions record `BEGIN`, `COMMIT` and
//! `ROLLBACK` the same way, as the database saw them.

use std::borrow::Cow;

use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, SqlSafeStr};
use std::future::Future;
use weblab_trace::{Ctx, Event, Layer, Recorder};

use crate::error::AppError;

/// Which engine the URL selected (their DDL differs slightly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A pool of connections to the application's database.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// The SQLite file read on the asking thread ([`crate::sqlite_read`]).
    read_file: Option<crate::sqlite_read::Source>,
}

/// The schema, in order. `{id}` is the engine's auto-numbered key.
const MIGRATIONS: [(i64, &str, &str); 6] = [
    (
        1,
        "users",
        "CREATE TABLE users (\
           id {id}, \
           name TEXT NOT NULL, \
           email TEXT NOT NULL UNIQUE, \
           role TEXT NOT NULL DEFAULT 'user', \
           password_hash TEXT, \
           created_at BIGINT NOT NULL, \
           updated_at BIGINT NOT NULL); \
         CREATE INDEX users_name_idx ON users (name)",
    ),
    (
        2,
        "posts",
        "CREATE TABLE posts (\
           id {id}, \
           user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
           title TEXT NOT NULL, \
           body TEXT NOT NULL, \
           created_at BIGINT NOT NULL); \
         CREATE INDEX posts_user_idx ON posts (user_id, id)",
    ),
    (
        3,
        "sessions",
        // The id itself is never stored, only its SHA-256: a copy of the
        // table does not let anyone sign in.
        "CREATE TABLE sessions (\
           id_hash TEXT PRIMARY KEY, \
           user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
           created_at BIGINT NOT NULL, \
           last_seen BIGINT NOT NULL); \
         CREATE INDEX sessions_user_idx ON sessions (user_id)",
    ),
    (
        4,
        "tokens",
        "CREATE TABLE refresh_tokens (\
           hash TEXT PRIMARY KEY, \
           family TEXT NOT NULL, \
           user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
           expires_at BIGINT NOT NULL, \
           used_at BIGINT); \
         CREATE INDEX refresh_family_idx ON refresh_tokens (family); \
         CREATE TABLE app_keys (name TEXT PRIMARY KEY, secret TEXT NOT NULL)",
    ),
    (
        5,
        "oauth",
        // A sign-in through the identity provider in progress (its state
        // and PKCE verifier, so any app server can finish it), and which
        // provider account is which user.
        "CREATE TABLE oauth_states (\
           state_hash TEXT PRIMARY KEY, \
           verifier TEXT NOT NULL, \
           next TEXT NOT NULL, \
           created_at BIGINT NOT NULL); \
         CREATE INDEX oauth_states_created_idx ON oauth_states (created_at); \
         CREATE TABLE oauth_identities (\
           issuer TEXT NOT NULL, \
           subject TEXT NOT NULL, \
           user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
           PRIMARY KEY (issuer, subject))",
    ),
    (
        6,
        "exports",
        // Work accepted now and done later (POST /api/exports answers
        // 202): its state, and its CSV once done.
        "CREATE TABLE exports (\
           id {id}, \
           user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE, \
           status TEXT NOT NULL, \
           body TEXT, \
           error TEXT, \
           created_at BIGINT NOT NULL, \
           done_at BIGINT)",
    ),
];

/// Connections to keep. SQLite answers on the CPU of the asking process
/// (one worker thread per connection), so connections beyond the CPUs
/// add thread switches, not work done. PostgreSQL is another process,
/// often another machine, and waits on the network: more connections
/// overlap that.
fn pool_size(engine: Engine) -> u32 {
    match engine {
        Engine::Sqlite => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            u32::try_from(cpus + 1).unwrap_or(8).clamp(2, 8)
        }
        Engine::Postgres => 16,
    }
}

impl Db {
    /// Connects to `url` (`sqlite://FILE?mode=rwc`, `sqlite::memory:` or
    /// `postgres://…`).
    pub async fn connect(url: &str) -> Result<Db, AppError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            return Err(AppError::config(format!(
                "unsupported database URL {url:?} (sqlite:… or postgres://…)"
            )));
        };
        // Every connection to `sqlite::memory:` is a database of its own, so
        // an in-memory database lives on exactly one connection, kept forever.
        let in_memory = engine == Engine::Sqlite && url.contains(":memory:");
        let mut options = if in_memory {
            AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            AnyPoolOptions::new().max_connections(pool_size(engine))
        }
        // sqlx pings a connection before lending it by default: a second
        // round trip to SQLite's worker thread for every statement. A
        // broken connection still shows as the statement's own error.
        .test_before_acquire(false);
        if engine == Engine::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // Per connection: references enforced; a writer waits
                    // up to 5 s for another app server's write instead of
                    // failing; a 201 means the row survives a crash (FULL
                    // syncs the WAL at every commit).
                    conn.execute(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                         PRAGMA synchronous = FULL",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(url)
            .await
            .map_err(|e| AppError::database(format!("connect {url}: {e}")))?;
        let read_file = match engine {
            Engine::Sqlite => crate::sqlite_read::file_of(url).map(crate::sqlite_read::Source::new),
            Engine::Postgres => None,
        };
        Ok(Db {
            pool,
            engine,
            read_file,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Brings the schema up to date (sqlx's migrator: a table of applied
    /// versions with checksums, one lock, each migration in a transaction);
    /// safe to run from several servers at once.
    pub async fn migrate(&self) -> Result<(), AppError> {
        let err = |e: &dyn std::fmt::Display| AppError::database(format!("migrate: {e}"));
        if self.engine == Engine::Sqlite {
            // WAL lets app1 and app2 read while the other writes.
            self.pool
                .execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(|e| err(&e))?;
        }
        self.set_aside_unversioned_users().await?;
        let id = match self.engine {
            Engine::Sqlite => "INTEGER PRIMARY KEY",
            Engine::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        };
        let migrations = MIGRATIONS
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    AssertSqlSafe(sql.replace("{id}", id)).into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(|e| err(&e))?;
        // Start-up work is not a request: nothing of it is recorded.
        let quiet = Recorder::new(
            weblab_trace::Collector::with_sinks(weblab_trace::Detail::Minimal, None, Vec::new()),
            "db",
            "",
            "app",
        );
        crate::repo::seed(&self.sql(&quiet, Ctx::unsampled_root())).await
    }

    /// Databases made before migrations existed (the first app server had
    /// a `users` table of id, name, email and no version table). Their
    /// table is renamed, not dropped, so nothing stored is lost, and the
    /// migrations then build the current schema beside it.
    async fn set_aside_unversioned_users(&self) -> Result<(), AppError> {
        let exists = |table: &'static str| {
            let sql = match self.engine {
                Engine::Sqlite => {
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
                }
                Engine::Postgres => {
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = $1"
                }
            };
            let pool = self.pool.clone();
            async move {
                let row = sqlx::query(sql).bind(table).fetch_one(&pool).await?;
                let n: i64 = sqlx::Row::try_get(&row, 0)?;
                Ok::<bool, sqlx::Error>(n > 0)
            }
        };
        // (A version table with no rows is left by a run that failed on
        // such a database before this check existed.)
        let versioned = exists("_sqlx_migrations").await? && {
            let row = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
                .fetch_one(&self.pool)
                .await?;
            sqlx::Row::try_get::<i64, _>(&row, 0)? > 0
        };
        if versioned {
            return Ok(());
        }
        if exists("users").await? {
            self.pool
                .execute("ALTER TABLE users RENAME TO users_before_migrations")
                .await?;
        }
        // The old index keeps its name after the rename; it holds nothing
        // the table lacks, and migration 1 makes one of that name.
        self.pool
            .execute("DROP INDEX IF EXISTS users_name_idx")
            .await?;
        Ok(())
    }

    /// A statement runner that records into `rec` under `ctx`.
    pub fn sql<'a>(&'a self, rec: &'a Recorder, ctx: Ctx) -> Sql<'a> {
        Sql { db: self, rec, ctx }
    }
}

/// A value bound to a `$n` parameter.
#[derive(Clone, Debug)]
pub enum Arg {
    Int(i64),
    Text(String),
    NullInt,
    NullText,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.into())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

/// One statement: constant SQL text and its parameters. Values only ever
/// travel as parameters, never inside the text (no SQL injection).
#[derive(Clone, Debug)]
pub struct Stmt {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Stmt {
    pub fn new(sql: &'static str) -> Stmt {
        Stmt {
            sql,
            args: Vec::new(),
        }
    }
    pub fn bind(mut self, a: impl Into<Arg>) -> Stmt {
        self.args.push(a.into());
        self
    }

    /// The sqlx query, its values moved in as bound parameters.
    fn into_query(self) -> Query<'static, Any, AnyArguments> {
        self.args
            .into_iter()
            .fold(sqlx::query(self.sql), |q, a| match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::NullInt => q.bind(None::<i64>),
                Arg::NullText => q.bind(None::<String>),
            })
    }
}

/// Awaits `work` inside one `Sql` span naming `statement`; `rows` says how
/// many rows its result returned or changed.
async fn recorded<T, E>(
    rec: &Recorder,
    ctx: Ctx,
    (statement, params): (&str, usize),
    work: impl Future<Output = Result<T, E>>,
    rows: impl FnOnce(&T) -> u64,
) -> Result<T, AppError>
where
    AppError: From<E>,
{
    let span = rec.begin(ctx, Layer::Application);
    let out = work.await;
    rec.end(
        span,
        sql_event(statement, params, out.as_ref().map_or(0, rows)),
    );
    out.map_err(AppError::from)
}

/// The span event of one statement.
fn sql_event(statement: &str, params: usize, rows: u64) -> Event {
    Event::Sql {
        statement: statement.into(),
        params: u32::try_from(params).unwrap_or(u32::MAX),
        rows,
    }
}

/// One value of a result row, whichever engine produced it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Cell>);

/// A Rust value read from a [`Cell`].
pub trait FromCell: Sized {
    /// What the column must hold, for the error.
    const WHAT: &'static str;
    fn from_cell(c: &Cell) -> Option<Self>;
}

impl FromCell for i64 {
    const WHAT: &'static str = "an integer";
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromCell for String {
    const WHAT: &'static str = "text";
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    const WHAT: &'static str = T::WHAT;
    fn from_cell(c: &Cell) -> Option<Self> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

/// An sqlx row as a [`Row`], each value read as the kind the driver
/// says it is.
fn row_of(r: &AnyRow) -> Result<Row, sqlx::Error> {
    use sqlx::any::AnyTypeInfoKind as Kind;
    use sqlx::{Row as _, ValueRef as _};
    (0..r.len())
        .map(|i| {
            let value = r.try_get_raw(i)?;
            if value.is_null() {
                return Ok(Cell::Null);
            }
            Ok(match value.type_info().kind() {
                Kind::Null => Cell::Null,
                Kind::Bool => Cell::Int(r.try_get::<bool, _>(i)?.into()),
                Kind::SmallInt | Kind::Integer | Kind::BigInt => Cell::Int(r.try_get(i)?),
                Kind::Real | Kind::Double => Cell::Real(r.try_get(i)?),
                Kind::Text => Cell::Text(r.try_get(i)?),
                Kind::Blob => Cell::Blob(r.try_get(i)?),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Row)
}

fn rows_of(rows: Vec<AnyRow>) -> Result<Vec<Row>, sqlx::Error> {
    rows.iter().map(row_of).collect()
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::database(e.to_string())
    }
}

/// The text and parameter count of `stmt`, then its query.
fn split(stmt: Stmt) -> ((&'static str, usize), Query<'static, Any, AnyArguments>) {
    ((stmt.sql, stmt.args.len()), stmt.into_query())
}

/// Statements on the pool, each recorded.
#[derive(Clone, Copy)]
pub struct Sql<'a> {
    db: &'a Db,
    rec: &'a Recorder,
    ctx: Ctx,
}

impl<'a> Sql<'a> {
    /// Where in the trace its statements are recorded.
    pub fn ctx(&self) -> Ctx {
        self.ctx
    }

    /// Every row of a query. On a SQLite file a read runs on this thread
    /// ([`crate::sqlite_read`]); anything else goes through sqlx's pool.
    pub async fn all(&self, stmt: Stmt) -> Result<Vec<Row>, AppError> {
        if let Some(rows) = self.read_here(&stmt, usize::MAX)? {
            return Ok(rows);
        }
        let (what, q) = split(stmt);
        let work = async { q.fetch_all(&self.db.pool).await.and_then(rows_of) };
        recorded(self.rec, self.ctx, what, work, |r: &Vec<Row>| {
            r.len() as u64
        })
        .await
    }
    /// The first row of a query, if any (the rest are not read).
    pub async fn optional(&self, stmt: Stmt) -> Result<Option<Row>, AppError> {
        if let Some(rows) = self.read_here(&stmt, 1)? {
            return Ok(rows.into_iter().next());
        }
        let (what, q) = split(stmt);
        let work = async {
            match q.fetch_optional(&self.db.pool).await? {
                Some(r) => row_of(&r).map(Some),
                None => Ok(None),
            }
        };
        recorded(self.rec, self.ctx, what, work, |r: &Option<Row>| {
            u64::from(r.is_some())
        })
        .await
    }
    /// Up to `max` rows of a read on a SQLite file, run on this thread and
    /// recorded as any statement; `None` when the database is not a file
    /// or the statement is not a read (the sqlx path runs and records it).
    fn read_here(&self, stmt: &Stmt, max: usize) -> Result<Option<Vec<Row>>, AppError> {
        let Some(source) = &self.db.read_file else {
            return Ok(None);
        };
        let span = self.rec.begin(self.ctx, Layer::Application);
        let out = match crate::sqlite_read::read(source, stmt.sql, &stmt.args, max) {
            Ok(None) => return Ok(None),
            out => out,
        };
        let rows = out.as_ref().map_or(0, |r| r.as_ref().map_or(0, Vec::len));
        let event = sql_event(stmt.sql, stmt.args.len(), rows as u64);
        self.rec.end(span, event);
        Ok(out?)
    }
    /// Runs a statement; the number of rows it changed.
    pub async fn exec(&self, stmt: Stmt) -> Result<u64, AppError> {
        let (what, q) = split(stmt);
        let done = async { q.execute(&self.db.pool).await.map(|r| r.rows_affected()) };
        recorded(self.rec, self.ctx, what, done, |n| *n).await
    }

    /// Opens a transaction (its BEGIN recorded); end it with
    /// [`Tx::finish`].
    pub async fn begin(&self) -> Result<Tx<'a>, AppError> {
        let tx = recorded(
            self.rec,
            self.ctx,
            ("BEGIN", 0),
            self.db.pool.begin(),
            |_| 0,
        )
        .await?;
        Ok(Tx {
            tx,
            rec: self.rec,
            ctx: self.ctx,
        })
    }
}

/// Statements inside one transaction, each recorded.
pub struct Tx<'a> {
    tx: sqlx::Transaction<'static, Any>,
    rec: &'a Recorder,
    ctx: Ctx,
}

impl Tx<'_> {
    /// Commits when `out` is `Ok`, rolls back otherwise (either recorded),
    /// and passes `out` on. (A closure-taking `transaction(|tx| …)` would
    /// read better, but its future cannot be shown to be `Send` yet.)
    pub async fn finish<T>(self, out: Result<T, AppError>) -> Result<T, AppError> {
        let (rec, ctx) = (self.rec, self.ctx);
        match out {
            Ok(_) => recorded(rec, ctx, ("COMMIT", 0), self.tx.commit(), |_| 0).await?,
            Err(_) => recorded(rec, ctx, ("ROLLBACK", 0), self.tx.rollback(), |_| 0).await?,
        }
        out
    }

    pub async fn all(&mut self, stmt: Stmt) -> Result<Vec<Row>, AppError> {
        let (what, q) = split(stmt);
        let work = async { q.fetch_all(&mut *self.tx).await.and_then(rows_of) };
        recorded(self.rec, self.ctx, what, work, |r: &Vec<Row>| {
            r.len() as u64
        })
        .await
    }
    pub async fn optional(&mut self, stmt: Stmt) -> Result<Option<Row>, AppError> {
        let (what, q) = split(stmt);
        let work = async {
            match q.fetch_optional(&mut *self.tx).await? {
                Some(r) => row_of(&r).map(Some),
                None => Ok(None),
            }
        };
        recorded(self.rec, self.ctx, what, work, |r: &Option<Row>| {
            u64::from(r.is_some())
        })
        .await
    }
    pub async fn exec(&mut self, stmt: Stmt) -> Result<u64, AppError> {
        let (what, q) = split(stmt);
        let done = async { q.execute(&mut *self.tx).await.map(|r| r.rows_affected()) };
        recorded(self.rec, self.ctx, what, done, |n| *n).await
    }
}

/// Reads column `i` of `row`, naming the column when its type is wrong.
pub fn col<T: FromCell>(row: &Row, i: usize) -> Result<T, AppError> {
    let cell = row
        .0
        .get(i)
        .ok_or_else(|| AppError::database(format!("no column {i} in the row")))?;
    T::from_cell(cell)
        .ok_or_else(|| AppError::database(format!("column {i} holds {cell:?}, not {}", T::WHAT)))
}
