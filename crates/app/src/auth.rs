//! Identity: password hashes (argon2id), session ids and their cookie
//! (C34, C35), signed access tokens (JWT, C36) and the sign-in rate limit.
//! Storage of sessions and refresh tokens is in [`crate::repo`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::Digest;
use weblab_server::Bucket;

use crate::error::AppError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sid";
/// A session unused this long is over (seconds).
pub const IDLE_SECS: i64 = 30 * 60;
/// A session is over this long after sign-in, used or not (seconds).
pub const ABSOLUTE_SECS: i64 = 8 * 60 * 60;
/// `last_seen` is written at most this often (seconds): a session check is
/// then a read, not a write, on almost every request.
pub const TOUCH_SECS: i64 = 60;
/// An access token's lifetime (seconds).
pub const ACCESS_SECS: i64 = 5 * 60;
/// A refresh token's lifetime (seconds).
pub const REFRESH_SECS: i64 = 14 * 24 * 60 * 60;
/// Who issues tokens, and for whom.
pub const ISSUER: &str = "https://myapp.test";
pub const AUDIENCE: &str = "myapp-api";

/// Seconds since 1970.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh unguessable value (256 bits), URL-safe.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a secret: its SHA-256, URL-safe.
pub fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Password hashes computed at once, at most: one per CPU. Each takes
/// 19 MiB and a CPU for tens of milliseconds, so a flood of sign-ins
/// would otherwise run up to tokio's 512 blocking threads (~10 GiB) at
/// once; past this bound they wait their turn instead.
fn hashing() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cpus)
    })
}

/// Argon2id with its default cost (19 MiB, 2 passes), off the async
/// threads: it is meant to take tens of milliseconds.
pub async fn hash_password(password: &str) -> Result<String, AppError> {
    let password = password.to_string();
    let _turn = hashing()
        .acquire()
        .await
        .map_err(|e| AppError::config(format!("hashing a password: {e}")))?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::config(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| AppError::config(format!("hashing a password: {e}")))?
}

/// Whether `password` matches `stored`. With no stored hash (no such
/// user) a hash is still checked, so the answer takes as long either way
/// and its time does not tell which emails have accounts.
pub async fn verify_password(password: &str, stored: Option<String>) -> bool {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let password = password.to_string();
    let Ok(_turn) = hashing().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| {
            DECOY
                .get_or_init(|| {
                    Argon2::default()
                        .hash_password(b"no such user")
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                })
                .clone()
        });
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A Set-Cookie for `name` under `path`: not readable by scripts, sent on
/// top-level navigation from other sites but not on their subrequests
/// (SameSite=Lax), only over HTTPS when `secure`, kept `max_age` seconds
/// (0 removes it).
pub fn set_cookie(name: &str, value: &str, path: &str, secure: bool, max_age: i64) -> HeaderValue {
    let c = Cookie::build((name.to_string(), value.to_string()))
        .path(path.to_string())
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build();
    // Names, values and paths here are ours (URL-safe), so this holds.
    HeaderValue::from_str(&c.to_string()).unwrap_or(HeaderValue::from_static("x=; Max-Age=0"))
}

/// The Set-Cookie that hands a browser its session.
pub fn session_cookie(id: &str, secure: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, id, "/", secure, ABSOLUTE_SECS)
}

/// The Set-Cookie that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    set_cookie(SESSION_COOKIE, "", "/", secure, 0)
}

/// The claims of an access token.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's name, for whoever shows who is asking (chat, logs).
    pub name: String,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Whom an access token is for.
#[derive(Clone, Debug)]
pub struct TokenUser {
    pub id: i64,
    pub name: String,
    pub role: String,
}

/// The HS256 key pair made from the application's shared secret.
pub struct Tokens {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        // Only HS256 is accepted: a token saying `alg: none` or RS256 is
        // refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        Tokens {
            enc: EncodingKey::from_secret(secret.as_bytes()),
            dec: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A signed access token for `user` with `role`, valid [`ACCESS_SECS`].
    pub fn issue(&self, user: &TokenUser, now: i64) -> Result<String, AppError> {
        let claims = Claims {
            sub: user.id.to_string(),
            name: user.name.clone(),
            role: user.role.clone(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ACCESS_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| AppError::config(format!("signing a token: {e}")))
    }

    /// The token's claims, or why it is refused, in words.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".into(),
                ErrorKind::InvalidSignature => "token signature does not match (tampered?)".into(),
                ErrorKind::InvalidAudience => {
                    format!("token is not for this API (aud must be {AUDIENCE})")
                }
                ErrorKind::InvalidIssuer => format!("token was not issued by {ISSUER}"),
                ErrorKind::InvalidAlgorithm => {
                    "token algorithm is not HS256 (alg none and others are refused)".into()
                }
                ErrorKind::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
                ErrorKind::ImmatureSignature => "token is not valid yet".into(),
                _ => format!("token is malformed ({e})"),
            })
    }
}

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Failed sign-ins allowed per client in a burst, then one more every
/// [`LOGIN_REFILL_SECS`].
pub const LOGIN_BURST: u32 = 5;
pub const LOGIN_REFILL_SECS: f64 = 12.0;
/// Clients tracked at most; when full, those whose bucket is full again
/// are forgotten first.
const LOGIN_CLIENTS: usize = 10_000;

/// Sign-ins started with the identity provider per client, in a burst,
/// then one more every [`OAUTH_REFILL_SECS`]: each start stores a pending
/// state (bounded for everyone), so one client may not fill the store.
pub const OAUTH_BURST: u32 = 20;
pub const OAUTH_REFILL_SECS: f64 = 3.0;

/// Events per client address (failed sign-ins, sign-ins started), as
/// token buckets: `burst` at once, then one every `refill` seconds.
pub struct LoginLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    burst: u32,
    rate: f64,
}

impl Default for LoginLimiter {
    /// Failed sign-ins: [`LOGIN_BURST`], one more every [`LOGIN_REFILL_SECS`].
    fn default() -> Self {
        LoginLimiter::new(LOGIN_BURST, LOGIN_REFILL_SECS)
    }
}

impl LoginLimiter {
    pub fn new(burst: u32, refill_secs: f64) -> Self {
        LoginLimiter {
            buckets: Mutex::default(),
            burst: burst.max(1),
            rate: 1.0 / refill_secs.max(0.001),
        }
    }

    /// `Err(seconds to wait)` when `ip` has used up its events.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let wait = map
            .get(&ip)
            .and_then(|b| b.wait(self.rate, self.burst, Instant::now()));
        // Whole seconds, rounded up, never 0.
        wait.map_or(Ok(()), |w| Err(w.as_secs_f64().ceil().max(1.0) as u64))
    }

    /// Counts one event (a failed attempt, a sign-in started) from `ip`.
    pub fn count(&self, ip: IpAddr) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= LOGIN_CLIENTS && !map.contains_key(&ip) {
            let full = f64::from(self.burst);
            map.retain(|_, b| b.level(self.rate, self.burst, now) < full);
            if map.len() >= LOGIN_CLIENTS {
                return;
            }
        }
        let b = map
            .entry(ip)
            .or_insert_with(|| Bucket::full(self.burst, now));
        let _ = b.take(self.rate, self.burst, now);
    }

    /// A successful sign-in forgives the client's earlier failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_started_are_limited_per_client_apart_from_failures() {
        let l = LoginLimiter::new(OAUTH_BURST, OAUTH_REFILL_SECS);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..OAUTH_BURST {
            assert!(l.check(ip).is_ok());
            l.count(ip);
        }
        let wait = l.check(ip).unwrap_err();
        assert!((1..=3).contains(&wait), "{wait}");
        assert!(l.check("127.0.0.10".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_sixth_failure_in_a_row_is_refused_and_success_forgives() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "127.0.0.7".parse().unwrap();
        for _ in 0..5 {
            assert!(l.check(ip).is_ok());
            l.count(ip);
        }
        let wait = l.check(ip).unwrap_err();
        assert!((1..=12).contains(&wait), "{wait}");
        // Another client is not affected.
        assert!(l.check("127.0.0.8".parse().unwrap()).is_ok());
        l.succeeded(ip);
        assert!(l.check(ip).is_ok());
    }

    #[test]
    fn tokens_are_refused_with_the_reason() {
        let t = Tokens::new("secret one");
        let now = now();
        let seven = |role: &str| TokenUser {
            id: 7,
            name: "Seven".into(),
            role: role.into(),
        };
        let good = t.issue(&seven("user"), now).unwrap();
        assert_eq!(t.verify(&good).unwrap().sub, "7");

        let expired = t.issue(&seven("user"), now - 3600).unwrap();
        assert_eq!(t.verify(&expired).unwrap_err(), "token expired");

        let other = Tokens::new("secret two")
            .issue(&seven("admin"), now)
            .unwrap();
        assert!(t.verify(&other).unwrap_err().contains("signature"));

        // A token whose payload was edited (role raised) keeps its old
        // signature, which no longer matches.
        let parts: Vec<&str> = good.split('.').collect();
        let claims = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let raised = URL_SAFE_NO_PAD.encode(claims.replace("\"user\"", "\"admin\""));
        let tampered = format!("{}.{raised}.{}", parts[0], parts[2]);
        assert!(t.verify(&tampered).unwrap_err().contains("signature"));

        // alg: none with no signature at all.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(t.verify(&none).is_err());

        let mut c = t.verify(&good).unwrap();
        c.aud = "someone-else".into();
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(b"secret one"),
        )
        .unwrap();
        assert!(
            t.verify(&wrong_aud)
                .unwrap_err()
                .contains("not for this API")
        );
    }

    #[test]
    fn the_session_cookie_has_its_protections() {
        let c = session_cookie("abc", true);
        let c = c.to_str().unwrap();
        for part in [
            "sid=abc",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(c.contains(part), "{c}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sid=xyz; b=2"),
        );
        assert_eq!(cookie_value(&h, "sid").as_deref(), Some("xyz"));
        assert_eq!(cookie_value(&h, "zz"), None);
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", Some(h.clone())).await);
        assert!(!verify_password("wrong", Some(h)).await);
        assert!(!verify_password("no such user", None).await);
    }
}
