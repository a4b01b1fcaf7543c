//! The one error type of the application server: every failure a handler
//! or a middleware can answer with, each with its status and a reason a
//! person can act on.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An application failure, turned into a JSON error response.
#[derive(Debug)]
pub struct AppError {
    kind: Kind,
    message: String,
    /// Per-field problems of a submitted body (400/422).
    fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Database,
    BadRequest,
    /// 401: who you are is unknown or not believed.
    Unauthorized,
    /// 403: who you are is known and not allowed.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    TooManyRequests {
        retry_after: u64,
    },
    /// 502: a service this one called answered wrongly or not at all.
    BadGateway,
    /// 504: a service this one called did not answer in time.
    GatewayTimeout,
    /// 501: a method the server does not know at all.
    NotImplemented,
    /// 503: this server is at a limit; try again later.
    Unavailable {
        retry_after: u64,
    },
}

impl AppError {
    pub(crate) fn config(m: impl Into<String>) -> Self {
        Self::new(Kind::Config, m)
    }
    pub(crate) fn database(m: impl Into<String>) -> Self {
        Self::new(Kind::Database, m)
    }
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, m)
    }
    pub(crate) fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, m)
    }
    pub(crate) fn forbidden(m: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, m)
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub(crate) fn method_not_allowed(m: impl Into<String>) -> Self {
        Self::new(Kind::MethodNotAllowed, m)
    }
    pub(crate) fn not_implemented(m: impl Into<String>) -> Self {
        Self::new(Kind::NotImplemented, m)
    }
    pub(crate) fn not_acceptable(m: impl Into<String>) -> Self {
        Self::new(Kind::NotAcceptable, m)
    }
    pub(crate) fn timeout(m: impl Into<String>) -> Self {
        Self::new(Kind::RequestTimeout, m)
    }
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, m)
    }
    pub(crate) fn too_large(m: impl Into<String>) -> Self {
        Self::new(Kind::PayloadTooLarge, m)
    }
    pub(crate) fn unsupported(m: impl Into<String>) -> Self {
        Self::new(Kind::UnsupportedMediaType, m)
    }
    pub(crate) fn unprocessable(m: impl Into<String>, fields: Vec<(String, String)>) -> Self {
        AppError {
            fields,
            ..Self::new(Kind::Unprocessable, m)
        }
    }
    pub(crate) fn bad_gateway(m: impl Into<String>) -> Self {
        Self::new(Kind::BadGateway, m)
    }
    pub(crate) fn gateway_timeout(m: impl Into<String>) -> Self {
        Self::new(Kind::GatewayTimeout, m)
    }
    pub(crate) fn unavailable(m: impl Into<String>, retry_after: u64) -> Self {
        Self::new(Kind::Unavailable { retry_after }, m)
    }
    pub(crate) fn too_many(m: impl Into<String>, retry_after: u64) -> Self {
        Self::new(Kind::TooManyRequests { retry_after }, m)
    }
    /// A 400 naming the fields that were missing or of the wrong type.
    pub(crate) fn invalid_fields(m: impl Into<String>, fields: Vec<(String, String)>) -> Self {
        AppError {
            fields,
            ..Self::new(Kind::BadRequest, m)
        }
    }
    fn new(kind: Kind, m: impl Into<String>) -> Self {
        AppError {
            kind,
            message: m.into(),
            fields: Vec::new(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Kind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Kind::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Kind::BadGateway => StatusCode::BAD_GATEWAY,
            Kind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Kind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Kind::Config | Kind::Database => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The fields named as wrong, with what is wrong with each.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The reason, as the response's `detail` says it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.message)
    }
}

impl std::error::Error for AppError {}

impl From<sqlx::Error> for AppError {
    /// A unique-constraint violation is the client's conflict (409), by the
    /// driver's own error kind (SQLite and PostgreSQL alike); anything
    /// else is the database failing (500).
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                AppError::conflict(d.message().to_string())
            }
            _ => AppError::database(e.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = serde_json::json!({
            "error": status.canonical_reason(),
            "detail": self.message,
        });
        if !self.fields.is_empty() {
            body["fields"] = self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        let mut r = (status, axum::Json(body)).into_response();
        let h = r.headers_mut();
        match self.kind {
            Kind::Unauthorized => {
                // RFC 6750 / 9110: a 401 names the scheme that would work.
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="myapp""#),
                );
            }
            Kind::TooManyRequests { retry_after } | Kind::Unavailable { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
