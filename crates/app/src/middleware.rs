//! The middleware chain, outermost first (C45):
//!
//! ```text
//! 1 request context  traceparent in, x-request-id out
//! 2 access log       time, client IP, method, path, status, duration
//! 3 security headers nosniff, frame-deny, referrer policy, CSP
//! 4 cors             tower-http CorsLayer (preflight, allow-origin)
//! 5 session          the `sid` cookie -> a live session row, or why not
//! 6 authentication   Bearer JWT, else the session, else anonymous;
//!                    a bad token stops the request here with 401
//! 7 compression      tower-http CompressionLayer (gzip, br)
//!   router           -> route span (pattern, controller)
//! 8 authorization    the route's rule: public, signed in, admin
//!                    -> controller -> service -> SQL
//! ```
//! Each step records a span that covers itself and everything inside it,
//! and says what it did, including "nothing to do".

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use weblab_trace::{Ctx, Event, Layer};

use crate::auth;
use crate::error::AppError;
use crate::repo::{self, NoSession, Session};
use crate::server::AppState;

/// The trace context of the current request, as set by the step before.
#[derive(Clone, Copy, Debug)]
pub struct TraceCtx(pub Ctx);

fn ctx_of(req: &Request) -> Ctx {
    req.extensions()
        .get::<TraceCtx>()
        .map(|t| t.0)
        .unwrap_or_else(Ctx::new_root)
}

/// The caller's trace context (W3C traceparent), or a new trace.
pub(crate) fn caller(headers: &HeaderMap) -> Ctx {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(Ctx::from_traceparent)
        .unwrap_or_else(Ctx::new_root)
}

/// 1: joins the caller's trace (W3C traceparent) and tags the response with
/// a request id.
pub async fn request_context(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let ctx = caller(req.headers());
    let span = s.rec.begin(ctx, Layer::Application);
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| span.id.to_string());
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    s.rec.end(
        span,
        Event::Middleware {
            name: format!(
                "request context (trace {}, x-request-id {request_id})",
                ctx.trace
            ),
            order: 1,
        },
    );
    resp
}

/// 2: one access-log line per request, like nginx's combined log.
pub async fn access_log(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let parent = ctx_of(&req);
    let span = s.rec.begin(parent, Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let started = Instant::now();
    let ip = client_ip(&req, &s.trusted_proxies).map_or_else(|| "-".into(), |ip| ip.to_string());
    // The query string too: the log shows what arrived.
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let method = req.method().clone();
    let resp = next.run(req).await;
    let line = format!(
        "{ip} {method} {path} {} {:.3}ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    s.log(&line);
    s.rec.end(
        span,
        Event::Middleware {
            name: format!("access log: {line}"),
            order: 2,
        },
    );
    resp
}

/// The client's address: X-Real-IP as a trusted proxy (a web server)
/// reported it, else the connection's peer. A client talking to the app
/// directly cannot choose what the log records.
pub fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    client_ip_of(peer(req.extensions()), req.headers(), trusted)
}

/// The address of the connection a request came on (the accept loop puts
/// it in the request's extensions).
pub fn peer(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// [`client_ip`] from its parts.
pub fn client_ip_of(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// Whether the client reached the site over HTTPS: X-Forwarded-Proto from
/// a trusted proxy; a direct connection to the app is plain HTTP.
pub fn came_over_https(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> bool {
    peer.is_some_and(|p| trusted.contains(&p))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// 3: headers every response should carry (C48).
pub async fn security_headers(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let mut resp = next.run(req).await;
    // Scripts, styles and images only from this origin, no framing, forms
    // post only back here.
    protect(
        resp.headers_mut(),
        "strict-origin-when-cross-origin",
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        ),
    );
    s.rec.end(
        span,
        Event::Middleware {
            name: "security headers".into(),
            order: 3,
        },
    );
    resp
}

/// The protective headers of a response (C48): no type sniffing, no
/// framing, how much of the URL a link click passes on (`referrer`), and
/// `csp` unless the handler set its own.
pub(crate) fn protect(h: &mut HeaderMap, referrer: &'static str, csp: HeaderValue) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
}

/// What a marking step notes of a request before passing it on (a few
/// fields, not a copy of the headers).
pub struct Seen {
    origin: Option<String>,
    preflight: bool,
    accepts_encoding: bool,
}

impl Seen {
    fn of(req: &Request) -> Seen {
        let h = req.headers();
        Seen {
            origin: h
                .get(header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            preflight: req.method() == axum::http::Method::OPTIONS
                && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD),
            // The codings the compression layer offers (gzip, br).
            accepts_encoding: h
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter(|c| !c.contains("q=0") || c.contains("q=0."))
                .filter_map(|c| c.split(';').next())
                .any(|c| matches!(c.trim(), "gzip" | "br" | "*")),
        }
    }
}

/// What a tower-http layer did to one exchange, in words.
pub type Describe = fn(&Seen, &Response) -> String;

/// 4: what the CORS layer did: nothing on a request without Origin, or the
/// origin it allowed, or that it did not allow it.
pub fn describe_cors(seen: &Seen, resp: &Response) -> String {
    let Some(origin) = &seen.origin else {
        return "cors: no Origin header (same-origin or not a browser), nothing to do".into();
    };
    let allowed = resp
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (seen.preflight, allowed) {
        (true, Some(a)) => format!("cors: preflight from {origin} answered, allow-origin {a}"),
        (true, None) => format!("cors: preflight from {origin} refused (origin not allowed)"),
        (false, Some(a)) => format!("cors: cross-origin request from {origin}, allow-origin {a}"),
        (false, None) => format!(
            "cors: origin {origin} not allowed, no Access-Control-Allow-Origin (the browser will block the answer)"
        ),
    }
}

/// 5: whether the compression layer compressed the response.
pub fn describe_compression(seen: &Seen, resp: &Response) -> String {
    match resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some(enc) => format!("compression: body encoded as {enc}"),
        None if !seen.accepts_encoding => {
            "compression: not compressed (the client accepts neither gzip nor br)".into()
        }
        None => "compression: not compressed (too small, or a type not worth it)".into(),
    }
}

/// A step that records what the tower-http layer directly inside it did.
pub async fn mark(
    State((s, order, describe)): State<(Arc<AppState>, u32, Describe)>,
    mut req: Request,
    next: Next,
) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let seen = Seen::of(&req);
    let resp = next.run(req).await;
    s.rec.end(
        span,
        Event::Middleware {
            name: describe(&seen, &resp),
            order,
        },
    );
    resp
}

/// Who is asking, as authentication decided.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: i64,
    pub name: String,
    pub role: String,
}

/// What the session step found, for the steps and handlers after it.
#[derive(Clone, Debug)]
pub struct SessionFound {
    /// The cookie's value (to end or rotate the session).
    pub id: String,
    pub session: Option<Session>,
}

/// 5: loads the session the `sid` cookie names. A cookie that names no
/// live session is cleared in the response.
pub async fn session(State(s): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    let ctx = span.ctx();
    req.extensions_mut().insert(TraceCtx(ctx));
    let Some(id) =
        auth::cookie_value(req.headers(), auth::SESSION_COOKIE).filter(|v| !v.is_empty())
    else {
        let resp = next.run(req).await;
        s.rec
            .end(span, step("session: no session cookie, nothing to load", 5));
        return resp;
    };
    let loaded = repo::load_session(&s.db.sql(&s.rec, ctx), &id).await;
    let (what, session, stale) = match loaded {
        Ok(Ok(found)) => (
            format!(
                "session: cookie matched the session of {} (user {}), signed in {} s ago",
                found.user.email,
                found.user.id,
                auth::now() - found.created_at
            ),
            Some(found),
            false,
        ),
        Ok(Err(why)) => (
            format!(
                "session: cookie matched no live session ({}); cookie cleared",
                match why {
                    NoSession::Unknown => "unknown id",
                    NoSession::Idle => "idle for over 30 min, deleted",
                    NoSession::Expired => "over 8 h since sign-in, deleted",
                }
            ),
            None,
            true,
        ),
        Err(e) => (format!("session: could not be loaded ({e})"), None, false),
    };
    req.extensions_mut().insert(SessionFound { id, session });
    let https = came_over_https(peer(req.extensions()), req.headers(), &s.trusted_proxies);
    let mut resp = next.run(req).await;
    if stale && !resp.headers().contains_key(header::SET_COOKIE) {
        resp.headers_mut()
            .append(header::SET_COOKIE, auth::clear_session_cookie(https));
    }
    s.rec.end(span, step(what, 5));
    resp
}

fn step(name: impl Into<String>, order: u32) -> Event {
    Event::Middleware {
        name: name.into(),
        order,
    }
}

/// 6: decides who is asking: a Bearer token (which must verify: a bad
/// one is answered 401 here, with the reason), else the session, else
/// nobody.
pub async fn authentication(
    State(s): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    req.extensions_mut().insert(TraceCtx(span.ctx()));
    let what = match who_is_asking(&s, &req) {
        Err(why) => {
            s.rec
                .end(span, step(format!("authentication: 401, {why}"), 6));
            return AppError::unauthorized(why).into_response();
        }
        Ok(None) => "authentication: no token and no session, anonymous".to_string(),
        Ok(Some((who, what))) => {
            req.extensions_mut().insert(who);
            what
        }
    };
    let resp = next.run(req).await;
    s.rec.end(span, step(what, 6));
    resp
}

/// The principal of a request and how it was established, nobody, or why
/// its token is refused.
fn who_is_asking(s: &AppState, req: &Request) -> Result<Option<(Principal, String)>, String> {
    if let Some(token) = auth::bearer(req.headers()) {
        let c = s.tokens().verify(token)?;
        let id: i64 = c
            .sub
            .parse()
            .map_err(|_| "token subject is not a user id".to_string())?;
        let what = format!(
            "authentication: Bearer token valid, user {id}, expires in {} s",
            c.exp - auth::now()
        );
        let who = Principal {
            user_id: id,
            name: c.name,
            role: c.role,
        };
        return Ok(Some((who, what)));
    }
    let Some(found) = req
        .extensions()
        .get::<SessionFound>()
        .and_then(|f| f.session.as_ref())
    else {
        return Ok(None);
    };
    let u = &found.user;
    let what = format!(
        "authentication: signed in by session as {} ({})",
        u.email, u.role
    );
    let who = Principal {
        user_id: u.id,
        name: u.name.clone(),
        role: u.role.clone(),
    };
    Ok(Some((who, what)))
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Signed in; an API answers 401, a page sends the browser to /login.
    SignedIn,
    SignedInPage,
    Admin,
}

/// What the route step knows about its route.
#[derive(Clone)]
pub struct RouteInfo {
    pub state: Arc<AppState>,
    pub controller: Arc<str>,
    pub access: Access,
}

/// After routing: the route span (pattern and controller), and inside it
/// 8, authorization by the route's [`Access`] rule.
pub async fn route(State(info): State<RouteInfo>, mut req: Request, next: Next) -> Response {
    let s = &info.state;
    let pattern = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "?".into());
    let span = s.rec.begin(ctx_of(&req), Layer::Application);
    let authz = s.rec.begin(span.ctx(), Layer::Application);
    req.extensions_mut().insert(TraceCtx(authz.ctx()));
    let who = req.extensions().get::<Principal>();
    let verdict: Result<String, (String, Response)> = match (info.access, who) {
        (Access::Public, _) => Ok("authorization: public route, no check".into()),
        (Access::SignedIn | Access::SignedInPage, Some(p)) => Ok(format!(
            "authorization: signed-in route, user {} allowed",
            p.user_id
        )),
        (Access::Admin, Some(p)) if p.role == "admin" => Ok(format!(
            "authorization: admin route, user {} is an admin",
            p.user_id
        )),
        (Access::Admin, Some(p)) => Err((
            format!("authorization: 403, user {} is not an admin", p.user_id),
            AppError::forbidden("this route is for admins").into_response(),
        )),
        (Access::SignedInPage, None) => {
            let back = req.uri().path();
            Err((
                "authorization: not signed in, 303 to /login".into(),
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, format!("/login?next={back}"))],
                )
                    .into_response(),
            ))
        }
        (Access::SignedIn | Access::Admin, None) => Err((
            "authorization: 401, not signed in".into(),
            AppError::unauthorized("sign in first (session cookie or Bearer token)")
                .into_response(),
        )),
    };
    let resp = match verdict {
        Ok(what) => {
            // The authorization span ends when the decision is made; the
            // controller runs beside it, under the route span.
            s.rec.end(authz, step(what, 8));
            req.extensions_mut().insert(TraceCtx(span.ctx()));
            next.run(req).await
        }
        Err((what, resp)) => {
            s.rec.end(authz, step(what, 8));
            resp
        }
    };
    s.rec.end(
        span,
        Event::Route {
            controller: info.controller.to_string(),
            pattern,
        },
    );
    resp
}

/// tower-http's CORS layer answers every OPTIONS request itself as if it
/// were a preflight, so `OPTIONS /api/users` from curl would never reach
/// the route's own Allow answer. This puts the CORS layer in front only of
/// requests that are preflights (OPTIONS with Origin and
/// Access-Control-Request-Method); every other OPTIONS goes past it.
#[derive(Clone)]
pub struct PreflightsOnly(pub tower_http::cors::CorsLayer);

impl<S> tower::Layer<S> for PreflightsOnly {
    type Service = PreflightsOnlyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        PreflightsOnlyService {
            cors: self.0.layer(inner),
        }
    }
}

#[derive(Clone)]
pub struct PreflightsOnlyService<S> {
    /// The CORS service; a plain OPTIONS calls the service inside it.
    cors: tower_http::cors::Cors<S>,
}

impl<S, B> tower::Service<axum::http::Request<B>> for PreflightsOnlyService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response>,
    tower_http::cors::Cors<S>:
        tower::Service<axum::http::Request<B>, Response = Response, Error = S::Error>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::Either<
        <tower_http::cors::Cors<S> as tower::Service<axum::http::Request<B>>>::Future,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // CORS is ready when the service inside it is.
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let h = req.headers();
        let plain_options = req.method() == axum::http::Method::OPTIONS
            && !(h.contains_key(header::ORIGIN)
                && h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD));
        if plain_options {
            futures::future::Either::Right(self.cors.get_mut().call(req))
        } else {
            futures::future::Either::Left(self.cors.call(req))
        }
    }
}
