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
