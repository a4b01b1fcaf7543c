//! The identity provider's endpoints driven in-process with real requests
//! over its router: the whole authorization-code grant with PKCE, and
//! each way a request to it can be wrong.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;
use weblab_app::idp::flow::{Client, s256};
use weblab_app::idp::{IdpState, router};
use weblab_trace::{Collector, Detail, Event, Recorder};

const REDIRECT: &str = "https://myapp.test/oauth/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-long";

async fn provider() -> (axum::Router, Collector) {
    let collector = Collector::new(Detail::Full);
    let rec = Recorder::new(collector.clone(), "idp", "127.0.7.1", "idp");
    let client = Client {
        id: "myapp".into(),
        name: "myapp.test".into(),
        secret_digest: weblab_app::auth::digest("s3cret"),
        redirect_uris: vec![REDIRECT.into()],
    };
    let state = IdpState::new("https://id.test", vec![client], rec)
        .await
        .unwrap();
    (router(Arc::new(state)), collector)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn authorize_params(challenge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "myapp".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "profile".into()),
        ("state", "st-1".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

fn form(pairs: &[(&str, &str)]) -> Request<Body> {
    Request::post("/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(query(pairs)))
        .unwrap()
}

fn token_request(code: &str, verifier: &str, basic: Option<&str>) -> Request<Body> {
    let mut r =
        Request::post("/token").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(b) = basic {
        r = r.header(header::AUTHORIZATION, format!("Basic {b}"));
    }
    r.body(Body::from(query(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ])))
    .unwrap()
}

/// "myapp:s3cret" in base64.
const BASIC: &str = "bXlhcHA6czNjcmV0";

fn location_param(a: &Answer, name: &str) -> Option<String> {
    let loc = a.headers.get(header::LOCATION)?.to_str().ok()?;
    let u = url::Url::parse(loc).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs in at the consent form and allows; the code.
async fn code_for(app: &axum::Router, challenge: &str) -> String {
    let params = authorize_params(challenge);
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend([
        ("email", "katherine@id.test"),
        ("password", weblab_app::DEMO_PASSWORD),
        ("decision", "allow"),
    ]);
    let a = send(app, form(&pairs)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(location_param(&a, "state").as_deref(), Some("st-1"));
    location_param(&a, "code").expect("a code")
}

#[tokio::test]
async fn a_code_with_its_verifier_buys_a_token_that_reads_the_consented_scope_only() {
    let (app, collector) = provider().await;
    let challenge = s256(VERIFIER);
    let params = authorize_params(&challenge);
    let q: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = send(
        &app,
        Request::get(format!("/authorize?{}", query(&q)))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("myapp.test wants to know who you are"),
        "{}",
        page.body
    );
    assert!(page.body.contains("name=\"password\""));
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("form-action 'self' https://myapp.test"),
        "{csp}"
    );

    let code = code_for(&app, &challenge).await;
    let t = send(&app, token_request(&code, VERIFIER, Some(BASIC))).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.headers[header::CACHE_CONTROL], "no-store");
    let v: serde_json::Value = serde_json::from_str(&t.body).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "profile");
    let token = v["access_token"].as_str().unwrap();

    let me = send(
        &app,
        Request::get("/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["name"], "Katherine Johnson");
    assert!(me.get("email").is_none(), "email was not consented: {me}");

    // Each step is a span that says what the provider decided.
    let notes: Vec<String> = collector
        .snapshot()
        .iter()
        .filter_map(|s| match &s.event {
            Event::Note { text } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("PKCE verifier matches")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_stolen_code_is_useless_without_the_verifier_and_works_only_once() {
    let (app, _) = provider().await;
    let code = code_for(&app, &s256(VERIFIER)).await;
    let other = "another-verifier-that-is-also-forty-three-chars";
    let t = send(&app, token_request(&code, other, Some(BASIC))).await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST);
    assert!(
        t.body.contains("invalid_grant") && t.body.contains("PKCE"),
        "{}",
        t.body
    );
    let first = send(&app, token_request(&code, VERIFIER, Some(BASIC))).await;
    assert_eq!(first.status, StatusCode::OK);
    let token: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    let again = send(&app, token_request(&code, VERIFIER, Some(BASIC))).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("already used"), "{}", again.body);
    // The token the code bought the first time is revoked.
    let me = send(
        &app,
        Request::get("/userinfo")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", token["access_token"].as_str().unwrap()),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert!(
        me.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn bad_requests_get_the_errors_the_rfcs_name() {
    let (app, _) = provider().await;
    // A redirect URI the client never registered: shown, not followed.
    let q = query(&[
        ("response_type", "code"),
        ("client_id", "myapp"),
        ("redirect_uri", "https://evil.test/cb"),
        ("code_challenge", &s256(VERIFIER)),
        ("code_challenge_method", "S256"),
    ]);
    let a = send(
        &app,
        Request::get(format!("/authorize?{q}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.headers.get(header::LOCATION).is_none());
    assert!(
        a.body.contains("not a redirect URI registered"),
        "{}",
        a.body
    );
    // No PKCE: back to the client with invalid_request.
    let q = query(&[
        ("response_type", "code"),
        ("client_id", "myapp"),
        ("state", "s"),
    ]);
    let a = send(
        &app,
        Request::get(format!("/authorize?{q}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location_param(&a, "error").as_deref(),
        Some("invalid_request")
    );
    // A wrong password: 401 and the form again, no code.
    let params = authorize_params(&s256(VERIFIER));
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend([
        ("email", "katherine@id.test"),
        ("password", "nope"),
        ("decision", "allow"),
    ]);
    let a = send(&app, form(&pairs)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("Wrong email or password"));
    // The token endpoint: wrong client secret, no credentials, wrong type.
    let t = send(&app, token_request("x", VERIFIER, Some("bXlhcHA6Z3Vlc3M="))).await;
    assert_eq!(t.status, StatusCode::UNAUTHORIZED);
    assert!(t.headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(t.body.contains("invalid_client"));
    let t = send(&app, token_request("x", VERIFIER, None)).await;
    assert_eq!(t.status, StatusCode::UNAUTHORIZED);
    let t = send(
        &app,
        Request::post("/token")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(t.status, StatusCode::BAD_REQUEST);
    assert!(t.body.contains("invalid_request"));
    let m = send(
        &app,
        Request::get("/.well-known/oauth-authorization-server")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let m: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(m["token_endpoint"], "https://id.test/token");
    assert_eq!(m["code_challenge_methods_supported"][0], "S256");
}
