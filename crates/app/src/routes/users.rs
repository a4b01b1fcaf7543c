//! `/api/users` (C38): a collection and its members.
//!
//! GET (and HEAD) read; POST adds a member (201 + Location; two POSTs make
//! two users, so POST is not idempotent); PUT replaces the changeable
//! fields and PATCH sets some of them (both idempotent: sending the same
//! one twice leaves the same state); DELETE removes (204, then 404).

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::AppError;
use crate::repo::{self, UserFields};
use crate::rest::{Cx, Fields, JsonObject, Page, check_password, check_user, created, represent};
use crate::routes::id;

/// GET /api/users?page=&per_page=
pub async fn list(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let page = Page::from_query(q.as_deref())?;
    let (users, total) = cx
        .service("UserService::list", async |sql| {
            let users = repo::list_users(&sql, page.per_page, page.offset()).await?;
            Ok((users, repo::count_users(&sql).await?))
        })
        .await?;
    let mut r = represent(&cx.headers, &users, false)?;
    page.headers("/api/users", total, &mut r);
    Ok(r)
}

/// POST /api/users {name, email, password}
pub async fn create(cx: Cx, JsonObject(obj): JsonObject) -> Result<Response, AppError> {
    let mut f = Fields::of(&obj, &["name", "email", "password"]);
    let name = f.text("name", true);
    let email = f.text("email", true);
    let password = f.text("password", true);
    check_user(&mut f, name.as_deref(), email.as_deref());
    check_password(&mut f, password.as_deref());
    f.finish()?;
    let fields = UserFields {
        name: name.unwrap_or_default().trim().into(),
        email: email.unwrap_or_default(),
    };
    let hash = auth::hash_password(&password.unwrap_or_default()).await?;
    let user = cx
        .service("UserService::create", async |sql| {
            repo::create_user(&sql, &fields, Some(hash)).await
        })
        .await?;
    Ok(created(format!("/api/users/{}", user.id), &user))
}

async fn find(cx: &Cx, id: i64) -> Result<repo::User, AppError> {
    cx.service("UserService::find", async |sql| {
        repo::find_user(&sql, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no user with id {id}")))
    })
    .await
}

/// GET /api/users/{id}
pub async fn show(cx: Cx, Path(raw): Path<String>) -> Result<Response, AppError> {
    let user = find(&cx, id(&raw, "user")?).await?;
    represent(&cx.headers, &[user], true)
}

/// GET /api/me: whoever the session or token says is asking.
pub async fn me(cx: Cx) -> Result<Response, AppError> {
    let me = cx.user()?.user_id;
    let user = find(&cx, me).await?;
    represent(&cx.headers, &[user], true)
}

/// PUT /api/users/{id} {name, email}: both required.
pub async fn replace(
    cx: Cx,
    Path(raw): Path<String>,
    JsonObject(obj): JsonObject,
) -> Result<Response, AppError> {
    change(cx, &raw, &obj, true).await
}

/// PATCH /api/users/{id} {name?, email?}: a JSON merge patch (RFC 7396)
/// of the changeable fields.
pub async fn update(
    cx: Cx,
    Path(raw): Path<String>,
    JsonObject(obj): JsonObject,
) -> Result<Response, AppError> {
    change(cx, &raw, &obj, false).await
}

async fn change(
    cx: Cx,
    raw: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    whole: bool,
) -> Result<Response, AppError> {
    let id = id(raw, "user")?;
    cx.owner_or_admin(id, "change")?;
    let mut f = Fields::of(obj, &["name", "email"]);
    let name = f.text("name", whole);
    let email = f.text("email", whole);
    check_user(&mut f, name.as_deref(), email.as_deref());
    f.finish()?;
    let name = name.map(|n| n.trim().to_string());
    let user = cx
        .service("UserService::update", async |sql| {
            repo::update_user(&sql, id, name.as_deref(), email.as_deref())
                .await?
                .ok_or_else(|| AppError::not_found(format!("no user with id {id}")))
        })
        .await?;
    Ok(axum::Json(user).into_response())
}

/// DELETE /api/users/{id}: 204, or 404 when there is no such user (a
/// second DELETE changes nothing more: idempotent).
pub async fn delete(cx: Cx, Path(raw): Path<String>) -> Result<Response, AppError> {
    let id = id(&raw, "user")?;
    cx.owner_or_admin(id, "delete")?;
    let gone = cx
        .service("UserService::delete", async |sql| {
            repo::delete_user(&sql, id).await
        })
        .await?;
    if gone {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::not_found(format!("no user with id {id}")))
    }
}
