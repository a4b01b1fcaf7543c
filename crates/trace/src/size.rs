//! About how many bytes a value's text and numbers take, found by walking
//! it with serde: what a trace store counts to stay within its bound.
//! Strings count their length, numbers and flags 8 bytes, and every
//! list, map, field name and enum 8 more, near enough to what they hold
//! in memory. (Counting the value's JSON did the same job at several
//! times the cost: escaping and number formatting for a count.)
//!
//! Written by hand: serde has no size-estimating serializer.

use std::fmt;

use serde::ser::{self, Serialize};

/// The estimate for `value` (0 if it cannot be serialized).
pub fn approx_size<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut n = 0;
    match value.serialize(Size(&mut n)) {
        Ok(()) => n,
        Err(_) => 0,
    }
}

const WORD: usize = 8;

#[derive(Debug)]
pub struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not countable")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Never
    }
}

struct Size<'a>(&'a mut usize);

impl<'a> Size<'a> {
    fn add(self, n: usize) -> Result<(), Never> {
        *self.0 += n;
        Ok(())
    }

    /// A list, map or enum variant: a word of its own, then its items.
    fn open(self) -> Result<Size<'a>, Never> {
        *self.0 += WORD;
        Ok(self)
    }
}

/// Scalars: one word each.
macro_rules! word {
    ($($method:ident: $t:ty),*) => {$(
        fn $method(self, _: $t) -> Result<(), Never> {
            self.add(WORD)
        }
    )*};
}

impl<'a> ser::Serializer for Size<'a> {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Size<'a>;
    type SerializeTuple = Size<'a>;
    type SerializeTupleStruct = Size<'a>;
    type SerializeTupleVariant = Size<'a>;
    type SerializeMap = Size<'a>;
    type SerializeStruct = Size<'a>;
    type SerializeStructVariant = Size<'a>;

    word!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
          serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
          serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char);

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.add(v.len())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.add(v.len())
    }
    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.add(WORD)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        *self.0 += WORD;
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Size<'a>, Never> {
        self.open()
    }
    fn serialize_tuple(self, _: usize) -> Result<Size<'a>, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Size<'a>, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Size<'a>, Never> {
        self.open()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Size<'a>, Never> {
        self.open()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Size<'a>, Never> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Size<'a>, Never> {
        self.open()
    }
}

/// Every compound: the items' sizes, and a word per named field.
macro_rules! compound {
    ($($trait:ident :: $method:ident ($($key:ident: $kt:ty)?)),*) => {$(
        impl ser::$trait for Size<'_> {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: $kt,)? value: &T) -> Result<(), Never> {
                $(let _ = $key; *self.0 += WORD;)?
                value.serialize(Size(&mut *self.0))
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key: &'static str),
    SerializeStructVariant::serialize_field(key: &'static str)
);

impl ser::SerializeMap for Size<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(Size(&mut *self.0))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(Size(&mut *self.0))
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_its_length_and_the_rest_a_word() {
        assert_eq!(approx_size("hello"), 5);
        assert_eq!(approx_size(&7u16), WORD);
        assert_eq!(approx_size(&None::<u64>), 0);
        // A list: its own word, then its items.
        assert_eq!(approx_size(&vec!["ab", "cde"]), WORD + 5);
        #[derive(serde::Serialize)]
        struct S {
            name: String,
            n: u32,
        }
        let s = S {
            name: "x".repeat(100),
            n: 1,
        };
        // Two field names, 100 bytes of text, one number.
        assert_eq!(approx_size(&s), 2 * WORD + 100 + WORD);
        // Grows with the text, as the memory does.
        let big = S {
            name: "x".repeat(10_000),
            n: 1,
        };
        assert!(approx_size(&big) > 10_000);
    }
}
