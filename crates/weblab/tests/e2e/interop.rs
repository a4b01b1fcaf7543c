//! Real clients against the world: `dig` against every DNS server, `curl`
//! through the load balancer trusting the generated CA.

use std::process::Command;

use crate::support::{ip, start, tool};

fn dig(server: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .args(["-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs");
    assert!(
        out.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_the_right_answer_from_the_resolver_and_every_server() {
    if !tool("dig") {
        return;
    }
    let w = start(110).await;
    let port = w.ports.dns;
    let lb = ip(&w, "lb");
    let (resolver, root, tld, auth) = (
        ip(&w, "resolver"),
        ip(&w, "root"),
        ip(&w, "tld"),
        ip(&w, "auth"),
    );
    let r = tokio::task::spawn_blocking(move || {
        let via_resolver = dig(&resolver, port, &["myapp.test", "A", "+short"]);
        let from_root = dig(&root, port, &["myapp.test", "A", "+norecurse"]);
        let from_tld = dig(&tld, port, &["myapp.test", "A", "+norecurse"]);
        let from_auth = dig(&auth, port, &["myapp.test", "A", "+short", "+norecurse"]);
        let nx = dig(&resolver, port, &["nope.myapp.test", "A"]);
        let big_tcp = dig(&auth, port, &["big.myapp.test", "A", "+tcp", "+short"]);
        let big_udp = dig(
            &auth,
            port,
            &["big.myapp.test", "A", "+ignore", "+norecurse"],
        );
        (
            via_resolver,
            from_root,
            from_tld,
            from_auth,
            nx,
            big_tcp,
            big_udp,
        )
    })
    .await
    .unwrap();
    let (via_resolver, from_root, from_tld, from_auth, nx, big_tcp, big_udp) = r;
    assert_eq!(via_resolver.trim(), lb);
    assert!(
        from_root.contains("AUTHORITY SECTION") && from_root.contains("ns1.test."),
        "{from_root}"
    );
    assert!(from_tld.contains("ns1.myapp.test."), "{from_tld}");
    assert_eq!(from_auth.trim(), lb);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert_eq!(big_tcp.lines().count(), 90);
    assert!(
        big_udp.contains(" tc"),
        "UDP answer not truncated: {big_udp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_login_through_the_load_balancer_over_tls() {
    if !tool("curl") {
        return;
    }
    let w = start(111).await;
    let (lb, https, http) = (ip(&w, "lb"), w.ports.https, w.ports.http);
    let ca = w.ca_path();
    let (ok, redirect) = tokio::task::spawn_blocking(move || {
        let ok = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code} %{http_version}",
                "--cacert",
            ])
            .arg(&ca)
            .args(["--resolve", &format!("myapp.test:{https}:{lb}")])
            .arg(format!("https://myapp.test:{https}/login"))
            .output()
            .unwrap();
        let redirect = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{redirect_url}",
            ])
            .args(["--resolve", &format!("myapp.test:{http}:{lb}")])
            .arg(format!("http://myapp.test:{http}/login"))
            .output()
            .unwrap();
        (ok, redirect)
    })
    .await
    .unwrap();
    let body = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(body.contains("Sign in"), "{body}");
    assert!(body.trim_end().ends_with("200 2"), "{body}");
    let redirect = String::from_utf8_lossy(&redirect.stdout);
    assert!(redirect.starts_with("301 https://myapp.test"), "{redirect}");
}

/// RFC 7873 / RFC 9018: `dig +cookie` gets a server cookie back from the
/// resolver and an authoritative server, over UDP and TCP, and dig checks
/// it ("good"); presenting it again is answered, with a cookie again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_dns_cookies_from_the_resolver_and_the_authoritative_server() {
    if !tool("dig") {
        return;
    }
    let w = start(119).await;
    let port = w.ports.dns;
    let (resolver, auth) = (ip(&w, "resolver"), ip(&w, "auth"));
    let out = tokio::task::spawn_blocking(move || {
        let first = dig(&auth, port, &["myapp.test", "A", "+norecurse", "+cookie"]);
        let cookie = first
            .lines()
            .find_map(|l| l.strip_prefix("; COOKIE: "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        let again = dig(
            &auth,
            port,
            &[
                "myapp.test",
                "A",
                "+norecurse",
                &format!("+cookie={cookie}"),
            ],
        );
        let resolver_udp = dig(&resolver, port, &["myapp.test", "A", "+cookie"]);
        let resolver_tcp = dig(&resolver, port, &["myapp.test", "A", "+cookie", "+tcp"]);
        let none = dig(&auth, port, &["myapp.test", "A", "+norecurse", "+nocookie"]);
        (first, cookie, again, resolver_udp, resolver_tcp, none)
    })
    .await
    .unwrap();
    let (first, cookie, again, resolver_udp, resolver_tcp, none) = out;
    // 8 bytes of the client's and 16 of ours, in hex.
    assert_eq!(cookie.len(), 48, "{first}");
    assert!(first.contains("(good)"), "{first}");
    for reply in [&again, &resolver_udp, &resolver_tcp] {
        assert!(
            reply.contains("; COOKIE: ") && reply.contains("(good)"),
            "{reply}"
        );
        assert!(reply.contains("status: NOERROR"), "{reply}");
    }
    assert!(!none.contains("COOKIE"), "{none}");
}
