//! The provider's endpoints: the consent page and its form, the token
//! and user-info endpoints, and the metadata document.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use weblab_trace::{Event, Layer};

use super::flow::{self, Authorize, Refusal};
use super::{IdpState, SESSION_COOKIE, SESSION_SECS};
use crate::auth::{cookie_value, digest, now, random_secret};
use crate::middleware::TraceCtx;
use crate::routes::pages::{esc, field};

/// Fields of the consent form that are not part of the authorization
/// request it carries.
const OWN_FIELDS: [&str; 4] = ["email", "password", "decision", "csrf"];

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// Records what the provider decided, as a span inside the request's.
fn decided(s: &IdpState, ctx: TraceCtx, text: String) {
    let span = s.rec.begin(ctx.0, Layer::Application);
    s.rec.end(span, Event::Note { text });
}

/// A page of the provider, titled with its own name.
fn page(s: &IdpState, status: StatusCode, title: &str, main: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  \
         <title>{title} - {name}</title>\n</head>\n<body>\n  <main>\n{main}\n  </main>\n</body>\n</html>\n",
        title = esc(title),
        name = esc(&s.domain),
    );
    (status, Html(html)).into_response()
}

fn see_other(to: &str) -> Response {
    crate::routes::pages::see_other(to, None)
}

/// The anti-forgery value of a signed-in consent form: only a page the
/// provider served to this session knows it.
fn csrf(sid: &str) -> String {
    digest(&format!("consent:{sid}"))
}

/// The consent page for `req`: who asks, for what, and either the
/// sign-in fields or who is signed in.
fn consent(
    s: &IdpState,
    req: &Authorize,
    signed_in: Option<(&str, String)>,
    message: Option<&str>,
    status: StatusCode,
) -> Response {
    let client = s
        .clients
        .iter()
        .find(|c| c.id == req.client_id)
        .map_or(req.client_id.as_str(), |c| c.name.as_str());
    let scopes: String = req
        .scope
        .iter()
        .map(|sc| {
            let what = flow::SCOPES
                .iter()
                .find(|(k, _)| k == sc)
                .map_or("", |(_, w)| w);
            format!("      <li><code>{}</code>: {}</li>\n", esc(sc), esc(what))
        })
        .collect();
    let mut hidden = vec![
        ("response_type", "code".to_string()),
        ("client_id", req.client_id.clone()),
        ("redirect_uri", req.redirect_uri.clone()),
        ("scope", req.scope.join(" ")),
        ("code_challenge", req.challenge.clone()),
        ("code_challenge_method", "S256".into()),
    ];
    if let Some(st) = &req.state {
        hidden.push(("state", st.clone()));
    }
    let who = match &signed_in {
        Some((name, token)) => {
            hidden.push(("csrf", token.clone()));
            format!("    <p>Signed in as {}.</p>\n", esc(name))
        }
        None => "    <label>Email <input name=\"email\" type=\"email\" autocomplete=\"username\" required></label>\n    \
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n"
            .to_string(),
    };
    let hidden: String = hidden
        .iter()
        .map(|(k, v)| {
            format!(
                "    <input type=\"hidden\" name=\"{k}\" value=\"{}\">\n",
                esc(v)
            )
        })
        .collect();
    let message = message.map_or(String::new(), |m| {
        format!("    <p class=\"error\" role=\"alert\">{}</p>\n", esc(m))
    });
    let main = format!(
        "    <h1>{client} wants to know who you are</h1>\n{message}    \
         <p>If you allow it, {client} may read:</p>\n    <ul>\n{scopes}    </ul>\n    \
         <p>It will be sent back to <code>{back}</code>.</p>\n    \
         <form method=\"post\" action=\"/authorize\">\n{hidden}{who}    \
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n    \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n    </form>",
        client = esc(client),
        back = esc(&req.redirect_uri),
    );
    page(s, status, "Sign in and consent", &main)
}

/// A refused authorization request: shown, or sent back to the client.
fn refused(s: &IdpState, ctx: TraceCtx, r: &Refusal) -> Response {
    let why = match r {
        Refusal::Show(why) => why,
        Refusal::Redirect { description, .. } => description,
    };
    if let (Some(to), Refusal::Redirect { error, .. }) = (flow::refusal_location(r), r) {
        let text = format!("authorization refused: {error} ({why}); sent back to the client");
        decided(s, ctx, text);
        return see_other(&to);
    }
    decided(
        s,
        ctx,
        format!("authorization refused, not redirected: {why}"),
    );
    let main = format!(
        "    <h1>This sign-in request is not valid</h1>\n    <p>{}</p>\n    \
         <p>Nothing was sent to the site that asked.</p>",
        esc(why)
    );
    page(s, StatusCode::BAD_REQUEST, "Invalid request", &main)
}

/// GET /authorize: checks the request and shows the consent page.
pub async fn authorize_form(
    State(s): State<Arc<IdpState>>,
    Extension(ctx): Extension<TraceCtx>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let params = pairs(q.unwrap_or_default().as_bytes());
    let req = match flow::check_authorize(&params, &s.clients) {
        Ok(r) => r,
        Err(r) => return refused(&s, ctx, &r),
    };
    let signed_in = cookie_value(&headers, SESSION_COOKIE).and_then(|sid| {
        let sub = s.session(&sid)?;
        Some((s.user(&sub)?.name.clone(), csrf(&sid)))
    });
    decided(
        &s,
        ctx,
        format!(
            "consent page for {} (scope {}; {})",
            req.client_id,
            req.scope.join(" "),
            signed_in.as_ref().map_or(
                "not signed in: sign-in fields shown".into(),
                |(n, _)| format!("signed in as {n}")
            )
        ),
    );
    let signed_in = signed_in.as_ref().map(|(n, t)| (n.as_str(), t.clone()));
    consent(&s, &req, signed_in, None, StatusCode::OK)
}

/// POST /authorize: the person's answer. Deny sends the client
/// `access_denied`; Allow (signed in, or with the right password) issues
/// a single-use code bound to the client, its redirect URI and its PKCE
/// challenge.
pub async fn authorize(
    State(s): State<Arc<IdpState>>,
    Extension(ctx): Extension<TraceCtx>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Browsers come straight here: the connection's address is theirs.
    let ip = peer.map(|p| p.0.0.ip());
    let form = pairs(&body);
    let request: Vec<(String, String)> = form
        .iter()
        .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let req = match flow::check_authorize(&request, &s.clients) {
        Ok(r) => r,
        Err(r) => return refused(&s, ctx, &r),
    };
    let back = |pairs: &[(&str, &str)]| {
        let mut pairs = pairs.to_vec();
        if let Some(st) = &req.state {
            pairs.push(("state", st));
        }
        flow::redirect_with(&req.redirect_uri, &pairs)
    };
    if field(&form, "decision") != "allow" {
        decided(
            &s,
            ctx,
            format!("the person denied {} access", req.client_id),
        );
        return see_other(&back(&[
            ("error", "access_denied"),
            ("error_description", "the person declined"),
        ]));
    }
    // Signed in already (with this page's anti-forgery value), or now.
    let session = cookie_value(&headers, SESSION_COOKIE)
        .filter(|sid| field(&form, "csrf") == csrf(sid))
        .and_then(|sid| s.session(&sid));
    let (sub, new_cookie) = match session {
        Some(sub) => (sub, None),
        None => {
            if let Some(ip) = ip
                && let Err(wait) = s.logins.check(ip)
            {
                let m = format!("Too many failed sign-ins. Try again in {wait} s.");
                decided(
                    &s,
                    ctx,
                    format!("sign-in refused: {ip} is over its limit ({wait} s)"),
                );
                let mut r = consent(&s, &req, None, Some(&m), StatusCode::TOO_MANY_REQUESTS);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                return r;
            }
            let email = field(&form, "email").trim().to_ascii_lowercase();
            let user = s.users.iter().find(|u| u.email == email);
            let ok = crate::auth::verify_password(
                field(&form, "password"),
                user.map(|u| u.hash.clone()),
            )
            .await;
            match user.filter(|_| ok) {
                Some(u) => {
                    if let Some(ip) = ip {
                        s.logins.succeeded(ip);
                    }
                    (u.sub.clone(), Some(s.sign_in(&u.sub)))
                }
                None => {
                    if let Some(ip) = ip {
                        s.logins.count(ip);
                    }
                    decided(&s, ctx, "sign-in failed: wrong email or password".into());
                    let m = "Wrong email or password.";
                    return consent(&s, &req, None, Some(m), StatusCode::UNAUTHORIZED);
                }
            }
        }
    };
    let code = random_secret();
    s.grants().issue_code(&code, &req, &sub, now());
    decided(
        &s,
        ctx,
        format!(
            "{sub} allowed {} scope {}: code issued ({} s, single use, bound to the redirect URI and the PKCE challenge)",
            req.client_id,
            req.scope.join(" "),
            flow::CODE_SECS
        ),
    );
    let mut r = see_other(&back(&[("code", &code)]));
    if let Some(sid) = new_cookie {
        let c = crate::auth::set_cookie(SESSION_COOKIE, &sid, "/", true, SESSION_SECS);
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// An OAuth error body (RFC 6749 §5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    (status, axum::Json(body)).into_response()
}

/// HTTP Basic credentials (RFC 7617), each part form-decoded as RFC 6749
/// §2.3.1 asks.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

/// POST /token: a code (with its PKCE verifier and the client's
/// credentials) for an access token.
pub async fn token(
    State(s): State<Arc<IdpState>>,
    Extension(ctx): Extension<TraceCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = crate::rest::content_type(&headers);
    if crate::rest::essence(ct) != "application/x-www-form-urlencoded" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the token request must be application/x-www-form-urlencoded",
        );
    }
    let form = pairs(&body);
    let out = s
        .grants()
        .exchange(&form, basic(&headers), &s.clients, random_secret(), now());
    match out {
        Ok(issued) => {
            decided(
                &s,
                ctx,
                format!(
                    "code exchanged by {}: PKCE verifier matches the S256 challenge; bearer token for {} with scope {} ({} s)",
                    issued.access.client_id,
                    issued.access.sub,
                    issued.access.scope.join(" "),
                    flow::TOKEN_SECS
                ),
            );
            let body = serde_json::json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": flow::TOKEN_SECS,
                "scope": issued.access.scope.join(" "),
            });
            axum::Json(body).into_response()
        }
        Err(e) => {
            decided(
                &s,
                ctx,
                format!("token refused: {} ({})", e.error, e.description),
            );
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = oauth_error(status, e.error, &e.description);
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"token\""),
                );
            }
            r
        }
    }
}

/// GET /userinfo: who the bearer token's user is, as far as its scope
/// allows.
pub async fn userinfo(
    State(s): State<Arc<IdpState>>,
    Extension(ctx): Extension<TraceCtx>,
    headers: HeaderMap,
) -> Response {
    let access = crate::auth::bearer(&headers).and_then(|t| s.grants().access(t, now()).cloned());
    let Some(access) = access else {
        decided(&s, ctx, "user info refused: no live bearer token".into());
        // RFC 6750 §3: say why in WWW-Authenticate.
        let mut r = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is missing, unknown, revoked or expired",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        return r;
    };
    let Some(user) = s.user(&access.sub) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the account is gone",
        );
    };
    let mut out = serde_json::json!({ "sub": user.sub });
    let has = |sc: &str| access.scope.iter().any(|x| x == sc);
    if has("profile") {
        out["name"] = user.name.clone().into();
    }
    if has("email") {
        out["email"] = user.email.clone().into();
    }
    decided(
        &s,
        ctx,
        format!(
            "user info for {} given to {} (scope {})",
            user.sub,
            access.client_id,
            access.scope.join(" ")
        ),
    );
    axum::Json(out).into_response()
}

/// GET /.well-known/oauth-authorization-server (RFC 8414).
pub async fn metadata(State(s): State<Arc<IdpState>>) -> Response {
    let i = &s.issuer;
    axum::Json(serde_json::json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": flow::SCOPES.map(|(k, _)| k),
    }))
    .into_response()
}
