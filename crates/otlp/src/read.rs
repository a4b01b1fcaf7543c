//! OTLP values read straight into any `Deserialize` type, the inverse of
//! [`crate::write`]: a collector turns every received span's attributes
//! back into a typed event, and this skips writing them out as JSON text
//! and parsing that again. The mapping is the one the JSON route had:
//! strings (borrowed from the request body where the type allows), booleans,
//! integers, floats, arrays as sequences, key-value lists as maps, bytes as
//! lowercase hex, an empty value as null.
//!
//! Written by hand: serde has no deserializer over OTLP's types.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::wire::{AnyValue, KeyValue, Value, as_str};

/// Why a value has no OTLP form (a map with keys that are not text), or,
/// read back, does not fit the type asked for.
#[derive(Debug)]
pub struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Reads `T` from one OTLP value.
pub fn from_any<'de, T: serde::Deserialize<'de>>(v: &'de AnyValue) -> Result<T, Error> {
    T::deserialize(Any(Some(v)))
}

/// Reads `T` from named values, as if they were the fields of one map:
/// `tag` (when given) comes first as `kind`, then every `(name, value)`.
pub fn from_fields<'de, T, I>(tag: Option<&'de str>, fields: I) -> Result<T, Error>
where
    T: serde::Deserialize<'de>,
    I: Iterator<Item = (&'de str, &'de AnyValue)>,
{
    T::deserialize(Fields { tag, fields })
}

fn text(b: &bytes::Bytes) -> Result<&str, Error> {
    as_str(b).ok_or_else(|| Error("text that is not UTF-8".into()))
}

/// One value (`None`: absent, read as null).
#[derive(Clone, Copy)]
struct Any<'de>(Option<&'de AnyValue>);

impl<'de> de::Deserializer<'de> for Any<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.and_then(|v| v.value.as_ref()) {
            None | Some(Value::StringValueStrindex(_)) => visitor.visit_unit(),
            Some(Value::StringValue(s)) => visitor.visit_borrowed_str(text(s)?),
            Some(Value::BoolValue(b)) => visitor.visit_bool(*b),
            Some(Value::IntValue(i)) => visitor.visit_i64(*i),
            Some(Value::DoubleValue(d)) => visitor.visit_f64(*d),
            Some(Value::BytesValue(b)) => {
                visitor.visit_string(b.iter().map(|x| format!("{x:02x}")).collect())
            }
            Some(Value::ArrayValue(a)) => visitor.visit_seq(Items(a.values.iter())),
            Some(Value::KvlistValue(l)) => visitor.visit_map(Pairs {
                pairs: l.values.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.and_then(|v| v.value.as_ref()) {
            None | Some(Value::StringValueStrindex(_)) => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0.and_then(|v| v.value.as_ref()) {
            // A unit variant is its name…
            Some(Value::StringValue(s)) => visitor.visit_enum(text(s)?.into_deserializer()),
            // …any other is `{variant: content}`.
            Some(Value::KvlistValue(l)) if l.values.len() == 1 => {
                let kv = &l.values[0];
                visitor.visit_enum(Variant {
                    name: text(&kv.key)?,
                    value: Any(kv.value.as_ref()),
                })
            }
            _ => Err(Error(
                "an enum that is neither a name nor {name: value}".into(),
            )),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct Items<'de>(std::slice::Iter<'de, AnyValue>);

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(Any(Some(v))))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Pairs<'de> {
    pairs: std::slice::Iter<'de, KeyValue>,
    value: Option<Any<'de>>,
}

impl<'de> de::MapAccess<'de> for Pairs<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(kv) = self.pairs.next() else {
            return Ok(None);
        };
        self.value = Some(Any(kv.value.as_ref()));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(text(&kv.key)?))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.value.take().unwrap_or(Any(None)))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.pairs.len())
    }
}

struct Variant<'de> {
    name: &'de str,
    value: Any<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Any<'de>;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Any<'de>), Error> {
        let name = seed.deserialize(de::value::BorrowedStrDeserializer::new(self.name))?;
        Ok((name, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Any<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_map(self, visitor)
    }
}

/// Named values read as one map.
struct Fields<'de, I> {
    tag: Option<&'de str>,
    fields: I,
}

impl<'de, I> de::Deserializer<'de> for Fields<'de, I>
where
    I: Iterator<Item = (&'de str, &'de AnyValue)>,
{
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(FieldsAccess {
            tag: self.tag,
            fields: self.fields,
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct FieldsAccess<'de, I> {
    tag: Option<&'de str>,
    fields: I,
    value: Option<Pending<'de>>,
}

/// The value that goes with the key just read.
enum Pending<'de> {
    Tag(&'de str),
    Value(Any<'de>),
}

impl<'de, I> de::MapAccess<'de> for FieldsAccess<'de, I>
where
    I: Iterator<Item = (&'de str, &'de AnyValue)>,
{
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if let Some(tag) = self.tag.take() {
            self.value = Some(Pending::Tag(tag));
            return seed
                .deserialize(de::value::BorrowedStrDeserializer::new("kind"))
                .map(Some);
        }
        let Some((name, value)) = self.fields.next() else {
            return Ok(None);
        };
        self.value = Some(Pending::Value(Any(Some(value))));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(Pending::Tag(t)) => seed.deserialize(de::value::BorrowedStrDeserializer::new(t)),
            Some(Pending::Value(v)) => seed.deserialize(v),
            None => Err(Error("a value without its key".into())),
        }
    }
}
