//! The HTML pages a person uses in a browser (C34, C35): sign in, sign up,
//! sign out and an account page that needs a session.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::auth;
use crate::error::AppError;
use crate::middleware::SessionFound;
use crate::repo::{self, UserFields};
use crate::rest::{Cx, Fields, SignIn, check_password, check_user, content_type, essence};

/// Text made safe to place in HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `main`, with the stylesheet, script and logo the
/// web server serves.
pub(crate) fn page(cx: &Cx, status: StatusCode, title: &str, main: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - myapp</title>
  <link rel="stylesheet" href="/static/app.css">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <main class="card">
    <img src="/static/logo.png" alt="myapp logo" width="64" height="64">
{main}
    <p class="served">Served by {host}.</p>
  </main>
</body>
</html>
"#,
        title = esc(title),
        host = esc(&cx.s.host),
    );
    let mut r = (status, Html(html)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The fields of an `application/x-www-form-urlencoded` body; 415 for any
/// other type.
fn form(cx: &Cx, body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    let ct = content_type(&cx.headers);
    if essence(ct) != "application/x-www-form-urlencoded" {
        return Err(AppError::unsupported(format!(
            "this form takes application/x-www-form-urlencoded, not {ct:?}"
        )));
    }
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

/// The value of field `name` in a decoded form ("" when absent).
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Where to go after signing in: a path on this site, never another
/// site (`//evil.test` or `https://…` would be an open redirect).
fn local(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/account"
    }
}

pub(crate) fn query_next(q: Option<&str>) -> String {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| local(&v).to_string())
        .unwrap_or_else(|| "/account".into())
}

/// The sign-in form, with `message` above it, and a way to sign in
/// through the identity provider when one is configured.
pub(crate) fn login_main(
    cx: &Cx,
    message: Option<&str>,
    email: &str,
    next: &str,
    users: Option<i64>,
) -> String {
    let message = message.map_or(String::new(), |m| {
        format!("    <p class=\"error\" role=\"alert\">{}</p>\n", esc(m))
    });
    let provider = cx.s.oauth.as_ref().map_or(String::new(), |o| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        format!(
            "    <p><a href=\"/login/oauth?{}\">Sign in with {}</a></p>\n",
            esc(&q),
            esc(&o.provider)
        )
    });
    format!(
        r#"    <h1>Sign in</h1>
{message}    <form method="post" action="/login">
      <input type="hidden" name="next" value="{next}">
      <label>Email <input name="email" type="email" autocomplete="username" value="{email}" required></label>
      <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
      <button type="submit">Sign in</button>
    </form>
{provider}    <p>{count}New here? <a href="/signup">Create one</a>.</p>"#,
        count = users.map_or(String::new(), |n| format!("{n} people have an account. ")),
        next = esc(next),
        email = esc(email),
    )
}

/// GET /login: the sign-in form.
pub async fn login_form(cx: Cx, RawQuery(q): RawQuery) -> Result<Response, AppError> {
    let users = cx
        .service("AuthService::count_users", async |sql| {
            repo::count_users(&sql).await
        })
        .await?;
    let next = query_next(q.as_deref());
    Ok(page(
        &cx,
        StatusCode::OK,
        "Sign in",
        &login_main(&cx, None, "", &next, Some(users)),
    ))
}

/// POST /login: checks the password, starts a session (a new id; the one
/// the browser came with is ended), and sends the browser on with 303.
/// Wrong credentials: 401 and the form again. Too many failures from one
/// address: 429 with Retry-After.
pub async fn login(
    cx: Cx,
    found: Option<Extension<SessionFound>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let f = form(&cx, &body)?;
    let (email, password, next) = (
        field(&f, "email"),
        field(&f, "password"),
        local(field(&f, "next")),
    );
    let previous = found.as_ref().map(|f| f.id.as_str());
    let attempt = cx
        .sign_in(
            "AuthService::sign_in",
            email,
            password,
            async |sql, user| repo::start_session(sql, user.id, previous).await,
        )
        .await?;
    let sid = match attempt {
        SignIn::Done(sid) => sid,
        SignIn::Wrong => {
            let main = login_main(&cx, Some("Wrong email or password."), email, next, None);
            return Ok(page(&cx, StatusCode::UNAUTHORIZED, "Sign in", &main));
        }
        SignIn::Wait { ip, seconds } => {
            let message = format!("Too many failed sign-ins from {ip}. Try again in {seconds} s.");
            let main = login_main(&cx, Some(&message), email, next, None);
            let mut r = page(&cx, StatusCode::TOO_MANY_REQUESTS, "Sign in", &main);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(r);
        }
    };
    Ok(see_other(next, Some(auth::session_cookie(&sid, cx.https))))
}

pub(crate) fn see_other(to: &str, cookie: Option<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn signup_main(problems: &[(String, String)], name: &str, email: &str) -> String {
    let list: String = problems
        .iter()
        .map(|(k, v)| format!("<li>{} {}</li>", esc(k), esc(v)))
        .collect();
    let message = if list.is_empty() {
        String::new()
    } else {
        format!("    <ul class=\"error\" role=\"alert\">{list}</ul>\n")
    };
    format!(
        r#"    <h1>Create an account</h1>
{message}    <form method="post" action="/signup">
      <label>Name <input name="name" autocomplete="name" value="{name}" required></label>
      <label>Email <input name="email" type="email" autocomplete="email" value="{email}" required></label>
      <label>Password <input name="password" type="password" autocomplete="new-password" minlength="8" required></label>
      <button type="submit">Sign up</button>
    </form>
    <p>Have an account? <a href="/login">Sign in</a>.</p>"#,
        name = esc(name),
        email = esc(email),
    )
}

/// GET /signup: the form.
pub async fn signup_form(cx: Cx) -> Response {
    page(&cx, StatusCode::OK, "Sign up", &signup_main(&[], "", ""))
}

/// POST /signup: creates the account (422 with the form when a field
/// breaks a rule, 409 when the email is taken) and signs the user in.
pub async fn signup(
    cx: Cx,
    found: Option<Extension<SessionFound>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let f = form(&cx, &body)?;
    let (name, email, password) = (field(&f, "name"), field(&f, "email"), field(&f, "password"));
    let mut check = Fields::rules_only();
    check_user(&mut check, Some(name), Some(email));
    check_password(&mut check, Some(password));
    if let Err(e) = check.finish() {
        let problems = e.fields().to_vec();
        return Ok(page(
            &cx,
            e.status(),
            "Sign up",
            &signup_main(&problems, name, email),
        ));
    }
    let hash = auth::hash_password(password).await?;
    let previous = found.as_ref().map(|f| f.id.as_str());
    let fields = UserFields {
        name: name.trim().into(),
        email: email.into(),
    };
    let made = cx
        .service("AuthService::sign_up", async |sql| {
            let user = repo::create_user(&sql, &fields, Some(hash)).await?;
            repo::start_session(&sql, user.id, previous).await
        })
        .await;
    match made {
        Ok(sid) => Ok(see_other(
            "/account",
            Some(auth::session_cookie(&sid, cx.https)),
        )),
        Err(e) if e.status() == StatusCode::CONFLICT => {
            let problems = vec![("email".to_string(), "already has an account".to_string())];
            Ok(page(
                &cx,
                e.status(),
                "Sign up",
                &signup_main(&problems, name, email),
            ))
        }
        Err(e) => Err(e),
    }
}

/// POST /logout: ends the session (the row is deleted, not just the
/// cookie) and clears the cookie.
pub async fn logout(cx: Cx, found: Option<Extension<SessionFound>>) -> Result<Response, AppError> {
    if let Some(Extension(f)) = found {
        cx.service("AuthService::sign_out", async |sql| {
            repo::end_session(&sql, &f.id).await
        })
        .await?;
    }
    Ok(see_other(
        "/login",
        Some(auth::clear_session_cookie(cx.https)),
    ))
}

/// GET /account: only with a session (the authorization step sends
/// anyone else to /login).
pub async fn account(cx: Cx, found: Option<Extension<SessionFound>>) -> Result<Response, AppError> {
    let me = cx.user()?.clone();
    let posts = cx
        .service("PostService::by_user", async |sql| {
            repo::list_posts(&sql, Some(me.user_id), 10, 0).await
        })
        .await?;
    let since = found
        .as_ref()
        .and_then(|f| f.session.as_ref())
        .map_or(String::from("-"), |s| {
            format!("{} s ago", auth::now() - s.created_at)
        });
    let items: String = posts
        .iter()
        .map(|p| format!("<li>{}</li>", esc(&p.title)))
        .collect();
    let main = format!(
        r#"    <h1>Hello, {name}</h1>
    <p>Signed in as user {id} ({role}) {since}. This page is only shown with a session.</p>
    <h2>Your posts</h2>
    <ul>{items}</ul>
    <form method="post" action="/logout"><button type="submit">Sign out</button></form>"#,
        name = esc(&me.name),
        id = me.user_id,
        role = esc(&me.role),
    );
    Ok(page(&cx, StatusCode::OK, "Account", &main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(local("/account?x=1"), "/account?x=1");
        for bad in [
            "//evil.test/",
            "https://evil.test/",
            "/\\evil.test",
            "",
            "javascript:1",
        ] {
            assert_eq!(local(bad), "/account", "{bad}");
        }
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
