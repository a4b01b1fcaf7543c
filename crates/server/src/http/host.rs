//! The Host header check of RFC 9112 §3.2, as a pure function.

use http::{HeaderMap, Version, header::HOST};

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
/// code to any HTTP/1.1 request message that lacks a Host header field and
/// to any request message that contains more than one Host header field
/// line or a Host header field with an invalid field value." Returns the
/// reason to put in that 400.
pub fn check(version: Version, headers: &HeaderMap) -> Result<(), &'static str> {
    let mut values = headers.get_all(HOST).iter();
    match (values.next(), values.next()) {
        (None, _) if version == Version::HTTP_11 => {
            Err("an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)")
        }
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err("more than one Host header (RFC 9112 section 3.2)"),
        (Some(v), None) if valid_host(v.as_bytes()) => Ok(()),
        (Some(_), None) => Err("the Host header is not a valid host[:port] (RFC 9112 section 3.2)"),
    }
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2), where uri-host is an
/// IP-literal in brackets, an IPv4 address or a reg-name (RFC 3986 §3.2.2).
/// The value may be empty (a target URI without authority).
pub fn valid_host(v: &[u8]) -> bool {
    let (host_ok, port) = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(end) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = std::str::from_utf8(&rest[..end])
            .ok()
            .is_some_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
        match &rest[end + 1..] {
            [] => (literal, &[][..]),
            [b':', port @ ..] => (literal, port),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (reg_name(&v[..i]), &v[i + 1..]),
            None => (reg_name(v), &[][..]),
        }
    };
    host_ok && port.iter().all(u8::is_ascii_digit)
}

/// reg-name = *( unreserved / pct-encoded / sub-delims ) — an IPv4 address
/// is a reg-name too as far as the characters go.
fn reg_name(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if !s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    || !s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                {
                    return false;
                }
                i += 3;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => {}
            b'-' | b'.' | b'_' | b'~' => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(HOST, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rfc9112_3_2_missing_duplicate_and_invalid_host_are_refused() {
        assert!(check(Version::HTTP_11, &headers(&[])).is_err());
        assert!(
            check(Version::HTTP_10, &headers(&[])).is_ok(),
            "optional in 1.0"
        );
        assert!(
            check(Version::HTTP_2, &headers(&[])).is_ok(),
            ":authority instead"
        );
        assert!(check(Version::HTTP_11, &headers(&["a.test", "b.test"])).is_err());
        assert!(check(Version::HTTP_10, &headers(&["a.test", "a.test"])).is_err());
        assert!(check(Version::HTTP_11, &headers(&["myapp.test"])).is_ok());
    }

    #[test]
    fn host_values_follow_the_uri_host_grammar() {
        for ok in [
            "myapp.test",
            "myapp.test:443",
            "127.10.3.1:10443",
            "[::1]",
            "[::1]:8080",
            "",
            "xn--bcher-kva.test",
            "a%41b.test",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?} is valid");
        }
        for bad in [
            "user@myapp.test",
            "myapp.test/x",
            "my app.test",
            "a:b:c",
            "myapp.test:44x",
            "[::1",
            "[nope]:80",
            "[::1]x",
            "a%4",
            "a%zz",
            "myapp.test\\",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} is invalid");
        }
    }
}
