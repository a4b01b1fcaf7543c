//! `weblab experiment status` (C29): HTTP status codes, each made by a
//! real request in a real situation against a world booted here: from a
//! page that exists (200) to application servers that stopped (502, then
//! 503 once the web servers stop sending to them). Every row is a request
//! on a new connection from the client host; the code and the reason
//! shown are what the server answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::config::World;
use crate::world::RunningWorld;

/// A request that needs nothing from the ones before it: situation, the
/// request as shown, method, path, header fields, body.
type Alone<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    String,
);

/// One request and what came back.
#[derive(Clone, Debug)]
pub struct Row {
    /// The situation, in a few words.
    pub situation: String,
    /// The request line as sent (and where to).
    pub request: String,
    /// The status the server answered, or why there was none.
    pub status: Result<u16, String>,
    /// What the answer said about why: its JSON `detail`, its Location,
    /// or its first line of text.
    pub said: String,
}

/// The experiment's result.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub report: String,
}

/// The block the experiment's world uses unless `--block` is given.
pub const DEFAULT_BLOCK: u8 = 62;

/// The world's body timeout during the experiment.
const STALLED_BODY: Duration = Duration::from_secs(1);
/// The world's upstream timeout during the experiment.
const UPSTREAM: Duration = Duration::from_secs(7);

/// Bodies read from answers, at most.
const BODY_MAX: usize = 1 << 20;

struct Asker {
    bind: IpAddr,
    lb: IpAddr,
    http: u16,
    https: u16,
    site: String,
    tls: Arc<rustls::ClientConfig>,
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Asker {
    async fn ask(
        &self,
        secure: bool,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Got, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.site);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let (to, tls) = if secure {
            (
                SocketAddr::new(self.lb, self.https),
                Some((self.site.as_str(), &self.tls)),
            )
        } else {
            (SocketAddr::new(self.lb, self.http), None)
        };
        let resp = crate::mitm::ask_once(self.bind, to, tls, req).await?;
        let (parts, body) = resp.into_parts();
        let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            Bytes::new()
        } else {
            http_body_util::Limited::new(body, BODY_MAX)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes()
        };
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl Asker {
    /// A request whose body stops after 10 of its 100 bytes: the head
    /// promises 100, one frame of 10 goes, and the body stays open until
    /// the answer came.
    async fn stalled_upload(&self) -> Result<Got, String> {
        let (mut more, frames) =
            futures::channel::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(1);
        more.try_send(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"{\"name\":\"x",
        ))))
        .map_err(|e| e.to_string())?;
        let req = Request::post("/api/users")
            .header(http::header::HOST, &self.site)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CONTENT_LENGTH, "100")
            .body(http_body_util::StreamBody::new(frames))
            .map_err(|e| e.to_string())?;
        let to = SocketAddr::new(self.lb, self.https);
        let resp =
            crate::mitm::ask_once(self.bind, to, Some((self.site.as_str(), &self.tls)), req).await;
        drop(more);
        let (parts, body) = resp?.into_parts();
        let body = http_body_util::Limited::new(body, BODY_MAX)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Got {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// What an answer says about why it is what it is.
fn said(got: &Got) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&got.body)
        && let Some(d) = v.get("detail").and_then(|d| d.as_str())
    {
        return d.to_string();
    }
    let header = |name: http::HeaderName| {
        got.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(l) = header(http::header::LOCATION) {
        return format!("Location: {l}");
    }
    if got.status == StatusCode::SWITCHING_PROTOCOLS {
        let upgrade = header(http::header::UPGRADE).unwrap_or_default();
        let accept = header(http::header::SEC_WEBSOCKET_ACCEPT).unwrap_or_default();
        return format!("Upgrade: {upgrade}, Sec-WebSocket-Accept: {accept}");
    }
    if got.status == StatusCode::NOT_MODIFIED {
        return format!(
            "no body; ETag {}",
            header(http::header::ETAG).unwrap_or_default()
        );
    }
    if let Some(wait) = header(http::header::RETRY_AFTER) {
        return format!("Retry-After: {wait} s");
    }
    if got.body.is_empty() {
        return "no body".into();
    }
    let kind = header(http::header::CONTENT_TYPE).unwrap_or_default();
    if kind.starts_with("text/plain") {
        let text = String::from_utf8_lossy(&got.body);
        return text.lines().next().unwrap_or("").to_string();
    }
    format!("{} bytes of {kind}", got.body.len())
}

/// Makes each situation happen in `world`, booted here with its data in
/// `data_dir`.
pub async fn run(mut world: World, data_dir: std::path::PathBuf) -> Result<Outcome> {
    let site = crate::mitm::site_name(&world)?;
    // A body that stops coming is cut after this long (30 s by default):
    // short here, so the 408 row does not wait half a minute.
    world.limits.http.body_timeout = STALLED_BODY;
    // The proxies' wait for an answer (30 s by default): longer than the
    // app's own 5 s wait for a locked database (the 500 row), shorter
    // than the long poll of the 504 row.
    world.limits.upstream = UPSTREAM;
    let running = RunningWorld::start(world, data_dir.clone(), weblab_trace::Detail::Full).await?;
    let mut tls = crate::mitm::trusting_world_ca(&data_dir)?;
    // HTTP/1.1, so that a WebSocket upgrade is asked the HTTP/1.1 way.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let a = Asker {
        bind: running.addr(&running.world.client.host),
        lb: running.addr(&running.world.lb.host),
        http: running.ports.http,
        https: running.ports.https,
        site,
        tls: Arc::new(tls),
    };
    let mut rows = Vec::new();
    let mut row = |situation: &str, request: String, got: &Result<Got, String>| {
        rows.push(Row {
            situation: situation.to_string(),
            request,
            status: got
                .as_ref()
                .map(|g| g.status.as_u16())
                .map_err(Clone::clone),
            said: got.as_ref().map(said).unwrap_or_default(),
        });
    };
    let json = [("content-type", "application/json")];
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let email = format!("status-{}@{}", std::process::id(), "myapp.test");
    let user = format!(r#"{{"name":"Status Demo","email":"{email}","password":"status-demo-pw"}}"#);
    let token = async |who: &str| -> Result<String> {
        let body = format!(
            r#"{{"grant_type":"password","email":"{who}","password":"{}"}}"#,
            weblab_app::DEMO_PASSWORD
        );
        let got = a
            .ask(true, "POST", "/api/tokens", &json, body)
            .await
            .map_err(anyhow::Error::msg)?;
        let v: serde_json::Value = serde_json::from_slice(&got.body)
            .with_context(|| format!("the token answer ({})", got.status))?;
        v["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no access_token for {who}: {v}"))
    };
    let admin = token(weblab_app::DEMO_USERS[0].1).await?;
    let plain_user = token(weblab_app::DEMO_USERS[1].1).await?;
    let bearer = |t: &str| format!("Bearer {t}");

    let got = a.ask(true, "GET", "/login", &[], "").await;
    row("a page that exists", "GET /login".into(), &got);
    let got = a
        .ask(
            true,
            "GET",
            "/ws/chat/status",
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            "",
        )
        .await;
    row(
        "a WebSocket asked for",
        "GET /ws/chat/status, Upgrade: websocket".into(),
        &got,
    );
    let got = a.ask(true, "POST", "/api/users", &json, user.clone()).await;
    let location = got
        .as_ref()
        .ok()
        .and_then(|g| g.headers.get(http::header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    row("a new user registered", "POST /api/users".into(), &got);
    let got = a.ask(true, "POST", "/api/users", &json, user.clone()).await;
    row(
        "the same user again",
        "POST /api/users (same email)".into(),
        &got,
    );
    let place = location.unwrap_or_else(|| "/api/users/1".into());
    let change = r#"{"name":"Status Demo 2","email":"status-demo-2@myapp.test"}"#;
    let got = a.ask(true, "PUT", &place, &json, change).await;
    row(
        "changing a user without signing in",
        format!("PUT {place}"),
        &got,
    );
    let mut h = json.to_vec();
    let auth = bearer(&plain_user);
    h.push(("authorization", &auth));
    let got = a.ask(true, "PUT", &place, &h, change).await;
    row(
        "changing another user, signed in as a plain user",
        format!("PUT {place}, Bearer token of a user"),
        &got,
    );
    let auth = bearer(&admin);
    let got = a
        .ask(true, "DELETE", &place, &[("authorization", &auth)], "")
        .await;
    row(
        "deleting it as an admin",
        format!("DELETE {place}, Bearer token of an admin"),
        &got,
    );
    let got = a
        .ask(
            true,
            "POST",
            "/api/exports",
            &[("authorization", &auth)],
            "",
        )
        .await;
    row(
        "work accepted now, done later",
        "POST /api/exports, Bearer token (an export: a CSV of the users)".into(),
        &got,
    );
    let signin = format!(
        "email={}&password={}&next=%2Faccount",
        weblab_app::DEMO_USERS[0].1.replace('@', "%40"),
        weblab_app::DEMO_PASSWORD
    );
    let got = a.ask(true, "POST", "/login", &form, signin.clone()).await;
    row("signing in with the form", "POST /login".into(), &got);
    let got = a.ask(false, "GET", "/login", &[], "").await;
    row(
        "plain HTTP to the load balancer",
        "GET http://…/login".into(),
        &got,
    );
    let first = a.ask(true, "GET", "/static/app.css", &[], "").await;
    let etag = first
        .as_ref()
        .ok()
        .and_then(|g| g.headers.get(http::header::ETAG))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("\"none\"")
        .to_string();
    let got = a
        .ask(
            true,
            "GET",
            "/static/app.css",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    row(
        "asking again with the ETag it had",
        format!("GET /static/app.css, If-None-Match: {etag}"),
        &got,
    );
    // Requests that need nothing from the ones before: (situation, the
    // request as shown, method, path, header fields, body).
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(512 * 1024));
    let alone: [Alone; 8] = [
        (
            "a field of the wrong type",
            r#"POST /api/users {"name": 1}"#,
            "POST",
            "/api/users",
            &json,
            r#"{"name": 1}"#.into(),
        ),
        (
            "a path nothing serves",
            "GET /nowhere",
            "GET",
            "/nowhere",
            &[],
            String::new(),
        ),
        (
            "a method this resource does not take",
            "TRACE /api/users",
            "TRACE",
            "/api/users",
            &[],
            String::new(),
        ),
        (
            "a representation it cannot make",
            "GET /api/users, Accept: application/xml",
            "GET",
            "/api/users",
            &[("accept", "application/xml")],
            String::new(),
        ),
        (
            "a body over the limit",
            "POST /api/users with 512 KiB of JSON",
            "POST",
            "/api/users",
            &json,
            big,
        ),
        (
            "a body of a type it does not take",
            "POST /api/users, Content-Type: text/plain",
            "POST",
            "/api/users",
            &[("content-type", "text/plain")],
            "{}".into(),
        ),
        (
            "well-formed but invalid fields",
            "POST /api/users with an empty name and no @",
            "POST",
            "/api/users",
            &json,
            r#"{"name":"","email":"no-at","password":"short"}"#.into(),
        ),
        (
            "a method no server knows",
            "BREW /",
            "BREW",
            "/",
            &[],
            String::new(),
        ),
    ];
    for (situation, shown, method, path, headers, body) in alone {
        let got = a.ask(true, method, path, headers, body).await;
        row(situation, shown.into(), &got);
    }
    // An upload that stops halfway: the head promises 100 bytes, 10 come.
    // Written by hand over TLS, since a client library finishes its body.
    let got = a.stalled_upload().await;
    row(
        "an upload that stops halfway",
        format!(
            "POST /api/users, Content-Length: 100, 10 bytes sent (body timeout {} s for this run)",
            STALLED_BODY.as_secs()
        ),
        &got,
    );
    // An answer slower than the proxies wait: a long poll for new posts
    // that holds longer than the upstream timeout.
    let wait = UPSTREAM.as_secs() + 3;
    let path = format!("/api/posts/updates?after=0&wait={wait}");
    let got = a.ask(true, "GET", &path, &[], "").await;
    row(
        "an answer slower than the proxies wait",
        format!(
            "GET {path} (a long poll; upstream timeout {} s for this run)",
            UPSTREAM.as_secs()
        ),
        &got,
    );
    // Wrong passwords from one address until the app holds it back.
    let wrong = format!(
        "email={}&password=wrong",
        weblab_app::DEMO_USERS[1].1.replace('@', "%40")
    );
    let mut tries = 0;
    let got = loop {
        tries += 1;
        let got = a.ask(true, "POST", "/login", &form, wrong.clone()).await;
        let held = matches!(&got, Ok(g) if g.status == StatusCode::TOO_MANY_REQUESTS);
        if held || tries == 20 {
            break got;
        }
    };
    row(
        "too many wrong passwords from one address",
        format!("POST /login, wrong password, try {tries}"),
        &got,
    );

    // Another program holds the database's write lock for longer than
    // the app waits for it (its SQLite busy timeout).
    let url = crate::world::database_url(&running.world, &data_dir);
    if let Some(lock) = weblab_app::WriteLock::take(&url).map_err(anyhow::Error::msg)? {
        let other = format!(
            r#"{{"name":"Status Demo","email":"locked-{}@myapp.test","password":"status-demo-pw"}}"#,
            std::process::id()
        );
        let got = a.ask(true, "POST", "/api/users", &json, other).await;
        drop(lock);
        row(
            "the database's write lock held by another program",
            "POST /api/users while another connection holds BEGIN EXCLUSIVE".into(),
            &got,
        );
    }

    // The application servers stop: the web servers cannot reach them,
    // then stop sending to them.
    for (role, handles) in &running.servers {
        if running.world.apps.contains(&role.host) {
            for h in handles {
                h.stop_accepting();
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut bad_gateway, mut unavailable) = (None, None);
    for n in 1..=40 {
        let got = a.ask(true, "GET", "/api/users", &[], "").await;
        let code = got.as_ref().map(|g| g.status).ok();
        if code == Some(StatusCode::BAD_GATEWAY) && bad_gateway.is_none() {
            bad_gateway = Some((n, got));
        } else if code == Some(StatusCode::SERVICE_UNAVAILABLE) {
            unavailable = Some((n, got));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some((n, got)) = bad_gateway {
        row(
            "the application servers stopped",
            format!("GET /api/users (request {n} after they stopped)"),
            &got,
        );
    }
    if let Some((n, got)) = unavailable {
        row(
            "after the failures, no backend is up",
            format!("GET /api/users (request {n} after they stopped)"),
            &got,
        );
    }
    running.stop_accepting();
    let report = render(&rows);
    Ok(Outcome { rows, report })
}

fn render(rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "weblab experiment status (C29): each code below is what a server of the world answered to a real request, each on a new connection from the client host.\n"
    );
    for r in rows {
        match &r.status {
            Ok(code) => {
                let reason = StatusCode::from_u16(*code)
                    .ok()
                    .and_then(|c| c.canonical_reason())
                    .unwrap_or("");
                let _ = writeln!(s, "{code} {reason}: {}", r.situation);
            }
            Err(e) => {
                let _ = writeln!(s, "no answer: {}: {e}", r.situation);
            }
        }
        let _ = writeln!(s, "    {}", r.request);
        if !r.said.is_empty() {
            let _ = writeln!(s, "    -> {}", r.said);
        }
    }
    let mut seen: Vec<u16> = rows.iter().filter_map(|r| r.status.clone().ok()).collect();
    seen.sort_unstable();
    seen.dedup();
    let list: Vec<String> = seen.iter().map(u16::to_string).collect();
    let _ = writeln!(s, "\n{} codes seen: {}", seen.len(), list.join(" "));
    s
}
