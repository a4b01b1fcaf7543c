//! The HTTP side of the REST API (C28, C38, C48): the request context a
//! handler gets ([`Cx`]), JSON bodies with clear errors, content
//! negotiation, pagination, ETags and 201/204 answers.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest;
use weblab_trace::{Ctx, Event, Layer};

use crate::db::Sql;
use crate::error::AppError;
use crate::middleware::{Principal, TraceCtx};
use crate::server::AppState;

/// What a handler knows about its request: the server, where in the trace
/// it is, who is asking and from where.
pub struct Cx {
    pub s: Arc<AppState>,
    pub ctx: Ctx,
    pub who: Option<Principal>,
    pub ip: Option<IpAddr>,
    /// The client reached the site over HTTPS (as a trusted proxy said).
    pub https: bool,
    pub headers: HeaderMap,
}

impl FromRequestParts<Arc<AppState>> for Cx {
    type Rejection = AppError;

    async fn from_request_parts(p: &mut Parts, s: &Arc<AppState>) -> Result<Cx, AppError> {
        let ctx = p
            .extensions
            .get::<TraceCtx>()
            .map_or_else(Ctx::new_root, |t| t.0);
        let who = p.extensions.get::<Principal>().cloned();
        let peer = crate::middleware::peer(&p.extensions);
        let ip = crate::middleware::client_ip_of(peer, &p.headers, &s.trusted_proxies);
        let https = crate::middleware::came_over_https(peer, &p.headers, &s.trusted_proxies);
        Ok(Cx {
            s: s.clone(),
            ctx,
            who,
            ip,
            https,
            headers: p.headers.clone(),
        })
    }
}

impl Cx {
    /// Runs `work` inside a `Service` span; its statements are recorded
    /// under that span.
    pub async fn service<T>(
        &self,
        name: &'static str,
        work: impl AsyncFnOnce(Sql<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let span = self.s.rec.begin(self.ctx, Layer::Application);
        let out = work(self.s.db.sql(&self.s.rec, span.ctx())).await;
        self.s.rec.end(span, Event::Service { name: name.into() });
        out
    }

    /// Checks a password under the sign-in limit of the client's address,
    /// inside one `Service` span named `name`; with the right one, `then`
    /// runs (in the same span) for the user. Wrong passwords count against
    /// the address, a right one forgives them.
    pub async fn sign_in<T>(
        &self,
        name: &'static str,
        email: &str,
        password: &str,
        then: impl AsyncFnOnce(&Sql<'_>, crate::repo::User) -> Result<T, AppError>,
    ) -> Result<SignIn<T>, AppError> {
        let ip = self.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        if let Err(wait) = self.s.logins.check(ip) {
            return Ok(SignIn::Wait { ip, seconds: wait });
        }
        let done = self
            .service(name, async |sql| {
                let row = crate::repo::find_login(&sql, email).await?;
                let (user, hash) = row.map_or((None, None), |(u, h)| (Some(u), h));
                // The hash is checked even for an unknown email (same time).
                match (crate::auth::verify_password(password, hash).await, user) {
                    (true, Some(user)) => then(&sql, user).await.map(Some),
                    _ => Ok(None),
                }
            })
            .await?;
        Ok(match done {
            Some(t) => {
                self.s.logins.succeeded(ip);
                SignIn::Done(t)
            }
            None => {
                self.s.logins.count(ip);
                SignIn::Wrong
            }
        })
    }

    /// The signed-in user, or 401.
    pub fn user(&self) -> Result<&Principal, AppError> {
        self.who
            .as_ref()
            .ok_or_else(|| AppError::unauthorized("sign in first (session cookie or Bearer token)"))
    }

    /// 403 unless the caller is user `id` or an admin.
    pub fn owner_or_admin(&self, id: i64, what: &str) -> Result<(), AppError> {
        let me = self.user()?;
        if me.user_id == id || me.role == "admin" {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "user {} may not {what} user {id} (only that user or an admin may)",
                me.user_id
            )))
        }
    }
}

/// How a sign-in attempt ended.
pub enum SignIn<T> {
    Done(T),
    Wrong,
    /// Too many failures from `ip`: wait this long.
    Wait {
        ip: IpAddr,
        seconds: u64,
    },
}

/// Largest JSON body the API reads.
pub const MAX_JSON: usize = 64 * 1024;

/// A JSON object from the request body: 415 if it is not labelled JSON,
/// 413 past [`MAX_JSON`], 400 with the line and column if it does not parse
/// or is not an object.
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let ct = content_type(req.headers());
        if !is_json(ct) {
            return Err(AppError::unsupported(match ct {
                "" => {
                    "no Content-Type; send the body as Content-Type: application/json".to_string()
                }
                ct => format!("Content-Type {ct} is not accepted; send application/json"),
            }));
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            // The server's own body limits show as its BodyError inside.
            match weblab_server::http::BodyError::within(&e) {
                Some(b) if b.is_timeout() => return AppError::timeout(b.to_string()),
                Some(b) if b.is_too_large() => return AppError::too_large(b.to_string()),
                _ => {}
            }
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::too_large(format!("the body is over {MAX_JSON} bytes"))
            } else {
                AppError::bad_request(format!("reading the body: {e}"))
            }
        })?;
        parse_object(&body).map(JsonObject)
    }
}

/// The request's Content-Type as sent ("" without one).
pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A media type without its parameters, lowercased (`text/html`).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// `application/json`, or any `+json` type (merge-patch), any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = essence(content_type);
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body as a JSON object, or a 400 saying where it went wrong.
pub fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, AppError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(other) => Err(AppError::bad_request(format!(
            "the body must be a JSON object, not {}",
            kind_of(&other)
        ))),
        Err(e) => Err(AppError::bad_request(format!(
            "malformed JSON at line {} column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ))),
    }
}

fn strip_position(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Reads typed fields out of a JSON object, collecting every problem
/// instead of stopping at the first.
pub struct Fields<'a> {
    obj: &'a serde_json::Map<String, serde_json::Value>,
    wrong: Vec<(String, String)>,
    invalid: Vec<(String, String)>,
}

impl Fields<'static> {
    /// Rule checks alone, for values that did not come as JSON (a form).
    pub fn rules_only() -> Fields<'static> {
        static NONE: std::sync::LazyLock<serde_json::Map<String, serde_json::Value>> =
            std::sync::LazyLock::new(serde_json::Map::new);
        Fields::of(&NONE, &[])
    }
}

impl<'a> Fields<'a> {
    pub fn of(obj: &'a serde_json::Map<String, serde_json::Value>, known: &[&str]) -> Fields<'a> {
        let wrong = obj
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| (k.clone(), "unknown field".to_string()))
            .collect();
        Fields {
            obj,
            wrong,
            invalid: Vec::new(),
        }
    }

    /// A string field; `required` ones must be present.
    pub fn text(&mut self, name: &str, required: bool) -> Option<String> {
        match self.obj.get(name) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.wrong.push((
                    name.into(),
                    format!("must be a string, not {}", kind_of(other)),
                ));
                None
            }
            None if required => {
                self.wrong.push((name.into(), "is required".into()));
                None
            }
            None => None,
        }
    }

    /// Records a rule the value broke (answered 422, after type problems).
    pub fn invalid(&mut self, name: &str, why: impl Into<String>) {
        self.invalid.push((name.into(), why.into()));
    }

    /// 400 for missing or mistyped fields, else 422 for broken rules.
    pub fn finish(self) -> Result<(), AppError> {
        if !self.wrong.is_empty() {
            return Err(AppError::invalid_fields(
                "some fields are missing or of the wrong type",
                self.wrong,
            ));
        }
        if !self.invalid.is_empty() {
            return Err(AppError::unprocessable(
                "some fields break the rules",
                self.invalid,
            ));
        }
        Ok(())
    }
}

/// The rule a new password must pass.
pub fn check_password(f: &mut Fields<'_>, password: Option<&str>) {
    if password.is_some_and(|p| !(8..=128).contains(&p.chars().count())) {
        f.invalid("password", "must be 8 to 128 characters");
    }
}

/// The checks a user's name and email must pass.
pub fn check_user(f: &mut Fields<'_>, name: Option<&str>, email: Option<&str>) {
    if let Some(n) = name
        && (n.trim().is_empty() || n.chars().count() > 100)
    {
        f.invalid("name", "must be 1 to 100 characters");
    }
    if let Some(e) = email {
        let ok = e.len() <= 254
            && e.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
            && !e.chars().any(char::is_whitespace);
        if !ok {
            f.invalid("email", "must look like name@example.test");
        }
    }
}

/// The representations the API can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    Json,
    Csv,
}

/// Picks JSON or CSV from `Accept` by q-value (RFC 9110 §12.5.1); 406 when
/// the client accepts neither. Hand-written: the rule is a few lines and no
/// crate in our set parses Accept.
pub fn negotiate(headers: &HeaderMap) -> Result<Repr, AppError> {
    let Some(accept) = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.trim().is_empty())
    else {
        return Ok(Repr::Json);
    };
    let mut best: Option<(f32, u8, Repr)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        // More specific ranges win ties (application/json over */*).
        let (spec, repr) = match range.as_str() {
            "application/json" => (2, Repr::Json),
            "text/csv" => (2, Repr::Csv),
            "application/*" => (1, Repr::Json),
            "text/*" => (1, Repr::Csv),
            "*/*" => (0, Repr::Json),
            _ => continue,
        };
        if q <= 0.0 {
            continue;
        }
        if best.is_none_or(|(bq, bs, _)| q > bq || (q == bq && spec > bs)) {
            best = Some((q, spec, repr));
        }
    }
    best.map(|b| b.2).ok_or_else(|| {
        AppError::not_acceptable(format!(
            "cannot answer with any of {accept:?}; available: application/json, text/csv"
        ))
    })
}

/// Something the API can show as JSON or as CSV rows.
pub trait Tabular: serde::Serialize {
    const COLUMNS: &'static [&'static str];
    fn row(&self) -> Vec<String>;
}

impl Tabular for crate::repo::User {
    const COLUMNS: &'static [&'static str] = &["id", "name", "email", "role", "created_at"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.name.clone(),
            self.email.clone(),
            self.role.clone(),
            self.created_at.to_string(),
        ]
    }
}

impl Tabular for crate::repo::Post {
    const COLUMNS: &'static [&'static str] = &["id", "user_id", "title", "created_at"];
    fn row(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.user_id.to_string(),
            self.title.clone(),
            self.created_at.to_string(),
        ]
    }
}

/// `items` as CSV with their columns (what `Accept: text/csv` gets).
pub(crate) fn csv_of<T: Tabular>(items: &[T]) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(Tabular::row).collect();
    csv(&rows, T::COLUMNS)
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes
/// doubled.
fn csv(rows: &[Vec<String>], columns: &[&str]) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A GET answer: the body in the chosen representation, with a strong
/// ETag over its bytes, and 304 when the client's If-None-Match has it.
pub fn represent<T: Tabular>(
    headers: &HeaderMap,
    items: &[T],
    one: bool,
) -> Result<Response, AppError> {
    let repr = negotiate(headers)?;
    let (body, ctype) = match repr {
        Repr::Json if one => (serde_json::to_vec(&items[0]), "application/json"),
        Repr::Json => (serde_json::to_vec(items), "application/json"),
        Repr::Csv => {
            let rows: Vec<Vec<String>> = items.iter().map(Tabular::row).collect();
            (
                Ok(csv(&rows, T::COLUMNS).into_bytes()),
                "text/csv; charset=utf-8",
            )
        }
    };
    let body = body.map_err(|e| AppError::config(format!("serializing: {e}")))?;
    let etag = format!(
        "\"{}\"",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(&body)[..12])
    );
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, ctype)], body).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Shared caches must not keep a per-user answer; the browser may keep
    // it but asks again each time (a 304 when nothing changed).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization, Cookie"),
    );
    Ok(r)
}

/// 201 Created with `Location` and the new resource as JSON.
pub fn created<T: serde::Serialize>(location: String, item: &T) -> Response {
    let mut r = (StatusCode::CREATED, axum::Json(item)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `?page=N&per_page=M`: 1-based, at most 100 per page.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub page: i64,
    pub per_page: i64,
}

pub const PER_PAGE_MAX: i64 = 100;

impl Page {
    pub fn from_query(query: Option<&str>) -> Result<Page, AppError> {
        let mut p = Page {
            page: 1,
            per_page: 20,
        };
        for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let n = || {
                v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    AppError::invalid_fields(
                        format!("{k} must be a whole number from 1"),
                        vec![(k.to_string(), format!("{v:?} is not a whole number from 1"))],
                    )
                })
            };
            match k {
                "page" => p.page = n()?,
                "per_page" => p.per_page = n()?.min(PER_PAGE_MAX),
                _ => {}
            }
        }
        Ok(p)
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// `Link` (RFC 8288) with first/prev/next/last and `X-Total-Count`.
    pub fn headers(&self, path: &str, total: i64, r: &mut Response) {
        let last = ((total + self.per_page - 1) / self.per_page).max(1);
        let url = |n: i64| format!("<{path}?page={n}&per_page={}>", self.per_page);
        let mut links = vec![format!("{}; rel=\"first\"", url(1))];
        if self.page > 1 {
            links.push(format!("{}; rel=\"prev\"", url((self.page - 1).min(last))));
        }
        if self.page < last {
            links.push(format!("{}; rel=\"next\"", url(self.page + 1)));
        }
        links.push(format!("{}; rel=\"last\"", url(last)));
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
            h.insert(header::LINK, v);
        }
        h.insert("x-total-count", HeaderValue::from(total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Result<Repr, AppError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn accept_picks_by_quality_then_specificity() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Repr::Json);
        assert_eq!(accept("text/csv").unwrap(), Repr::Csv);
        assert_eq!(accept("*/*").unwrap(), Repr::Json);
        assert_eq!(
            accept("application/json;q=0.5, text/csv").unwrap(),
            Repr::Csv
        );
        assert_eq!(
            accept("text/csv;q=0.9, */*;q=0.9, application/json").unwrap(),
            Repr::Json
        );
        assert_eq!(accept("text/html, text/*;q=0.3").unwrap(), Repr::Csv);
        assert_eq!(
            accept("application/xml").unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(
            accept("application/json;q=0").unwrap_err().status(),
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let e = parse_object(b"{\n  \"name\": \"x\",\n  oops\n}").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.message().contains("line 3 column 3"), "{}", e.message());
        let e = parse_object(b"[1,2]").unwrap_err();
        assert!(e.message().contains("not an array"), "{}", e.message());
    }

    #[test]
    fn fields_report_every_problem_type_before_rules() {
        let obj = parse_object(br#"{"name": 5, "extra": true}"#).unwrap();
        let mut f = Fields::of(&obj, &["name", "email"]);
        f.text("name", true);
        f.text("email", true);
        let e = f.finish().unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = format!("{:?}", e);
        for needle in ["extra", "must be a string, not a number", "is required"] {
            assert!(body.contains(needle), "{body}");
        }
        let obj = parse_object(br#"{"name": "", "email": "nope"}"#).unwrap();
        let mut f = Fields::of(&obj, &["name", "email"]);
        let (n, m) = (f.text("name", true), f.text("email", true));
        check_user(&mut f, n.as_deref(), m.as_deref());
        assert_eq!(
            f.finish().unwrap_err().status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let out = csv(&[vec!["1".into(), "a, \"b\"".into()]], &["id", "name"]);
        assert_eq!(out, "id,name\r\n1,\"a, \"\"b\"\"\"\r\n");
    }

    #[test]
    fn pages_link_to_their_neighbours() {
        let p = Page::from_query(Some("page=2&per_page=2")).unwrap();
        assert_eq!(p.offset(), 2);
        let mut r = Response::new(axum::body::Body::empty());
        p.headers("/api/users", 5, &mut r);
        let link = r.headers()[header::LINK].to_str().unwrap();
        assert!(link.contains("page=1&per_page=2>; rel=\"prev\""), "{link}");
        assert!(link.contains("page=3&per_page=2>; rel=\"next\""), "{link}");
        assert!(link.contains("page=3&per_page=2>; rel=\"last\""), "{link}");
        assert_eq!(r.headers()["x-total-count"], "5");
        assert!(Page::from_query(Some("page=0")).is_err());
        assert!(Page::from_query(Some("per_page=abc")).is_err());
        assert_eq!(
            Page::from_query(Some("per_page=1000")).unwrap().per_page,
            PER_PAGE_MAX
        );
    }
}
