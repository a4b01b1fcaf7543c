//! The route table (C46): every route declared once, as method, pattern,
//! who may call it and its handler. The controller name in traces is the
//! handler's own path (`routes::users::show` → `UsersController::show`),
//! so it cannot drift from the code that runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::error::AppError;
use crate::middleware::{self, Access, RouteInfo};
use crate::server::AppState;

pub mod admin;
pub mod chat;
pub mod exports;
pub mod feed;
pub mod lint;
pub mod oauth;
pub mod pages;
pub mod posts;
pub mod tokens;
pub mod users;

/// One route.
pub struct Route {
    pub method: Method,
    pub pattern: &'static str,
    pub controller: String,
    pub access: Access,
    handler: MethodRouter<Arc<AppState>>,
}

/// `weblab_app::routes::users::show` → `UsersController::show`.
fn controller_name(type_name: &str) -> String {
    let mut parts = type_name.rsplit("::");
    let function = parts.next().unwrap_or("?");
    let module = parts.next().unwrap_or("?");
    let mut m = module.chars();
    let capital: String = m
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(m)
        .collect();
    format!("{capital}Controller::{function}")
}

fn route<H, T>(method: Method, pattern: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("route table: method {method} has no filter"));
    Route {
        controller: controller_name(std::any::type_name::<H>()),
        method,
        pattern,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of the application.
pub fn table() -> Vec<Route> {
    use Access::{Admin, Public, SignedIn, SignedInPage};
    use Method as M;
    vec![
        route(M::GET, "/login", Public, pages::login_form),
        route(M::POST, "/login", Public, pages::login),
        route(M::GET, "/signup", Public, pages::signup_form),
        route(M::POST, "/signup", Public, pages::signup),
        route(M::POST, "/logout", Public, pages::logout),
        route(M::GET, "/login/oauth", Public, oauth::start),
        route(M::GET, "/oauth/callback", Public, oauth::callback),
        route(M::GET, "/account", SignedInPage, pages::account),
        route(M::GET, "/api/users", Public, users::list),
        route(M::POST, "/api/users", Public, users::create),
        route(M::GET, "/api/users/{id}", Public, users::show),
        route(M::PUT, "/api/users/{id}", SignedIn, users::replace),
        route(M::PATCH, "/api/users/{id}", SignedIn, users::update),
        route(M::DELETE, "/api/users/{id}", SignedIn, users::delete),
        route(M::GET, "/api/users/{id}/posts", Public, posts::by_user),
        route(M::GET, "/api/posts", Public, posts::list),
        route(M::POST, "/api/posts", SignedIn, posts::create),
        route(M::GET, "/api/posts/updates", Public, feed::updates),
        route(M::GET, "/api/posts/stream", Public, feed::stream),
        route(M::GET, "/api/posts/{id}", Public, posts::show),
        route(M::GET, "/api/me", SignedIn, users::me),
        route(M::POST, "/api/tokens", Public, tokens::create),
        route(M::POST, "/api/exports", SignedIn, exports::start),
        route(M::GET, "/api/exports/{id}", SignedIn, exports::show),
        route(M::GET, "/api/exports/{id}/file", SignedIn, exports::file),
        route(M::GET, "/api/admin/stats", Admin, admin::stats),
        route(M::GET, "/ws/chat/{room}", Public, chat::join),
        route(M::GET, "/ws/stomp", Public, chat::stomp),
    ]
}

/// The methods a pattern answers, as `Allow` lists them (GET brings HEAD;
/// OPTIONS always).
fn allow(methods: &[Method]) -> String {
    let mut all: Vec<&str> = Vec::new();
    for m in methods {
        all.push(m.as_str());
        if *m == Method::GET {
            all.push("HEAD");
        }
    }
    all.push("OPTIONS");
    all.join(", ")
}

/// The routes of [`table`] as a router: each route behind its route step
/// (span + authorization), OPTIONS answered per pattern, 405 with Allow and
/// a JSON reason.
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let mut by_pattern: BTreeMap<&'static str, Vec<Route>> = BTreeMap::new();
    for r in table() {
        by_pattern.entry(r.pattern).or_default().push(r);
    }
    let mut router = Router::new();
    for (pattern, routes) in by_pattern {
        let methods: Vec<Method> = routes.iter().map(|r| r.method.clone()).collect();
        let allowed = allow(&methods);
        let each = routes.into_iter().map(|r| {
            let info = RouteInfo {
                state: state.clone(),
                controller: r.controller.into(),
                access: r.access,
            };
            r.handler
                .route_layer(from_fn_with_state(info, middleware::route))
        });
        let Some(mr) = each.reduce(MethodRouter::merge) else {
            continue;
        };
        let for_options = allowed.clone();
        let options = move || {
            let allowed = for_options.clone();
            async move { (StatusCode::NO_CONTENT, [(header::ALLOW, allowed)]).into_response() }
        };
        let not_allowed = move |method: Method, uri: Uri| {
            let allowed = allowed.clone();
            async move { method_not_allowed(&method, uri.path(), &allowed) }
        };
        router = router.route(pattern, mr.options(options).fallback(not_allowed));
    }
    router
}

/// 501 for a method the server does not know at all (RFC 9110 §9.1,
/// §15.6.2); a known one that the resource does not take is 405.
fn not_implemented(method: &Method) -> Response {
    AppError::not_implemented(format!(
        "{method} is not a method this server implements (it knows GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)"
    ))
    .into_response()
}

/// 405 with `Allow` (RFC 9110 §15.5.6) and the reason; 501 for a method
/// not known at all.
fn method_not_allowed(method: &Method, path: &str, allowed: &str) -> Response {
    if !weblab_server::http::known_method(method) {
        return not_implemented(method);
    }
    let mut r = AppError::method_not_allowed(format!(
        "{method} is not allowed on {path}; allowed: {allowed}"
    ))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(allowed) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// Anything unrouted: 404 with the path named (501 for a method not
/// known at all, whatever the path).
pub async fn not_found(method: Method, uri: Uri) -> Response {
    if !weblab_server::http::known_method(&method) {
        return not_implemented(&method);
    }
    AppError::not_found(format!("no route for {}", uri.path())).into_response()
}

/// A path segment as a row id, or 400 naming it.
pub(crate) fn id(raw: &str, what: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::bad_request(format!("{what} id {raw:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_names_come_from_the_handler_path() {
        assert_eq!(
            controller_name("weblab_app::routes::users::show"),
            "UsersController::show"
        );
        let t = table();
        let show = t
            .iter()
            .find(|r| r.pattern == "/api/users/{id}" && r.method == Method::GET)
            .unwrap();
        assert_eq!(show.controller, "UsersController::show");
        let login = t
            .iter()
            .find(|r| r.method == Method::POST && r.pattern == "/login")
            .unwrap();
        assert_eq!(login.controller, "PagesController::login");
    }

    #[test]
    fn allow_lists_head_with_get_and_always_options() {
        assert_eq!(
            allow(&[Method::GET, Method::PUT]),
            "GET, HEAD, PUT, OPTIONS"
        );
    }
}
