//! The application through the whole world with real clients: curl signs
//! in through the load balancer and the web servers, keeps the session
//! cookie in its jar, and uses the REST API with a Bearer token.

use std::process::Command;

use crate::observe::installed;
use crate::support::{ip, start};

/// curl over HTTPS to myapp.test on the world's load balancer; stdout
/// (with `-D -` the response heads first).
fn curl(w: &weblab::world::RunningWorld, args: &[&str]) -> String {
    let https = w.ports.https;
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(w.ca_path())
        .args(["--resolve", &format!("myapp.test:{https}:{}", ip(w, "lb"))])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The header `name` of the last response head in `out`, lowercased name.
fn header<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .rev()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_signs_in_through_the_load_balancer_keeps_the_cookie_and_signs_out() {
    if !installed("curl", "--version") {
        return;
    }
    let w = start(170).await;
    let https = w.ports.https;
    let url = |p: &str| format!("https://myapp.test:{https}{p}");
    let jar = w.dir.join("cookies.txt");
    let jar = jar.to_str().unwrap().to_string();
    let w2 = &w.world;
    let (login, account, out, after) = tokio::task::block_in_place(|| {
        let form = format!(
            "email=ada@myapp.test&password={}",
            weblab_app::DEMO_PASSWORD
        );
        let login = curl(
            w2,
            &[
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-c",
                &jar,
                "-d",
                &form,
                &url("/login"),
            ],
        );
        let account = curl(w2, &["-b", &jar, &url("/account")]);
        let out = curl(
            w2,
            &[
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-b",
                &jar,
                "-c",
                &jar,
                "-X",
                "POST",
                &url("/logout"),
            ],
        );
        let after = curl(
            w2,
            &["-D", "-", "-o", "/dev/null", "-b", &jar, &url("/account")],
        );
        (login, account, out, after)
    });
    assert!(login.starts_with("HTTP/2 303"), "{login}");
    assert_eq!(header(&login, "location"), Some("/account"));
    let cookie = header(&login, "set-cookie").unwrap();
    // The client came over HTTPS (the LB said so to the web server, the
    // web server to the app): the cookie is Secure.
    for part in ["sid=", "HttpOnly", "Secure", "SameSite=Lax"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(account.contains("Hello, Ada Lovelace"), "{account}");
    assert!(out.starts_with("HTTP/2 303"), "{out}");
    assert!(after.starts_with("HTTP/2 303"), "{after}");
    assert_eq!(header(&after, "location"), Some("/login?next=/account"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uses_the_rest_api_with_a_bearer_token() {
    if !installed("curl", "--version") {
        return;
    }
    let w = start(171).await;
    let https = w.ports.https;
    let url = |p: &str| format!("https://myapp.test:{https}{p}");
    let w2 = &w.world;
    let json = ["-H", "content-type: application/json"];
    let (made, csv, options, me, denied) = tokio::task::block_in_place(|| {
        let body =
            r#"{"name":"Barbara Liskov","email":"barbara@myapp.test","password":"substitution"}"#;
        let made = curl(
            w2,
            &[&["-D", "-", "-d", body][..], &json, &[&url("/api/users")]].concat(),
        );
        let csv = curl(w2, &["-H", "accept: text/csv", &url("/api/users")]);
        let options = curl(
            w2,
            &[
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-X",
                "OPTIONS",
                &url("/api/users/1"),
            ],
        );
        let grant =
            r#"{"grant_type":"password","email":"barbara@myapp.test","password":"substitution"}"#;
        let tokens = curl(
            w2,
            &[&["-d", grant][..], &json, &[&url("/api/tokens")]].concat(),
        );
        let v: serde_json::Value =
            serde_json::from_str(&tokens).unwrap_or_else(|e| panic!("{e}: {tokens}"));
        let auth = format!(
            "authorization: Bearer {}",
            v["access_token"].as_str().unwrap()
        );
        let me = curl(w2, &["-H", &auth, &url("/api/me")]);
        let denied = curl(
            w2,
            &[
                &[
                    "-w",
                    "%{http_code}",
                    "-o",
                    "/dev/null",
                    "-X",
                    "DELETE",
                    "-H",
                    &auth,
                ][..],
                &[&url("/api/users/1")],
            ]
            .concat(),
        );
        (made, csv, options, me, denied)
    });
    assert!(made.starts_with("HTTP/2 201"), "{made}");
    assert!(
        header(&made, "location")
            .unwrap()
            .starts_with("/api/users/"),
        "{made}"
    );
    assert!(csv.starts_with("id,name,email,role,created_at"), "{csv}");
    assert!(csv.contains("Barbara Liskov"), "{csv}");
    assert!(options.starts_with("HTTP/2 204"), "{options}");
    assert_eq!(
        header(&options, "allow"),
        Some("GET, HEAD, PUT, PATCH, DELETE, OPTIONS")
    );
    assert!(me.contains("barbara@myapp.test"), "{me}");
    assert_eq!(denied, "403");
}

#[test]
fn lint_routes_passes_our_api_and_names_each_broken_rule_in_a_users_list() {
    let ours = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .arg("lint-routes")
        .output()
        .unwrap();
    assert_eq!(
        ours.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ours.stdout)
    );
    let dir = crate::support::data_dir(172);
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("routes.txt");
    std::fs::write(
        &list,
        "# a user's routes\nGET /api/users/{id}\nPOST /api/createUser\nGET /api/user_posts/\n",
    )
    .unwrap();
    let theirs = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .arg("lint-routes")
        .arg(&list)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&theirs.stdout);
    assert_eq!(theirs.status.code(), Some(1), "{out}");
    assert!(out.starts_with("3 routes from"), "{out}");
    assert!(out.contains("ROUTE"), "{out}");
    for rule in ["lowercase", "no-verbs", "hyphens", "no-trailing-slash"] {
        assert!(out.contains(rule), "{rule}: {out}");
    }
    assert!(!out.contains("GET /api/users/{id} "), "{out}");
    std::fs::write(&list, "GET /a b\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .arg("lint-routes")
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("routes.txt: line 1"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `weblab serve app --host app1` on `dir`.
async fn serve_app(
    block: u8,
    dir: &std::path::Path,
) -> (std::process::Child, std::net::SocketAddr) {
    crate::support::serve(block, dir, "app", "app1").await
}

/// One HTTP/1.1 request on a new connection; the status and the body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_answered_201_survives_a_sigkill_of_the_app_server() {
    let dir = crate::support::data_dir(173);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut child, addr) = serve_app(173, &dir).await;
    let grant = format!(
        r#"{{"grant_type":"password","email":"alan@myapp.test","password":"{}"}}"#,
        weblab_app::DEMO_PASSWORD
    );
    let (status, tokens) = http(addr, "POST", "/api/tokens", "", &grant).await.unwrap();
    assert_eq!(status, 200, "{tokens}");
    let v: serde_json::Value = serde_json::from_str(&tokens).unwrap();
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        v["access_token"].as_str().unwrap()
    );

    // Four writers, each at most 500 posts or until the server is gone.
    let mut writers = Vec::new();
    for w in 0..4 {
        let auth = auth.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..500 {
                let title = format!("w{w}-{n}");
                let body = format!(r#"{{"title":"{title}","body":"x"}}"#);
                match http(addr, "POST", "/api/posts", &auth, &body).await {
                    Ok((201, _)) => acked.push(title),
                    Ok((s, b)) => panic!("{s} {b}"),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!acked.is_empty(), "no write finished before the kill");

    // Back up on the same files: every acknowledged post is there.
    let (mut child, addr) = serve_app(173, &dir).await;
    let mut stored = std::collections::HashSet::new();
    for page in 1.. {
        let (status, body) = http(
            addr,
            "GET",
            &format!("/api/users/2/posts?per_page=100&page={page}"),
            "",
            "",
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let posts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        if posts.is_empty() {
            break;
        }
        stored.extend(
            posts
                .iter()
                .map(|p| p["title"].as_str().unwrap().to_string()),
        );
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let lost: Vec<&String> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "{} acknowledged writes before SIGKILL, all present after restart ({} rows)",
        acked.len(),
        stored.len()
    );
}

#[test]
fn the_realtime_experiment_compares_polling_long_polling_and_sse() {
    let out = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args([
            "experiment",
            "realtime",
            "--duration",
            "3s",
            "--every",
            "300ms",
            "--poll",
            "1s",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| -> Vec<f64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        line[name.len()..]
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    // requests, bytes out, bytes in, got, mean, p50, max
    let (poll, long, sse) = (
        row("polling every 1000 ms"),
        row("long polling"),
        row("server-sent events"),
    );
    assert_eq!(sse[0], 1.0, "{text}");
    assert!(sse[3] >= 5.0 && long[3] >= 5.0, "{text}");
    // Polling waits for its next turn; the other two hear at once.
    assert!(poll[4] > long[4] && poll[4] > sse[4], "{text}");
    // One stream costs fewer bytes than a request per post.
    assert!(sse[2] < long[2], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_websocket_client_chats_and_speaks_stomp_through_the_load_balancer() {
    let have = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("WEBLAB_REQUIRE_INTEROP").is_none(),
            "python3 with the websockets package is needed"
        );
        return;
    }
    let w = start(174).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/assets/ws_client.py");
    let (lb, https, ca) = (ip(&w, "lb"), w.ports.https.to_string(), w.ca_path());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["30", "python3", script, &lb, &https])
            .arg(ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("chat: guest-"), "{text}");
    assert!(text.contains("chat close code: 1000"), "{text}");
    assert!(text.contains("stomp subprotocol: v12.stomp"), "{text}");
    assert!(text.contains("stomp: CONNECTED"), "{text}");
    assert!(text.contains("stomp: MESSAGE from python"), "{text}");
    assert!(text.contains("stomp: RECEIPT"), "{text}");
}

/// The `name="…" value="…"` pairs of an HTML form's hidden inputs, as
/// the consent page writes them.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.lines()
        .filter(|l| l.contains("type=\"hidden\""))
        .filter_map(|l| {
            let after = |key: &str| {
                let start = l.find(key)? + key.len();
                let end = l[start..].find('"')? + start;
                Some(l[start..end].to_string())
            };
            let unescape = |s: String| {
                s.replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            };
            Some((after("name=\"")?, unescape(after("value=\"")?)))
        })
        .collect()
}

/// `curl -d` arguments that send `fields` form-encoded.
fn form_args(fields: &[(String, String)]) -> Vec<String> {
    fields
        .iter()
        .flat_map(|(k, v)| ["--data-urlencode".to_string(), format!("{k}={v}")])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_signs_in_through_the_identity_provider_with_consent_and_pkce() {
    use weblab_trace::Event;
    if !installed("curl", "--version") {
        return;
    }
    let w = start(175).await;
    let https = w.ports.https;
    let url = |p: &str| format!("https://myapp.test:{https}{p}");
    let resolve_idp = format!("id.test:{https}:{}", ip(&w, "idp"));
    let jar = w.dir.join("app-cookies.txt").to_str().unwrap().to_string();
    let idp_jar = w.dir.join("idp-cookies.txt").to_str().unwrap().to_string();
    // How URLs name the port: not at all when it is 443.
    let port = if https == 443 {
        String::new()
    } else {
        format!(":{https}")
    };
    let w2 = &w.world;
    let idp = |args: &[&str]| {
        curl(
            w2,
            &[
                &["--resolve", &resolve_idp, "-b", &idp_jar, "-c", &idp_jar][..],
                args,
            ]
            .concat(),
        )
    };
    // The browser's walk: start at the app, consent at the provider, back
    // to the app's callback, then a page that needs the session.
    let walk = |email: &str, decision: &str| {
        let started = curl(
            w2,
            &[
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-b",
                &jar,
                "-c",
                &jar,
                &url("/login/oauth?next=/account"),
            ],
        );
        let to_idp = header(&started, "location").unwrap_or_default().to_string();
        let consent = idp(&[&to_idp]);
        let mut fields = hidden_fields(&consent);
        fields.push(("decision".into(), decision.into()));
        if !fields.iter().any(|(k, _)| k == "csrf") {
            fields.push(("email".into(), email.into()));
            fields.push(("password".into(), weblab_app::DEMO_PASSWORD.into()));
        }
        let args = form_args(&fields);
        let mut all: Vec<&str> = vec!["-D", "-", "-o", "/dev/null"];
        all.extend(args.iter().map(String::as_str));
        let authorize = format!("https://id.test:{https}/authorize");
        all.push(&authorize);
        let answered = idp(&all);
        let back = header(&answered, "location")
            .unwrap_or_default()
            .to_string();
        let callback = curl(w2, &["-D", "-", "-b", &jar, "-c", &jar, &back]);
        (started, to_idp, consent, answered, back, callback)
    };
    let (first, second, account, replay) = tokio::task::block_in_place(|| {
        let denied = walk("katherine@id.test", "deny");
        let allowed = walk("katherine@id.test", "allow");
        let account = curl(w2, &["-b", &jar, &url("/account")]);
        // The same callback again: its state was used (and its cookie
        // cleared), its code redeemed.
        let replay = curl(w2, &["-D", "-", "-o", "/dev/null", "-b", &jar, &allowed.4]);
        (denied, allowed, account, replay)
    });

    // Off to the provider with an S256 challenge and a state cookie.
    let (started, to_idp, consent, answered, back, callback) = &first;
    assert!(started.starts_with("HTTP/2 303"), "{started}");
    assert!(
        to_idp.starts_with(&format!("https://id.test{port}/authorize?")),
        "{to_idp}"
    );
    for part in [
        "response_type=code",
        "client_id=myapp",
        "code_challenge_method=S256",
        "scope=profile+email",
    ] {
        assert!(to_idp.contains(part), "{to_idp}");
    }
    let state_cookie = header(started, "set-cookie").unwrap();
    assert!(
        state_cookie.starts_with("oauth_state=") && state_cookie.contains("HttpOnly"),
        "{state_cookie}"
    );
    assert!(consent.contains("wants to know who you are"), "{consent}");
    assert!(consent.contains("your email address"), "{consent}");
    // Deny goes back with access_denied and the same state, and the app
    // says so with 403.
    assert!(answered.starts_with("HTTP/2 303"), "{answered}");
    assert!(
        back.contains("error=access_denied") && back.contains("state="),
        "{back}"
    );
    assert!(callback.starts_with("HTTP/2 403"), "{callback}");
    assert!(callback.contains("access_denied"), "{callback}");

    // Allow: a code, then the app's session.
    let (_, _, _, answered, back, callback) = &second;
    assert!(
        header(answered, "set-cookie")
            .unwrap()
            .starts_with("idp_sid="),
        "{answered}"
    );
    assert!(
        back.starts_with(&format!("https://myapp.test{port}/oauth/callback?code=")),
        "{back}"
    );
    assert!(callback.starts_with("HTTP/2 303"), "{callback}");
    assert_eq!(header(callback, "location"), Some("/account"));
    assert!(callback.contains("sid="), "{callback}");
    assert!(account.contains("Hello, Katherine Johnson"), "{account}");
    assert!(replay.starts_with("HTTP/2 400"), "{replay}");

    // The callback's trace: the app called the provider twice, and the
    // provider's spans hang under those calls.
    let spans = w.collector.snapshot();
    let calls: Vec<_> = spans
        .iter()
        .filter(|s| matches!(&s.event, Event::HttpCall { status: 200, .. }))
        .collect();
    let urls: Vec<String> = calls
        .iter()
        .map(|s| match &s.event {
            Event::HttpCall { method, url, .. } => format!("{method} {url}"),
            _ => unreachable!(),
        })
        .collect();
    assert!(
        urls.contains(&format!("POST https://id.test{port}/token")),
        "{urls:?}"
    );
    assert!(
        urls.contains(&format!("GET https://id.test{port}/userinfo")),
        "{urls:?}"
    );
    for call in calls {
        let served = spans
            .iter()
            .find(|s| s.host == "idp" && s.parent == Some(call.id) && s.trace == call.trace);
        assert!(
            matches!(
                served.map(|s| &s.event),
                Some(Event::HttpServe { status: 200, .. })
            ),
            "no provider span under {}",
            call.event
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_start_sign_ins_without_end_each_app_refuses_its_21st() {
    let w = crate::support::start(196).await;
    let ca = std::fs::read(w.dir.join("ca.pem")).unwrap();
    let lb = std::net::SocketAddr::new(w.addr("lb"), w.ports.https);
    let req = b"GET /login/oauth HTTP/1.1\r\nHost: myapp.test\r\nConnection: close\r\n\r\n";
    // Each application server counts its own starts, and the load
    // balancer alternates between the two: 20 each, then 429.
    let mut statuses = Vec::new();
    for _ in 0..42 {
        let tls = crate::support::tls_connect(lb, &ca, b"http/1.1")
            .await
            .unwrap();
        let r = crate::support::exchange(tls, req, std::time::Duration::from_secs(5)).await;
        statuses.push(r.split_whitespace().nth(1).unwrap_or("?").to_string());
    }
    assert!(statuses[..40].iter().all(|s| s == "303"), "{statuses:?}");
    assert_eq!(statuses[40..], ["429", "429"], "{statuses:?}");
}
