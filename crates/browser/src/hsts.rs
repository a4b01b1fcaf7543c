//! The browser's HSTS store (RFC 6797, C33): hosts that said, over HTTPS,
//! "only ever reach me over HTTPS". A later `http://` URL to such a host
//! is rewritten to `https://` before any packet leaves, so a
//! man in the middle never sees a plain request to strip. Pure: time comes
//! in as Unix seconds; the browser keeps the store in a file.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Hosts remembered at most; the soonest to expire go first.
const MAX_HOSTS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    expires: i64,
    include_subdomains: bool,
}

/// Known HSTS hosts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hsts {
    hosts: HashMap<String, Entry>,
}

/// What a Strict-Transport-Security header did to the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Noted {
    /// Stored; `new` when the store says something it did not before
    /// (a host not known, or includeSubDomains changed), rather than the
    /// same rule with its time renewed.
    Kept {
        host: String,
        max_age: i64,
        new: bool,
    },
    Forgotten(String),
    Ignored(String),
}

/// The max-age and includeSubDomains of a header value (RFC 6797 §6.1):
/// directives separated by `;`, names case-insensitive, max-age required
/// and given once.
fn parse(value: &str) -> Result<(i64, bool), String> {
    let (mut max_age, mut subdomains) = (None, false);
    for d in value.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let (name, v) = d
            .split_once('=')
            .map_or((d, None), |(n, v)| (n.trim(), Some(v.trim())));
        if name.eq_ignore_ascii_case("max-age") {
            if max_age.is_some() {
                return Err("max-age given twice".into());
            }
            let v = v.ok_or("max-age without a value")?.trim_matches('"');
            max_age = Some(
                v.parse::<i64>()
                    .map_err(|_| format!("max-age {v:?} is not a number"))?,
            );
        } else if name.eq_ignore_ascii_case("includeSubDomains") {
            subdomains = true;
        }
    }
    Ok((max_age.ok_or("no max-age")?, subdomains))
}

impl Hsts {
    /// Takes note of a Strict-Transport-Security `value` received from
    /// `host` over `scheme` at `now`. Over plain HTTP it is ignored (§8.1:
    /// an attacker could have sent it).
    pub fn note(&mut self, scheme: &str, host: &str, value: &str, now: i64) -> Noted {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if scheme != "https" {
            return Noted::Ignored(format!("{host}: HSTS over {scheme} is not believed"));
        }
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Noted::Ignored(format!("{host}: HSTS is for host names, not addresses"));
        }
        let (max_age, include_subdomains) = match parse(value) {
            Ok(v) => v,
            Err(e) => return Noted::Ignored(format!("{host}: {e}")),
        };
        if max_age <= 0 {
            self.hosts.remove(&host);
            return Noted::Forgotten(host);
        }
        let before = self.hosts.insert(
            host.clone(),
            Entry {
                expires: now.saturating_add(max_age),
                include_subdomains,
            },
        );
        let new =
            before.is_none_or(|e| e.expires <= now || e.include_subdomains != include_subdomains);
        while self.hosts.len() > MAX_HOSTS {
            let soonest = self
                .hosts
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(h, _)| h.clone());
            if let Some(h) = soonest {
                self.hosts.remove(&h);
            }
        }
        Noted::Kept { host, max_age, new }
    }

    /// Why `host` must be reached over HTTPS at `now`, if it must (§8.2:
    /// the host itself, or a superdomain that included its subdomains).
    pub fn must_upgrade(&self, host: &str, now: i64) -> Option<String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let live = |h: &str| self.hosts.get(h).filter(|e| e.expires > now);
        if let Some(e) = live(&host) {
            return Some(format!(
                "{host} is a known HSTS host for {} s more",
                e.expires - now
            ));
        }
        let mut rest = host.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(e) = live(parent).filter(|e| e.include_subdomains) {
                return Some(format!(
                    "{parent} is a known HSTS host with includeSubDomains, for {} s more",
                    e.expires - now
                ));
            }
            rest = parent;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_over_https_makes_later_plain_urls_upgrade_until_it_expires() {
        let mut h = Hsts::default();
        let kept = h.note("https", "MyApp.test", "max-age=31536000", 100);
        assert_eq!(
            kept,
            Noted::Kept {
                host: "myapp.test".into(),
                max_age: 31_536_000,
                new: true
            }
        );
        // The same rule again only renews it.
        let again = h.note("https", "myapp.test", "max-age=31536000", 100);
        assert!(matches!(again, Noted::Kept { new: false, .. }), "{again:?}");
        assert!(h.must_upgrade("myapp.test", 200).is_some());
        assert!(
            h.must_upgrade("www.myapp.test", 200).is_none(),
            "no includeSubDomains"
        );
        assert!(
            h.must_upgrade("myapp.test", 100 + 31_536_000).is_none(),
            "expired"
        );
    }

    #[test]
    fn plain_http_addresses_and_bad_values_are_not_believed() {
        let mut h = Hsts::default();
        assert!(matches!(
            h.note("http", "myapp.test", "max-age=60", 0),
            Noted::Ignored(_)
        ));
        assert!(matches!(
            h.note("https", "127.0.0.1", "max-age=60", 0),
            Noted::Ignored(_)
        ));
        assert!(matches!(
            h.note("https", "a.test", "includeSubDomains", 0),
            Noted::Ignored(_)
        ));
        assert!(matches!(
            h.note("https", "a.test", "max-age=1; max-age=2", 0),
            Noted::Ignored(_)
        ));
        assert!(matches!(
            h.note("https", "a.test", "max-age=soon", 0),
            Noted::Ignored(_)
        ));
        assert!(h.is_empty());
    }

    #[test]
    fn subdomains_follow_a_parent_that_includes_them_and_max_age_zero_forgets() {
        let mut h = Hsts::default();
        h.note(
            "https",
            "myapp.test",
            "max-age=\"60\"; includeSubDomains",
            0,
        );
        assert!(h.must_upgrade("api.v2.myapp.test", 1).is_some());
        assert!(h.must_upgrade("othermyapp.test", 1).is_none());
        assert_eq!(
            h.note("https", "myapp.test", "max-age=0", 2),
            Noted::Forgotten("myapp.test".into())
        );
        assert!(h.must_upgrade("myapp.test", 3).is_none());
    }

    #[test]
    fn the_store_keeps_at_most_its_bound() {
        let mut h = Hsts::default();
        for i in 0..(MAX_HOSTS + 5) {
            h.note(
                "https",
                &format!("h{i}.test"),
                &format!("max-age={}", 1000 + i),
                0,
            );
        }
        assert_eq!(h.len(), MAX_HOSTS);
        assert!(
            h.must_upgrade("h0.test", 1).is_none(),
            "the soonest to expire went first"
        );
    }
}
