//! The application server's router, driven in-process with real requests
//! over its tower stack and a real (in-memory) SQLite database.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weblab_app::{AppState, Db, router};
use weblab_trace::{Collector, Ctx, Detail, Event, Recorder};

async fn app() -> (axum::Router, Collector, Arc<AppState>) {
    let db = Db::connect("sqlite::memory:").await.unwrap();
    db.migrate().await.unwrap();
    let collector = Collector::new(Detail::Full);
    let rec = Recorder::new(collector.clone(), "app1", "127.0.5.1", "app");
    let web1: std::net::IpAddr = "127.0.4.1".parse().unwrap();
    let state = Arc::new(
        AppState::new(db, rec, "app1")
            .await
            .unwrap()
            .trusting(vec![web1]),
    );
    (
        router(state.clone(), &["https://myapp.test".into()]),
        collector,
        state,
    )
}

#[tokio::test]
async fn a_request_runs_the_chain_in_order_and_joins_the_callers_trace() {
    let (app, collector, state) = app().await;
    let caller = Ctx::new_root();
    let tp = caller.traceparent(weblab_trace::SpanId(0x1234));
    let resp = app
        .oneshot(
            Request::get("/api/users/3")
                .header("traceparent", &tp)
                .header("x-real-ip", "127.0.0.2")
                .extension(from("127.0.4.1:40000"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(resp.headers().contains_key("x-request-id"));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["name"], "Grace Hopper");

    let spans = collector.assemble(caller.trace);
    let order: Vec<String> = spans
        .iter()
        .map(|s| match &s.event {
            Event::Middleware { order, .. } => format!("mw{order}"),
            other => other.kind().to_string(),
        })
        .collect();
    assert_eq!(
        order,
        [
            "mw1", "mw2", "mw3", "mw4", "mw5", "mw6", "mw7", "route", "mw8", "service", "sql"
        ]
    );
    // The first span is a child of the caller's span.
    assert_eq!(spans[0].parent, Some(weblab_trace::SpanId(0x1234)));
    let log = state.access_log();
    assert!(
        log[0].starts_with("127.0.0.2 GET /api/users/3 200"),
        "{log:?}"
    );
}

/// The connection a request came in on, as the accept loop records it.
fn from(peer: &str) -> ConnectInfo<SocketAddr> {
    ConnectInfo(peer.parse().unwrap())
}

#[tokio::test]
async fn a_forged_x_real_ip_from_a_client_is_not_what_the_access_log_records() {
    let (app, _, state) = app().await;
    for (peer, want) in [
        ("127.0.0.9:5000", "127.0.0.9 GET"), // straight to the app: ignored
        ("127.0.4.1:5000", "6.6.6.6 GET"),   // through a trusted web server
    ] {
        let resp = app
            .clone()
            .oneshot(
                Request::get("/api/users/1")
                    .header("x-real-ip", "6.6.6.6")
                    .extension(from(peer))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let log = state.access_log();
        assert!(log.last().unwrap().starts_with(want), "{peer}: {log:?}");
    }
}

#[tokio::test]
async fn cors_preflight_allows_the_configured_origin_only() {
    let (app, _, _) = app().await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/users/1")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .body(Body::empty())
            .unwrap()
    };
    let ok = app
        .clone()
        .oneshot(preflight("https://myapp.test"))
        .await
        .unwrap();
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://myapp.test"
    );
    let other = app.oneshot(preflight("https://evil.test")).await.unwrap();
    assert!(
        !other
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn unknown_paths_and_bad_ids_get_clear_json_errors() {
    let (app, _, _) = app().await;
    for (path, status, needle) in [
        ("/nope", StatusCode::NOT_FOUND, "no route for /nope"),
        ("/api/users/x1", StatusCode::BAD_REQUEST, "not a number"),
        ("/api/users/42", StatusCode::NOT_FOUND, "no user with id 42"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains(needle),
            "{path}: {v}"
        );
    }
}

#[tokio::test]
async fn the_login_page_is_compressed_when_the_client_accepts_it() {
    let (app, _, _) = app().await;
    let resp = app
        .oneshot(
            Request::get("/login")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
}

/// The middleware spans of the last request, by order number.
fn middleware_names(collector: &Collector) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = collector
        .snapshot()
        .into_iter()
        .filter_map(|s| match s.event {
            Event::Middleware { name, order } if order >= 4 => Some((order, name)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The name of middleware step `order`.
fn at(names: &[(u32, String)], order: u32) -> &str {
    names
        .iter()
        .find(|(o, _)| *o == order)
        .map_or("", |(_, n)| n.as_str())
}

#[tokio::test]
async fn a_middleware_that_did_nothing_says_so_and_one_that_acted_says_what_it_did() {
    let (app, collector, _) = app().await;
    // Same-origin (no Origin), no Accept-Encoding: CORS and compression idle.
    let resp = app
        .clone()
        .oneshot(Request::get("/api/users/1").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let names = middleware_names(&collector);
    assert!(at(&names, 4).contains("no Origin header"), "{names:?}");
    assert!(
        at(&names, 7).contains("not compressed (the client accepts neither gzip nor br)"),
        "{names:?}"
    );

    let (app, collector, _) = self::app().await;
    let resp = app
        .oneshot(
            Request::get("/login")
                .header(header::ORIGIN, "https://evil.test")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let names = middleware_names(&collector);
    assert!(
        at(&names, 4).contains("origin https://evil.test not allowed"),
        "{names:?}"
    );
    assert!(at(&names, 7).contains("encoded as gzip"), "{names:?}");
}

#[tokio::test]
async fn a_small_json_body_is_not_compressed_where_gzip_would_make_it_larger() {
    let (app, collector, _) = app().await;
    let resp = app
        .oneshot(
            Request::get("/api/users/1")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(!resp.headers().contains_key(header::CONTENT_ENCODING));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() < 256, "{} bytes", body.len());
    let names = middleware_names(&collector);
    assert!(
        at(&names, 7).contains("not compressed (too small"),
        "{names:?}"
    );
}
