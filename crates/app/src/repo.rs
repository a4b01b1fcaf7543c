//! The repositories (C47, C49): every SQL statement of the application, as
//! constant text with bound parameters, run through the traced [`Sql`].

use crate::db::Row;

use crate::auth;
use crate::db::{Sql, Stmt, col};
use crate::error::AppError;

/// A user as the API shows it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A post.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Post {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub body: String,
    pub created_at: i64,
}

fn user(row: &Row) -> Result<User, AppError> {
    Ok(User {
        id: col(row, 0)?,
        name: col(row, 1)?,
        email: col(row, 2)?,
        role: col(row, 3)?,
        created_at: col(row, 4)?,
        updated_at: col(row, 5)?,
    })
}

fn post(row: &Row) -> Result<Post, AppError> {
    Ok(Post {
        id: col(row, 0)?,
        user_id: col(row, 1)?,
        title: col(row, 2)?,
        body: col(row, 3)?,
        created_at: col(row, 4)?,
    })
}

/// A unique-constraint failure (already 409 from the driver's error
/// kind) says which value was taken.
fn conflict(e: AppError, what: &str) -> AppError {
    if e.status() == axum::http::StatusCode::CONFLICT {
        AppError::conflict(what.to_string())
    } else {
        e
    }
}

// The column lists are constants, so `concat!` keeps each statement a
// `&'static str` (sqlx refuses text built at run time unless told it is safe).
macro_rules! user_cols {
    () => {
        "id, name, email, role, created_at, updated_at"
    };
}
macro_rules! post_cols {
    () => {
        "id, user_id, title, body, created_at"
    };
}
macro_rules! users_sql {
    ($($rest:literal),*) => {
        concat!("SELECT ", user_cols!(), " FROM users", $($rest),*)
    };
}
macro_rules! posts_sql {
    ($($rest:literal),*) => {
        concat!("SELECT ", post_cols!(), " FROM posts", $($rest),*)
    };
}

/// The one number a `SELECT COUNT(*)`-like statement returns.
async fn number(sql: &Sql<'_>, stmt: Stmt) -> Result<i64, AppError> {
    let row = sql.optional(stmt).await?;
    row.map_or(Ok(0), |r| col(&r, 0))
}

pub async fn count_users(sql: &Sql<'_>) -> Result<i64, AppError> {
    number(sql, Stmt::new("SELECT COUNT(*) FROM users")).await
}

pub async fn list_users(sql: &Sql<'_>, limit: i64, offset: i64) -> Result<Vec<User>, AppError> {
    let rows = sql
        .all(
            Stmt::new(users_sql!(" ORDER BY id LIMIT $1 OFFSET $2"))
                .bind(limit)
                .bind(offset),
        )
        .await?;
    rows.iter().map(user).collect()
}

pub async fn find_user(sql: &Sql<'_>, id: i64) -> Result<Option<User>, AppError> {
    let row = sql
        .optional(Stmt::new(users_sql!(" WHERE id = $1")).bind(id))
        .await?;
    row.as_ref().map(user).transpose()
}

/// A user and their password hash, by email.
pub async fn find_login(
    sql: &Sql<'_>,
    email: &str,
) -> Result<Option<(User, Option<String>)>, AppError> {
    let row = sql
        .optional(
            Stmt::new(concat!(
                "SELECT ",
                user_cols!(),
                ", password_hash FROM users WHERE email = $1"
            ))
            .bind(email.to_ascii_lowercase()),
        )
        .await?;
    match row {
        Some(r) => Ok(Some((user(&r)?, col(&r, 6)?))),
        None => Ok(None),
    }
}

/// The fields a client may set on a user.
#[derive(Clone, Debug, Default)]
pub struct UserFields {
    pub name: String,
    pub email: String,
}

pub async fn create_user(
    sql: &Sql<'_>,
    f: &UserFields,
    password_hash: Option<String>,
) -> Result<User, AppError> {
    let now = auth::now();
    let row = sql
        .optional(
            Stmt::new(concat!(
                "INSERT INTO users (name, email, role, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, 'user', $3, $4, $4) RETURNING ",
                user_cols!()
            ))
            .bind(f.name.as_str())
            .bind(f.email.to_ascii_lowercase())
            .bind(password_hash)
            .bind(now),
        )
        .await
        .map_err(|e| conflict(e, &format!("a user with email {} exists", f.email)))?;
    let row = row.ok_or_else(|| AppError::database("INSERT returned no row"))?;
    user(&row)
}

/// Sets both fields (PUT) or the given ones (PATCH); `None` if no such user.
pub async fn update_user(
    sql: &Sql<'_>,
    id: i64,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<Option<User>, AppError> {
    let row = sql
        .optional(
            Stmt::new(concat!(
                "UPDATE users SET name = COALESCE($1, name), email = COALESCE($2, email), \
                 updated_at = $3 WHERE id = $4 RETURNING ",
                user_cols!()
            ))
            .bind(name.map(str::to_string))
            .bind(email.map(str::to_ascii_lowercase))
            .bind(auth::now())
            .bind(id),
        )
        .await
        .map_err(|e| {
            conflict(
                e,
                &format!("a user with email {} exists", email.unwrap_or("?")),
            )
        })?;
    row.as_ref().map(user).transpose()
}

/// Whether a row was deleted.
pub async fn delete_user(sql: &Sql<'_>, id: i64) -> Result<bool, AppError> {
    Ok(sql
        .exec(Stmt::new("DELETE FROM users WHERE id = $1").bind(id))
        .await?
        > 0)
}

pub async fn count_posts(sql: &Sql<'_>, user: Option<i64>) -> Result<i64, AppError> {
    let stmt = match user {
        Some(u) => Stmt::new("SELECT COUNT(*) FROM posts WHERE user_id = $1").bind(u),
        None => Stmt::new("SELECT COUNT(*) FROM posts"),
    };
    number(sql, stmt).await
}

pub async fn list_posts(
    sql: &Sql<'_>,
    user: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Post>, AppError> {
    let stmt = match user {
        Some(u) => Stmt::new(posts_sql!(
            " WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(u),
        None => Stmt::new(posts_sql!(" ORDER BY id DESC LIMIT $1 OFFSET $2")),
    };
    let rows = sql.all(stmt.bind(limit).bind(offset)).await?;
    rows.iter().map(post).collect()
}

pub async fn find_post(sql: &Sql<'_>, id: i64) -> Result<Option<Post>, AppError> {
    let row = sql
        .optional(Stmt::new(posts_sql!(" WHERE id = $1")).bind(id))
        .await?;
    row.as_ref().map(post).transpose()
}

/// The id of the newest post (0 when there are none).
pub async fn newest_post(sql: &Sql<'_>) -> Result<i64, AppError> {
    number(sql, Stmt::new("SELECT COALESCE(MAX(id), 0) FROM posts")).await
}

/// Posts newer than `after`, oldest first (a feed's next items).
pub async fn posts_after(sql: &Sql<'_>, after: i64, limit: i64) -> Result<Vec<Post>, AppError> {
    let rows = sql
        .all(
            Stmt::new(posts_sql!(" WHERE id > $1 ORDER BY id LIMIT $2"))
                .bind(after)
                .bind(limit),
        )
        .await?;
    rows.iter().map(post).collect()
}

pub async fn create_post(
    sql: &Sql<'_>,
    user: i64,
    title: &str,
    body: &str,
) -> Result<Post, AppError> {
    let row = sql
        .optional(
            Stmt::new(concat!(
                "INSERT INTO posts (user_id, title, body, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING ",
                post_cols!()
            ))
            .bind(user)
            .bind(title)
            .bind(body)
            .bind(auth::now()),
        )
        .await?;
    let row = row.ok_or_else(|| AppError::database("INSERT returned no row"))?;
    post(&row)
}

/// An export (POST /api/exports): accepted, then done (or failed) by a
/// task of the app server that took it.
#[derive(Clone, Debug)]
pub struct Export {
    pub id: i64,
    pub user_id: i64,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub body: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

/// A user's exports begun in the last `within` seconds and not ended.
pub async fn pending_exports(sql: &Sql<'_>, user: i64, within: i64) -> Result<i64, AppError> {
    let row = sql
        .optional(
            Stmt::new(
                "SELECT COUNT(*) FROM exports \
                 WHERE user_id = $1 AND status = 'pending' AND created_at > $2",
            )
            .bind(user)
            .bind(auth::now() - within),
        )
        .await?;
    row.map_or(Ok(0), |r| col(&r, 0))
}

/// A new pending export of `user`; the user's oldest beyond the newest
/// `keep` are deleted first, so one user's exports stay bounded.
pub async fn create_export(sql: &Sql<'_>, user: i64, keep: i64) -> Result<i64, AppError> {
    sql.exec(
        Stmt::new(
            "DELETE FROM exports WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM exports WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user)
        .bind(keep - 1),
    )
    .await?;
    let row = sql
        .optional(
            Stmt::new(
                "INSERT INTO exports (user_id, status, created_at) VALUES ($1, 'pending', $2) \
                 RETURNING id",
            )
            .bind(user)
            .bind(auth::now()),
        )
        .await?;
    let row = row.ok_or_else(|| AppError::database("INSERT returned no row"))?;
    col(&row, 0)
}

/// Ends an export still pending: done with its CSV, or failed with why
/// (one already ended stays as it was).
pub async fn end_export(
    sql: &Sql<'_>,
    id: i64,
    outcome: Result<&str, &str>,
) -> Result<(), AppError> {
    let stmt = match outcome {
        Ok(body) => Stmt::new(
            "UPDATE exports SET status = 'done', body = $1, done_at = $2 \
                 WHERE id = $3 AND status = 'pending'",
        )
        .bind(body),
        Err(why) => Stmt::new(
            "UPDATE exports SET status = 'failed', error = $1, done_at = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(why),
    };
    sql.exec(stmt.bind(auth::now()).bind(id)).await.map(drop)
}

/// An export, where one still pending after `give_up_after` seconds is
/// failed first: its task ended with the app server that ran it (a
/// restart, a crash), and nothing else would ever end it.
pub async fn find_export_settled(
    sql: &Sql<'_>,
    id: i64,
    give_up_after: i64,
) -> Result<Option<Export>, AppError> {
    let found = find_export(sql, id).await?;
    match found {
        Some(e) if e.status == "pending" && auth::now() - e.created_at > give_up_after => {
            let why = format!(
                "not finished within {give_up_after} s: the app server making it stopped before it was done"
            );
            end_export(sql, id, Err(&why)).await?;
            find_export(sql, id).await
        }
        other => Ok(other),
    }
}

pub async fn find_export(sql: &Sql<'_>, id: i64) -> Result<Option<Export>, AppError> {
    let row = sql
        .optional(
            Stmt::new(
                "SELECT id, user_id, status, body, error, created_at, done_at FROM exports \
                 WHERE id = $1",
            )
            .bind(id),
        )
        .await?;
    row.map(|r| {
        Ok(Export {
            id: col(&r, 0)?,
            user_id: col(&r, 1)?,
            status: col(&r, 2)?,
            body: col(&r, 3)?,
            error: col(&r, 4)?,
            created_at: col(&r, 5)?,
            done_at: col(&r, 6)?,
        })
    })
    .transpose()
}

/// A signed-in session, as loaded for a request.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub created_at: i64,
    pub last_seen: i64,
}

/// Starts a session for `user`: a new random id (never one the client
/// offered, so a planted id is useless: no fixation), and the session the
/// request came with, if any, ended. Returns the id for the cookie.
pub async fn start_session(
    sql: &Sql<'_>,
    user: i64,
    previous: Option<&str>,
) -> Result<String, AppError> {
    let id = auth::random_secret();
    let now = auth::now();
    let hash = auth::digest(&id);
    let previous = previous.map(auth::digest);
    let mut tx = sql.begin().await?;
    let out = async {
        if let Some(p) = previous {
            tx.exec(Stmt::new("DELETE FROM sessions WHERE id_hash = $1").bind(p))
                .await?;
        }
        tx.exec(
            Stmt::new(
                "INSERT INTO sessions (id_hash, user_id, created_at, last_seen) \
                 VALUES ($1, $2, $3, $3)",
            )
            .bind(hash)
            .bind(user)
            .bind(now),
        )
        .await?;
        Ok(())
    }
    .await;
    tx.finish(out).await?;
    Ok(id)
}

/// Why a session cookie did not give a session.
#[derive(Debug, PartialEq, Eq)]
pub enum NoSession {
    Unknown,
    Idle,
    Expired,
}

/// The live session with cookie value `id`; an expired one is deleted.
pub async fn load_session(sql: &Sql<'_>, id: &str) -> Result<Result<Session, NoSession>, AppError> {
    let hash = auth::digest(id);
    let row = sql
        .optional(
            Stmt::new(
                "SELECT u.id, u.name, u.email, u.role, u.created_at, u.updated_at, \
                 s.created_at, s.last_seen FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id_hash = $1",
            )
            .bind(hash.as_str()),
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err(NoSession::Unknown));
    };
    let s = Session {
        user: user(&row)?,
        created_at: col(&row, 6)?,
        last_seen: col(&row, 7)?,
    };
    let now = auth::now();
    let over = if now - s.created_at > auth::ABSOLUTE_SECS {
        Some(NoSession::Expired)
    } else if now - s.last_seen > auth::IDLE_SECS {
        Some(NoSession::Idle)
    } else {
        None
    };
    if let Some(why) = over {
        sql.exec(Stmt::new("DELETE FROM sessions WHERE id_hash = $1").bind(hash))
            .await?;
        return Ok(Err(why));
    }
    if now - s.last_seen >= auth::TOUCH_SECS {
        sql.exec(
            Stmt::new("UPDATE sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(hash),
        )
        .await?;
    }
    Ok(Ok(s))
}

pub async fn count_sessions(sql: &Sql<'_>) -> Result<i64, AppError> {
    number(sql, Stmt::new("SELECT COUNT(*) FROM sessions")).await
}

pub async fn end_session(sql: &Sql<'_>, id: &str) -> Result<bool, AppError> {
    Ok(sql
        .exec(Stmt::new("DELETE FROM sessions WHERE id_hash = $1").bind(auth::digest(id)))
        .await?
        > 0)
}

/// A new refresh token in `family` (a new family at sign-in).
pub async fn issue_refresh(
    sql: &Sql<'_>,
    user: i64,
    family: Option<String>,
) -> Result<String, AppError> {
    let token = auth::random_secret();
    sql.exec(
        Stmt::new(
            "INSERT INTO refresh_tokens (hash, family, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(auth::digest(&token))
        .bind(family.unwrap_or_else(auth::random_secret))
        .bind(user)
        .bind(auth::now() + auth::REFRESH_SECS),
    )
    .await?;
    Ok(token)
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Refresh {
    /// Valid and unused: now used; whom to issue for, and the family.
    Rotated {
        user: auth::TokenUser,
        family: String,
    },
    /// Already used once: someone replayed it, so the whole family is
    /// revoked (the thief and the owner both have to sign in again).
    Reused,
    Expired,
    Unknown,
}

pub async fn use_refresh(sql: &Sql<'_>, token: &str) -> Result<Refresh, AppError> {
    let hash = auth::digest(token);
    let now = auth::now();
    let mut tx = sql.begin().await?;
    let out = async {
        let row = tx
            .optional(
                Stmt::new(
                    "SELECT t.family, t.user_id, t.expires_at, t.used_at, u.role, u.name \
                     FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
                )
                .bind(hash.as_str()),
            )
            .await?;
        let Some(row) = row else {
            return Ok(Refresh::Unknown);
        };
        let family: String = col(&row, 0)?;
        let user: i64 = col(&row, 1)?;
        let expires: i64 = col(&row, 2)?;
        let used: Option<i64> = col(&row, 3)?;
        if used.is_some() {
            tx.exec(Stmt::new("DELETE FROM refresh_tokens WHERE family = $1").bind(family))
                .await?;
            return Ok(Refresh::Reused);
        }
        if expires < now {
            return Ok(Refresh::Expired);
        }
        // Only one of two racing uses can flip used_at from NULL.
        let n = tx
            .exec(
                Stmt::new(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
                )
                .bind(now)
                .bind(hash.as_str()),
            )
            .await?;
        if n == 0 {
            return Ok(Refresh::Reused);
        }
        Ok(Refresh::Rotated {
            user: auth::TokenUser {
                id: user,
                role: col(&row, 4)?,
                name: col(&row, 5)?,
            },
            family,
        })
    }
    .await;
    tx.finish(out).await
}

/// The named secret shared by every app server on this database, made
/// once by whichever server asks first.
pub async fn shared_secret(sql: &Sql<'_>, name: &str) -> Result<String, AppError> {
    sql.exec(
        Stmt::new("INSERT INTO app_keys (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(auth::random_secret()),
    )
    .await?;
    let row = sql
        .optional(Stmt::new("SELECT secret FROM app_keys WHERE name = $1").bind(name))
        .await?
        .ok_or_else(|| AppError::database(format!("key {name} missing after insert")))?;
    col(&row, 0)
}

/// The demo accounts `weblab up` prints; all share [`DEMO_PASSWORD`].
pub const DEMO_USERS: [(&str, &str, &str); 3] = [
    ("Ada Lovelace", "ada@myapp.test", "admin"),
    ("Alan Turing", "alan@myapp.test", "user"),
    ("Grace Hopper", "grace@myapp.test", "user"),
];
pub const DEMO_PASSWORD: &str = "weblab-demo";

/// Adds the demo accounts when the users table is empty.
pub async fn seed(sql: &Sql<'_>) -> Result<(), AppError> {
    if count_users(sql).await? > 0 {
        return Ok(());
    }
    let hash = auth::hash_password(DEMO_PASSWORD).await?;
    let now = auth::now();
    for (name, email, role) in DEMO_USERS {
        sql.exec(
            Stmt::new(
                "INSERT INTO users (name, email, role, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (email) DO NOTHING",
            )
            .bind(name)
            .bind(email)
            .bind(role)
            .bind(hash.as_str())
            .bind(now),
        )
        .await?;
    }
    Ok(())
}

pub mod oauth;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;
    use weblab_trace::{Collector, Ctx, Detail, Recorder};

    #[tokio::test]
    async fn an_export_left_pending_by_a_stopped_server_ends_as_failed() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let rec = Recorder::new(Collector::new(Detail::Minimal), "app", "", "app");
        let sql = db.sql(&rec, Ctx::unsampled_root());
        seed(&sql).await.unwrap();
        let user = list_users(&sql, 1, 0).await.unwrap()[0].id;
        let young = create_export(&sql, user, 10).await.unwrap();
        let old = create_export(&sql, user, 10).await.unwrap();
        // As if its server had stopped two minutes ago.
        sql.exec(
            Stmt::new("UPDATE exports SET created_at = $1 WHERE id = $2")
                .bind(auth::now() - 120)
                .bind(old),
        )
        .await
        .unwrap();
        let e = find_export_settled(&sql, old, 60).await.unwrap().unwrap();
        assert_eq!(e.status, "failed");
        assert!(e.error.unwrap().contains("stopped"));
        let e = find_export_settled(&sql, young, 60).await.unwrap().unwrap();
        assert_eq!(e.status, "pending", "a young one is still being made");
        // An ended export is not ended again.
        end_export(&sql, young, Ok("csv")).await.unwrap();
        end_export(&sql, young, Err("late")).await.unwrap();
        let e = find_export(&sql, young).await.unwrap().unwrap();
        assert_eq!(
            (e.status.as_str(), e.body.as_deref()),
            ("done", Some("csv"))
        );
    }
}
