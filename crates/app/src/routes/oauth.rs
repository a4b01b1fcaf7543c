//! Signing in through the identity provider (C37), the client's side of
//! the authorization-code grant with PKCE:
//!
//! 1. `GET /login/oauth` makes a state and a PKCE verifier, keeps them in
//!    the database (any app server may get the callback), ties the state
//!    to this browser with a cookie, and sends the browser to the
//!    provider with the verifier's S256 challenge;
//! 2. the person signs in there and allows the scopes;
//! 3. `GET /oauth/callback?code&state` checks the state against the
//!    cookie and the database, redeems the code with the verifier and
//!    this app's secret (back channel), reads who the person is, finds or
//!    makes their account, and starts a session as a password sign-in
//!    would.

use axum::Extension;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages::{login_main, page, query_next, see_other};
use crate::auth::{self, cookie_value, random_secret};
use crate::error::AppError;
use crate::middleware::SessionFound;
use crate::oauth::OAuthClient;
use crate::repo::{self, UserFields};
use crate::rest::Cx;

/// The cookie that ties a started sign-in to the browser that started it
/// (without it, anyone could make a victim's browser finish a sign-in
/// into the attacker's account: login CSRF, RFC 6749 §10.12).
const STATE_COOKIE: &str = "oauth_state";

fn state_cookie(value: &str, secure: bool, max_age: i64) -> HeaderValue {
    auth::set_cookie(STATE_COOKIE, value, "/oauth", secure, max_age)
}

fn client(cx: &Cx) -> Result<&OAuthClient, AppError> {
    cx.s.oauth
        .as_ref()
        .ok_or_else(|| AppError::not_found("no identity provider is configured for this app"))
}

/// GET /login/oauth: off to the identity provider.
pub async fn start(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let oauth = client(&cx)?;
    // Each start keeps a pending state until the callback; one client may
    // not fill that bounded store for everyone else.
    if let Some(ip) = cx.ip {
        if let Err(wait) = cx.s.oauth_starts.check(ip) {
            return Err(AppError::too_many(
                format!("too many sign-ins started from {ip}; try again in {wait} s"),
                wait,
            ));
        }
        cx.s.oauth_starts.count(ip);
    }
    let next = query_next(q.as_deref());
    let state = random_secret();
    // 32 random bytes in base64url: 43 characters, as RFC 7636 §4.1 asks.
    let verifier = random_secret();
    cx.service("OAuthService::begin", async |sql| {
        let started = (state.as_str(), verifier.as_str(), next.as_str());
        repo::oauth::save_state(&sql, started, repo::oauth::MAX_PENDING).await
    })
    .await?;
    let challenge = crate::idp::flow::s256(&verifier);
    let mut r = see_other(&oauth.authorize_url(&state, &challenge), None);
    r.headers_mut().append(
        header::SET_COOKIE,
        state_cookie(&state, cx.https, repo::oauth::STATE_SECS),
    );
    Ok(r)
}

/// The sign-in form again, with why the provider's sign-in did not work.
fn back_to_login(cx: &Cx, status: StatusCode, message: &str) -> Response {
    let main = login_main(cx, Some(message), "", "/account", None);
    let mut r = page(cx, status, "Sign in", &main);
    r.headers_mut()
        .append(header::SET_COOKIE, state_cookie("", cx.https, 0));
    r
}

/// GET /oauth/callback: the provider sent the browser back.
pub async fn callback(
    cx: Cx,
    found: Option<Extension<SessionFound>>,
    RawQuery(q): RawQuery,
) -> Result<Response, AppError> {
    let oauth = client(&cx)?;
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let state = get("state").unwrap_or("");
    // The state must be the one this browser was given.
    if state.is_empty() || cookie_value(&cx.headers, STATE_COOKIE).as_deref() != Some(state) {
        return Ok(back_to_login(
            &cx,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser (its state does not match). Start again.",
        ));
    }
    let pending = cx
        .service("OAuthService::resume", async |sql| {
            repo::oauth::take_state(&sql, state).await
        })
        .await?;
    let Some((verifier, next)) = pending else {
        return Ok(back_to_login(
            &cx,
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already finished. Start again.",
        ));
    };
    if let Some(error) = get("error") {
        let message = format!(
            "{} did not sign you in: {error}{}",
            oauth.provider,
            get("error_description").map_or(String::new(), |d| format!(" ({d})"))
        );
        let status = if error == "access_denied" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        return Ok(back_to_login(&cx, status, &message));
    }
    let Some(code) = get("code") else {
        return Ok(back_to_login(
            &cx,
            StatusCode::BAD_REQUEST,
            "The identity provider sent neither a code nor an error.",
        ));
    };
    let previous = found.as_ref().map(|f| f.id.as_str());
    let signed = cx
        .service("OAuthService::sign_in", async |sql| {
            let ctx = sql.ctx();
            let token = oauth.redeem(&cx.s.rec, ctx, code, &verifier).await?;
            let token = oauth.json(token, "refused the code")?;
            let access = token["access_token"].as_str().ok_or_else(|| {
                AppError::bad_gateway(format!(
                    "{}'s token answer has no access_token",
                    oauth.provider
                ))
            })?;
            let who = oauth.user_info(&cx.s.rec, ctx, access).await?;
            let who = oauth.json(who, "refused its own token")?;
            let field = |k: &str| who[k].as_str().map(str::to_string);
            let (Some(sub), Some(name), Some(email)) =
                (field("sub"), field("name"), field("email"))
            else {
                return Err(AppError::bad_gateway(format!(
                    "{}'s user info lacks sub, name or email",
                    oauth.provider
                )));
            };
            let fields = UserFields { name, email };
            let user = repo::oauth::user_for(&sql, &oauth.issuer, &sub, &fields).await?;
            repo::start_session(&sql, user.id, previous).await
        })
        .await;
    match signed {
        Ok(sid) => {
            let mut r = see_other(&next, Some(auth::session_cookie(&sid, cx.https)));
            r.headers_mut()
                .append(header::SET_COOKIE, state_cookie("", cx.https, 0));
            Ok(r)
        }
        Err(e) if e.status() == StatusCode::CONFLICT => {
            Ok(back_to_login(&cx, StatusCode::CONFLICT, e.message()))
        }
        Err(e)
            if matches!(
                e.status(),
                StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
            ) =>
        {
            Ok(back_to_login(&cx, e.status(), e.message()))
        }
        Err(e) => Err(e),
    }
    .map(IntoResponse::into_response)
}
