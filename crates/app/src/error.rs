//! The one error type of the application server.

use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An application failure, turned into a JSON error response.
#[derive(Debug)]
pub struct AppError {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Database,
    NotFound,
    BadRequest,
}

impl AppError {
    pub(crate) fn config(m: impl Into<String>) -> Self {
        Self::new(Kind::Config, m)
    }
    pub(crate) fn database(m: impl Into<String>) -> Self {
        Self::new(Kind::Database, m)
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, m)
    }
    fn new(kind: Kind, m: impl Into<String>) -> Self {
        AppError {
            kind,
            message: m.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::BadRequest => StatusCode::BAD_REQUEST,
            Kind::Config | Kind::Database => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.status().canonical_reason(), "detail": self.message });
        (self.status(), axum::Json(body)).into_response()
    }
}
