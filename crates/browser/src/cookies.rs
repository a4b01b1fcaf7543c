//! The browser's cookie jar (C34), by RFC 6265 §5.3 (storing) and §5.4
//! (sending): host-only and Domain cookies, default and given paths,
//! Secure only over https, Max-Age before Expires, replacement by (name,
//! domain, path), and bounded storage (§6.1's minimums: 50 a domain,
//! 3000 in all), and SameSite (RFC 6265bis §5.6.7): Strict cookies only on
//! same-site requests, Lax ones also on cross-site top-level navigations
//! with a safe method, None ones everywhere (and only with Secure); no
//! attribute counts as Lax, as Chrome does. A "site" is the host's last
//! two labels (no public-suffix list yet). Time comes in as Unix seconds.

use cookie::Cookie;
use url::Url;

/// Cookies kept per domain at most.
const PER_DOMAIN: usize = 50;
/// Cookies kept at most.
const TOTAL: usize = 3000;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    name: String,
    value: String,
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
    /// Unix seconds; `None` for a session cookie.
    expires: Option<i64>,
    /// Order of creation (older first when paths tie, §5.4 step 2).
    created: u64,
    same_site: SameSite,
}

/// A cookie's SameSite rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// Where a request comes from, for SameSite.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The page (or previous redirect hop) that made the request; `None`
    /// for one the person typed.
    pub initiator: Option<Url>,
    /// A top-level navigation (the page itself, not a subresource).
    pub top_level: bool,
    /// GET, HEAD, OPTIONS or TRACE (RFC 9110 §9.2.1).
    pub safe_method: bool,
}

/// The site of a host: its last two labels (`id.test`, `myapp.test`).
fn site(host: &str) -> String {
    let labels: Vec<&str> = host.trim_end_matches('.').rsplit('.').take(2).collect();
    labels.into_iter().rev().collect::<Vec<_>>().join(".")
}

impl Context {
    /// Whether a request to `url` from here is same-site.
    pub fn same_site(&self, url: &Url) -> bool {
        match (&self.initiator, url.host_str()) {
            (None, _) => true,
            (Some(from), Some(to)) => {
                from.host_str().map(|h| site(&h.to_ascii_lowercase()))
                    == Some(site(&to.to_ascii_lowercase()))
                    && from.scheme() == url.scheme()
            }
            (Some(_), None) => false,
        }
    }

    fn sends(&self, rule: SameSite, url: &Url) -> bool {
        match rule {
            SameSite::None => true,
            SameSite::Strict => self.same_site(url),
            SameSite::Lax => self.same_site(url) || (self.top_level && self.safe_method),
        }
    }
}

/// What one Set-Cookie did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Kept(String),
    Removed(String),
    Ignored(String),
}

/// A jar of cookies.
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<Stored>,
    counter: u64,
}

/// §5.1.3: `host` domain-matches `domain`.
fn domain_match(host: &str, domain: &str) -> bool {
    host == domain
        || (host.ends_with(domain)
            && host[..host.len() - domain.len()].ends_with('.')
            && host.parse::<std::net::IpAddr>().is_err())
}

/// §5.1.4: the default path of a request URL.
fn default_path(url: &Url) -> String {
    let p = url.path();
    match p.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => p[..i].into(),
    }
}

/// §5.1.4: `request` path-matches `cookie`.
fn path_match(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

impl Jar {
    /// Stores what the `Set-Cookie` value `header` says, received for
    /// `url` at `now`; says what became of it.
    pub fn store(&mut self, url: &Url, header: &str, now: i64) -> Verdict {
        let Ok(c) = Cookie::parse(header.to_string()) else {
            return Verdict::Ignored(format!("not a cookie: {header:?}"));
        };
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return Verdict::Ignored("the URL has no host".into());
        };
        let name = c.name().to_string();
        let (domain, host_only) = match c.domain() {
            Some(d) if !d.is_empty() => {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                if !domain_match(&host, &d) {
                    return Verdict::Ignored(format!("{name}: Domain={d} does not cover {host}"));
                }
                (d, false)
            }
            _ => (host, true),
        };
        let path = match c.path() {
            Some(p) if p.starts_with('/') => p.to_string(),
            _ => default_path(url),
        };
        let secure = c.secure().unwrap_or(false);
        if secure && url.scheme() != "https" {
            return Verdict::Ignored(format!("{name}: Secure, but sent over {}", url.scheme()));
        }
        let same_site = match c.same_site() {
            Some(cookie::SameSite::Strict) => SameSite::Strict,
            Some(cookie::SameSite::None) if !secure => {
                return Verdict::Ignored(format!("{name}: SameSite=None without Secure"));
            }
            Some(cookie::SameSite::None) => SameSite::None,
            _ => SameSite::Lax,
        };
        // §5.2.2: Max-Age wins over Expires.
        let expires = match (c.max_age(), c.expires_datetime()) {
            (Some(age), _) => Some(now.saturating_add(age.whole_seconds())),
            (None, Some(at)) => Some(at.unix_timestamp()),
            (None, None) => None,
        };
        let key = |s: &Stored| s.name == name && s.domain == domain && s.path == path;
        let old = self.cookies.iter().position(key);
        if expires.is_some_and(|e| e <= now) {
            return match old {
                Some(i) => {
                    self.cookies.remove(i);
                    Verdict::Removed(name)
                }
                None => Verdict::Ignored(format!("{name}: already expired")),
            };
        }
        // §5.3 step 11.3: a replaced cookie keeps its creation time.
        let created = match old {
            Some(i) => self.cookies.remove(i).created,
            None => {
                self.counter += 1;
                self.counter
            }
        };
        self.cookies.push(Stored {
            name: name.clone(),
            value: c.value().to_string(),
            domain: domain.clone(),
            host_only,
            path,
            secure,
            expires,
            created,
            same_site,
        });
        self.evict(now, &domain);
        Verdict::Kept(name)
    }

    /// After a cookie of `domain` was stored: drops expired cookies, then
    /// the oldest of that domain over its share, then the oldest overall.
    fn evict(&mut self, now: i64, domain: &str) {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        while self.cookies.iter().filter(|c| c.domain == domain).count() > PER_DOMAIN {
            if let Some(i) = self.oldest(|c| c.domain == domain) {
                self.cookies.remove(i);
            }
        }
        while self.cookies.len() > TOTAL {
            if let Some(i) = self.oldest(|_| true) {
                self.cookies.remove(i);
            }
        }
    }

    fn oldest(&self, which: impl Fn(&Stored) -> bool) -> Option<usize> {
        self.cookies
            .iter()
            .enumerate()
            .filter(|(_, c)| which(c))
            .min_by_key(|(_, c)| c.created)
            .map(|(i, _)| i)
    }

    /// The `Cookie` header for a request to `url` at `now` (§5.4), if any
    /// cookie applies: longer paths first, then older first. `from` says
    /// where the request comes from (SameSite).
    pub fn header(&self, url: &Url, now: i64, from: &Context) -> Option<String> {
        let host = url.host_str()?.to_ascii_lowercase();
        let mut sent: Vec<&Stored> = self
            .cookies
            .iter()
            .filter(|c| {
                let domain_ok = if c.host_only {
                    host == c.domain
                } else {
                    domain_match(&host, &c.domain)
                };
                domain_ok
                    && path_match(url.path(), &c.path)
                    && (!c.secure || url.scheme() == "https")
                    && c.expires.is_none_or(|e| e > now)
                    && from.sends(c.same_site, url)
            })
            .collect();
        if sent.is_empty() {
            return None;
        }
        sent.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(a.created.cmp(&b.created))
        });
        Some(
            sent.iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// The jar in the Netscape cookie-file format that curl reads with
    /// `-b FILE` and writes with `-c FILE`: a line per cookie, seven
    /// tab-separated fields (domain, subdomains too, path, secure,
    /// expiry in Unix seconds or 0 for a session cookie, name, value).
    /// The format has no SameSite; expired cookies are left out.
    pub fn to_netscape(&self, now: i64) -> String {
        let mut out = String::from(
            "# Netscape HTTP Cookie File\n# Written by weblab; curl reads it with -b and writes it with -c.\n\n",
        );
        for c in self
            .cookies
            .iter()
            .filter(|c| c.expires.is_none_or(|e| e > now))
        {
            let domain = match c.host_only {
                true => c.domain.clone(),
                false => format!(".{}", c.domain),
            };
            let flag = |b: bool| if b { "TRUE" } else { "FALSE" };
            out.push_str(&format!(
                "{domain}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                flag(!c.host_only),
                c.path,
                flag(c.secure),
                c.expires.unwrap_or(0),
                c.name,
                c.value
            ));
        }
        out
    }

    /// Reads a Netscape cookie file (curl's `-c` output, or `to_netscape`)
    /// into the jar as of `now`: expired cookies are skipped, the jar's
    /// bounds hold, SameSite is Lax (the format cannot say). A malformed
    /// line is an error naming its number.
    pub fn load_netscape(&mut self, text: &str, now: i64) -> Result<usize, String> {
        let mut loaded = 0;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            // curl marks HttpOnly cookies by prefixing the domain.
            let line = line.strip_prefix("#HttpOnly_").unwrap_or(line);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
            let [domain, sub, path, secure, expires, name, value] = f[..] else {
                return Err(format!(
                    "line {n}: {} tab-separated fields, not 7 (domain, subdomains, path, secure, expires, name, value)",
                    f.len()
                ));
            };
            let flag = |v: &str, what: &str| match v {
                "TRUE" => Ok(true),
                "FALSE" => Ok(false),
                other => Err(format!("line {n}: {what} is {other:?}, not TRUE or FALSE")),
            };
            let (sub, secure) = (flag(sub, "the subdomains field")?, flag(secure, "secure")?);
            let expires: i64 = expires
                .parse()
                .map_err(|_| format!("line {n}: expiry {expires:?} is not a number"))?;
            let domain = domain.trim_start_matches('.').to_ascii_lowercase();
            if domain.is_empty() || name.is_empty() || !path.starts_with('/') {
                return Err(format!(
                    "line {n}: needs a domain, a name and a path from /"
                ));
            }
            let expires = (expires != 0).then_some(expires);
            if expires.is_some_and(|e| e <= now) {
                continue;
            }
            self.counter += 1;
            let key = |s: &Stored| s.name == name && s.domain == domain && s.path == path;
            self.cookies.retain(|s| !key(s));
            self.cookies.push(Stored {
                name: name.into(),
                value: value.into(),
                domain: domain.clone(),
                host_only: !sub,
                path: path.into(),
                secure,
                expires,
                created: self.counter,
                same_site: SameSite::Lax,
            });
            self.evict(now, &domain);
            loaded += 1;
        }
        Ok(loaded)
    }

    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn a_host_only_cookie_goes_back_to_its_host_and_path_only() {
        let mut j = Jar::default();
        let set = "oauth_state=abc; Path=/oauth; HttpOnly; Secure; SameSite=Lax; Max-Age=600";
        assert_eq!(
            j.store(&u("https://myapp.test/login/oauth"), set, 0),
            Verdict::Kept("oauth_state".into())
        );
        assert_eq!(
            j.header(
                &u("https://myapp.test/oauth/callback?code=1"),
                1,
                &Context::default()
            )
            .as_deref(),
            Some("oauth_state=abc")
        );
        assert_eq!(
            j.header(&u("https://myapp.test/login"), 1, &Context::default()),
            None,
            "other path"
        );
        assert_eq!(
            j.header(&u("https://myapp.test/oauthx"), 1, &Context::default()),
            None,
            "a prefix is not a path match"
        );
        assert_eq!(
            j.header(&u("https://www.myapp.test/oauth/x"), 1, &Context::default()),
            None,
            "host-only"
        );
        assert_eq!(
            j.header(&u("http://myapp.test/oauth/x"), 1, &Context::default()),
            None,
            "Secure"
        );
        assert_eq!(
            j.header(&u("https://myapp.test/oauth/x"), 600, &Context::default()),
            None,
            "expired"
        );
    }

    #[test]
    fn domain_cookies_reach_subdomains_and_bad_domains_are_refused() {
        let mut j = Jar::default();
        j.store(&u("https://www.myapp.test/"), "a=1; Domain=myapp.test", 0);
        assert_eq!(
            j.header(&u("https://api.myapp.test/x"), 1, &Context::default())
                .as_deref(),
            Some("a=1")
        );
        assert!(matches!(
            j.store(&u("https://myapp.test/"), "b=2; Domain=other.test", 0),
            Verdict::Ignored(_)
        ));
        assert!(matches!(
            j.store(&u("http://myapp.test/"), "c=3; Secure", 0),
            Verdict::Ignored(_)
        ));
    }

    #[test]
    fn the_default_path_is_the_directory_and_longer_paths_come_first() {
        let mut j = Jar::default();
        j.store(&u("https://h.test/a/b/page"), "deep=1", 0);
        j.store(&u("https://h.test/"), "top=2", 0);
        assert_eq!(
            j.header(&u("https://h.test/a/b/other"), 1, &Context::default())
                .as_deref(),
            Some("deep=1; top=2")
        );
        assert_eq!(
            j.header(&u("https://h.test/a"), 1, &Context::default())
                .as_deref(),
            Some("top=2")
        );
    }

    #[test]
    fn max_age_zero_removes_and_a_new_value_replaces() {
        let mut j = Jar::default();
        j.store(&u("https://h.test/"), "sid=old; Path=/", 0);
        j.store(&u("https://h.test/"), "sid=new; Path=/", 1);
        assert_eq!(
            j.header(&u("https://h.test/"), 2, &Context::default())
                .as_deref(),
            Some("sid=new")
        );
        assert_eq!(
            j.store(&u("https://h.test/"), "sid=; Path=/; Max-Age=0", 3),
            Verdict::Removed("sid".into())
        );
        assert!(j.is_empty());
    }

    #[test]
    fn a_domain_keeps_at_most_its_share() {
        let mut j = Jar::default();
        for i in 0..(PER_DOMAIN + 10) {
            j.store(&u("https://h.test/"), &format!("c{i}=v"), 0);
        }
        assert_eq!(j.len(), PER_DOMAIN);
        let sent = j
            .header(&u("https://h.test/"), 1, &Context::default())
            .unwrap();
        assert!(!sent.contains("c0=") && sent.contains(&format!("c{}=", PER_DOMAIN + 9)));
    }

    #[test]
    fn same_site_rules_decide_by_where_the_request_comes_from() {
        let mut j = Jar::default();
        let site = u("https://myapp.test/");
        for set in [
            "strict=1; Secure; SameSite=Strict",
            "lax=1; Secure; SameSite=Lax",
            "none=1; Secure; SameSite=None",
            "plain=1; Secure",
        ] {
            assert!(matches!(j.store(&site, set, 0), Verdict::Kept(_)), "{set}");
        }
        assert!(matches!(
            j.store(&site, "bad=1; SameSite=None", 0),
            Verdict::Ignored(why) if why.contains("without Secure")
        ));
        let names = |from: Context| -> Vec<String> {
            j.header(&u("https://myapp.test/account"), 1, &from)
                .unwrap_or_default()
                .split("; ")
                .map(|c| c.split('=').next().unwrap().to_string())
                .filter(|n| !n.is_empty())
                .collect()
        };
        let typed = Context {
            initiator: None,
            top_level: true,
            safe_method: true,
        };
        assert_eq!(names(typed), ["strict", "lax", "none", "plain"]);
        // A link on another site: a top-level GET takes Lax, not Strict.
        let other = Some(u("https://id.test/consent"));
        let link = Context {
            initiator: other.clone(),
            top_level: true,
            safe_method: true,
        };
        assert_eq!(names(link), ["lax", "none", "plain"]);
        // A form POSTed from another site, or its image: None only.
        let post = Context {
            initiator: other.clone(),
            top_level: true,
            safe_method: false,
        };
        assert_eq!(names(post), ["none"]);
        let image = Context {
            initiator: other,
            top_level: false,
            safe_method: true,
        };
        assert_eq!(names(image), ["none"]);
        // A subdomain is the same site.
        let sub = Context {
            initiator: Some(u("https://api.myapp.test/x")),
            top_level: false,
            safe_method: false,
        };
        assert_eq!(names(sub).len(), 4);
    }

    #[test]
    fn the_jar_reads_and_writes_curls_cookie_file() {
        let now = 1_700_000_000;
        let mut jar = Jar::default();
        let u = Url::parse("https://myapp.test/login").unwrap();
        jar.store(&u, "sid=abc; Path=/; Secure; HttpOnly", now);
        jar.store(&u, "pref=dark; Domain=myapp.test; Max-Age=3600", now);
        let text = jar.to_netscape(now);
        assert!(
            text.contains("myapp.test\tFALSE\t/\tTRUE\t0\tsid\tabc"),
            "{text}"
        );
        assert!(
            text.contains(".myapp.test\tTRUE\t/\tFALSE\t1700003600\tpref\tdark"),
            "{text}"
        );
        // Read back (and curl's HttpOnly prefix), the same Cookie header.
        let mut back = Jar::default();
        let curl = text.replace("myapp.test\tFALSE", "#HttpOnly_myapp.test\tFALSE");
        assert_eq!(back.load_netscape(&curl, now), Ok(2));
        let from = Context::default();
        assert_eq!(back.header(&u, now, &from), jar.header(&u, now, &from));
        // Later, the hour-long one has expired and is not loaded.
        let mut later = Jar::default();
        assert_eq!(later.load_netscape(&text, now + 7200), Ok(1));
        let e = Jar::default()
            .load_netscape("# c\nmyapp.test\tFALSE\t/\n", now)
            .unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = Jar::default()
            .load_netscape("a.test\tMAYBE\t/\tFALSE\t0\tn\tv", now)
            .unwrap_err();
        assert!(e.contains("MAYBE"), "{e}");
    }
}
