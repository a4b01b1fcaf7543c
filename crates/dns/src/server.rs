//! The authoritative server on real sockets: an [`Authority`] behind the
//! UDP/TCP loop, recording one span per query.

use std::sync::Arc;

use weblab_trace::{Correlation, Ctx, Event, Layer, Recorder};

use crate::authority::Authority;
use crate::net::{Handler, Peer};

/// An authoritative name server (root, TLD or a domain's own).
pub struct AuthoritativeServer {
    authority: Authority,
    role: String,
    rec: Recorder,
}

impl AuthoritativeServer {
    /// `role` names the server in traces, e.g. `root server`.
    pub fn new(authority: Authority, role: &str, rec: Recorder) -> Self {
        AuthoritativeServer {
            authority,
            role: role.into(),
            rec,
        }
    }
}

impl AuthoritativeServer {
    /// Answers one query, recording its span. Nothing here waits.
    fn answer(&self, bytes: &[u8], peer: Peer) -> Option<Vec<u8>> {
        if !self.rec.keeps_server_spans() {
            // Nobody keeps the span: do not build it.
            return self.authority.reply(bytes, peer.transport);
        }
        let span = self.rec.begin(Ctx::new_root(), Layer::Application);
        let served = self.authority.serve(bytes, peer.transport);
        let span = span.linked_to(Correlation::Dns {
            from: peer.remote,
            to: peer.local,
            id: served.id,
        });
        if let Some(text) = served.decision {
            let step = self.rec.begin(span.ctx(), Layer::Application);
            self.rec.end(step, Event::Note { text });
        }
        self.rec.end(
            span,
            Event::DnsServe {
                role: self.role.clone(),
                name: served.name,
                qtype: served.qtype,
                id: served.id,
                transport: peer.transport.to_string(),
                outcome: served.outcome,
            },
        );
        served.reply
    }
}

impl Handler for AuthoritativeServer {
    async fn handle(self: Arc<Self>, bytes: Vec<u8>, peer: Peer) -> Option<Vec<u8>> {
        self.answer(&bytes, peer)
    }

    fn answer_now(&self, bytes: &[u8], peer: Peer) -> Option<Option<Vec<u8>>> {
        Some(self.answer(bytes, peer))
    }
}
