//! `weblab serve ROLE`: one role of the world alone, as its own process.

use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::support::data_dir;

#[tokio::test]
async fn the_authoritative_server_runs_alone_and_answers() {
    let dir = data_dir(126);
    let (mut child, addr) = crate::support::serve(126, &dir, "dns", "auth").await;
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
