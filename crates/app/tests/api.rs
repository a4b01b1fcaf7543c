//! Sign-in, sessions, tokens and the REST API, driven through the whole
//! router (middleware chain included) against a real in-memory SQLite.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weblab_app::{AppState, DEMO_PASSWORD, Db, router};
use weblab_trace::{Collector, Ctx, Detail, Event, Recorder};

struct App {
    router: axum::Router,
    collector: Collector,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |v| v.to_str().unwrap_or(""))
    }
    /// The `sid=...` pair of the Set-Cookie, for the next request.
    fn session(&self) -> String {
        let c = self.header("set-cookie");
        c.split(';').next().unwrap_or("").to_string()
    }
}

/// The database these tests run on: a fresh in-memory SQLite. (The
/// PostgreSQL tests include this file and supply their own.)
#[allow(dead_code)]
pub async fn database_url() -> Option<String> {
    Some("sqlite::memory:".into())
}

async fn app() -> Option<App> {
    let url = crate::database_url().await?;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let collector = Collector::new(Detail::Full);
    let rec = Recorder::new(collector.clone(), "app1", "127.0.5.1", "app");
    let state = Arc::new(AppState::new(db, rec, "app1").await.unwrap());
    Some(App {
        router: router(state, &[]),
        collector,
    })
}

impl App {
    /// One request from `peer`, with `headers` (name, value) and `body`.
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        self.call_from("127.0.0.9:5000", method, path, headers, body)
            .await
    }

    async fn call_from(
        &self,
        peer: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let peer: SocketAddr = peer.parse().unwrap();
        let req = req
            .extension(ConnectInfo(peer))
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn json(&self, method: &str, path: &str, auth: Option<&str>, body: &str) -> Answer {
        let bearer = auth.map(|t| format!("Bearer {t}"));
        let mut h = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            h.push(("authorization", b.as_str()));
        }
        self.call(method, path, &h, body).await
    }

    async fn login_form(&self, email: &str, password: &str, cookie: Option<&str>) -> Answer {
        let body = format!("email={email}&password={password}&next=%2Faccount");
        let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(c) = cookie {
            h.push(("cookie", c));
        }
        self.call("POST", "/login", &h, &body).await
    }

    async fn token(&self, email: &str) -> serde_json::Value {
        let body = format!(
            r#"{{"grant_type":"password","email":"{email}","password":"{DEMO_PASSWORD}"}}"#
        );
        let a = self.json("POST", "/api/tokens", None, &body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.json()
    }
}

#[tokio::test]
async fn the_sign_in_form_starts_a_session_that_the_account_page_needs() {
    let Some(app) = app().await else { return };
    // Without a session the account page sends the browser to sign in.
    let a = app.call("GET", "/account", &[], "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.header("location"), "/login?next=/account");

    let a = app.login_form("ada@myapp.test", DEMO_PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.header("location"), "/account");
    let set = a.header("set-cookie");
    for part in ["sid=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    // Straight to the app (no trusted proxy said HTTPS): not Secure.
    assert!(!set.contains("Secure"), "{set}");
    let sid = a.session();

    let page = app.call("GET", "/account", &[("cookie", &sid)], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Hello, Ada Lovelace"), "{}", page.body);

    // Sign out: the row is gone, so the same cookie no longer works.
    let out = app.call("POST", "/logout", &[("cookie", &sid)], "").await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let a = app.call("GET", "/account", &[("cookie", &sid)], "").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    // ... and the stale cookie is cleared.
    assert!(
        a.header("set-cookie").contains("Max-Age=0"),
        "{:?}",
        a.headers
    );
}

#[tokio::test]
async fn a_session_id_planted_before_sign_in_is_never_the_one_signed_in() {
    let Some(app) = app().await else { return };
    let planted = "sid=attacker-chose-this";
    let a = app
        .login_form("alan@myapp.test", DEMO_PASSWORD, Some(planted))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let sid = a.session();
    assert_ne!(sid, planted);
    assert!(sid.len() > 40, "{sid}");
    let planted_page = app
        .call("GET", "/account", &[("cookie", planted)], "")
        .await;
    assert_eq!(planted_page.status, StatusCode::SEE_OTHER);
    // Signing in again rotates the id: the old one stops working.
    let again = app
        .login_form("alan@myapp.test", DEMO_PASSWORD, Some(&sid))
        .await;
    let new_sid = again.session();
    assert_ne!(new_sid, sid);
    assert_eq!(
        app.call("GET", "/account", &[("cookie", &sid)], "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.call("GET", "/account", &[("cookie", &new_sid)], "")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_passwords_get_401_then_429_per_client() {
    let Some(app) = app().await else { return };
    for _ in 0..5 {
        let a = app.login_form("ada@myapp.test", "nope", None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(a.body.contains("Wrong email or password"));
    }
    let a = app.login_form("ada@myapp.test", DEMO_PASSWORD, None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.header("retry-after").parse::<u64>().unwrap() >= 1);
    // Another address is not held back.
    let body = format!("email=ada@myapp.test&password={DEMO_PASSWORD}");
    let other = app
        .call_from(
            "127.0.0.10:5000",
            "POST",
            "/login",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);
}

/// The users as CSV, as `Accept: text/csv` and an export give them.
fn assert_users_csv(a: &Answer) {
    assert!(a.header("content-type").starts_with("text/csv"));
    assert!(
        a.body
            .starts_with("id,name,email,role,created_at\r\n1,Ada Lovelace,"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn users_are_created_read_replaced_and_deleted_with_the_right_codes() {
    let Some(app) = app().await else { return };
    let made = app
        .json(
            "POST",
            "/api/users",
            None,
            r#"{"name":"Edsger Dijkstra","email":"edsger@myapp.test","password":"goto-harmful"}"#,
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let location = made.header("location").to_string();
    let id = made.json()["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/users/{id}"));

    // POST is not idempotent: the same body again is a conflict now.
    let again = app
        .json(
            "POST",
            "/api/users",
            None,
            r#"{"name":"Edsger Dijkstra","email":"edsger@myapp.test","password":"goto-harmful"}"#,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let got = app.call("GET", &location, &[], "").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["email"], "edsger@myapp.test");
    assert!(!got.body.contains("argon2"), "the hash never leaves");

    // Changing needs a sign-in, and only the user (or an admin).
    let put = r#"{"name":"E. W. Dijkstra","email":"ewd@myapp.test"}"#;
    assert_eq!(
        app.json("PUT", &location, None, put).await.status,
        StatusCode::UNAUTHORIZED
    );
    let alan = app.token("alan@myapp.test").await;
    let alan = alan["access_token"].as_str().unwrap();
    let denied = app.json("PUT", &location, Some(alan), put).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    let ada = app.token("ada@myapp.test").await;
    let ada = ada["access_token"].as_str().unwrap();
    // PUT is idempotent: twice, same state.
    let first = app.json("PUT", &location, Some(ada), put).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = app.json("PUT", &location, Some(ada), put).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.json()["name"], second.json()["name"]);
    assert_eq!(first.json()["email"], "ewd@myapp.test");
    // PUT without every field is incomplete; PATCH with one is fine.
    let partial = app
        .json("PUT", &location, Some(ada), r#"{"name":"X"}"#)
        .await;
    assert_eq!(partial.status, StatusCode::BAD_REQUEST);
    assert_eq!(partial.json()["fields"]["email"], "is required");
    let patched = app
        .json(
            "PATCH",
            &location,
            Some(ada),
            r#"{"name":"Edsger W. Dijkstra"}"#,
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.json()["email"], "ewd@myapp.test");

    // DELETE: 204, and the second finds nothing.
    assert_eq!(
        app.json("DELETE", &location, Some(ada), "").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.json("DELETE", &location, Some(ada), "").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call("GET", &location, &[], "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_bodies_get_400_415_422_and_413_with_reasons() {
    let Some(app) = app().await else { return };
    let a = app
        .json("POST", "/api/users", None, "{\n\"name\": \"x\",\n oops }")
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.json()["detail"]
            .as_str()
            .unwrap()
            .contains("line 3 column 2"),
        "{}",
        a.body
    );

    let a = app
        .call(
            "POST",
            "/api/users",
            &[("content-type", "text/plain")],
            "{}",
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let a = app.json("POST", "/api/users", None, r#"{"name": 1}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let fields = &a.json()["fields"];
    assert_eq!(fields["name"], "must be a string, not a number");
    assert_eq!(fields["email"], "is required");

    let a = app
        .json(
            "POST",
            "/api/users",
            None,
            r#"{"name":"","email":"no-at","password":"short"}"#,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = &a.json()["fields"];
    for f in ["name", "email", "password"] {
        assert!(fields[f].is_string(), "{}", a.body);
    }

    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70_000));
    let a = app.json("POST", "/api/users", None, &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
}

#[tokio::test]
async fn methods_options_negotiation_etags_and_pages() {
    let Some(app) = app().await else { return };
    let a = app.call("PATCH", "/api/users", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow"), "GET, HEAD, POST, OPTIONS");
    assert!(
        a.json()["detail"]
            .as_str()
            .unwrap()
            .contains("PATCH is not allowed")
    );

    let a = app.call("OPTIONS", "/api/users/1", &[], "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(a.header("allow"), "GET, HEAD, PUT, PATCH, DELETE, OPTIONS");
    // A method no server knows: 501, on a routed path and an unrouted one.
    for path in ["/api/users/1", "/nowhere"] {
        let a = app.call("BREW", path, &[], "").await;
        assert_eq!(a.status, StatusCode::NOT_IMPLEMENTED, "{path}");
        assert!(a.body.contains("BREW is not a method"), "{}", a.body);
    }

    let a = app.call("HEAD", "/api/users/1", &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());

    // TRACE would echo the request back (cookies included): not offered.
    let a = app.call("TRACE", "/api/users/1", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.header("allow"), "GET, HEAD, PUT, PATCH, DELETE, OPTIONS");

    let csv = app
        .call("GET", "/api/users", &[("accept", "text/csv")], "")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_users_csv(&csv);
    let xml = app
        .call("GET", "/api/users", &[("accept", "application/xml")], "")
        .await;
    assert_eq!(xml.status, StatusCode::NOT_ACCEPTABLE);

    let one = app.call("GET", "/api/users/2", &[], "").await;
    let etag = one.header("etag").to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let again = app
        .call("GET", "/api/users/2", &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    let page = app
        .call("GET", "/api/users?page=2&per_page=2", &[], "")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.json().as_array().unwrap().len(), 1);
    assert_eq!(page.header("x-total-count"), "3");
    assert!(page.header("link").contains("rel=\"prev\""));
    assert!(!page.header("link").contains("rel=\"next\""));
}

#[tokio::test]
async fn hostile_parameters_are_data_never_sql() {
    let Some(app) = app().await else { return };
    let a = app.call("GET", "/api/users/1%20OR%201=1", &[], "").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let evil = "Robert'); DROP TABLE users;--";
    let made = app
        .json(
            "POST",
            "/api/users",
            None,
            &format!(r#"{{"name":"{evil}","email":"bobby@myapp.test","password":"tables-1234"}}"#),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let back = app.call("GET", made.header("location"), &[], "").await;
    assert_eq!(back.json()["name"], evil);
    let login = app.login_form("' OR '1'='1", "' OR '1'='1", None).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    let list = app.call("GET", "/api/users", &[], "").await;
    assert_eq!(list.header("x-total-count"), "4");
}

#[tokio::test]
async fn tokens_rotate_and_a_reused_refresh_token_revokes_its_family() {
    let Some(app) = app().await else { return };
    let t = app.token("grace@myapp.test").await;
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().unwrap();
    let me = app.json("GET", "/api/me", Some(access), "").await;
    assert_eq!(me.json()["email"], "grace@myapp.test");

    // Tampered: the first character of the signature changed. (Not the
    // last: it carries 2 padding bits, and a change there can make the
    // base64 malformed instead of the signature wrong.)
    let at = access.rfind('.').unwrap() + 1;
    let first = &access[at..=at];
    let other = if first == "A" { "B" } else { "A" };
    let bad = format!("{}{other}{}", &access[..at], &access[at + 1..]);
    let a = app.json("GET", "/api/me", Some(&bad), "").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.header("www-authenticate").starts_with("Bearer"));
    assert!(
        a.json()["detail"].as_str().unwrap().contains("signature"),
        "{}",
        a.body
    );

    let r1 = t["refresh_token"].as_str().unwrap();
    let body = |r: &str| format!(r#"{{"grant_type":"refresh_token","refresh_token":"{r}"}}"#);
    let t2 = app.json("POST", "/api/tokens", None, &body(r1)).await;
    assert_eq!(t2.status, StatusCode::OK, "{}", t2.body);
    let r2 = t2.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r2, r1);
    // r1 again: a replay. Refused, and r2 (same family) is revoked too.
    let replay = app.json("POST", "/api/tokens", None, &body(r1)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    let after = app.json("POST", "/api/tokens", None, &body(&r2)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.body.contains("unknown"), "{}", after.body);
}

#[tokio::test]
async fn admin_routes_answer_403_to_users_and_the_trace_shows_where_it_stopped() {
    let Some(app) = app().await else { return };
    let alan = app.token("alan@myapp.test").await;
    let caller = Ctx::new_root();
    let tp = caller.traceparent(weblab_trace::SpanId(0x42));
    let bearer = format!("Bearer {}", alan["access_token"].as_str().unwrap());
    let a = app
        .call(
            "GET",
            "/api/admin/stats",
            &[("authorization", &bearer), ("traceparent", &tp)],
            "",
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let spans = app.collector.assemble(caller.trace);
    let stopped = spans
        .iter()
        .find_map(|s| match &s.event {
            Event::Middleware { order: 8, name } => Some(name.clone()),
            _ => None,
        })
        .unwrap();
    assert!(stopped.contains("403"), "{stopped}");
    assert!(
        !spans
            .iter()
            .any(|s| matches!(s.event, Event::Service { .. }))
    );

    let ada = app.token("ada@myapp.test").await;
    let a = app
        .json("GET", "/api/admin/stats", ada["access_token"].as_str(), "")
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["users"], 3);
}

#[tokio::test]
async fn each_statement_and_the_transaction_around_a_sign_in_are_recorded() {
    let Some(app) = app().await else { return };
    let caller = Ctx::new_root();
    let tp = caller.traceparent(weblab_trace::SpanId(0x43));
    let body = format!("email=ada@myapp.test&password={DEMO_PASSWORD}");
    let a = app
        .call(
            "POST",
            "/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("traceparent", &tp),
            ],
            &body,
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let spans = app.collector.assemble(caller.trace);
    let sql: Vec<(String, u32)> = spans
        .iter()
        .filter_map(|s| match &s.event {
            Event::Sql {
                statement, params, ..
            } => Some((
                statement.split_whitespace().next().unwrap().to_string(),
                *params,
            )),
            _ => None,
        })
        .collect();
    let words: Vec<&str> = sql.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["SELECT", "BEGIN", "INSERT", "COMMIT"], "{sql:?}");
    assert_eq!(sql[0].1, 1);
    assert_eq!(sql[2].1, 3);
}

/// 202 Accepted (C29): an export is taken at once and done afterwards;
/// its place says when, and only its owner (or an admin) may see it.
#[tokio::test]
async fn an_export_is_accepted_with_202_then_done_and_its_file_read() {
    let Some(app) = app().await else { return };
    let none = app.json("POST", "/api/exports", None, "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let alan = app.token("alan@myapp.test").await;
    let alan = alan["access_token"].as_str().unwrap();
    let a = app.json("POST", "/api/exports", Some(alan), "").await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let place = a.header("location").to_string();
    assert!(place.starts_with("/api/exports/"), "{place}");
    assert_eq!(a.json()["status"], "pending");
    // The work goes on after the answer: ask until it is done (bounded).
    let mut state = serde_json::Value::Null;
    for _ in 0..100 {
        let got = app.json("GET", &place, Some(alan), "").await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        state = got.json();
        if state["status"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(state["status"], "done", "{state}");
    let file = state["file"].as_str().unwrap().to_string();
    assert_eq!(file, format!("{place}/file"));
    let csv = app.json("GET", &file, Some(alan), "").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_users_csv(&csv);
    // Another plain user may not read it; an admin may.
    let grace = app.token("grace@myapp.test").await;
    let grace = grace["access_token"].as_str().unwrap();
    let other = app.json("GET", &place, Some(grace), "").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let ada = app.token("ada@myapp.test").await;
    let ada = ada["access_token"].as_str().unwrap();
    assert_eq!(
        app.json("GET", &file, Some(ada), "").await.status,
        StatusCode::OK
    );
}

/// One user's exports stay bounded: after more than ten, the oldest is gone.
#[tokio::test]
async fn a_users_exports_are_bounded_to_the_newest_ten() {
    let Some(app) = app().await else { return };
    let t = app.token("grace@myapp.test").await;
    let t = t["access_token"].as_str().unwrap();
    let mut places = Vec::new();
    for _ in 0..11 {
        let mut a = app.json("POST", "/api/exports", Some(t), "").await;
        // At most two in the works at once: wait for one to end.
        for _ in 0..100 {
            if a.status != StatusCode::TOO_MANY_REQUESTS {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            a = app.json("POST", "/api/exports", Some(t), "").await;
        }
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        places.push(a.header("location").to_string());
    }
    let first = app.json("GET", &places[0], Some(t), "").await;
    assert_eq!(first.status, StatusCode::NOT_FOUND, "{}", first.body);
    let last = app.json("GET", &places[10], Some(t), "").await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.body);
}
