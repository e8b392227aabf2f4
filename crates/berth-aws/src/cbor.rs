//! Smithy RPC v2 CBOR (spec/protocols.md §4), the protocol current aws-sdk-rust speaks to
//! CloudWatch: request bodies become the same JSON value the other protocols decode to, and
//! output values are encoded by walking the output shape (timestamps as tag 1 over epoch
//! seconds, blobs as byte strings, floats always 64-bit).
//!
//! Decoding is generic: a tag-1 timestamp becomes its number of seconds, a byte string its
//! base64 text (what the JSON protocols carry), NaN and the infinities the strings Smithy's
//! JSON protocols use (`"NaN"`, `"Infinity"`, `"-Infinity"`); indefinite-length items and
//! half-precision floats are accepted.

use crate::model::{Model, ShapeKind};
use base64::Engine;
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};
use serde_json::{Map, Number, Value};

/// Why a body is not a CBOR value the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR request body: {0}")]
pub struct Malformed(pub String);

fn bad(e: impl std::fmt::Display) -> Malformed {
    Malformed(e.to_string())
}

/// Nesting deeper than this is refused (a hostile body must not exhaust the stack).
const MAX_DEPTH: usize = 64;

/// Decodes one CBOR item (the whole body) into a JSON value.
pub fn decode(body: &[u8]) -> Result<Value, Malformed> {
    let mut d = Decoder::new(body);
    let v = item(&mut d, 0)?;
    if d.position() != body.len() {
        return Err(Malformed("trailing bytes after the body's item".into()));
    }
    Ok(v)
}

fn float(x: f64) -> Value {
    if x.is_nan() {
        Value::String("NaN".into())
    } else if x.is_infinite() {
        Value::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Whether the next item is the `break` that ends an indefinite-length item (consumed).
fn at_break(d: &mut Decoder<'_>) -> Result<bool, Malformed> {
    if d.datatype().map_err(bad)? == Type::Break {
        d.set_position(d.position() + 1);
        return Ok(true);
    }
    Ok(false)
}

fn item(d: &mut Decoder<'_>, depth: usize) -> Result<Value, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed("nested too deeply".into()));
    }
    Ok(match d.datatype().map_err(bad)? {
        Type::Bool => Value::Bool(d.bool().map_err(bad)?),
        Type::Null | Type::Undefined => {
            d.skip().map_err(bad)?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64().map_err(bad)?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::from(d.i64().map_err(bad)?),
        Type::Int => {
            let n = d.int().map_err(bad)?;
            let n = i64::try_from(n).map_err(|_| Malformed("integer out of range".into()))?;
            Value::from(n)
        }
        Type::F16 => float(half_to_f64(d)?),
        Type::F32 => float(f64::from(d.f32().map_err(bad)?)),
        Type::F64 => float(d.f64().map_err(bad)?),
        Type::Bytes => base64(d.bytes().map_err(bad)?),
        Type::BytesIndef => {
            let mut all = Vec::new();
            for chunk in d.bytes_iter().map_err(bad)? {
                all.extend_from_slice(chunk.map_err(bad)?);
            }
            base64(&all)
        }
        Type::String => Value::String(d.str().map_err(bad)?.to_string()),
        Type::StringIndef => {
            let mut all = String::new();
            for chunk in d.str_iter().map_err(bad)? {
                all.push_str(chunk.map_err(bad)?);
            }
            Value::String(all)
        }
        Type::Array | Type::ArrayIndef => {
            let mut items = Vec::new();
            match d.array().map_err(bad)? {
                Some(n) => {
                    for _ in 0..n {
                        items.push(item(d, depth + 1)?);
                    }
                }
                None => {
                    while !at_break(d)? {
                        items.push(item(d, depth + 1)?);
                    }
                }
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let mut map = Map::new();
            let len = d.map().map_err(bad)?;
            let mut read = 0u64;
            loop {
                match len {
                    Some(n) if read == n => break,
                    None if at_break(d)? => break,
                    _ => {}
                }
                let key = match item(d, depth + 1)? {
                    Value::String(k) => k,
                    _ => return Err(Malformed("map keys must be text".into())),
                };
                let value = item(d, depth + 1)?;
                map.insert(key, value);
                read += 1;
            }
            Value::Object(map)
        }
        Type::Tag => {
            let tag = d.tag().map_err(bad)?;
            let inner = item(d, depth + 1)?;
            if tag == Tag::new(1) && !inner.is_number() {
                return Err(Malformed("a timestamp (tag 1) must wrap a number".into()));
            }
            // Tag 1 (epoch seconds) is the only one the protocol uses; the number is what
            // the JSON protocols carry.
            inner
        }
        other => return Err(Malformed(format!("unexpected CBOR item {other}"))),
    })
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A half-precision float (major type 7, additional information 25), widened.
fn half_to_f64(d: &mut Decoder<'_>) -> Result<f64, Malformed> {
    let at = d.position();
    let bytes = d.input();
    let (Some(hi), Some(lo)) = (bytes.get(at + 1), bytes.get(at + 2)) else {
        return Err(Malformed("truncated half-precision float".into()));
    };
    d.set_position(at + 3);
    let h = u16::from_be_bytes([*hi, *lo]);
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    Ok(sign
        * match exp {
            0 => frac * 2f64.powi(-24),
            31 if frac == 0.0 => f64::INFINITY,
            31 => f64::NAN,
            e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
        })
}

/// Encodes `value`, an instance of shape `shape`, as CBOR.
pub fn encode(model: &Model, shape: &str, value: &Value) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    write(&mut e, model, shape, value);
    e.into_writer()
}

/// The error body: `__type` (the shape's absolute id) and `message`.
pub fn encode_error(type_id: &str, message: &str) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    let n = if message.is_empty() { 1 } else { 2 };
    let _ = e
        .map(n)
        .and_then(|e| e.str("__type"))
        .and_then(|e| e.str(type_id));
    if !message.is_empty() {
        let _ = e.str("message").and_then(|e| e.str(message));
    }
    e.into_writer()
}

// Writing to a `Vec` cannot fail: the results below are infallible.
fn write(e: &mut Encoder<Vec<u8>>, model: &Model, shape_name: &str, value: &Value) {
    let shape = model.shape(shape_name);
    let _ = match (shape.kind, value) {
        (ShapeKind::Structure, Value::Object(map)) => {
            let present: Vec<(&String, &Value, &str)> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .filter_map(|(k, v)| shape.members.get(k).map(|m| (k, v, m.shape.as_str())))
                .collect();
            let _ = e.map(present.len() as u64);
            for (k, v, member_shape) in present {
                let _ = e.str(k);
                write(e, model, member_shape, v);
            }
            Ok(&mut *e)
        }
        (ShapeKind::Map, Value::Object(map)) => {
            let value_shape = shape.value.as_ref().expect("map value").shape.as_str();
            let present: Vec<_> = map.iter().filter(|(_, v)| !v.is_null()).collect();
            let _ = e.map(present.len() as u64);
            for (k, v) in present {
                let _ = e.str(k);
                write(e, model, value_shape, v);
            }
            Ok(&mut *e)
        }
        (ShapeKind::List, Value::Array(items)) => {
            let member = shape.member.as_ref().expect("list member").shape.as_str();
            let _ = e.array(items.len() as u64);
            for item in items {
                write(e, model, member, item);
            }
            Ok(&mut *e)
        }
        (ShapeKind::Timestamp, v) => {
            let secs = match v {
                Value::String(s) => crate::timestamp::parse_iso8601(s)
                    .map(crate::timestamp::epoch_seconds)
                    .unwrap_or(0.0),
                v => v.as_f64().unwrap_or(0.0),
            };
            e.tag(Tag::new(1)).and_then(|e| e.f64(secs))
        }
        (ShapeKind::Blob, Value::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_else(|_| s.as_bytes().to_vec());
            e.bytes(&bytes)
        }
        (ShapeKind::Double | ShapeKind::Float, Value::String(s)) => e.f64(match s.as_str() {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => f64::NAN,
        }),
        (ShapeKind::Double | ShapeKind::Float, v) => e.f64(v.as_f64().unwrap_or(0.0)),
        (ShapeKind::Integer | ShapeKind::Long, v) => match v.as_i64() {
            Some(n) => e.i64(n),
            None => e.f64(v.as_f64().unwrap_or(0.0)),
        },
        (ShapeKind::Boolean, Value::Bool(b)) => e.bool(*b),
        (_, Value::String(s)) => e.str(s),
        (_, Value::Bool(b)) => e.bool(*b),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => e.i64(i),
            None => e.f64(n.as_f64().unwrap_or(0.0)),
        },
        (_, Value::Null) => e.null(),
        // A value of another shape than the model's: encoded as it is (the strict output
        // check of debug builds reports it).
        (_, Value::Array(items)) => {
            let _ = e.array(items.len() as u64);
            for item in items {
                write_untyped(e, item);
            }
            Ok(&mut *e)
        }
        (_, Value::Object(_)) => {
            write_untyped(e, value);
            Ok(&mut *e)
        }
    };
}

fn write_untyped(e: &mut Encoder<Vec<u8>>, value: &Value) {
    let _ = match value {
        Value::Null => e.null(),
        Value::Bool(b) => e.bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => e.i64(i),
            None => e.f64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => e.str(s),
        Value::Array(items) => {
            let _ = e.array(items.len() as u64);
            items.iter().for_each(|i| write_untyped(e, i));
            Ok(&mut *e)
        }
        Value::Object(map) => {
            let _ = e.map(map.len() as u64);
            for (k, v) in map {
                let _ = e.str(k);
                write_untyped(e, v);
            }
            Ok(&mut *e)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;
    use serde_json::json;

    #[test]
    fn cbor_decodes_every_item_kind_the_protocol_sends() {
        // {"a": 1, "b": -2, "c": 1.5, "d": [true, null], "t": 1(1700000000.5), "x": h'0102'}
        let mut e = Encoder::new(Vec::new());
        e.map(6).unwrap();
        e.str("a").unwrap().u8(1).unwrap();
        e.str("b").unwrap().i8(-2).unwrap();
        e.str("c").unwrap().f32(1.5).unwrap();
        e.str("d")
            .unwrap()
            .array(2)
            .unwrap()
            .bool(true)
            .unwrap()
            .null()
            .unwrap();
        e.str("t")
            .unwrap()
            .tag(Tag::new(1))
            .unwrap()
            .f64(1_700_000_000.5)
            .unwrap();
        e.str("x").unwrap().bytes(&[1, 2]).unwrap();
        let v = decode(&e.into_writer()).unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": -2, "c": 1.5, "d": [true, null], "t": 1_700_000_000.5, "x": "AQI="})
        );
    }

    #[test]
    fn cbor_accepts_indefinite_lengths_and_half_floats() {
        // {_ "k": [_ "a" "b"], "h": 1.5 (f16), "s": (_ "ab" "c")}
        let body = [
            0xbf, 0x61, b'k', 0x9f, 0x61, b'a', 0x61, b'b', 0xff, 0x61, b'h', 0xf9, 0x3e, 0x00,
            0x61, b's', 0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff, 0xff,
        ];
        assert_eq!(
            decode(&body).unwrap(),
            json!({"k": ["a", "b"], "h": 1.5, "s": "abc"})
        );
        // NaN and infinities, as the JSON protocols spell them.
        assert_eq!(decode(&[0xf9, 0x7e, 0x00]).unwrap(), json!("NaN"));
        assert_eq!(decode(&[0xf9, 0xfc, 0x00]).unwrap(), json!("-Infinity"));
    }

    #[test]
    fn cbor_refuses_what_is_not_one_well_formed_item() {
        assert!(decode(&[0xa1, 0x01, 0x02]).is_err(), "non-text key");
        assert!(decode(&[0x01, 0x02]).is_err(), "trailing bytes");
        assert!(decode(&[0x62, b'a']).is_err(), "truncated");
        assert!(decode(&[0xc1, 0x61, b'x']).is_err(), "tag 1 over text");
    }

    #[test]
    fn cbor_encodes_by_the_output_shape() {
        let model = Service::CloudWatch.model();
        let out = json!({
            "MetricDataResults": [{
                "Id": "m1", "Label": "CPU", "StatusCode": "Complete",
                "Timestamps": [1_700_000_060.0], "Values": [2.0]
            }]
        });
        let bytes = encode(model, "GetMetricDataOutput", &out);
        // Timestamps come back as tag 1 over a 64-bit float; decoding gives the same value.
        let tag1_f64 = [0xc1u8, 0xfb];
        assert!(bytes.windows(2).any(|w| w == tag1_f64), "{bytes:02x?}");
        assert_eq!(decode(&bytes).unwrap(), out);
        let err = decode(&encode_error(
            "com.amazonaws.cloudwatch#ResourceNotFound",
            "no",
        ))
        .unwrap();
        assert_eq!(
            err,
            json!({"__type": "com.amazonaws.cloudwatch#ResourceNotFound", "message": "no"})
        );
    }
}
