//! Any `Serialize` value straight into an OTLP `AnyValue`, with no JSON
//! tree in between: the exporter turns every span's typed event into
//! attributes on a server's hot path. The mapping is the one the JSON
//! route gave (and the decoder reads back): strings, booleans, integers
//! (above `i64::MAX` as text, exactly), floats, sequences as arrays,
//! structs and maps as key-value lists, unit variants as their names;
//! `None` and unit leave the key out.
//!
//! Written by hand: serde has no serializer into OTLP's types, and the
//! detour through `serde_json::Value` cost more than encoding the bytes.

use std::fmt;

use bytes::Bytes;
use serde::ser::{self, Serialize};

use crate::wire::{AnyValue, ArrayValue, KeyValue, KeyValueList, Value};

/// Why a value has no OTLP form (a map with non-string keys), or, read
/// back ([`crate::read`]), does not fit the type asked for.
#[derive(Debug)]
pub struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// `value` as an OTLP value; `None` for what JSON would write as null.
pub fn to_any<T: Serialize + ?Sized>(value: &T) -> Result<Option<AnyValue>, Error> {
    value.serialize(Ser)
}

fn some(v: Value) -> Result<Option<AnyValue>, Error> {
    Ok(Some(AnyValue { value: Some(v) }))
}

fn pair(key: Bytes, value: AnyValue) -> KeyValue {
    KeyValue {
        key,
        value: Some(value),
    }
}

/// A name serde gives as `&'static str` (a field, a variant): no copy.
fn name(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Bytes of one chunk of the copy arena.
const ARENA_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where the exporter copies the text and ids of the spans it encodes:
    /// each copy is a slice of a shared chunk (a reference count), not an
    /// allocation of its own. A chunk is freed when the last slice of it
    /// is (after the batch is encoded and sent).
    static ARENA: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

/// `b` copied into the arena.
pub(crate) fn copy(b: &[u8]) -> Bytes {
    if b.len() > ARENA_CHUNK / 4 {
        return Bytes::copy_from_slice(b);
    }
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() - arena.len() < b.len() {
            // Earlier slices keep the old chunk alive; this starts a new one.
            *arena = bytes::BytesMut::with_capacity(ARENA_CHUNK);
        }
        arena.extend_from_slice(b);
        arena.split().freeze()
    })
}

/// A list as one value.
fn array(values: Vec<AnyValue>) -> Result<Option<AnyValue>, Error> {
    some(Value::ArrayValue(ArrayValue { values }))
}

/// Key-value pairs as one value.
fn kvlist(values: Vec<KeyValue>) -> Result<Option<AnyValue>, Error> {
    some(Value::KvlistValue(KeyValueList { values }))
}

/// `{variant: inner}`, as serde writes an enum's non-unit variant.
fn tagged(variant: &'static str, inner: Option<AnyValue>) -> Result<Option<AnyValue>, Error> {
    kvlist(inner.map(|v| pair(name(variant), v)).into_iter().collect())
}

struct Ser;

/// Items of a sequence, tuple or the fields of a variant.
struct Seq {
    items: Vec<AnyValue>,
    variant: Option<&'static str>,
}

/// Fields of a struct or entries of a map.
struct Fields {
    entries: Vec<KeyValue>,
    variant: Option<&'static str>,
    key: Option<Bytes>,
}

impl ser::Serializer for Ser {
    type Ok = Option<AnyValue>;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Seq;
    type SerializeMap = Fields;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Fields;

    fn serialize_bool(self, v: bool) -> Result<Self::Ok, Error> {
        some(Value::BoolValue(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok, Error> {
        some(Value::IntValue(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok, Error> {
        match i64::try_from(v) {
            Ok(i) => some(Value::IntValue(i)),
            // Above i64::MAX: kept exactly as text.
            Err(_) => some(Value::StringValue(v.to_string().into())),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Self::Ok, Error> {
        some(Value::DoubleValue(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Self::Ok, Error> {
        some(Value::DoubleValue(v))
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok, Error> {
        some(Value::StringValue(v.to_string().into()))
    }
    fn serialize_str(self, v: &str) -> Result<Self::Ok, Error> {
        some(Value::StringValue(copy(v.as_bytes())))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Self::Ok, Error> {
        array(
            v.iter()
                .map(|b| AnyValue {
                    value: Some(Value::IntValue((*b).into())),
                })
                .collect(),
        )
    }
    fn serialize_none(self) -> Result<Self::Ok, Error> {
        Ok(None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok, Error> {
        Ok(None)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Self::Ok, Error> {
        Ok(None)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Error> {
        some(Value::StringValue(name(variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Error> {
        tagged(variant, value.serialize(Ser)?)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq {
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq, Error> {
        Ok(Seq {
            items: Vec::with_capacity(len),
            variant: Some(variant),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Fields, Error> {
        Ok(Fields {
            entries: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Fields, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields, Error> {
        Ok(Fields {
            entries: Vec::with_capacity(len),
            variant: Some(variant),
            key: None,
        })
    }
}

impl Seq {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        // Nulls inside a list are left out, as the JSON route did.
        if let Some(v) = value.serialize(Ser)? {
            self.items.push(v);
        }
        Ok(())
    }

    fn done(self) -> Result<Option<AnyValue>, Error> {
        let list = array(self.items)?;
        match self.variant {
            Some(variant) => tagged(variant, list),
            None => Ok(list),
        }
    }
}

/// The four sequence-like traits of serde, one body: each item pushed, the
/// list made at the end.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq {
            type Ok = Option<AnyValue>;
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.push(value)
            }
            fn end(self) -> Result<Self::Ok, Error> {
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

impl Fields {
    fn field<T: Serialize + ?Sized>(&mut self, key: Bytes, value: &T) -> Result<(), Error> {
        if let Some(v) = value.serialize(Ser)? {
            self.entries.push(pair(key, v));
        }
        Ok(())
    }

    fn done(self) -> Result<Option<AnyValue>, Error> {
        let list = kvlist(self.entries)?;
        match self.variant {
            Some(variant) => tagged(variant, list),
            None => Ok(list),
        }
    }
}

impl ser::SerializeMap for Fields {
    type Ok = Option<AnyValue>;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        match key.serialize(Ser)? {
            Some(AnyValue {
                value: Some(Value::StringValue(k)),
            }) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(Error("a map key that is not text".into())),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error("a map value without its key".into()))?;
        self.field(key, value)
    }
    fn end(self) -> Result<Self::Ok, Error> {
        self.done()
    }
}

/// A struct's and a struct variant's fields, one body.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Fields {
            type Ok = Option<AnyValue>;
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(name(key), value)
            }
            fn end(self) -> Result<Self::Ok, Error> {
                self.done()
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &Option<AnyValue>) -> Option<&str> {
        match v.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => crate::wire::as_str(s),
            _ => None,
        }
    }

    #[test]
    fn values_keep_the_json_routes_shapes() {
        assert_eq!(text(&to_any("x").unwrap()), Some("x"));
        // Above i64::MAX an integer travels as its exact text.
        assert_eq!(
            text(&to_any(&u64::MAX).unwrap()),
            Some("18446744073709551615")
        );
        assert!(matches!(
            to_any(&7u64).unwrap().and_then(|v| v.value),
            Some(Value::IntValue(7))
        ));
        // None, and None inside a list, leave nothing behind.
        assert_eq!(to_any(&None::<u8>).unwrap(), None);
        let Some(Value::ArrayValue(a)) = to_any(&vec![Some(1), None, Some(3)])
            .unwrap()
            .and_then(|v| v.value)
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
        let Some(Value::KvlistValue(l)) =
            to_any(&S { a: 1, b: None }).unwrap().and_then(|v| v.value)
        else {
            panic!("not a list")
        };
        let keys: Vec<&[u8]> = l.values.iter().map(|kv| &kv.key[..]).collect();
        assert_eq!(keys, [b"a"]);
    }
}
