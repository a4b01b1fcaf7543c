//! The part of OTLP's trace messages weblab reads and writes, declared for
//! prost with every string as `bytes::Bytes` instead of `String`.
//!
//! Why not only `opentelemetry-proto`'s types: they hold each attribute
//! key and string value as its own `String`, so a collector decoding tens
//! of thousands of spans a second spent a quarter of its time in the
//! allocator, and an exporter allocated every attribute name it had as a
//! static string. Protobuf's `string` and `bytes` share one wire type, so
//! these messages read and write exactly the same bytes (the tests below
//! check both directions against `opentelemetry-proto`); decoded from a
//! `Bytes` body, every string is a slice of that body, with no copy.
//! Fields weblab never reads (trace state, events, links, status,
//! dropped counts, schema URLs) are skipped by prost on decode.
//!
//! Field numbers are those of opentelemetry-proto 1.x
//! (opentelemetry/proto/{collector/trace,trace,common,resource}/v1).

use bytes::Bytes;

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub version: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub parent_span_id: Bytes,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    /// `Span.SpanKind`: 1 internal, 2 server, 3 client.
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
}

/// `ExportTraceServiceRequest` read one level less deep: each span stays
/// its own bytes (a message and `bytes` share protobuf's wire type), for
/// a collector that keeps spans encoded until they are read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Shallow {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ShallowResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShallowResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ShallowScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShallowScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// Each an encoded [`Span`].
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub spans: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub value: Option<Value>,
}

/// `AnyValue.value`. A `StringValue` is text by the protocol; its bytes
/// are checked as UTF-8 where they are read.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(bytes = "bytes", tag = "1")]
    StringValue(Bytes),
    #[prost(bool, tag = "2")]
    BoolValue(bool),
    #[prost(int64, tag = "3")]
    IntValue(i64),
    #[prost(double, tag = "4")]
    DoubleValue(f64),
    #[prost(message, tag = "5")]
    ArrayValue(ArrayValue),
    #[prost(message, tag = "6")]
    KvlistValue(KeyValueList),
    #[prost(bytes = "bytes", tag = "7")]
    BytesValue(Bytes),
    /// An index into a dictionary weblab does not use (read as null).
    #[prost(int32, tag = "8")]
    StringValueStrindex(i32),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// Text as the bytes of a protobuf string (no copy for a static one).
pub fn text(s: impl Into<Bytes>) -> Bytes {
    s.into()
}

/// A protobuf string as text (`None` if it is not UTF-8).
pub fn as_str(b: &Bytes) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1 as otel_common;
    use opentelemetry_proto::tonic::trace::v1 as otel;
    use prost::Message;

    fn otel_kv(key: &str, v: otel_common::any_value::Value) -> otel_common::KeyValue {
        otel_common::KeyValue {
            key: key.into(),
            value: Some(otel_common::AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    /// A request using every field weblab reads, and some it skips.
    fn otel_request() -> ExportTraceServiceRequest {
        use otel_common::any_value::Value as V;
        let nested = V::KvlistValue(otel_common::KeyValueList {
            values: vec![
                otel_kv(
                    "list",
                    V::ArrayValue(otel_common::ArrayValue {
                        values: vec![
                            otel_common::AnyValue {
                                value: Some(V::IntValue(-7)),
                            },
                            otel_common::AnyValue {
                                value: Some(V::StringValue("é".into())),
                            },
                        ],
                    }),
                ),
                otel_kv("raw", V::BytesValue(vec![0, 255])),
            ],
        });
        ExportTraceServiceRequest {
            resource_spans: vec![otel::ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![otel_kv("service.name", V::StringValue("web1".into()))],
                    dropped_attributes_count: 3,
                    ..Default::default()
                }),
                scope_spans: vec![otel::ScopeSpans {
                    scope: Some(otel_common::InstrumentationScope {
                        name: "weblab".into(),
                        version: "0.1".into(),
                        ..Default::default()
                    }),
                    spans: vec![otel::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        parent_span_id: vec![3; 8],
                        flags: 1,
                        name: "http_serve".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_000_000_500,
                        attributes: vec![
                            otel_kv("http.response.status_code", V::IntValue(200)),
                            otel_kv("ok", V::BoolValue(true)),
                            otel_kv("ratio", V::DoubleValue(0.25)),
                            otel_kv("nested", nested),
                        ],
                        ..Default::default()
                    }],
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
        }
    }

    #[test]
    fn the_same_bytes_as_opentelemetry_proto_both_ways() {
        let theirs = otel_request();
        let bytes = Bytes::from(theirs.encode_to_vec());
        // Theirs → ours: every field weblab reads comes through.
        let ours = ExportRequest::decode(bytes.clone()).unwrap();
        let s = &ours.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(&s.trace_id[..], &[1; 16]);
        assert_eq!(as_str(&s.name), Some("http_serve"));
        assert_eq!((s.kind, s.flags), (2, 1));
        assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 500);
        // Ours → theirs: re-encoded, the fields weblab keeps are equal.
        let back = ExportTraceServiceRequest::decode(&ours.encode_to_vec()[..]).unwrap();
        let mut expected = theirs.clone();
        expected.resource_spans[0].schema_url.clear();
        expected.resource_spans[0]
            .resource
            .as_mut()
            .unwrap()
            .dropped_attributes_count = 0;
        assert_eq!(back, expected);
        // Strings decoded from a Bytes body point into it: no copy.
        let key = &s.attributes[0].key;
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(range.contains(&(key.as_ptr() as usize)));
    }
}
