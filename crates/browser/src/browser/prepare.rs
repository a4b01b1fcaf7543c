//! Before any byte goes out: the HSTS upgrade, the cookies that apply,
//! and the request head.

use super::*;

impl Browser {
    /// Where a request comes from, for the jar's SameSite rules.
    pub(super) fn cookie_context(dest: Destination, out: &Outgoing) -> crate::cookies::Context {
        crate::cookies::Context {
            initiator: out.initiator.clone(),
            top_level: matches!(dest, Destination::Document),
            safe_method: matches!(
                out.method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
        }
    }

    /// The request headers a stored answer's Vary may name, as this
    /// request will carry them.
    pub(super) fn vary_view(
        &self,
        url: &Url,
        dest: Destination,
        out: &Outgoing,
    ) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        let mut add = |k: &str, v: &str| {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        };
        add("user-agent", &self.cfg.user_agent);
        add("accept", dest.accept());
        add("accept-encoding", "gzip, deflate, br");
        if out.credentials
            && let Some(c) =
                lock(&self.jar).header(url, unix_secs(), &Self::cookie_context(dest, out))
        {
            add("cookie", &c);
        }
        for (k, v) in &out.headers {
            add(k, v);
        }
        h
    }

    /// The https:// URL to use instead of `url` when its host is a known
    /// HSTS host (RFC 6797 §8.3: port 80 becomes 443), recorded as a step.
    pub(super) fn hsts_upgrade(&self, ctx: Ctx, n: u32, url: &Url) -> Option<Url> {
        if url.scheme() != "http" {
            return None;
        }
        let why = lock(&self.hsts).must_upgrade(url.host_str()?, unix_secs())?;
        let mut to = url.clone();
        to.set_scheme("https").ok()?;
        if url.port() == Some(80) {
            to.set_port(None).ok()?;
        }
        self.instant(
            ctx,
            n,
            Layer::Application,
            Event::Note {
                text: format!(
                    "HSTS (C33): {url} becomes {to} before any packet leaves: {why}; no plain request for a man in the middle to strip"
                ),
            },
        );
        Some(to)
    }

    /// C01 and C33: the URL to ask (a known HSTS host upgraded to https)
    /// taken apart, as a step of the trace.
    pub(super) fn target(&self, ctx: Ctx, n: u32, url: &Url) -> Result<Target, BrowserError> {
        let url = self
            .hsts_upgrade(ctx, n, url)
            .unwrap_or_else(|| url.clone());
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(BrowserError::url(format!("unsupported scheme {scheme:?}")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| BrowserError::url(format!("{url} has no host")))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        self.instant(
            ctx,
            n,
            Layer::Application,
            Event::UrlParsed {
                scheme: scheme.clone(),
                host: host.clone(),
                port,
                default_port: url.port().is_none(),
                path: url.path().into(),
                query: url.query().map(str::to_string),
                fragment: url.fragment().map(str::to_string),
            },
        );
        Ok(Target {
            origin: (scheme, host, port),
            url,
        })
    }

    /// C02 and C34: the request for `target` on a connection speaking
    /// `version`: request line or pseudo-headers, the fields every request
    /// carries, the jar's cookies, then the caller's own fields.
    pub(super) fn request(
        &self,
        target: &Target,
        h2: bool,
        dest: Destination,
        out: &Outgoing,
    ) -> Prepared {
        let url = &target.url;
        let (scheme, host, _) = &target.origin;
        // The fragment is never part of the request.
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut fields = vec![
            ("User-Agent".to_string(), self.cfg.user_agent.clone()),
            ("Accept".into(), dest.accept().to_string()),
            ("Accept-Language".into(), "en-US,en;q=0.9,ko;q=0.8".into()),
            ("Accept-Encoding".into(), "gzip, deflate, br".into()),
        ];
        if h2 {
            fields.push(("Priority".into(), dest.priority().into()));
        } else if !self.http10 {
            fields.push(("Connection".into(), "keep-alive".into()));
        }
        if self.no_cache {
            // As DevTools' "Disable cache": stores are asked for a fresh copy.
            fields.push(("Cache-Control".into(), "no-cache".into()));
            fields.push(("Pragma".into(), "no-cache".into()));
        }
        if let Some(c) = lock(&self.jar)
            .header(url, unix_secs(), &Self::cookie_context(dest, out))
            .filter(|_| out.credentials)
        {
            fields.push(("Cookie".into(), c));
        }
        fields.extend(out.headers.iter().cloned());
        Prepared {
            method: out.method.clone(),
            scheme: scheme.clone(),
            authority,
            path,
            h2,
            fields,
            body: out.body.clone(),
        }
    }
}

/// Where a request goes, after any HSTS upgrade.
pub(super) struct Target {
    pub(super) url: Url,
    pub(super) origin: Origin,
}

/// A request ready for a connection; the trace context (`traceparent`)
/// is added when it is sent.
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) scheme: String,
    pub(super) authority: String,
    /// Path and query.
    pub(super) path: String,
    pub(super) h2: bool,
    /// Header fields in the order they are sent.
    pub(super) fields: Vec<(String, String)>,
    pub(super) body: Bytes,
}
