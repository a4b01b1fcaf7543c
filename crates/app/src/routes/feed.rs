//! The same feed of new posts three ways (C41):
//!
//! - polling: `GET /api/posts/updates?after=ID` answers at once, 200 with
//!   what is new or 204 when nothing is;
//! - long polling: the same with `&wait=SECONDS` (at most 30): the answer
//!   is held until a post arrives or the time is up;
//! - server-sent events: `GET /api/posts/stream` keeps one response open
//!   and writes an event per post (`id:` lets a reconnecting browser say
//!   `Last-Event-ID` and miss nothing).
//!
//! A post written on this server wakes the waiters at once; one written by
//! another app server (same database) is found by this server's one
//! reader of the newest post id, every second.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use weblab_trace::Ctx;

use crate::error::AppError;
use crate::repo::{self, Post};
use crate::rest::Cx;
use crate::server::AppState;

/// Longest a long poll is held.
pub const MAX_WAIT_SECS: u64 = 30;
/// How often the server reads the newest post id for other servers' posts.
const RECHECK: Duration = Duration::from_secs(1);
/// Posts per answer or per stream step.
const BATCH: i64 = 100;

fn query_number(q: Option<&str>, key: &str) -> Result<Option<i64>, AppError> {
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        if k == key {
            return v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or_else(|| {
                    AppError::bad_request(format!("{key} must be a whole number, not {v:?}"))
                });
        }
    }
    Ok(None)
}

/// Waits until there are posts after `after` or `until` passes. The
/// database is read again only when [`AppState::new_posts`] moves.
async fn wait_for_posts(
    cx: &Cx,
    sql_ctx: Ctx,
    after: i64,
    until: Instant,
) -> Result<Vec<Post>, AppError> {
    let mut news = cx.s.new_posts.subscribe();
    let mut shutdown = cx.s.shutdown.subscribe();
    let sql = cx.s.db.sql(&cx.s.rec, sql_ctx);
    loop {
        let posts = repo::posts_after(&sql, after, BATCH).await?;
        let now = Instant::now();
        if !posts.is_empty() || now >= until || *shutdown.borrow() {
            return Ok(posts);
        }
        tokio::select! {
            moved = tokio::time::timeout(until - now, news.changed()) => {
                if moved.is_err() {
                    return Ok(Vec::new());
                }
            }
            // A stopping server answers its waiters now (204, or the end
            // of a stream) instead of holding its drain for them.
            _ = shutdown.changed() => {}
        }
    }
}

/// One reader per server for posts written elsewhere: while anyone waits
/// on the feed, the newest post id is read every [`RECHECK`] and the
/// waiters are woken when it moved (one query a second, however many
/// waiters). Ends when the server stops.
pub async fn watch_newest(s: Arc<AppState>, mut stop: weblab_server::StopSignal) {
    let sql = s.db.sql(&s.rec, Ctx::unsampled_root());
    let mut tick = tokio::time::interval(RECHECK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.stopped() => return,
        }
        if s.new_posts.receiver_count() == 0 {
            continue;
        }
        if let Ok(newest) = repo::newest_post(&sql).await {
            s.new_posts.send_if_modified(|known| {
                let moved = newest > *known;
                *known = (*known).max(newest);
                moved
            });
        }
    }
}

/// GET /api/posts/updates?after=ID[&wait=SECONDS]
pub async fn updates(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let after = query_number(q.as_deref(), "after")?.unwrap_or(0);
    let wait = query_number(q.as_deref(), "wait")?
        .unwrap_or(0)
        .unsigned_abs()
        .min(MAX_WAIT_SECS);
    let until = Instant::now() + Duration::from_secs(wait);
    let posts = cx
        .service("FeedService::updates", async |sql| {
            if wait == 0 {
                repo::posts_after(&sql, after, BATCH).await
            } else {
                // Its statements go under this service span, re-reads too.
                wait_for_posts(&cx, sql.ctx(), after, until).await
            }
        })
        .await?;
    let mut r = if posts.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        axum::Json(&posts).into_response()
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// GET /api/posts/stream[?after=ID] (or `Last-Event-ID`)
pub async fn stream(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let resume = cx
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = match resume {
        Some(id) => id,
        None => match query_number(q.as_deref(), "after")? {
            Some(id) => id,
            // A new listener hears what comes from now on.
            None => {
                cx.service("FeedService::newest", async |sql| {
                    repo::newest_post(&sql).await
                })
                .await?
            }
        },
    };
    // The stream outlives the request's trace: its reads are not recorded
    // (an open stream would add spans to it for as long as it stays open).
    let events = futures::stream::unfold((cx, after), |(cx, after)| async move {
        // A stopping server ends its streams; the browser reconnects
        // (elsewhere) with Last-Event-ID and misses nothing.
        if *cx.s.shutdown.borrow() {
            return None;
        }
        let far = Instant::now() + Duration::from_secs(3600);
        match wait_for_posts(&cx, Ctx::unsampled_root(), after, far).await {
            Ok(posts) => {
                let last = posts.last().map_or(after, |p| p.id);
                let events: Vec<Result<SseEvent, Infallible>> = posts
                    .iter()
                    .map(|p| {
                        Ok(SseEvent::default()
                            .id(p.id.to_string())
                            .event("post")
                            .json_data(p)
                            .unwrap_or_default())
                    })
                    .collect();
                Some((futures::stream::iter(events), (cx, last)))
            }
            // The database failed: end the stream; the browser reconnects
            // with Last-Event-ID.
            Err(_) => None,
        }
    });
    let sse = Sse::new(futures::StreamExt::flatten(events))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)));
    let mut r = sse.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
