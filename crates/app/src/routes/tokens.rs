//! `POST /api/tokens` (C36): a short-lived signed access token (JWT) and a
//! refresh token, given a password or a refresh token, in the shape of an
//! OAuth 2.0 token response (RFC 6749 §5.1).
//!
//! Refresh tokens rotate: each works once and brings a new one. Presenting
//! one a second time means two parties hold it, so its whole family is
//! revoked and both must sign in again.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::AppError;
use crate::repo::{self, Refresh};
use crate::rest::{Cx, Fields, JsonObject, SignIn};

fn answer(access: String, refresh: String) -> Response {
    let body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": auth::ACCESS_SECS,
        "refresh_token": refresh,
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// POST /api/tokens {grant_type: "password", email, password} or
/// {grant_type: "refresh_token", refresh_token}
pub async fn create(cx: Cx, JsonObject(obj): JsonObject) -> Result<Response, AppError> {
    let mut f = Fields::of(&obj, &["grant_type", "email", "password", "refresh_token"]);
    let grant = f.text("grant_type", true).unwrap_or_default();
    match grant.as_str() {
        "password" => {
            let email = f.text("email", true).unwrap_or_default();
            let password = f.text("password", true).unwrap_or_default();
            f.finish()?;
            with_password(&cx, &email, &password).await
        }
        "refresh_token" => {
            let token = f.text("refresh_token", true).unwrap_or_default();
            f.finish()?;
            with_refresh(&cx, &token).await
        }
        other => {
            f.invalid(
                "grant_type",
                format!("{other:?} is not \"password\" or \"refresh_token\""),
            );
            f.finish()?;
            Err(AppError::bad_request("grant_type missing"))
        }
    }
}

async fn with_password(cx: &Cx, email: &str, password: &str) -> Result<Response, AppError> {
    let attempt = cx
        .sign_in(
            "TokenService::sign_in",
            email,
            password,
            async |sql, user| {
                let who = auth::TokenUser {
                    id: user.id,
                    name: user.name,
                    role: user.role,
                };
                let access = cx.s.tokens().issue(&who, auth::now())?;
                let refresh = repo::issue_refresh(sql, who.id, None).await?;
                Ok(answer(access, refresh))
            },
        )
        .await?;
    match attempt {
        SignIn::Done(r) => Ok(r),
        SignIn::Wrong => Err(AppError::unauthorized("wrong email or password")),
        SignIn::Wait { ip, seconds } => Err(AppError::too_many(
            format!("too many failed sign-ins from {ip}; try again in {seconds} s"),
            seconds,
        )),
    }
}

async fn with_refresh(cx: &Cx, token: &str) -> Result<Response, AppError> {
    let (access, refresh) = cx
        .service(
            "TokenService::refresh",
            async |sql| match repo::use_refresh(&sql, token).await? {
                Refresh::Rotated { user, family } => {
                    let access = cx.s.tokens().issue(&user, auth::now())?;
                    let next = repo::issue_refresh(&sql, user.id, Some(family)).await?;
                    Ok((access, next))
                }
                Refresh::Reused => Err(AppError::unauthorized(
                    "refresh token was already used; every token of this sign-in is now revoked",
                )),
                Refresh::Expired => Err(AppError::unauthorized("refresh token expired")),
                Refresh::Unknown => Err(AppError::unauthorized("refresh token unknown")),
            },
        )
        .await?;
    Ok(answer(access, refresh))
}
