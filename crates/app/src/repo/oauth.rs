//! Sign-ins through the identity provider (C37): the state of one in
//! progress, and which provider account belongs to which user.

use super::{UserFields, conflict, user};
use crate::auth;
use crate::db::{Sql, Stmt, col};
use crate::error::AppError;
use crate::repo::User;

/// A started sign-in must come back within this (seconds).
pub const STATE_SECS: i64 = 600;
/// Sign-ins in progress kept at most: anyone can start one with a GET, so
/// past this a new one is refused (503) rather than the table growing.
pub const MAX_PENDING: i64 = 10_000;

/// Keeps a started sign-in: the state (only its SHA-256), its PKCE
/// verifier and where to go after. Sign-ins older than [`STATE_SECS`]
/// are dropped on the way, so abandoned ones do not pile up, and at most
/// `cap` are kept (then 503).
pub async fn save_state(
    sql: &Sql<'_>,
    (state, verifier, next): (&str, &str, &str),
    cap: i64,
) -> Result<(), AppError> {
    let now = auth::now();
    sql.exec(Stmt::new("DELETE FROM oauth_states WHERE created_at < $1").bind(now - STATE_SECS))
        .await?;
    let pending = sql
        .optional(Stmt::new("SELECT COUNT(*) FROM oauth_states"))
        .await?
        .map_or(Ok(0), |r| col::<i64>(&r, 0))?;
    if pending >= cap {
        return Err(AppError::unavailable(
            format!(
                "{pending} sign-ins through the identity provider are in progress; try again shortly"
            ),
            10,
        ));
    }
    sql.exec(
        Stmt::new(
            "INSERT INTO oauth_states (state_hash, verifier, next, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(auth::digest(state))
        .bind(verifier)
        .bind(next)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Takes (and deletes: a state works once) the sign-in started with
/// `state`: its verifier and where to go after; `None` when unknown,
/// used or too old.
pub async fn take_state(sql: &Sql<'_>, state: &str) -> Result<Option<(String, String)>, AppError> {
    let row = sql
        .optional(
            Stmt::new(
                "DELETE FROM oauth_states WHERE state_hash = $1 \
                 RETURNING verifier, next, created_at",
            )
            .bind(auth::digest(state)),
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let created: i64 = col(&row, 2)?;
    if created < auth::now() - STATE_SECS {
        return Ok(None);
    }
    Ok(Some((col(&row, 0)?, col(&row, 1)?)))
}

/// The user of the provider account (`issuer`, `subject`); made on its
/// first sign-in, with no password of its own. An email that already has
/// a local account is a conflict (409): accounts are never joined by
/// email alone.
pub async fn user_for(
    sql: &Sql<'_>,
    issuer: &str,
    subject: &str,
    fields: &UserFields,
) -> Result<User, AppError> {
    let mut tx = sql.begin().await?;
    let out = async {
        let known = tx
            .optional(
                Stmt::new(concat!(
                    "SELECT ",
                    user_cols!(),
                    " FROM users JOIN oauth_identities ON oauth_identities.user_id = users.id \
                     WHERE issuer = $1 AND subject = $2"
                ))
                .bind(issuer)
                .bind(subject),
            )
            .await?;
        if let Some(row) = known {
            return user(&row);
        }
        let now = auth::now();
        let row = tx
            .optional(
                Stmt::new(concat!(
                    "INSERT INTO users (name, email, role, password_hash, created_at, updated_at) \
                     VALUES ($1, $2, 'user', NULL, $3, $3) RETURNING ",
                    user_cols!()
                ))
                .bind(fields.name.as_str())
                .bind(fields.email.to_ascii_lowercase())
                .bind(now),
            )
            .await
            .map_err(|e| {
                conflict(
                    e,
                    &format!(
                        "{} already has an account here; sign in with its password",
                        fields.email
                    ),
                )
            })?
            .ok_or_else(|| AppError::database("INSERT returned no row"))?;
        let made = user(&row)?;
        tx.exec(
            Stmt::new(
                "INSERT INTO oauth_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
            )
            .bind(issuer)
            .bind(subject)
            .bind(made.id),
        )
        .await?;
        Ok(made)
    }
    .await;
    tx.finish(out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;
    use weblab_trace::{Collector, Ctx, Detail, Recorder};

    #[tokio::test]
    async fn started_sign_ins_are_capped_taken_once_and_expire() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let rec = Recorder::new(Collector::new(Detail::Minimal), "app", "", "app");
        let sql = db.sql(&rec, Ctx::unsampled_root());
        for i in 0..3 {
            save_state(&sql, (&format!("s{i}"), "v", "/account"), 3)
                .await
                .unwrap();
        }
        let full = save_state(&sql, ("s3", "v", "/account"), 3)
            .await
            .unwrap_err();
        assert_eq!(full.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        let got = take_state(&sql, "s1").await.unwrap();
        assert_eq!(got, Some(("v".to_string(), "/account".to_string())));
        assert_eq!(
            take_state(&sql, "s1").await.unwrap(),
            None,
            "a state works once"
        );
        // Taking one made room again.
        save_state(&sql, ("s4", "v", "/account"), 3).await.unwrap();
    }
}
