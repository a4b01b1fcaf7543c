//! `weblab serve ROLE`: one role of the world alone, as its own process.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::data_dir;

#[tokio::test]
async fn the_authoritative_server_runs_alone_and_answers() {
    let dir = data_dir(126);
    let mut child = Command::new(env!("CARGO_BIN_EXE_weblab"))
        .args(["--block", "126", "--data"])
        .arg(&dir)
        .args(["serve", "dns", "--host", "auth"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The port depends on privileges: read what the server printed.
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .unwrap()
        .unwrap();
    let addr: SocketAddr = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
        .parse()
        .unwrap();
    assert_eq!(addr.ip().to_string(), "127.126.2.3");
    let q = weblab_dns::net::build_query(
        &Name::from_ascii("myapp.test.").unwrap(),
        RecordType::A,
        false,
    );
    let ex = weblab_dns::net::exchange_udp(
        "127.0.0.1".parse().unwrap(),
        addr,
        &q,
        Duration::from_secs(2),
    )
    .await;
    // Stop the process we started, by its PID, whatever the outcome.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let m = ex.unwrap().response;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        m.answers[0].data,
        RData::A(hickory_proto::rr::rdata::A::new(127, 126, 3, 1))
    );
}
