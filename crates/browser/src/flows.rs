//! Several requests as one thing a page does, in one trace: a walk that
//! follows redirects and lets its caller submit forms, and a request made
//! by a page of another origin, with CORS enforced (C40).

use http::Method;
use url::Url;
use weblab_trace::{Ctx, Event, Layer};

use crate::browser::{Browser, Destination, Fetched, Outgoing, header_value, lock};
use crate::error::BrowserError;

impl Browser {
    /// A walk through several pages in one trace, from `start` with the
    /// request `first`: redirects are followed
    /// (303, and 301/302 after a POST, become a GET; 307/308 repeat the
    /// request), and on any other answer `act` says what the person does
    /// next (submit a form: the URL and the request) or that the walk
    /// ends there. Each request is its own numbered request of the trace,
    /// from 0; at most `max` of them.
    pub async fn walk(
        &self,
        ctx: Ctx,
        (start, first): (&Url, Outgoing),
        max: u32,
        mut act: impl FnMut(&Fetched) -> Option<(Url, Outgoing)>,
    ) -> Result<Fetched, BrowserError> {
        let (mut url, mut out) = (start.clone(), first);
        for n in 0..max {
            let f = self.send(ctx, n, &url, Destination::Document, &out).await?;
            let location = header_value(&f.headers, "location");
            match (f.status, location) {
                (301 | 302 | 303 | 307 | 308, Some(to)) => {
                    url = f
                        .url
                        .join(&to)
                        .map_err(|e| BrowserError::http(format!("Location {to:?}: {e}")))?;
                    // RFC 9110 §15.4: 303 (and, as browsers do, 301/302
                    // after a POST) continue with a GET and no body.
                    let keep = matches!(f.status, 307 | 308)
                        || (out.method == Method::GET && f.status != 303);
                    if !keep {
                        out = Outgoing::default();
                    }
                    // The next hop comes from this one (SameSite).
                    out.initiator = Some(f.url.clone());
                }
                _ => match act(&f) {
                    Some((next, mut o)) => {
                        // A form or link of the page just loaded.
                        o.initiator.get_or_insert_with(|| f.url.clone());
                        (url, out) = (next, o);
                    }
                    None => return Ok(f),
                },
            }
        }
        Err(BrowserError::http(format!(
            "still going after {max} requests (a redirect loop?), last at {url}"
        )))
    }

    /// One request made by a page of `origin` (C40): same-origin requests
    /// go as they are; a simple cross-origin one goes with an Origin
    /// header and no cookies; any other is asked about first with a
    /// preflight (OPTIONS), and not sent at all if that does not allow
    /// it. An answer that does not name the origin is blocked: the page
    /// never sees it. Each decision is a step of the trace.
    pub async fn cors_send(
        &self,
        ctx: Ctx,
        url: &Url,
        origin: &str,
        out: &Outgoing,
        with_credentials: bool,
    ) -> Result<Fetched, BrowserError> {
        use crate::cors::{Mode, classify, preflight_allows};
        let mode = classify(origin, url, &out.method, &out.headers);
        let note =
            |n: u32, text: String| self.instant(ctx, n, Layer::Application, Event::Note { text });
        let blocked = BrowserError::cors;
        let mut n = 0;
        if mode == Mode::SameOrigin {
            note(
                0,
                format!("CORS (C40): {origin} asks its own origin; no CORS"),
            );
            return self.send(ctx, 0, url, Destination::Document, out).await;
        }
        let mut cross = out.clone();
        // Cookies go cross-origin only when the page asks (fetch's
        // credentials: "include", XHR's withCredentials).
        cross.credentials = with_credentials;
        cross.headers.push(("Origin".into(), origin.to_string()));
        if let Mode::Preflight { method, headers } = &mode {
            note(
                0,
                format!(
                    "CORS (C40): {method} from {origin}{} is not a simple request: preflight first",
                    if headers.is_empty() {
                        String::new()
                    } else {
                        format!(" with {}", headers.join(", "))
                    }
                ),
            );
            let now = std::time::Instant::now();
            let kept =
                lock(&self.preflights).covers(origin, url, with_credentials, method, headers, now);
            if let Some(hit) = kept {
                note(
                    0,
                    format!(
                        "CORS (C40): a preflight {} s ago allowed it and is kept for {} s (Access-Control-Max-Age): no preflight this time",
                        hit.age_secs, hit.max_age_secs
                    ),
                );
                return self
                    .cors_request(ctx, 0, url, origin, out, cross, with_credentials)
                    .await;
            }
            let mut ask = Outgoing {
                method: Method::OPTIONS,
                credentials: false,
                ..Outgoing::default()
            };
            ask.headers.push(("Origin".into(), origin.to_string()));
            ask.headers
                .push(("Access-Control-Request-Method".into(), method.to_string()));
            if !headers.is_empty() {
                ask.headers
                    .push(("Access-Control-Request-Headers".into(), headers.join(",")));
            }
            let answer = self.send(ctx, 0, url, Destination::Document, &ask).await?;
            if let Err(why) = preflight_allows(
                answer.status,
                &answer.headers,
                origin,
                method,
                headers,
                with_credentials,
            ) {
                note(
                    0,
                    format!(
                        "CORS (C40): the preflight does not allow it ({why}); the request is not sent"
                    ),
                );
                return Err(blocked(why));
            }
            let kept = lock(&self.preflights).store(
                origin,
                url,
                with_credentials,
                &answer.headers,
                std::time::Instant::now(),
            );
            note(
                0,
                format!("CORS (C40): the preflight allows it (kept {kept} s); now the request"),
            );
            n = 1;
        } else {
            note(
                0,
                format!(
                    "CORS (C40): a simple {} from {origin}: sent at once, {}",
                    out.method,
                    if with_credentials {
                        "with its cookies (credentials asked for)"
                    } else {
                        "without cookies"
                    }
                ),
            );
        }
        self.cors_request(ctx, n, url, origin, out, cross, with_credentials)
            .await
    }

    /// The cross-origin request itself, and whether the page may read
    /// its answer.
    #[allow(clippy::too_many_arguments)]
    async fn cors_request(
        &self,
        ctx: Ctx,
        n: u32,
        url: &Url,
        origin: &str,
        out: &Outgoing,
        cross: Outgoing,
        with_credentials: bool,
    ) -> Result<Fetched, BrowserError> {
        let note =
            |n: u32, text: String| self.instant(ctx, n, Layer::Application, Event::Note { text });
        let got = self
            .send(ctx, n, url, Destination::Document, &cross)
            .await?;
        match crate::cors::readable(&got.headers, origin, with_credentials) {
            Ok(()) => {
                note(
                    n,
                    format!("CORS (C40): the answer names {origin}: the page may read it"),
                );
                Ok(got)
            }
            Err(why) => {
                note(
                    n,
                    format!("CORS (C40): {why}: the browser keeps the answer from the page"),
                );
                Err(BrowserError::cors(format!(
                    "{} {} answered {}, but {why}",
                    got.url, out.method, got.status
                )))
            }
        }
    }
}
