//! `/api/exports` (C29's 202, C38): work the server accepts now and does
//! later. `POST /api/exports` answers 202 Accepted at once, with the
//! export's place in Location; a task of the app server then writes the
//! users as CSV into the database. `GET /api/exports/{id}` says whether it
//! is done; `GET /api/exports/{id}/file` gives the CSV once it is (409
//! before). Any app server can answer either: the export lives in the
//! shared database, not in the server that took the request.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use weblab_trace::Ctx;

use crate::error::AppError;
use crate::repo;
use crate::rest::Cx;
use crate::routes::id;

/// Users an export holds at most.
const MAX_ROWS: i64 = 10_000;
/// Exports kept per user (the oldest go first).
const KEEP: i64 = 10;
/// Exports a user may have in the works at once; more get 429.
const MAX_PENDING: i64 = 2;
/// A pending export older than this no longer counts against its owner,
/// and is failed when asked about (its task ended with the server that
/// ran it).
const PENDING_FOR: i64 = 60;

/// POST /api/exports: 202 and the export's place; the work goes on after
/// the answer.
pub async fn start(cx: Cx) -> Result<Response, AppError> {
    let owner = cx.user()?.user_id;
    let eid = cx
        .service("ExportService::start", async |sql| {
            if repo::pending_exports(&sql, owner, PENDING_FOR).await? >= MAX_PENDING {
                return Err(AppError::too_many(
                    format!("{MAX_PENDING} exports of yours are still being made; ask again when one is done"),
                    1,
                ));
            }
            repo::create_export(&sql, owner, KEEP).await
        })
        .await?;
    let s = cx.s.clone();
    // The request's trace ends with its answer; the job is not part of it.
    tokio::spawn(async move {
        let sql = s.db.sql(&s.rec, Ctx::unsampled_root());
        let done = async {
            let users = repo::list_users(&sql, MAX_ROWS, 0).await?;
            let body = crate::rest::csv_of(&users);
            repo::end_export(&sql, eid, Ok(&body)).await
        };
        if let Err(e) = done.await {
            let _ = repo::end_export(&sql, eid, Err(&e.to_string())).await;
        }
    });
    let place = format!("/api/exports/{eid}");
    let mut r = (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({
            "id": eid,
            "status": "pending",
            "poll": place,
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&place) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn find(cx: &Cx, raw: &str) -> Result<repo::Export, AppError> {
    let eid = id(raw, "export")?;
    let e = cx
        .service("ExportService::find", async |sql| {
            repo::find_export_settled(&sql, eid, PENDING_FOR)
                .await?
                .ok_or_else(|| AppError::not_found(format!("no export with id {eid}")))
        })
        .await?;
    cx.owner_or_admin(e.user_id, "export")?;
    Ok(e)
}

/// GET /api/exports/{id}: its state, and where the file is once done.
pub async fn show(cx: Cx, Path(raw): Path<String>) -> Result<Response, AppError> {
    let e = find(&cx, &raw).await?;
    let file = (e.status == "done").then(|| format!("/api/exports/{}/file", e.id));
    let mut r = axum::Json(serde_json::json!({
        "id": e.id,
        "status": e.status,
        "created_at": e.created_at,
        "done_at": e.done_at,
        "file": file,
        "error": e.error,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// GET /api/exports/{id}/file: the CSV once done; 409 before.
pub async fn file(cx: Cx, Path(raw): Path<String>) -> Result<Response, AppError> {
    let e = find(&cx, &raw).await?;
    match (e.status.as_str(), e.body) {
        ("done", Some(body)) => {
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
        (status, _) => Err(AppError::conflict(format!(
            "export {} is {status}, not done: ask GET /api/exports/{} until it is",
            e.id, e.id
        ))),
    }
}
