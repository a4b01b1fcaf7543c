//! The database: SQLite embedded by default, PostgreSQL when the URL says
//! so, both through sqlx's `Any` driver with the same `$1` SQL. Every
//! statement goes through [`Db::run`] style helpers that record its text,
//! its row count and its time (C47, C49).

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
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
}

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
}

const SEED_USERS: [(i64, &str, &str); 3] = [
    (1, "Ada Lovelace", "ada@myapp.test"),
    (2, "Alan Turing", "alan@myapp.test"),
    (3, "Grace Hopper", "grace@myapp.test"),
];

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
        let options = if in_memory {
            AnyPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            AnyPoolOptions::new().max_connections(8)
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|e| AppError::database(format!("connect {url}: {e}")))?;
        Ok(Db { pool, engine })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Creates the schema and the sample rows if missing; safe to run from
    /// several servers at once.
    pub async fn migrate(&self) -> Result<(), AppError> {
        let err = |e: sqlx::Error| AppError::database(format!("migrate: {e}"));
        if self.engine == Engine::Sqlite {
            // WAL lets app1 and app2 read while the other writes.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&self.pool)
                .await
                .map_err(err)?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS users (\
               id BIGINT PRIMARY KEY, \
               name TEXT NOT NULL, \
               email TEXT NOT NULL UNIQUE)",
        )
        .execute(&self.pool)
        .await
        .map_err(err)?;
        sqlx::query("CREATE INDEX IF NOT EXISTS users_name_idx ON users (name)")
            .execute(&self.pool)
            .await
            .map_err(err)?;
        let mut tx = self.pool.begin().await.map_err(err)?;
        for (id, name, email) in SEED_USERS {
            sqlx::query(
                "INSERT INTO users (id, name, email) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(name)
            .bind(email)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    /// The number of users.
    pub async fn count_users(&self, rec: &Recorder, ctx: Ctx) -> Result<i64, AppError> {
        const SQL: &str = "SELECT COUNT(*) FROM users";
        let span = rec.begin(ctx, Layer::Application);
        let row = sqlx::query(SQL).fetch_one(&self.pool).await;
        rec.end(span, sql_event(SQL, row.as_ref().map_or(0, |_| 1)));
        let row = row.map_err(|e| AppError::database(e.to_string()))?;
        row.try_get::<i64, _>(0)
            .map_err(|e| AppError::database(e.to_string()))
    }

    /// One user by id.
    pub async fn find_user(
        &self,
        rec: &Recorder,
        ctx: Ctx,
        id: i64,
    ) -> Result<Option<User>, AppError> {
        const SQL: &str = "SELECT id, name, email FROM users WHERE id = $1";
        let span = rec.begin(ctx, Layer::Application);
        let row: Result<Option<AnyRow>, _> =
            sqlx::query(SQL).bind(id).fetch_optional(&self.pool).await;
        rec.end(
            span,
            sql_event(SQL, row.as_ref().map_or(0, |r| u64::from(r.is_some()))),
        );
        let Some(row) = row.map_err(|e| AppError::database(e.to_string()))? else {
            return Ok(None);
        };
        let get = |e: sqlx::Error| AppError::database(e.to_string());
        Ok(Some(User {
            id: row.try_get(0).map_err(get)?,
            name: row.try_get(1).map_err(get)?,
            email: row.try_get(2).map_err(get)?,
        }))
    }
}

fn sql_event(statement: &str, rows: u64) -> Event {
    Event::Sql {
        statement: statement.into(),
        rows,
    }
}
