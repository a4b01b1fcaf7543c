//! After the answer: Strict-Transport-Security kept, cookies stored,
//! the body decoded and HTML scanned for subresources.

use super::exchange::Answer;
use super::*;

impl Browser {
    /// Notes a Strict-Transport-Security header and keeps the store.
    pub(super) fn note_hsts(&self, scheme: &str, host: &str, value: &str) {
        let mut store = lock(&self.hsts);
        let noted = store.note(scheme, host, value, unix_secs());
        // Written when the rule is new or gone, not each time an answer
        // renews it (every answer of an HSTS site carries the header).
        let changed = matches!(
            noted,
            crate::hsts::Noted::Kept { new: true, .. } | crate::hsts::Noted::Forgotten(_)
        );
        if changed && let Some(path) = &self.cfg.hsts_file {
            // Best effort: a store that cannot be written lasts this run.
            if let Ok(bytes) = serde_json::to_vec(&*store) {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
    }

    /// What the answer leaves behind: the HSTS rule (C33), the cookies it
    /// set (C34), the body decoded and, for a page, its subresources.
    pub(super) fn after(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
        answer: Answer,
    ) -> Result<Fetched, BrowserError> {
        let Answer { parts, body } = answer;
        let status = parts.status.as_u16();
        // C33: a host that asks, over HTTPS, to be reached that way only.
        if let Some(v) = parts.headers.get(header::STRICT_TRANSPORT_SECURITY)
            && let (Ok(v), Some(host)) = (v.to_str(), url.host_str())
        {
            self.note_hsts(url.scheme(), host, v);
        }
        // C34: what the server asked the jar to keep.
        if out.credentials {
            let mut jar = lock(&self.jar);
            let now = unix_secs();
            for v in parts.headers.get_all(header::SET_COOKIE) {
                if let Ok(v) = v.to_str() {
                    jar.store(url, v, now);
                }
            }
        }
        let header_str = |h: header::HeaderName| {
            parts
                .headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // Client-side processing: decode, then scan HTML.
        let body = match header_str(header::CONTENT_ENCODING) {
            Some(enc) if !enc.eq_ignore_ascii_case("identity") => {
                let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
                let decoded = decode(&enc, &body);
                self.rec.end(
                    span,
                    Event::Decoded {
                        encoding: enc,
                        wire_bytes: body.len() as u64,
                        decoded_bytes: decoded.as_ref().map_or(0, |d| d.len() as u64),
                    },
                );
                Bytes::from(decoded?)
            }
            _ => body,
        };
        let is_html = header_str(header::CONTENT_TYPE).is_some_and(|t| t.starts_with("text/html"));
        let subs = if dest == Destination::Document && is_html && (200..300).contains(&status) {
            let span = self.rec.begin(ctx, Layer::Application).request(Some(n));
            let subs = subresources(&body, url);
            self.rec.end(
                span,
                Event::HtmlParsed {
                    subresources: subs.iter().map(|(_, u)| u.path().to_string()).collect(),
                },
            );
            subs
        } else {
            Vec::new()
        };
        Ok(Fetched {
            request: n,
            url: url.clone(),
            status,
            version: parts.version,
            headers: parts.headers,
            body,
            subresources: subs,
        })
    }
}
