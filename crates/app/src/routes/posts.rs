//! `/api/posts` and `/api/users/{id}/posts` (C38): posts on their own and
//! as a sub-collection of their author.

use axum::extract::{Path, RawQuery};
use axum::response::Response;

use crate::error::AppError;
use crate::repo;
use crate::rest::{Cx, Fields, JsonObject, Page, created, represent};
use crate::routes::id;

async fn page_of(
    cx: &Cx,
    q: Option<&str>,
    user: Option<i64>,
    path: &str,
) -> Result<Response, AppError> {
    let page = Page::from_query(q)?;
    let (posts, total) = cx
        .service("PostService::list", async |sql| {
            if let Some(u) = user
                && repo::find_user(&sql, u).await?.is_none()
            {
                return Err(AppError::not_found(format!("no user with id {u}")));
            }
            let posts = repo::list_posts(&sql, user, page.per_page, page.offset()).await?;
            Ok((posts, repo::count_posts(&sql, user).await?))
        })
        .await?;
    let mut r = represent(&cx.headers, &posts, false)?;
    page.headers(path, total, &mut r);
    Ok(r)
}

/// GET /api/posts: newest first.
pub async fn list(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    page_of(&cx, q.as_deref(), None, "/api/posts").await
}

/// GET /api/users/{id}/posts
pub async fn by_user(
    cx: Cx,
    Path(raw): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let u = id(&raw, "user")?;
    page_of(&cx, q.as_deref(), Some(u), &format!("/api/users/{u}/posts")).await
}

/// GET /api/posts/{id}
pub async fn show(cx: Cx, Path(raw): Path<String>) -> Result<Response, AppError> {
    let pid = id(&raw, "post")?;
    let post = cx
        .service("PostService::find", async |sql| {
            repo::find_post(&sql, pid)
                .await?
                .ok_or_else(|| AppError::not_found(format!("no post with id {pid}")))
        })
        .await?;
    represent(&cx.headers, &[post], true)
}

/// POST /api/posts {title, body}: by whoever is signed in.
pub async fn create(cx: Cx, JsonObject(obj): JsonObject) -> Result<Response, AppError> {
    let author = cx.user()?.user_id;
    let mut f = Fields::of(&obj, &["title", "body"]);
    let title = f.text("title", true).unwrap_or_default();
    let body = f.text("body", true).unwrap_or_default();
    if title.trim().is_empty() || title.chars().count() > 200 {
        f.invalid("title", "must be 1 to 200 characters");
    }
    if body.chars().count() > 10_000 {
        f.invalid("body", "must be at most 10000 characters");
    }
    f.finish()?;
    let post = cx
        .service("PostService::create", async |sql| {
            repo::create_post(&sql, author, title.trim(), &body).await
        })
        .await?;
    cx.s.new_posts.send_replace(post.id);
    Ok(created(format!("/api/posts/{}", post.id), &post))
}
