//! STOMP 1.2 frames (the subset the chat speaks as a WebSocket
//! subprotocol): CONNECT/STOMP, SUBSCRIBE, UNSUBSCRIBE, SEND, DISCONNECT
//! from a client; CONNECTED, MESSAGE, RECEIPT, ERROR from the server.
//!
//! Written by hand: the frame format is a command line, header lines, a
//! blank line and a body ended by NUL, and no STOMP crate in our set
//! speaks it over axum's WebSocket.

use std::fmt::Write as _;

/// Largest frame accepted (the WebSocket message limit is the same).
pub const MAX_FRAME: usize = 4096;
const MAX_HEADERS: usize = 32;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Frame {
    pub fn new(command: &str) -> Frame {
        Frame {
            command: command.into(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Frame {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn body(mut self, b: &str) -> Frame {
        self.body = b.into();
        self
    }

    /// The first value of header `k` (STOMP 1.2 §"Repeated Header Entries").
    pub fn get(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    }

    /// The frame on the wire, headers escaped, ended by NUL.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + self.body.len());
        out.push_str(&self.command);
        out.push('\n');
        // The body's length is written from the body itself, once.
        for (k, v) in self.headers.iter().filter(|(k, _)| k != "content-length") {
            let _ = writeln!(out, "{}:{}", escape(k), escape(v));
        }
        if !self.body.is_empty() {
            let _ = writeln!(out, "content-length:{}", self.body.len());
        }
        out.push('\n');
        out.push_str(&self.body);
        out.push('\0');
        out
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            other => {
                return Err(format!(
                    "undefined escape \\{}",
                    other.map_or(String::new(), String::from)
                ));
            }
        }
    }
    Ok(out)
}

/// Reads one frame. A frame that is only end-of-lines is a heart-beat
/// (`Ok(None)`).
pub fn parse(text: &str) -> Result<Option<Frame>, String> {
    if text.len() > MAX_FRAME {
        return Err(format!("frame over {MAX_FRAME} bytes"));
    }
    let text = text.trim_start_matches(['\r', '\n']);
    if text.is_empty() {
        return Ok(None);
    }
    let (head, rest) = text
        .split_once("\n\n")
        .or_else(|| text.split_once("\r\n\r\n"))
        .ok_or("no blank line after the headers")?;
    let mut lines = head.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    let command = lines.next().unwrap_or("").to_string();
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("bad command {command:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() == MAX_HEADERS {
            return Err(format!("more than {MAX_HEADERS} headers"));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without ':': {line:?}"))?;
        // CONNECT frames are not escaped (§"Value Encoding").
        if command == "CONNECT" || command == "STOMP" {
            headers.push((k.to_string(), v.to_string()));
        } else {
            headers.push((unescape(k)?, unescape(v)?));
        }
    }
    let frame = Frame {
        command,
        headers,
        body: String::new(),
    };
    let body = match frame.get("content-length") {
        Some(n) => {
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| format!("bad content-length {n:?}"))?;
            if rest.len() < n + 1 || rest.as_bytes()[n] != 0 || !rest.is_char_boundary(n) {
                return Err(format!("body is not {n} bytes followed by NUL"));
            }
            &rest[..n]
        }
        None => rest
            .split('\0')
            .next()
            .filter(|_| rest.contains('\0'))
            .ok_or("frame not ended by NUL")?,
    };
    Ok(Some(Frame {
        body: body.to_string(),
        ..frame
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_escaped_headers() {
        let f = Frame::new("MESSAGE")
            .header("destination", "/topic/a:b")
            .header("note", "line\nbreak")
            .body("hello\0");
        let wire = f.encode();
        assert!(wire.contains("destination:/topic/a\\cb\n"), "{wire:?}");
        let back = parse(&wire).unwrap().unwrap();
        assert_eq!(back.get("destination"), Some("/topic/a:b"));
        assert_eq!(back.get("note"), Some("line\nbreak"));
        assert_eq!(back.body, "hello\0");
    }

    #[test]
    fn clients_frames_parse_and_bad_ones_are_named() {
        let f = parse("SEND\ndestination:/topic/x\n\nhi\0")
            .unwrap()
            .unwrap();
        assert_eq!((f.command.as_str(), f.body.as_str()), ("SEND", "hi"));
        assert_eq!(parse("\n").unwrap(), None);
        let c = parse("CONNECT\r\naccept-version:1.2\r\nhost:myapp.test\r\n\r\n\0")
            .unwrap()
            .unwrap();
        assert_eq!(c.get("accept-version"), Some("1.2"));
        for bad in [
            "send\n\n\0",
            "SEND\nno-colon\n\n\0",
            "SEND\n\nbody",
            "SEND\ncontent-length:9\n\nshort\0",
            "SEND\nk:\\t\n\n\0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse(&"x".repeat(MAX_FRAME + 1)).is_err());
    }
}
