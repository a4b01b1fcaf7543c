//! Routes, controllers and services (C46, C47): a controller reads the
//! request, a service holds the logic, the repository ([`crate::db`]) runs SQL.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use weblab_trace::{Ctx, Event, Layer};

use crate::db::User;
use crate::error::AppError;
use crate::middleware::TraceCtx;
use crate::server::AppState;

/// The route table: pattern → controller name (shown in traces).
pub const ROUTES: [(&str, &str); 2] = [
    ("/login", "LoginController::show"),
    ("/api/users/{id}", "UsersController::show"),
];

/// The controller serving `pattern`.
pub fn controller_for(pattern: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(p, _)| *p == pattern)
        .map_or("?", |(_, c)| c)
}

/// Runs `work` inside a `Service` span.
async fn service<T>(
    s: &AppState,
    ctx: Ctx,
    name: &str,
    work: impl AsyncFnOnce(Ctx) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let span = s.rec.begin(ctx, Layer::Application);
    let out = work(span.ctx()).await;
    s.rec.end(span, Event::Service { name: name.into() });
    out
}

/// GET /login: the sign-in page, which needs a stylesheet, a script and an
/// image from the web server's static files.
pub async fn login_page(
    State(s): State<Arc<AppState>>,
    Extension(TraceCtx(ctx)): Extension<TraceCtx>,
) -> Result<Response, AppError> {
    let users = service(&s, ctx, "AuthService::login_page", async |ctx| {
        s.db.count_users(&s.rec, ctx).await
    })
    .await?;
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Sign in - myapp</title>
  <link rel="stylesheet" href="/static/app.css">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <main class="card">
    <img src="/static/logo.png" alt="myapp logo" width="64" height="64">
    <h1>Sign in</h1>
    <p>Served by {host}; {users} people already have an account.</p>
    <form method="post" action="/login">
      <label>Email <input name="email" type="email" autocomplete="username"></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"></label>
      <button type="submit">Sign in</button>
    </form>
  </main>
</body>
</html>
"#,
        host = s.host
    );
    let mut r = Html(page).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// GET /api/users/{id}: one user as JSON.
pub async fn show_user(
    State(s): State<Arc<AppState>>,
    Extension(TraceCtx(ctx)): Extension<TraceCtx>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::bad_request(format!("user id {id:?} is not a number")))?;
    let user: User = service(&s, ctx, "UserService::find", async |ctx| {
        s.db.find_user(&s.rec, ctx, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no user with id {id}")))
    })
    .await?;
    let mut r = Json(user).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, must-revalidate"),
    );
    Ok(r)
}

/// Anything unrouted: 404 with the path named.
pub async fn not_found(uri: Uri) -> Response {
    let body = serde_json::json!({ "error": "Not Found", "detail": format!("no route for {}", uri.path()) });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
