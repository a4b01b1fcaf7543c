//! weblab's spans written straight into the protobuf bytes of an OTLP
//! export request. The exporter encodes every span a server records, on
//! that server's CPU; building prost's message tree first (a vector of
//! key-values per span, a copy of every string) took 0.93 µs per span
//! against 0.32-0.34 µs for writing the bytes (`cargo run --release -p
//! weblab-otlp --example convert_speed`). Where the tree is wanted (JSON,
//! tests) it is these bytes decoded.
//!
//! Written by hand: prost encodes only its own structs and serde has no
//! protobuf serializer. The bytes are exactly prost's (canonical lengths,
//! fields in tag order, proto3 defaults left out; a test checks that prost
//! re-encodes them unchanged). A typed value becomes an OTLP `AnyValue` as
//! the decoder ([`crate::read`]) reads it back: strings, booleans, integers
//! (above `i64::MAX` as text, exactly), floats, sequences as arrays,
//! structs and maps as key-value lists, unit variants as their names,
//! other variants as `{variant: value}`; `None` and unit leave the key
//! (or the list item) out.

use serde::ser::{self, Serialize};
use weblab_trace::{Event, Span};

use crate::read::Error;

// Protobuf wire types.
const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

// Field numbers of opentelemetry-proto 1.x.
mod field {
    // ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Resource
    pub const RESOURCE_SPANS: u32 = 1;
    pub const RESOURCE: u32 = 1;
    pub const SCOPE_SPANS: u32 = 2;
    pub const SCOPE: u32 = 1;
    pub const SPANS: u32 = 2;
    pub const RESOURCE_ATTRIBUTES: u32 = 1;
    // InstrumentationScope
    pub const SCOPE_NAME: u32 = 1;
    pub const SCOPE_VERSION: u32 = 2;
    // Span
    pub const TRACE_ID: u32 = 1;
    pub const SPAN_ID: u32 = 2;
    pub const PARENT_SPAN_ID: u32 = 4;
    pub const NAME: u32 = 5;
    pub const KIND: u32 = 6;
    pub const START: u32 = 7;
    pub const END: u32 = 8;
    pub const ATTRIBUTES: u32 = 9;
    pub const FLAGS: u32 = 16;
    // KeyValue, KeyValueList, ArrayValue
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
    pub const ITEMS: u32 = 1;
    // AnyValue
    pub const STRING: u32 = 1;
    pub const BOOL: u32 = 2;
    pub const INT: u32 = 3;
    pub const DOUBLE: u32 = 4;
    pub const ARRAY: u32 = 5;
    pub const KVLIST: u32 = 6;
}

/// The protobuf body of one export request carrying `spans`: a resource
/// (service) per host, with host, address and component once per resource.
pub fn request(spans: &[Span]) -> Vec<u8> {
    type Origin<'a> = (&'a str, &'a str, &'a str);
    let mut by_origin: std::collections::BTreeMap<Origin<'_>, Vec<&Span>> = Default::default();
    for s in spans {
        by_origin
            .entry((&s.host, &s.addr, &s.component))
            .or_default()
            .push(s);
    }
    let mut buf = Vec::with_capacity(spans.len() * 320 + 256);
    for ((host, addr, component), spans) in by_origin {
        // A batch is ~150 KB: three bytes of length, so nothing moves.
        let rs = open_sized(&mut buf, field::RESOURCE_SPANS, 3);
        let res = open(&mut buf, field::RESOURCE);
        for (key, value) in [
            ("service.name", host),
            ("host.name", host),
            ("weblab.addr", addr),
            ("weblab.component", component),
        ] {
            let kv = open(&mut buf, field::RESOURCE_ATTRIBUTES);
            bytes_field(&mut buf, field::KEY, key.as_bytes());
            let v = open(&mut buf, field::VALUE);
            len_field(&mut buf, field::STRING, value.as_bytes());
            close(&mut buf, v);
            close(&mut buf, kv);
        }
        close(&mut buf, res);
        let ss = open_sized(&mut buf, field::SCOPE_SPANS, 3);
        let scope = open(&mut buf, field::SCOPE);
        bytes_field(&mut buf, field::SCOPE_NAME, b"weblab");
        bytes_field(
            &mut buf,
            field::SCOPE_VERSION,
            env!("CARGO_PKG_VERSION").as_bytes(),
        );
        close(&mut buf, scope);
        for s in spans {
            // A span is a few hundred bytes: two bytes of length.
            let at = open_sized(&mut buf, field::SPANS, 2);
            span(&mut buf, s);
            close(&mut buf, at);
        }
        close(&mut buf, ss);
        close(&mut buf, rs);
    }
    buf
}

/// The fields of one `Span` message.
fn span(buf: &mut Vec<u8>, s: &Span) {
    len_field(buf, field::TRACE_ID, &s.trace.0.to_be_bytes());
    len_field(buf, field::SPAN_ID, &s.id.0.to_be_bytes());
    if let Some(p) = s.parent {
        len_field(buf, field::PARENT_SPAN_ID, &p.0.to_be_bytes());
    }
    let kind = s.event.kind();
    bytes_field(buf, field::NAME, kind.as_bytes());
    tag(buf, field::KIND, VARINT);
    varint(buf, kind_of(&s.event));
    for (f, t) in [(field::START, s.start_ns), (field::END, s.end_ns)] {
        if t != 0 {
            tag(buf, f, I64);
            buf.extend_from_slice(&t.to_le_bytes());
        }
    }
    attribute(buf, b"weblab.event", kind);
    let at = buf.len();
    if s.event.serialize(EventFields { buf, kind }).is_err() {
        // An event serde cannot write (none today) travels as its kind.
        buf.truncate(at);
    }
    attribute(buf, b"weblab.layer", &s.layer);
    if let Some(r) = s.request {
        attribute(buf, b"weblab.request", &r);
    }
    // The DNS keys that tie spans across hosts, as structured values.
    if let Some(link) = &s.link {
        attribute(buf, b"weblab.link", link);
    }
    if !s.correlates.is_empty() {
        attribute(buf, b"weblab.correlates", &s.correlates);
    }
    // W3C trace flags: sampled.
    tag(buf, field::FLAGS, I32);
    buf.extend_from_slice(&1u32.to_le_bytes());
}

/// OTLP's `Span.SpanKind` values.
mod span_kind {
    pub const INTERNAL: u64 = 1;
    pub const SERVER: u64 = 2;
    pub const CLIENT: u64 = 3;
}

fn kind_of(event: &Event) -> u64 {
    match event {
        Event::HttpServe { .. } | Event::DnsServe { .. } => span_kind::SERVER,
        Event::DnsExchange { .. }
        | Event::RequestSent { .. }
        | Event::ProxyForward { .. }
        | Event::HttpCall { .. }
        | Event::TcpConnect { .. }
        | Event::TlsHandshake { .. } => span_kind::CLIENT,
        _ => span_kind::INTERNAL,
    }
}

/// One span attribute; left out when `value` is null or cannot be written.
fn attribute<T: Serialize + ?Sized>(buf: &mut Vec<u8>, key: &[u8], value: &T) {
    let at = buf.len();
    let kv = open(buf, field::ATTRIBUTES);
    bytes_field(buf, field::KEY, key);
    match any_value(buf, field::VALUE, value) {
        Ok(true) => close(buf, kv),
        _ => buf.truncate(at),
    }
}

/// `value` as an `AnyValue` in field `f`: `Ok(false)`, and nothing
/// written, for a null.
fn any_value<T: Serialize + ?Sized>(buf: &mut Vec<u8>, f: u32, value: &T) -> Result<bool, Error> {
    let at = buf.len();
    let v = open(buf, f);
    match value.serialize(Val(buf)) {
        Ok(true) => {
            close(buf, v);
            Ok(true)
        }
        r => {
            buf.truncate(at);
            r
        }
    }
}

// ---- protobuf primitives ----

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn tag(buf: &mut Vec<u8>, f: u32, wire: u32) {
    varint(buf, u64::from(f << 3 | wire));
}

/// A length-delimited field, written even when empty (a `oneof` member).
fn len_field(buf: &mut Vec<u8>, f: u32, b: &[u8]) {
    tag(buf, f, LEN);
    varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A proto3 `string`/`bytes` field: left out when empty, as prost does.
fn bytes_field(buf: &mut Vec<u8>, f: u32, b: &[u8]) {
    if !b.is_empty() {
        len_field(buf, f, b);
    }
}

/// An embedded message being written: where its content starts and how
/// many bytes were kept for its length.
#[derive(Clone, Copy)]
struct Open {
    start: usize,
    room: usize,
}

fn open(buf: &mut Vec<u8>, f: u32) -> Open {
    open_sized(buf, f, 1)
}

/// Opens a message field keeping `room` bytes for its length, the size it
/// will most likely need (a wrong guess costs moving the content once).
fn open_sized(buf: &mut Vec<u8>, f: u32, room: usize) -> Open {
    tag(buf, f, LEN);
    buf.resize(buf.len() + room, 0);
    Open {
        start: buf.len(),
        room,
    }
}

/// Writes the length of the message opened at `o`, now that its content
/// is written, moving the content if the length needs another size.
fn close(buf: &mut Vec<u8>, o: Open) {
    let len = buf.len() - o.start;
    let need = varint_len(len as u64);
    let content = if need > o.room {
        let grow = need - o.room;
        buf.resize(buf.len() + grow, 0);
        buf.copy_within(o.start..o.start + len, o.start + grow);
        o.start + grow
    } else if need < o.room {
        let shrink = o.room - need;
        buf.copy_within(o.start..o.start + len, o.start - shrink);
        buf.truncate(buf.len() - shrink);
        o.start - shrink
    } else {
        o.start
    };
    let mut v = len as u64;
    let mut at = content - need;
    while v >= 0x80 {
        buf[at] = v as u8 | 0x80;
        v >>= 7;
        at += 1;
    }
    buf[at] = v as u8;
}

// ---- the event's fields as span attributes ----

/// (event kind, field) → semantic-convention attribute name.
pub(crate) const SEMCONV: &[(&str, &str, &str)] = &[
    ("navigate", "url", "url.full"),
    ("url_parsed", "scheme", "url.scheme"),
    ("url_parsed", "host", "server.address"),
    ("url_parsed", "port", "server.port"),
    ("url_parsed", "path", "url.path"),
    ("url_parsed", "query", "url.query"),
    ("url_parsed", "fragment", "url.fragment"),
    ("request_prepared", "method", "http.request.method"),
    ("lookup", "name", "dns.question.name"),
    ("cache_lookup", "name", "dns.question.name"),
    ("dns_exchange", "name", "dns.question.name"),
    ("dns_exchange", "server", "server.address"),
    ("dns_exchange", "transport", "network.transport"),
    ("dns_serve", "name", "dns.question.name"),
    ("dns_serve", "transport", "network.transport"),
    ("tcp_connect", "local", "network.local.address"),
    ("tcp_connect", "remote", "network.peer.address"),
    ("tcp_info", "remote", "network.peer.address"),
    ("tls_handshake", "sni", "tls.client.server_name"),
    ("tls_handshake", "version", "tls.protocol.version"),
    ("tls_handshake", "cipher", "tls.cipher"),
    ("tls_handshake", "alpn", "tls.next_protocol"),
    ("request_sent", "method", "http.request.method"),
    ("request_sent", "url", "url.full"),
    ("waiting", "status", "http.response.status_code"),
    ("body_received", "status", "http.response.status_code"),
    ("http_call", "method", "http.request.method"),
    ("http_call", "url", "url.full"),
    ("http_call", "peer", "network.peer.address"),
    ("http_call", "status", "http.response.status_code"),
    ("http_serve", "method", "http.request.method"),
    ("http_serve", "path", "url.path"),
    ("http_serve", "peer", "network.peer.address"),
    ("http_serve", "status", "http.response.status_code"),
    ("proxy_forward", "status", "http.response.status_code"),
    ("route", "pattern", "http.route"),
    ("sql", "statement", "db.query.text"),
];

/// The semantic-convention names of one event kind (the table keeps each
/// kind's rows together).
pub(crate) fn semconv_of(kind: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    let Some(first) = SEMCONV.iter().position(|(k, _, _)| *k == kind) else {
        return &[];
    };
    let n = SEMCONV[first..]
        .iter()
        .take_while(|(k, _, _)| *k == kind)
        .count();
    &SEMCONV[first..first + n]
}

/// Serializes an event (a struct variant tagged with `kind`) as span
/// attributes: each field under its semantic-convention name where it has
/// one, `weblab.<kind>.<field>` otherwise; the tag itself is left out (it
/// is the `weblab.event` attribute).
struct EventFields<'a> {
    buf: &'a mut Vec<u8>,
    kind: &'static str,
}

struct EventStruct<'a> {
    buf: &'a mut Vec<u8>,
    kind: &'static str,
    names: &'static [(&'static str, &'static str, &'static str)],
}

impl ser::SerializeStruct for EventStruct<'_> {
    type Ok = bool;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if key == "kind" {
            return Ok(());
        }
        let buf = &mut *self.buf;
        let at = buf.len();
        let kv = open(buf, field::ATTRIBUTES);
        match self.names.iter().find(|(_, f, _)| *f == key) {
            Some((_, _, name)) => len_field(buf, field::KEY, name.as_bytes()),
            None => {
                // weblab.<kind>.<field>, written in place.
                tag(buf, field::KEY, LEN);
                varint(buf, (8 + self.kind.len() + key.len()) as u64);
                buf.extend_from_slice(b"weblab.");
                buf.extend_from_slice(self.kind.as_bytes());
                buf.push(b'.');
                buf.extend_from_slice(key.as_bytes());
            }
        }
        match any_value(buf, field::VALUE, value) {
            Ok(true) => close(buf, kv),
            Ok(false) => buf.truncate(at),
            Err(e) => {
                buf.truncate(at);
                return Err(e);
            }
        }
        Ok(())
    }
    fn end(self) -> Result<bool, Error> {
        Ok(true)
    }
}

/// What [`EventFields`] refuses: anything but a struct.
fn not_an_event<T>() -> Result<T, Error> {
    Err(Error("an event is a struct variant".into()))
}

/// Serializer methods that refuse their value.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, Error> {
            not_an_event()
        }
    )*};
}

impl<'a> ser::Serializer for EventFields<'a> {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = ser::Impossible<bool, Error>;
    type SerializeTuple = ser::Impossible<bool, Error>;
    type SerializeTupleStruct = ser::Impossible<bool, Error>;
    type SerializeTupleVariant = ser::Impossible<bool, Error>;
    type SerializeMap = ser::Impossible<bool, Error>;
    type SerializeStruct = EventStruct<'a>;
    type SerializeStructVariant = ser::Impossible<bool, Error>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<EventStruct<'a>, Error> {
        Ok(EventStruct {
            buf: self.buf,
            kind: self.kind,
            names: semconv_of(self.kind),
        })
    }
    refuse! {
        serialize_bool(bool) -> bool;
        serialize_i8(i8) -> bool;
        serialize_i16(i16) -> bool;
        serialize_i32(i32) -> bool;
        serialize_i64(i64) -> bool;
        serialize_u8(u8) -> bool;
        serialize_u16(u16) -> bool;
        serialize_u32(u32) -> bool;
        serialize_u64(u64) -> bool;
        serialize_f32(f32) -> bool;
        serialize_f64(f64) -> bool;
        serialize_char(char) -> bool;
        serialize_str(&str) -> bool;
        serialize_bytes(&[u8]) -> bool;
        serialize_none() -> bool;
        serialize_unit() -> bool;
        serialize_unit_struct(&'static str) -> bool;
        serialize_unit_variant(&'static str, u32, &'static str) -> bool;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, Error> {
        not_an_event()
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Error> {
        not_an_event()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, Error> {
        not_an_event()
    }
}

// ---- any value as the content of an AnyValue ----

/// Writes a value as the content of an `AnyValue` message: `Ok(false)`
/// for a null, with nothing written.
struct Val<'a>(&'a mut Vec<u8>);

/// A list or key-value list being written, inside the messages that wrap
/// it (a variant's `{name: …}`): closed innermost first at the end.
struct Compound<'a> {
    buf: &'a mut Vec<u8>,
    opens: [Open; 4],
    depth: usize,
    /// A map entry whose key is written and whose value comes next.
    entry: Option<(usize, Open)>,
}

impl<'a> Compound<'a> {
    fn new(buf: &'a mut Vec<u8>) -> Self {
        Compound {
            buf,
            opens: [Open { start: 0, room: 0 }; 4],
            depth: 0,
            entry: None,
        }
    }

    fn open(mut self, f: u32) -> Self {
        self.opens[self.depth] = open(self.buf, f);
        self.depth += 1;
        self
    }

    /// `{variant: <what follows>}`: a key-value list of one entry.
    fn variant(self, name: &str) -> Self {
        let c = self.open(field::KVLIST).open(field::ITEMS);
        bytes_field(c.buf, field::KEY, name.as_bytes());
        c.open(field::VALUE)
    }

    /// A list item; a null is left out.
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        any_value(self.buf, field::ITEMS, value).map(drop)
    }

    /// A key-value entry; a null value leaves the key out too.
    fn entry<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        let at = self.buf.len();
        let kv = open(self.buf, field::ITEMS);
        bytes_field(self.buf, field::KEY, key.as_bytes());
        self.value(at, kv, value)
    }

    fn value<T: Serialize + ?Sized>(
        &mut self,
        at: usize,
        kv: Open,
        value: &T,
    ) -> Result<(), Error> {
        match any_value(self.buf, field::VALUE, value) {
            Ok(true) => {
                close(self.buf, kv);
                Ok(())
            }
            r => {
                self.buf.truncate(at);
                r.map(drop)
            }
        }
    }

    fn done(self) -> Result<bool, Error> {
        for o in self.opens[..self.depth].iter().rev() {
            close(self.buf, *o);
        }
        Ok(true)
    }
}

/// Integers that fit an `i64`: written as one.
macro_rules! widen {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<bool, Error> {
            self.serialize_i64(v.into())
        }
    )*};
}

impl<'a> ser::Serializer for Val<'a> {
    type Ok = bool;
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<bool, Error> {
        tag(self.0, field::BOOL, VARINT);
        varint(self.0, u64::from(v));
        Ok(true)
    }
    widen!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
           serialize_u8: u8, serialize_u16: u16, serialize_u32: u32);
    fn serialize_i64(self, v: i64) -> Result<bool, Error> {
        tag(self.0, field::INT, VARINT);
        varint(self.0, v as u64);
        Ok(true)
    }
    fn serialize_u64(self, v: u64) -> Result<bool, Error> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            // Above i64::MAX: kept exactly as text.
            Err(_) => self.serialize_str(&v.to_string()),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<bool, Error> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<bool, Error> {
        tag(self.0, field::DOUBLE, I64);
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(true)
    }
    fn serialize_char(self, v: char) -> Result<bool, Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<bool, Error> {
        len_field(self.0, field::STRING, v.as_bytes());
        Ok(true)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<bool, Error> {
        let mut list = Compound::new(self.0).open(field::ARRAY);
        for b in v {
            list.item(b)?;
        }
        list.done()
    }
    fn serialize_none(self) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<bool, Error> {
        Ok(false)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<bool, Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<bool, Error> {
        // {variant: value}; a null value leaves the list empty.
        let mut list = Compound::new(self.0).open(field::KVLIST);
        list.entry(variant, value)?;
        list.done()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.0).open(field::ARRAY))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.0).variant(variant).open(field::ARRAY))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.0).open(field::KVLIST))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Error> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(Compound::new(self.0).variant(variant).open(field::KVLIST))
    }
}

/// The four sequence-like traits of serde, one body.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = bool;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.item(value)
            }
            fn end(self) -> Result<bool, Error> {
                self.done()
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A struct's and a struct variant's fields, one body.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = bool;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.entry(key, value)
            }
            fn end(self) -> Result<bool, Error> {
                self.done()
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = bool;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // Written as a value first: a key must come out as text (a string,
        // a char, a unit variant's name), as OTLP's key-value lists have.
        let mut scratch = Vec::new();
        let text = match key.serialize(Val(&mut scratch)) {
            Ok(true) => string_of(&scratch),
            _ => None,
        }
        .ok_or_else(|| Error("a map key that is not text".into()))?;
        let at = self.buf.len();
        let kv = open(self.buf, field::ITEMS);
        bytes_field(self.buf, field::KEY, text);
        self.entry = Some((at, kv));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let (at, kv) = self
            .entry
            .take()
            .ok_or_else(|| Error("a map value without its key".into()))?;
        self.value(at, kv, value)
    }
    fn end(self) -> Result<bool, Error> {
        self.done()
    }
}

/// The text of an `AnyValue` written by [`Val`] that is a string alone.
fn string_of(any: &[u8]) -> Option<&[u8]> {
    let rest = any.strip_prefix(&[(field::STRING << 3 | LEN) as u8])?;
    let (mut len, mut shift, mut at) = (0usize, 0, 0);
    loop {
        let b = *rest.get(at)?;
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b < 0x80 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    (rest.len() - at == len).then(|| &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AnyValue, Value};
    use prost::Message;

    /// `value` written as an AnyValue, read back by prost.
    fn any(value: &impl Serialize) -> Option<AnyValue> {
        let mut buf = Vec::new();
        let mut c = Compound::new(&mut buf).open(field::ARRAY);
        c.item(value).unwrap();
        c.done().unwrap();
        let list = AnyValue::decode(&buf[..]).unwrap();
        match list.value {
            Some(Value::ArrayValue(mut a)) => a.values.pop(),
            _ => panic!("not a list"),
        }
    }

    fn text(v: &Option<AnyValue>) -> Option<&str> {
        match v.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => crate::wire::as_str(s),
            _ => None,
        }
    }

    #[test]
    fn values_take_the_shapes_the_decoder_reads() {
        assert_eq!(text(&any(&"x")), Some("x"));
        // Above i64::MAX an integer travels as its exact text.
        assert_eq!(text(&any(&u64::MAX)), Some("18446744073709551615"));
        assert!(matches!(
            any(&-7i64).and_then(|v| v.value),
            Some(Value::IntValue(-7))
        ));
        assert!(matches!(
            any(&1.5f64).and_then(|v| v.value),
            Some(Value::DoubleValue(d)) if d == 1.5
        ));
        // None, and None inside a list, leave nothing behind.
        assert_eq!(any(&None::<u8>), None);
        let Some(Value::ArrayValue(a)) = any(&vec![Some(1), None, Some(3)]).and_then(|v| v.value)
        else {
            panic!("not an array")
        };
        assert_eq!(a.values.len(), 2);
        // A struct is a key-value list without its None fields.
        #[derive(serde::Serialize)]
        struct S {
            a: u8,
            b: Option<u8>,
        }
        let Some(Value::KvlistValue(l)) = any(&S { a: 1, b: None }).and_then(|v| v.value) else {
            panic!("not a list")
        };
        let keys: Vec<&[u8]> = l.values.iter().map(|kv| &kv.key[..]).collect();
        assert_eq!(keys, [b"a"]);
        // A map's text keys become the list's keys (long ones too).
        let long = "k".repeat(200);
        let m = std::collections::BTreeMap::from([("a", 1u8), (long.as_str(), 2)]);
        let Some(Value::KvlistValue(l)) = any(&m).and_then(|v| v.value) else {
            panic!("not a list")
        };
        let keys: Vec<&[u8]> = l.values.iter().map(|kv| &kv.key[..]).collect();
        assert_eq!(keys, [b"a".as_slice(), long.as_bytes()]);
        // A map with keys that are not text has no OTLP form.
        let mut m = std::collections::BTreeMap::new();
        m.insert(1u8, 2u8);
        let mut buf = Vec::new();
        assert!(any_value(&mut buf, 1, &m).is_err());
        assert!(buf.is_empty(), "a failed value leaves nothing behind");
    }

    #[test]
    fn lengths_of_every_size_are_canonical() {
        // Content of 0..=20 000 bytes around each varint boundary, with
        // one byte kept for the length and with three: prost re-encodes
        // the same bytes.
        for len in [0usize, 1, 127, 128, 129, 16_383, 16_384, 20_000] {
            for room in [1, 2, 3] {
                let mut buf = Vec::new();
                let o = open_sized(&mut buf, field::STRING, room);
                buf.extend(std::iter::repeat_n(b'a', len));
                close(&mut buf, o);
                let v = AnyValue::decode(&buf[..]).unwrap();
                assert_eq!(v.encode_to_vec(), buf, "len {len}, room {room}");
                assert!(matches!(v.value, Some(Value::StringValue(s)) if s.len() == len));
            }
        }
    }
}
