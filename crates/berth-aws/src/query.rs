//! The awsQuery protocol: flattened form parameters in, XML out (spec/protocols.md §5).
//!
//! [`decode`] turns the form into the same JSON value an awsJson client would have sent, guided
//! by the input shape, so every protocol shares one validator and one set of handlers.
//! [`encode_response`] and [`encode_error`] write the XML envelopes.

use crate::model::{Model, ShapeKind, ShapeRef};
use crate::timestamp::{parse_iso8601, write_iso8601};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Form parameters, URL-decoded (`+` is a space here, as in any form body).
pub type Params = BTreeMap<String, String>;

pub fn parse_form(body: &[u8]) -> Params {
    form_urlencoded::parse(body).into_owned().collect()
}

/// A parameter that cannot be read as its shape's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam(pub String);

/// Decodes the members of structure `shape` from `params` (skipping `Action` and `Version`).
pub fn decode(model: &Model, shape: &str, params: &Params) -> Result<Value, BadParam> {
    Ok(decode_shape(model, shape, "", params)?.unwrap_or_else(|| Value::Object(Map::new())))
}

fn has_prefix(params: &Params, prefix: &str) -> bool {
    let dotted = format!("{prefix}.");
    params
        .range(dotted.clone()..)
        .next()
        .is_some_and(|(k, _)| k.starts_with(&dotted))
}

fn child(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn decode_shape(
    model: &Model,
    shape_name: &str,
    key: &str,
    params: &Params,
) -> Result<Option<Value>, BadParam> {
    let shape = model.shape(shape_name);
    let scalar = || params.get(key);
    let bad =
        |what: &str, v: &str| BadParam(format!("Invalid {what} value '{v}' for parameter {key}"));
    Ok(match shape.kind {
        ShapeKind::Structure => {
            if !key.is_empty() && !has_prefix(params, key) {
                return Ok(None);
            }
            let mut map = Map::new();
            for (name, member) in &shape.members {
                let wire = member.location_name.as_deref().unwrap_or(name);
                if let Some(v) = decode_shape(model, &member.shape, &child(key, wire), params)? {
                    map.insert(name.clone(), v);
                }
            }
            Some(Value::Object(map))
        }
        ShapeKind::List => {
            let member = shape.member.as_ref().expect("list has a member");
            let base = if shape.flattened {
                key.to_string()
            } else {
                child(key, member.location_name.as_deref().unwrap_or("member"))
            };
            if params.get(key).is_some_and(String::is_empty) && !has_prefix(params, key) {
                return Ok(Some(Value::Array(Vec::new())));
            }
            let mut items = Vec::new();
            for i in 1.. {
                let k = format!("{base}.{i}");
                match decode_shape(model, &member.shape, &k, params)? {
                    Some(v) => items.push(v),
                    None => break,
                }
            }
            if items.is_empty() {
                return Ok(None);
            }
            Some(Value::Array(items))
        }
        ShapeKind::Map => {
            let (k_ref, v_ref) = (
                shape.key.as_ref().expect("map has a key"),
                shape.value.as_ref().expect("map has a value"),
            );
            let base = if shape.flattened {
                key.to_string()
            } else {
                child(key, "entry")
            };
            let mut map = Map::new();
            for i in 1.. {
                let entry = format!("{base}.{i}");
                let kname = child(&entry, k_ref.location_name.as_deref().unwrap_or("key"));
                let Some(k) = params.get(&kname) else { break };
                let vname = child(&entry, v_ref.location_name.as_deref().unwrap_or("value"));
                let v = decode_shape(model, &v_ref.shape, &vname, params)?.unwrap_or(Value::Null);
                map.insert(k.clone(), v);
            }
            if map.is_empty() {
                return Ok(None);
            }
            Some(Value::Object(map))
        }
        ShapeKind::String | ShapeKind::Blob => scalar().map(|v| Value::String(v.clone())),
        ShapeKind::Boolean => match scalar().map(String::as_str) {
            None => None,
            Some("true") => Some(Value::Bool(true)),
            Some("false") => Some(Value::Bool(false)),
            Some(v) => return Err(bad("boolean", v)),
        },
        ShapeKind::Integer | ShapeKind::Long => match scalar() {
            None => None,
            Some(v) => Some(Value::Number(
                v.parse::<i64>().map_err(|_| bad("integer", v))?.into(),
            )),
        },
        ShapeKind::Double | ShapeKind::Float => match scalar() {
            None => None,
            Some(v) => {
                let n = v.parse::<f64>().map_err(|_| bad("number", v))?;
                Some(Number::from_f64(n).map_or_else(|| Value::String(v.clone()), Value::Number))
            }
        },
        ShapeKind::Timestamp => match scalar() {
            None => None,
            Some(v) => {
                let t = parse_iso8601(v).ok_or_else(|| bad("timestamp", v))?;
                Some(Value::from(crate::timestamp::epoch_seconds(t)))
            }
        },
    })
}

fn escape(out: &mut String, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// `<{op}Response xmlns=…><{op}Result>…</…><ResponseMetadata>…` for a successful call.
pub fn encode_response(model: &Model, operation: &str, output: &Value, request_id: &str) -> String {
    let ns = model.metadata.xml_namespace.as_deref().unwrap_or_default();
    let mut out = String::with_capacity(512);
    let _ = write!(out, "<{operation}Response xmlns=\"{ns}\">");
    let op = model.operation(operation).expect("operation exists");
    if let Some(output_ref) = &op.output {
        let wrapper = output_ref
            .result_wrapper
            .clone()
            .unwrap_or_else(|| format!("{operation}Result"));
        let _ = write!(out, "<{wrapper}>");
        encode_members(model, &output_ref.shape, output, &mut out);
        let _ = write!(out, "</{wrapper}>");
    }
    out.push_str("<ResponseMetadata><RequestId>");
    escape(&mut out, request_id);
    let _ = write!(out, "</RequestId></ResponseMetadata></{operation}Response>");
    out
}

/// The awsQuery error envelope.
pub fn encode_error(
    model: Option<&Model>,
    sender: bool,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    let ns = model
        .and_then(|m| m.metadata.xml_namespace.as_deref())
        .unwrap_or_default();
    let mut out = format!(
        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{}</Type><Code>",
        if sender { "Sender" } else { "Receiver" }
    );
    escape(&mut out, code);
    out.push_str("</Code><Message>");
    escape(&mut out, message);
    out.push_str("</Message></Error><RequestId>");
    escape(&mut out, request_id);
    out.push_str("</RequestId></ErrorResponse>");
    out
}

fn encode_members(model: &Model, shape_name: &str, value: &Value, out: &mut String) {
    let shape = model.shape(shape_name);
    let Value::Object(map) = value else { return };
    for (name, member) in &shape.members {
        if let Some(v) = map.get(name).filter(|v| !v.is_null()) {
            let element = member.location_name.as_deref().unwrap_or(name);
            encode_value(model, member, element, v, out);
        }
    }
}

fn encode_value(model: &Model, r: &ShapeRef, element: &str, value: &Value, out: &mut String) {
    let shape = model.shape(&r.shape);
    match shape.kind {
        ShapeKind::Structure => {
            open(out, element);
            encode_members(model, &r.shape, value, out);
            close(out, element);
        }
        ShapeKind::List => {
            let member = shape.member.as_ref().expect("list has a member");
            let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
            if shape.flattened || r.flattened {
                for item in items {
                    encode_value(model, member, element, item, out);
                }
            } else {
                open(out, element);
                let inner = member.location_name.as_deref().unwrap_or("member");
                for item in items {
                    encode_value(model, member, inner, item, out);
                }
                close(out, element);
            }
        }
        ShapeKind::Map => {
            let (k_ref, v_ref) = (
                shape.key.as_ref().expect("map has a key"),
                shape.value.as_ref().expect("map has a value"),
            );
            open(out, element);
            for (k, v) in value.as_object().into_iter().flatten() {
                out.push_str("<entry>");
                let kname = k_ref.location_name.as_deref().unwrap_or("key");
                encode_value(model, k_ref, kname, &Value::String(k.clone()), out);
                let vname = v_ref.location_name.as_deref().unwrap_or("value");
                encode_value(model, v_ref, vname, v, out);
                out.push_str("</entry>");
            }
            close(out, element);
        }
        ShapeKind::Timestamp => {
            open(out, element);
            if let Some(secs) = value.as_f64() {
                let nanos = (secs * 1e9) as i128;
                if let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
                    write_iso8601(out, t);
                }
            }
            close(out, element);
        }
        _ => {
            open(out, element);
            match value {
                Value::String(s) => escape(out, s),
                // Numbers and booleans need no escaping.
                Value::Number(n) => {
                    let _ = write!(out, "{n}");
                }
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                other => escape(out, &other.to_string()),
            }
            close(out, element);
        }
    }
}

fn open(out: &mut String, element: &str) {
    out.push('<');
    out.push_str(element);
    out.push('>');
}

fn close(out: &mut String, element: &str) {
    out.push_str("</");
    out.push_str(element);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;
    use serde_json::json;

    /// The captured botocore request of spec/protocols.md §5.
    #[test]
    fn query_decodes_nested_lists_and_structures() {
        let body = "Action=CreateRule&Version=2015-12-01&ListenerArn=arn%3AL&Priority=10\
&Conditions.member.1.Field=path-pattern\
&Conditions.member.1.PathPatternConfig.Values.member.1=%2Fapi%2F*\
&Conditions.member.1.PathPatternConfig.Values.member.2=%2Fv2%2F*\
&Conditions.member.2.Field=host-header\
&Conditions.member.2.Values.member.1=a.example.com\
&Actions.member.1.Type=forward\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn=arn%3ATG1\
&Actions.member.1.ForwardConfig.TargetGroups.member.1.Weight=1\
&Tags.member.1.Key=k&Tags.member.1.Value=v";
        let params = parse_form(body.as_bytes());
        let v = decode(Service::Elbv2.model(), "CreateRuleInput", &params).unwrap();
        assert_eq!(
            v,
            json!({
                "ListenerArn": "arn:L",
                "Priority": 10,
                "Conditions": [
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*", "/v2/*"]}},
                    {"Field": "host-header", "Values": ["a.example.com"]}
                ],
                "Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "arn:TG1", "Weight": 1}]}}],
                "Tags": [{"Key": "k", "Value": "v"}]
            })
        );
    }

    #[test]
    fn query_decodes_maps_empty_lists_and_rejects_bad_numbers() {
        let model = Service::Elbv2.model();
        let params = parse_form(b"Names=&PageSize=5");
        let v = decode(model, "DescribeLoadBalancersInput", &params).unwrap();
        assert_eq!(v, json!({"Names": [], "PageSize": 5}));
        let params = parse_form(b"PageSize=five");
        assert!(decode(model, "DescribeLoadBalancersInput", &params).is_err());
        let params = parse_form(
            b"Attributes.member.1.Key=idle_timeout.timeout_seconds&Attributes.member.1.Value=30&LoadBalancerArn=a",
        );
        let v = decode(model, "ModifyLoadBalancerAttributesInput", &params).unwrap();
        assert_eq!(v["Attributes"][0]["Value"], "30");
    }

    #[test]
    fn query_xml_envelopes_are_exact() {
        let model = Service::Sts.model();
        let out = json!({"Account": "000000000000", "Arn": "arn:aws:iam::000000000000:root", "UserId": "000000000000"});
        assert_eq!(
            encode_response(model, "GetCallerIdentity", &out, "rid"),
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Account>000000000000</Account><Arn>arn:aws:iam::000000000000:root</Arn><UserId>000000000000</UserId></GetCallerIdentityResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        );
        assert_eq!(
            encode_error(
                Some(Service::Elbv2.model()),
                true,
                "LoadBalancerNotFound",
                "One or more load balancers not found",
                "r<1>"
            ),
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>LoadBalancerNotFound</Code><Message>One or more load balancers not found</Message></Error><RequestId>r&lt;1&gt;</RequestId></ErrorResponse>"
        );
    }

    #[test]
    fn query_xml_encodes_lists_and_timestamps() {
        let model = Service::Elbv2.model();
        let out = json!({"LoadBalancers": [{"LoadBalancerName": "a&b", "CreatedTime": 1735787045.5, "AvailabilityZones": []}]});
        let xml = encode_response(model, "DescribeLoadBalancers", &out, "r");
        assert!(xml.contains("<LoadBalancers><member><AvailabilityZones></AvailabilityZones><CreatedTime>2025-01-02T03:04:05.500Z</CreatedTime><LoadBalancerName>a&amp;b</LoadBalancerName></member></LoadBalancers>"), "{xml}");
    }
}
