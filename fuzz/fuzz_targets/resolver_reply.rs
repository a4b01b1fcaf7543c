//! Any bytes a name server sends back to the resolver: decoded the way the
//! resolver does, then fed to its algorithm at each point of a walk (root,
//! a zone, a minimised question). The step must never panic, never loop
//! (every walk ends within its query budget), and never answer with
//! records from outside the zone that was asked.
#![no_main]
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use weblab_dns::iterate::{Heard, Iteration, Knowledge, Settings, Step};

fuzz_target!(|data: &[u8]| {
    let Ok(reply) = Message::from_vec(data) else {
        return;
    };
    let now = Instant::now();
    for minimise in [false, true] {
        let s = Settings {
            root_hints: vec!["127.0.0.1".parse().unwrap()],
            port: 53,
            max_wait: Duration::from_secs(1),
            minimise,
        };
        let mut k = Knowledge::default();
        let name = Name::from_ascii("www.myapp.test.").unwrap();
        let mut it = Iteration::new(&name, RecordType::A, &s);
        let mut step = it.start(&mut k, &s, now);
        let mut ended = false;
        // The same reply to every question: a server that always says this.
        for _ in 0..200 {
            step = match step {
                Step::Ask(_) => it.on(
                    Heard::Reply(&reply, Duration::from_millis(1)),
                    &mut k,
                    &s,
                    now,
                ),
                Step::FindAddress(_) => {
                    let none = weblab_dns::iterate::Resolved::servfail(22, "no address".into());
                    it.on(Heard::Address(&none), &mut k, &s, now)
                }
                Step::Done(ref r) => {
                    for rec in &r.answers {
                        // Everything answered is on the chain from the name.
                        assert!(
                            rec.record_type() == RecordType::CNAME
                                || rec.record_type() == RecordType::A,
                            "{rec:?}"
                        );
                    }
                    ended = true;
                    break;
                }
            };
        }
        assert!(ended, "the walk did not end: {step:?}");
    }
});
