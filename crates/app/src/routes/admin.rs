//! Routes for admins only: the authorization step answers 403 to anyone
//! else who is signed in.

use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::repo;
use crate::rest::Cx;

/// GET /api/admin/stats: how many users, posts and live sessions.
pub async fn stats(cx: Cx) -> Result<Response, AppError> {
    let (users, posts, sessions) = cx
        .service("AdminService::stats", async |sql| {
            Ok((
                repo::count_users(&sql).await?,
                repo::count_posts(&sql, None).await?,
                repo::count_sessions(&sql).await?,
            ))
        })
        .await?;
    Ok(
        axum::Json(serde_json::json!({ "users": users, "posts": posts, "sessions": sessions }))
            .into_response(),
    )
}
