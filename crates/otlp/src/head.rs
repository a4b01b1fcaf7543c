//! What a collector must know of an OTLP span on arrival, read from its
//! protobuf bytes without building it: ids, times, and the two DNS
//! correlation attributes.
//!
//! Written by hand because prost offers no way to check a message without
//! building it: decoding every span with prost just to store it (a copy,
//! then a reference-count for every attribute key and value) was a third
//! of a collector's CPU under load. The walk accepts exactly the bytes
//! prost's decoder of [`crate::wire::Span`] accepts: the same wire types
//! per field, the same varint and length rules, unknown fields skipped
//! (groups included) and the same recursion limit of 100 nested messages.
//! So a span accepted here decodes later, when its trace is read. The
//! `otlp_export` fuzz target holds the two to the same answer.

use crate::wire::{AnyValue, KeyValue};
use prost::Message;

/// prost's default recursion limit (`prost::encoding::DecodeContext`).
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// The fields of a span a store needs now.
#[derive(Debug, Default, PartialEq)]
pub struct SpanHead<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// The `weblab.link` and `weblab.correlates` attribute values.
    pub link: Option<AnyValue>,
    pub correlates: Option<AnyValue>,
}

/// Why the bytes are not a span (prost would refuse them too).
#[derive(Debug, PartialEq)]
pub struct Malformed;

type R<T> = Result<T, Malformed>;

#[inline]
fn varint(b: &mut &[u8]) -> R<u64> {
    // Most are one byte: keys, lengths under 128.
    if let Some((&byte, rest)) = b.split_first()
        && byte < 0x80
    {
        *b = rest;
        return Ok(u64::from(byte));
    }
    let mut v = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first().ok_or(Malformed)?;
        *b = rest;
        // The tenth byte may only hold the 64th bit.
        if i == 9 && byte > 1 {
            return Err(Malformed);
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

#[inline]
fn key(b: &mut &[u8]) -> R<(u32, u8)> {
    let k = varint(b)?;
    let wire = (k & 7) as u8;
    if k > u64::from(u32::MAX) || wire > FIXED32 || (k >> 3) == 0 {
        return Err(Malformed);
    }
    Ok(((k >> 3) as u32, wire))
}

fn take<'a>(b: &mut &'a [u8], n: u64) -> R<&'a [u8]> {
    if n > b.len() as u64 {
        return Err(Malformed);
    }
    let (head, rest) = b.split_at(n as usize);
    *b = rest;
    Ok(head)
}

/// A length-delimited field's bytes.
fn delimited<'a>(wire: u8, b: &mut &'a [u8]) -> R<&'a [u8]> {
    if wire != LEN {
        return Err(Malformed);
    }
    let n = varint(b)?;
    take(b, n)
}

/// A scalar field of the wire type its declaration needs.
fn scalar(want: u8, wire: u8, b: &mut &[u8]) -> R<u64> {
    if wire != want {
        return Err(Malformed);
    }
    match want {
        VARINT => varint(b),
        FIXED64 => Ok(u64::from_le_bytes(
            take(b, 8)?.try_into().map_err(|_| Malformed)?,
        )),
        _ => take(b, 4).map(|_| 0),
    }
}

/// An unknown field, skipped as prost skips it (`depth` is the enclosing
/// message's remaining recursion budget).
fn skip(wire: u8, tag: u32, b: &mut &[u8], depth: u32) -> R<()> {
    if depth == 0 {
        return Err(Malformed);
    }
    match wire {
        VARINT => varint(b).map(|_| ()),
        FIXED64 => take(b, 8).map(|_| ()),
        FIXED32 => take(b, 4).map(|_| ()),
        LEN => delimited(wire, b).map(|_| ()),
        START_GROUP => loop {
            let (inner, w) = key(b)?;
            if w == END_GROUP {
                return if inner == tag { Ok(()) } else { Err(Malformed) };
            }
            skip(w, inner, b, depth - 1)?;
        },
        _ => Err(Malformed),
    }
}

/// A nested message: its bytes, and the budget its own fields get.
fn message<'a>(wire: u8, b: &mut &'a [u8], depth: u32) -> R<(&'a [u8], u32)> {
    if wire != LEN || depth == 0 {
        return Err(Malformed);
    }
    Ok((delimited(wire, b)?, depth - 1))
}

/// `AnyValue`: one of string, bool, int, double, array, key-value list,
/// bytes, string index.
fn any_value(mut b: &[u8], depth: u32) -> R<()> {
    while !b.is_empty() {
        let (tag, wire) = key(&mut b)?;
        match tag {
            1 | 7 => drop(delimited(wire, &mut b)?),
            2 | 3 | 8 => drop(scalar(VARINT, wire, &mut b)?),
            4 => drop(scalar(FIXED64, wire, &mut b)?),
            5 | 6 => {
                // ArrayValue { repeated AnyValue values = 1 } and
                // KeyValueList { repeated KeyValue values = 1 }.
                let (mut list, d) = message(wire, &mut b, depth)?;
                while !list.is_empty() {
                    let (t, w) = key(&mut list)?;
                    if t != 1 {
                        skip(w, t, &mut list, d)?;
                        continue;
                    }
                    let (item, d2) = message(w, &mut list, d)?;
                    if tag == 5 {
                        any_value(item, d2)?;
                    } else {
                        key_value(item, d2)?;
                    }
                }
            }
            _ => skip(wire, tag, &mut b, depth)?,
        }
    }
    Ok(())
}

/// A checked `KeyValue`: its final key, its last value, and how many
/// values it carried (several are merged, as prost merges them).
type Attribute<'a> = (&'a [u8], Option<&'a [u8]>, usize);

fn key_value(mut b: &[u8], depth: u32) -> R<Attribute<'_>> {
    let (mut k, mut value, mut values) = (&b[..0], None, 0);
    while !b.is_empty() {
        let (tag, wire) = key(&mut b)?;
        match tag {
            1 => k = delimited(wire, &mut b)?,
            2 => {
                let (v, d) = message(wire, &mut b, depth)?;
                any_value(v, d)?;
                value = Some(v);
                values += 1;
            }
            _ => skip(wire, tag, &mut b, depth)?,
        }
    }
    Ok((k, value, values))
}

/// Walks one encoded `Span` (the bytes of a `ScopeSpans.spans` entry).
pub fn span_head(mut b: &[u8]) -> R<SpanHead<'_>> {
    let depth = RECURSION_LIMIT;
    let mut head = SpanHead::default();
    while !b.is_empty() {
        let (tag, wire) = key(&mut b)?;
        match tag {
            1 => head.trace_id = delimited(wire, &mut b)?,
            2 => head.span_id = delimited(wire, &mut b)?,
            4 => head.parent_span_id = delimited(wire, &mut b)?,
            5 => drop(delimited(wire, &mut b)?),
            6 => drop(scalar(VARINT, wire, &mut b)?),
            7 => head.start_time_unix_nano = scalar(FIXED64, wire, &mut b)?,
            8 => head.end_time_unix_nano = scalar(FIXED64, wire, &mut b)?,
            16 => drop(scalar(FIXED32, wire, &mut b)?),
            9 => {
                let start = b;
                let (kv, d) = message(wire, &mut b, depth)?;
                let (k, value, values) = key_value(kv, d)?;
                let slot = match k {
                    b"weblab.link" => &mut head.link,
                    b"weblab.correlates" => &mut head.correlates,
                    _ => continue,
                };
                // The first attribute of a name is the one read (as
                // `convert::attr` does).
                if slot.is_some() {
                    continue;
                }
                *slot = Some(match (value, values) {
                    (None, _) => AnyValue::default(),
                    (Some(v), 1) => AnyValue::decode(v).map_err(|_| Malformed)?,
                    // Several values for one key: prost merges them; let
                    // it, from the whole attribute.
                    _ => {
                        // `start` is at the attribute's length.
                        let mut one = &start[..start.len() - b.len()];
                        let kv =
                            KeyValue::decode(delimited(LEN, &mut one)?).map_err(|_| Malformed)?;
                        kv.value.unwrap_or_default()
                    }
                });
            }
            _ => skip(wire, tag, &mut b, depth)?,
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ArrayValue, Span, Value};
    use bytes::Bytes;

    fn kv(k: &'static str, v: Value) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(k.as_bytes()),
            value: Some(AnyValue { value: Some(v) }),
        }
    }

    fn agrees(bytes: &[u8]) {
        let ours = span_head(bytes);
        let prost = Span::decode(bytes);
        assert_eq!(ours.is_ok(), prost.is_ok(), "{bytes:?}: {prost:?}");
        if let (Ok(h), Ok(s)) = (ours, prost) {
            assert_eq!(h.trace_id, &s.trace_id[..]);
            assert_eq!(h.span_id, &s.span_id[..]);
            assert_eq!(h.parent_span_id, &s.parent_span_id[..]);
            assert_eq!(h.start_time_unix_nano, s.start_time_unix_nano);
            assert_eq!(h.end_time_unix_nano, s.end_time_unix_nano);
            let attr = |k: &[u8]| {
                s.attributes
                    .iter()
                    .find(|a| a.key == k)
                    .map(|a| a.value.clone().unwrap_or_default())
            };
            assert_eq!(h.link, attr(b"weblab.link"));
            assert_eq!(h.correlates, attr(b"weblab.correlates"));
        }
    }

    #[test]
    fn the_walk_reads_what_prost_reads() {
        let nested = |depth: usize| {
            let mut v = AnyValue {
                value: Some(Value::IntValue(-5)),
            };
            for _ in 0..depth {
                v = AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
                };
            }
            v
        };
        let span = Span {
            trace_id: Bytes::from(vec![1; 16]),
            span_id: Bytes::from(vec![2; 8]),
            parent_span_id: Bytes::from(vec![3; 8]),
            flags: 0x301,
            name: Bytes::from_static(b"GET /"),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: u64::MAX,
            attributes: vec![
                kv("a", Value::DoubleValue(1.5)),
                kv("weblab.link", Value::StringValue(Bytes::from_static(b"x"))),
                kv("weblab.link", Value::BoolValue(true)),
                kv("weblab.correlates", nested(3).value.unwrap()),
                kv("deep", nested(40).value.unwrap()),
            ],
        };
        let bytes = span.encode_to_vec();
        agrees(&bytes);
        assert!(span_head(&bytes).unwrap().link.is_some());
        // Every cut of it, and every single byte changed.
        for n in 0..bytes.len() {
            agrees(&bytes[..n]);
        }
        for i in 0..bytes.len() {
            for x in [0x00, 0x01, 0x02, 0x05, 0x07, 0x08, 0x0b, 0x0c, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = x;
                agrees(&b);
            }
        }
        // Nesting up to prost's limit and past it.
        for depth in 46..=50 {
            let mut s = span.clone();
            s.attributes = vec![kv("deep", nested(depth).value.unwrap())];
            agrees(&s.encode_to_vec());
        }
        // Unknown fields: a group, a fixed32, and a stray end of group.
        let mut b = bytes.clone();
        b.extend([0x9b, 0x01, 0x08, 0x01, 0x9c, 0x01, 0xad, 0x01, 1, 2, 3, 4]);
        agrees(&b);
        let mut b = bytes.clone();
        b.extend([0x9c, 0x01]);
        agrees(&b);
        // A value given twice for the link is merged, as prost merges it.
        let mut b = bytes.clone();
        let twice = [
            0x4a, 0x15, 0x0a, 0x0b, b'w', b'e', b'b', b'l', b'a', b'b', b'.', b'l', b'i', b'n',
            b'k', 0x12, 0x02, 0x18, 0x07, 0x12, 0x02, 0x10, 0x01,
        ];
        b = [&twice[..], &b[..]].concat();
        agrees(&b);
        // A varint of eleven bytes, and a ten-byte one that overflows.
        agrees(&[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        agrees(&[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ]);
        agrees(&[
            0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
    }
}
