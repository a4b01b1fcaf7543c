//! The authorization-code grant with PKCE, the provider's side (RFC 6749
//! §4.1, RFC 7636): checking an authorization request, issuing a code,
//! exchanging it for a token, and the bounded stores behind them. Pure:
//! time (`now`, seconds) and random values come in as arguments.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

/// The scopes this provider knows, with what each lets a client read (the
/// consent page shows these words).
pub const SCOPES: [(&str, &str); 2] = [("profile", "your name"), ("email", "your email address")];

/// A code is good this long (RFC 6749 §4.1.2 advises at most 10 minutes).
pub const CODE_SECS: i64 = 60;
/// An access token is good this long.
pub const TOKEN_SECS: i64 = 600;
/// Codes, tokens or sessions kept at most; the oldest go first.
pub const MAX_ENTRIES: usize = 10_000;
/// A `state` longer than this is refused (it is echoed back in a URL).
const MAX_STATE: usize = 512;

/// A registered client (RFC 6749 §2).
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    /// What the consent page calls it.
    pub name: String,
    /// The SHA-256 of its secret (see [`crate::auth::digest`]).
    pub secret_digest: String,
    /// Exact redirect URIs it may use (§3.1.2.2: compared whole).
    pub redirect_uris: Vec<String>,
}

/// A checked authorization request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorize {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    /// The PKCE challenge, S256 only.
    pub challenge: String,
}

/// Why an authorization request is not shown a consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// §4.1.2.1: an unknown client or a redirect URI it did not register
    /// is told to the person, never sent anywhere (it would make the
    /// provider an open redirector).
    Show(String),
    /// Any other fault goes back to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

/// The one value of parameter `name`; a parameter given twice is an error
/// (§3.1: "MUST NOT be included more than once").
fn single<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, String> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return Err(format!("parameter {name} is given more than once"));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// Checks an authorization request (§4.1.1 with RFC 7636 §4.3) against
/// the registered clients.
pub fn check_authorize(
    params: &[(String, String)],
    clients: &[Client],
) -> Result<Authorize, Refusal> {
    let show = Refusal::Show;
    let client_id = single(params, "client_id")
        .map_err(show)?
        .ok_or_else(|| Refusal::Show("the request names no client (client_id)".into()))?;
    let client = clients
        .iter()
        .find(|c| c.id == client_id)
        .ok_or_else(|| Refusal::Show(format!("no client is registered as {client_id:?}")))?;
    // §3.1.2.3: without redirect_uri, the one registered URI.
    let redirect_uri = match single(params, "redirect_uri").map_err(show)? {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        Some(uri) => {
            return Err(Refusal::Show(format!(
                "{uri:?} is not a redirect URI registered for {client_id}"
            )));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(Refusal::Show(format!(
                "{client_id} registered several redirect URIs; the request must name one"
            )));
        }
    };
    // From here on faults go back to the client. The state is echoed only
    // when it can be: one value of a sane size.
    let state = single(params, "state")
        .ok()
        .flatten()
        .filter(|s| s.len() <= MAX_STATE)
        .map(str::to_string);
    let back = |error: &'static str, description: String| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    let one = |name: &str| single(params, name).map_err(|d| back("invalid_request", d));
    if let Some(s) = one("state")?
        && s.len() > MAX_STATE
    {
        return Err(back(
            "invalid_request",
            format!("state is longer than {MAX_STATE} bytes"),
        ));
    }
    match one("response_type")? {
        Some("code") => {}
        Some(other) => {
            return Err(back(
                "unsupported_response_type",
                format!("response_type {other:?}: only \"code\" is offered"),
            ));
        }
        None => return Err(back("invalid_request", "response_type is missing".into())),
    }
    // RFC 7636 §4.4.1: a provider may insist on PKCE; this one does, and
    // only with S256 ("plain" would send the secret itself).
    let challenge = one("code_challenge")?.ok_or_else(|| {
        back(
            "invalid_request",
            "PKCE is required: code_challenge is missing".into(),
        )
    })?;
    match one("code_challenge_method")? {
        Some("S256") => {}
        other => {
            return Err(back(
                "invalid_request",
                format!(
                    "code_challenge_method {}: only S256 is accepted",
                    other.unwrap_or("(none, meaning plain)")
                ),
            ));
        }
    }
    // S256 of any verifier is 32 bytes: 43 base64url characters.
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err(back(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 (43 characters)".into(),
        ));
    }
    let scope: Vec<String> = match one("scope")? {
        None => vec!["profile".into()],
        Some(s) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    if let Some(unknown) = scope.iter().find(|s| !SCOPES.iter().any(|(k, _)| k == s)) {
        return Err(back(
            "invalid_scope",
            format!(
                "scope {unknown:?} is not offered (known: {})",
                SCOPES.map(|(k, _)| k).join(", ")
            ),
        ));
    }
    Ok(Authorize {
        client_id: client_id.into(),
        redirect_uri,
        scope,
        state,
        challenge: challenge.into(),
    })
}

/// `redirect_uri` with `pairs` added to its query (§4.1.2: the URI keeps
/// its own query).
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

/// Where a refused request is sent, or `None` when it is only shown.
pub fn refusal_location(r: &Refusal) -> Option<String> {
    match r {
        Refusal::Show(_) => None,
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => {
            let mut pairs = vec![
                ("error", *error),
                ("error_description", description.as_str()),
            ];
            if let Some(s) = state {
                pairs.push(("state", s));
            }
            Some(redirect_with(redirect_uri, &pairs))
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 §4.2: the S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A value that expires, in a store bounded by count.
#[derive(Debug)]
pub struct Expiring<V> {
    entries: HashMap<String, (V, i64)>,
    /// Keys in the order they came, for dropping the oldest.
    order: VecDeque<String>,
    max: usize,
}

impl<V> Expiring<V> {
    pub fn new(max: usize) -> Self {
        Expiring {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    /// Keeps `v` under `key` until `expires`; the oldest entries make
    /// room when the store is full.
    pub fn insert(&mut self, key: String, v: V, expires: i64, now: i64) {
        while let Some(k) = self.order.front() {
            let stale = self.entries.get(k).is_none_or(|(_, e)| *e <= now);
            if !stale && self.entries.len() < self.max {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.entries.remove(&k);
            }
        }
        if self.entries.insert(key.clone(), (v, expires)).is_none() {
            self.order.push_back(key);
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &str, now: i64) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &str, now: i64) -> Option<&mut V> {
        self.entries
            .get_mut(key)
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(v, _)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a code was issued for.
#[derive(Clone, Debug)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub scope: Vec<String>,
    /// The user's subject identifier.
    pub sub: String,
    /// Set when the code has been exchanged: the digest of the token it
    /// bought (revoked if the code comes again).
    pub redeemed: Option<String>,
}

/// What an access token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub client_id: String,
    pub sub: String,
    pub scope: Vec<String>,
}

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    /// 401 for a client that failed to authenticate, else 400.
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

fn token_error(error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        status: if error == "invalid_client" { 401 } else { 400 },
        error,
        description: description.into(),
    }
}

/// An issued access token and what it allows.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub access: Access,
}

/// The provider's live codes and tokens, keyed by their SHA-256.
pub struct Grants {
    pub codes: Expiring<Grant>,
    pub tokens: Expiring<Access>,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            codes: Expiring::new(MAX_ENTRIES),
            tokens: Expiring::new(MAX_ENTRIES),
        }
    }
}

impl Grants {
    /// Issues `code` (a fresh random value) for a consented request.
    pub fn issue_code(&mut self, code: &str, req: &Authorize, sub: &str, now: i64) {
        let grant = Grant {
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            challenge: req.challenge.clone(),
            scope: req.scope.clone(),
            sub: sub.into(),
            redeemed: None,
        };
        self.codes
            .insert(crate::auth::digest(code), grant, now + CODE_SECS, now);
    }

    /// The token request of §4.1.3: `form` is the request body, `basic`
    /// the client's HTTP Basic credentials if it sent them, `token` the
    /// fresh random value to issue.
    pub fn exchange(
        &mut self,
        form: &[(String, String)],
        basic: Option<(String, String)>,
        clients: &[Client],
        token: String,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let one = |name: &str| single(form, name).map_err(|d| token_error("invalid_request", d));
        match one("grant_type")? {
            Some("authorization_code") => {}
            Some(other) => {
                return Err(token_error(
                    "unsupported_grant_type",
                    format!("grant_type {other:?}: only authorization_code is offered"),
                ));
            }
            None => return Err(token_error("invalid_request", "grant_type is missing")),
        }
        // §2.3.1: Basic or the body, not both.
        let (id, secret) = match (basic, one("client_id")?, one("client_secret")?) {
            (Some(_), _, Some(_)) => {
                return Err(token_error(
                    "invalid_request",
                    "client credentials in both the Authorization header and the body",
                ));
            }
            (Some((id, secret)), _, None) => (id, secret),
            (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
            _ => {
                return Err(token_error(
                    "invalid_client",
                    "no client credentials (HTTP Basic or client_id and client_secret)",
                ));
            }
        };
        let client = clients
            .iter()
            .find(|c| c.id == id && c.secret_digest == crate::auth::digest(&secret))
            .ok_or_else(|| token_error("invalid_client", "unknown client or wrong secret"))?;
        let code = one("code")?.ok_or_else(|| token_error("invalid_request", "code is missing"))?;
        let key = crate::auth::digest(code);
        let Some(grant) = self.codes.get_mut(&key, now) else {
            return Err(token_error(
                "invalid_grant",
                "the code is unknown or has expired",
            ));
        };
        if let Some(bought) = grant.redeemed.clone() {
            // §4.1.2: a code used twice is refused, and the token it
            // bought the first time is revoked.
            self.codes.remove(&key);
            self.tokens.remove(&bought);
            return Err(token_error(
                "invalid_grant",
                "the code was already used; the token issued for it is revoked",
            ));
        }
        if grant.client_id != client.id {
            return Err(token_error(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        // §4.1.3: the same redirect_uri as in the authorization request.
        if one("redirect_uri")? != Some(grant.redirect_uri.as_str()) {
            return Err(token_error(
                "invalid_grant",
                "redirect_uri differs from the authorization request's",
            ));
        }
        let verifier = one("code_verifier")?
            .ok_or_else(|| token_error("invalid_grant", "code_verifier is missing (PKCE)"))?;
        if !valid_verifier(verifier) {
            return Err(token_error(
                "invalid_grant",
                "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~",
            ));
        }
        if s256(verifier) != grant.challenge {
            return Err(token_error(
                "invalid_grant",
                "code_verifier does not match the code_challenge (PKCE)",
            ));
        }
        let access = Access {
            client_id: client.id.clone(),
            sub: grant.sub.clone(),
            scope: grant.scope.clone(),
        };
        let digest = crate::auth::digest(&token);
        grant.redeemed = Some(digest.clone());
        self.tokens
            .insert(digest, access.clone(), now + TOKEN_SECS, now);
        Ok(Issued { token, access })
    }

    /// What the bearer `token` allows, if it is live.
    pub fn access(&self, token: &str, now: i64) -> Option<&Access> {
        self.tokens.get(&crate::auth::digest(token), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn client() -> Client {
        Client {
            id: "myapp".into(),
            name: "myapp".into(),
            secret_digest: crate::auth::digest("s3cret"),
            redirect_uris: vec!["https://myapp.test/oauth/callback".into()],
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn good() -> Vec<(String, String)> {
        params(&[
            ("response_type", "code"),
            ("client_id", "myapp"),
            ("redirect_uri", "https://myapp.test/oauth/callback"),
            ("scope", "profile email"),
            ("state", "xyz"),
            ("code_challenge", &s256(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
    }

    fn without(mut p: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
        p.retain(|(k, _)| k != name);
        p
    }

    fn with(p: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
        let mut p = without(p, name);
        p.push((name.into(), value.into()));
        p
    }

    #[test]
    fn the_s256_challenge_is_the_one_in_rfc_7636_appendix_b() {
        assert_eq!(
            s256(VERIFIER),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(VERIFIER));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&format!("{VERIFIER}!")));
    }

    #[test]
    fn a_good_request_is_accepted_with_its_scopes_and_state() {
        let a = check_authorize(&good(), &[client()]).unwrap();
        assert_eq!(a.scope, ["profile", "email"]);
        assert_eq!(a.state.as_deref(), Some("xyz"));
        // Without redirect_uri: the only registered one.
        let a = check_authorize(&without(good(), "redirect_uri"), &[client()]).unwrap();
        assert_eq!(a.redirect_uri, "https://myapp.test/oauth/callback");
    }

    #[test]
    fn an_unknown_client_or_redirect_uri_is_shown_never_redirected() {
        for p in [
            with(good(), "client_id", "other"),
            without(good(), "client_id"),
            with(good(), "redirect_uri", "https://evil.test/cb"),
            with(
                good(),
                "redirect_uri",
                "https://myapp.test/oauth/callback/x",
            ),
        ] {
            let r = check_authorize(&p, &[client()]).unwrap_err();
            assert!(matches!(r, Refusal::Show(_)), "{r:?}");
            assert_eq!(refusal_location(&r), None);
        }
    }

    #[test]
    fn other_faults_go_back_to_the_client_with_the_state() {
        let cases = [
            (
                with(good(), "response_type", "token"),
                "unsupported_response_type",
            ),
            (without(good(), "code_challenge"), "invalid_request"),
            (
                with(good(), "code_challenge_method", "plain"),
                "invalid_request",
            ),
            (with(good(), "code_challenge", "abc"), "invalid_request"),
            (with(good(), "scope", "profile admin"), "invalid_scope"),
            (
                {
                    let mut p = good();
                    p.push(("scope".into(), "email".into()));
                    p
                },
                "invalid_request",
            ),
        ];
        for (p, want) in cases {
            let r = check_authorize(&p, &[client()]).unwrap_err();
            let Refusal::Redirect { error, .. } = &r else {
                panic!("{r:?}")
            };
            assert_eq!(*error, want);
            let to = refusal_location(&r).unwrap();
            assert!(
                to.starts_with("https://myapp.test/oauth/callback?error="),
                "{to}"
            );
            assert!(to.ends_with("&state=xyz"), "{to}");
        }
    }

    fn issued(g: &mut Grants) -> Authorize {
        let a = check_authorize(&good(), &[client()]).unwrap();
        g.issue_code("the-code", &a, "u1", 1000);
        a
    }

    fn token_form(verifier: &str) -> Vec<(String, String)> {
        params(&[
            ("grant_type", "authorization_code"),
            ("code", "the-code"),
            ("redirect_uri", "https://myapp.test/oauth/callback"),
            ("code_verifier", verifier),
        ])
    }

    fn basic() -> Option<(String, String)> {
        Some(("myapp".into(), "s3cret".into()))
    }

    #[test]
    fn a_code_buys_one_token_with_the_right_verifier() {
        let mut g = Grants::default();
        issued(&mut g);
        let t = g
            .exchange(
                &token_form(VERIFIER),
                basic(),
                &[client()],
                "tok".into(),
                1010,
            )
            .unwrap();
        assert_eq!(t.access.sub, "u1");
        assert_eq!(g.access("tok", 1011).unwrap().scope, ["profile", "email"]);
        assert!(g.access("tok", 1010 + TOKEN_SECS).is_none(), "expired");
    }

    #[test]
    fn a_wrong_verifier_secret_or_late_code_is_refused() {
        let other = "x".repeat(43);
        let mut g = Grants::default();
        issued(&mut g);
        let e = g
            .exchange(&token_form(&other), basic(), &[client()], "t".into(), 1010)
            .unwrap_err();
        assert_eq!((e.status, e.error), (400, "invalid_grant"));
        assert!(e.description.contains("PKCE"), "{e:?}");
        let wrong = Some(("myapp".into(), "guess".into()));
        let e = g
            .exchange(&token_form(VERIFIER), wrong, &[client()], "t".into(), 1010)
            .unwrap_err();
        assert_eq!((e.status, e.error), (401, "invalid_client"));
        let e = g
            .exchange(&token_form(VERIFIER), None, &[client()], "t".into(), 1010)
            .unwrap_err();
        assert_eq!(e.error, "invalid_client");
        let late = 1000 + CODE_SECS;
        let e = g
            .exchange(
                &token_form(VERIFIER),
                basic(),
                &[client()],
                "t".into(),
                late,
            )
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        let mut form = token_form(VERIFIER);
        form = with(form, "redirect_uri", "https://myapp.test/other");
        let e = g
            .exchange(&form, basic(), &[client()], "t".into(), 1010)
            .unwrap_err();
        assert!(e.description.contains("redirect_uri"), "{e:?}");
    }

    #[test]
    fn a_code_used_twice_is_refused_and_its_token_revoked() {
        let mut g = Grants::default();
        issued(&mut g);
        g.exchange(
            &token_form(VERIFIER),
            basic(),
            &[client()],
            "tok".into(),
            1010,
        )
        .unwrap();
        let e = g
            .exchange(
                &token_form(VERIFIER),
                basic(),
                &[client()],
                "tok2".into(),
                1011,
            )
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert!(
            g.access("tok", 1012).is_none(),
            "the first token is revoked"
        );
        assert!(g.access("tok2", 1012).is_none());
    }

    #[test]
    fn the_stores_stay_within_their_bound_dropping_the_oldest() {
        let mut e: Expiring<u32> = Expiring::new(3);
        for i in 0..10 {
            e.insert(format!("k{i}"), i, 100, 0);
        }
        assert_eq!(e.len(), 3);
        assert!(e.get("k0", 1).is_none());
        assert_eq!(e.get("k9", 1), Some(&9));
        // Expired entries leave first, whatever the count.
        let mut e: Expiring<u32> = Expiring::new(100);
        e.insert("old".into(), 1, 10, 0);
        e.insert("new".into(), 2, 100, 20);
        assert_eq!(e.len(), 1);
        assert_eq!(e.order.len(), 1);
    }
}
