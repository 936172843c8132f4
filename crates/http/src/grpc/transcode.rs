//! An answer's REST form (protobuf's JSON mapping, as the REST routes give it) written straight
//! as the protobuf encoding of the method's response message, by descriptor, in one walk: no
//! message is built in between, which is what made the gateway's answers cost a third more
//! than REST's. The wire format is prost's (`prost::encoding`), the well-known types' text
//! forms are parsed by `prost-types`, the descriptors are `prost-reflect`'s; this module only
//! maps the JSON onto them, as protobuf's JSON parser does (and its unit tests check that it
//! agrees with `prost-reflect`'s on what the routes answer).
//!
//! It is lenient where the parser the gateway used was (`deny_unknown_fields(false)`): an
//! unknown field, or an enum value by a name the descriptor does not know, is left out.

use base64::Engine as _;
use bytes::BufMut as _;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

type Result<T = ()> = std::result::Result<T, String>;

/// Deeper than any answer's messages; `Struct` values (users' JSON) are bounded on the way in.
const MAX_DEPTH: usize = 100;

/// The protobuf encoding of `json`, a `desc` message in its JSON form.
pub fn encode(desc: &MessageDescriptor, json: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    message(desc, json, &mut out, 0)?;
    Ok(out)
}

fn message(desc: &MessageDescriptor, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    if depth > MAX_DEPTH {
        return Err(format!("{} is nested too deep", desc.full_name()));
    }
    let name = desc.full_name();
    if let Some(wkt) = name.strip_prefix("google.protobuf.") {
        match wkt {
            "Any" => return any(desc, v, out, depth),
            "Timestamp" => {
                let t: prost_types::Timestamp =
                    text(v, name)?.parse().map_err(|e| format!("{e}"))?;
                prost::Message::encode_raw(&t, out);
                return Ok(());
            }
            "Duration" => {
                let d: prost_types::Duration =
                    text(v, name)?.parse().map_err(|e| format!("{e}"))?;
                prost::Message::encode_raw(&d, out);
                return Ok(());
            }
            "FieldMask" => {
                for path in text(v, name)?.split(',').filter(|p| !p.is_empty()) {
                    string_field(1, &snake_case(path), out);
                }
                return Ok(());
            }
            "Struct" => return structure(object(v, name)?, out, depth),
            "ListValue" => return list_value(v, out, depth),
            "Value" => return value(v, out, depth),
            "Empty" => return Ok(()),
            _ if wkt.ends_with("Value") => {
                // A wrapper (`Int64Value`, `StringValue`, …) is its `value` alone.
                let field = desc.get_field(1).ok_or("a wrapper without its value")?;
                return single(field.number(), &field.kind(), v, out, depth);
            }
            _ => {}
        }
    }
    fields(desc, object(v, name)?, out, depth)
}

/// A message's fields from `obj`, by JSON name (or proto name, as protobuf's parser takes).
fn fields(
    desc: &MessageDescriptor,
    obj: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result {
    for (key, v) in obj {
        let Some(f) = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key))
        else {
            continue;
        };
        // `null` is a field left out, but for a `google.protobuf.Value`, whose null it is.
        if v.is_null() && (f.is_list() || !is_value(&f.kind())) {
            continue;
        }
        field(&f, v, out, depth)?;
    }
    Ok(())
}

fn field(f: &FieldDescriptor, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    let kind = f.kind();
    if f.is_map() {
        let Kind::Message(entry) = &kind else {
            return Err(format!("map field {} without its entry", f.full_name()));
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        for (k, item) in object(v, f.full_name())? {
            encode_key(f.number(), WireType::LengthDelimited, out);
            delimited(out, |out| {
                map_key(&key_field.kind(), k, out)?;
                if item.is_null() && !is_value(&value_field.kind()) {
                    return Ok(());
                }
                single(2, &value_field.kind(), item, out, depth)
            })?;
        }
        return Ok(());
    }
    if f.is_list() {
        let Value::Array(items) = v else {
            return Err(format!("{} is not a list", f.full_name()));
        };
        if f.is_packed() {
            encode_key(f.number(), WireType::LengthDelimited, out);
            return delimited(out, |out| {
                items.iter().try_for_each(|item| {
                    if let Some(raw) = scalar(&kind, item)? {
                        raw.write(out);
                    }
                    Ok(())
                })
            });
        }
        return items
            .iter()
            .try_for_each(|item| single(f.number(), &kind, item, out, depth));
    }
    single(f.number(), &kind, v, out, depth)
}

/// One value of field `number`, its key first.
fn single(number: u32, kind: &Kind, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    match kind {
        Kind::Message(m) => {
            encode_key(number, WireType::LengthDelimited, out);
            delimited(out, |out| message(m, v, out, depth + 1))
        }
        Kind::String => {
            string_field(number, text(v, "a string field")?, out);
            Ok(())
        }
        Kind::Bytes => {
            let s = text(v, "a bytes field")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                .map_err(|e| format!("bytes {s:?}: {e}"))?;
            encode_key(number, WireType::LengthDelimited, out);
            encode_varint(bytes.len() as u64, out);
            out.put_slice(&bytes);
            Ok(())
        }
        _ => {
            if let Some(raw) = scalar(kind, v)? {
                encode_key(number, raw.wire_type(), out);
                raw.write(out);
            }
            Ok(())
        }
    }
}

/// A scalar's encoding, ready to write after its key (or packed with others).
enum Raw {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
}

impl Raw {
    fn wire_type(&self) -> WireType {
        match self {
            Raw::Varint(_) => WireType::Varint,
            Raw::Fixed32(_) => WireType::ThirtyTwoBit,
            Raw::Fixed64(_) => WireType::SixtyFourBit,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match *self {
            Raw::Varint(n) => encode_varint(n, out),
            Raw::Fixed32(n) => out.put_u32_le(n),
            Raw::Fixed64(n) => out.put_u64_le(n),
        }
    }
}

/// A numeric, boolean or enum value; `None` for an enum value by a name it does not have.
fn scalar(kind: &Kind, v: &Value) -> Result<Option<Raw>> {
    let narrow =
        |n: i64| i32::try_from(n).map_err(|_| format!("{n} is out of range for a 32-bit field"));
    let unsigned =
        |n: i64| u64::try_from(n).map_err(|_| format!("{n} is negative in an unsigned field"));
    let unsigned32 = |n: i64| {
        u32::try_from(n).map_err(|_| format!("{n} is out of range for a 32-bit unsigned field"))
    };
    let raw = match kind {
        Kind::Double => Raw::Fixed64(float(v)?.to_bits()),
        Kind::Float => Raw::Fixed32((float(v)? as f32).to_bits()),
        // Negative int32s are sign-extended to ten bytes, as protobuf writes them.
        Kind::Int32 => Raw::Varint(narrow(integer(v)?)? as i64 as u64),
        Kind::Int64 => Raw::Varint(integer(v)? as u64),
        Kind::Uint32 => Raw::Varint(unsigned32(integer(v)?)? as u64),
        Kind::Uint64 => Raw::Varint(match v {
            Value::String(s) => s
                .parse()
                .map_err(|_| format!("{s:?} is not an unsigned integer"))?,
            _ => v.as_u64().map_or_else(|| unsigned(integer(v)?), Ok)?,
        }),
        Kind::Sint32 => {
            let n = narrow(integer(v)?)?;
            Raw::Varint(((n << 1) ^ (n >> 31)) as u32 as u64)
        }
        Kind::Sint64 => {
            let n = integer(v)?;
            Raw::Varint(((n << 1) ^ (n >> 63)) as u64)
        }
        Kind::Fixed32 => Raw::Fixed32(unsigned32(integer(v)?)?),
        Kind::Fixed64 => Raw::Fixed64(unsigned(integer(v)?)?),
        Kind::Sfixed32 => Raw::Fixed32(narrow(integer(v)?)? as u32),
        Kind::Sfixed64 => Raw::Fixed64(integer(v)? as u64),
        Kind::Bool => match v {
            Value::Bool(b) => Raw::Varint(*b as u64),
            _ => return Err(format!("{v} is not a boolean")),
        },
        Kind::Enum(e) => {
            let number = match v {
                Value::String(name) => match e.get_value_by_name(name) {
                    Some(value) => value.number(),
                    None => return Ok(None),
                },
                _ => narrow(integer(v)?)?,
            };
            Raw::Varint(number as i64 as u64)
        }
        Kind::String | Kind::Bytes | Kind::Message(_) => {
            return Err("not a scalar".into());
        }
    };
    Ok(Some(raw))
}

/// An integer as JSON carries one: a number (integral), or a string of one (64-bit values).
fn integer(v: &Value) -> Result<i64> {
    let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 9.3e18).then_some(f as i64);
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(whole)),
        Value::String(s) => s.parse().ok().or_else(|| s.parse().ok().and_then(whole)),
        _ => None,
    }
    .ok_or_else(|| format!("{v} is not an integer"))
}

fn float(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        },
        _ => None,
    }
    .ok_or_else(|| format!("{v} is not a number"))
}

fn map_key(kind: &Kind, key: &str, out: &mut Vec<u8>) -> Result {
    match kind {
        Kind::String => {
            string_field(1, key, out);
            Ok(())
        }
        Kind::Bool => single(1, kind, &Value::Bool(key == "true"), out, 0),
        _ => single(1, kind, &Value::String(key.to_string()), out, 0),
    }
}

/// `Any`: its `@type`, then the message it names: that message's fields beside `@type`, or,
/// for a well-known type, its JSON form under `value`.
fn any(desc: &MessageDescriptor, v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    let obj = object(v, "google.protobuf.Any")?;
    let Some(url) = obj.get("@type").and_then(Value::as_str) else {
        return if obj.is_empty() {
            Ok(())
        } else {
            Err("an Any without @type".into())
        };
    };
    let name = url.rsplit('/').next().unwrap_or(url);
    let inner = desc
        .parent_pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("an Any of unknown type {url:?}"))?;
    string_field(1, url, out);
    encode_key(2, WireType::LengthDelimited, out);
    delimited(out, |out| {
        if name.starts_with("google.protobuf.") {
            match obj.get("value") {
                Some(value) => message(&inner, value, out, depth + 1),
                None => Ok(()),
            }
        } else {
            fields(&inner, obj, out, depth + 1)
        }
    })
}

/// `Struct`: field 1, a map of names to `Value`s.
fn structure(obj: &Map<String, Value>, out: &mut Vec<u8>, depth: usize) -> Result {
    for (k, item) in obj {
        encode_key(1, WireType::LengthDelimited, out);
        delimited(out, |out| {
            string_field(1, k, out);
            encode_key(2, WireType::LengthDelimited, out);
            delimited(out, |out| value(item, out, depth + 1))
        })?;
    }
    Ok(())
}

/// `ListValue`: field 1, repeated `Value`.
fn list_value(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    let Value::Array(items) = v else {
        return Err(format!("{v} is not a list"));
    };
    for item in items {
        encode_key(1, WireType::LengthDelimited, out);
        delimited(out, |out| value(item, out, depth + 1))?;
    }
    Ok(())
}

/// `Value`: whichever of its kinds the JSON is.
fn value(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result {
    if depth > MAX_DEPTH {
        return Err("a google.protobuf.Value is nested too deep".into());
    }
    match v {
        Value::Null => {
            encode_key(1, WireType::Varint, out);
            encode_varint(0, out);
        }
        Value::Number(n) => {
            encode_key(2, WireType::SixtyFourBit, out);
            out.put_f64_le(n.as_f64().unwrap_or_default());
        }
        Value::String(s) => string_field(3, s, out),
        Value::Bool(b) => {
            encode_key(4, WireType::Varint, out);
            encode_varint(*b as u64, out);
        }
        Value::Object(obj) => {
            encode_key(5, WireType::LengthDelimited, out);
            delimited(out, |out| structure(obj, out, depth + 1))?;
        }
        Value::Array(_) => {
            encode_key(6, WireType::LengthDelimited, out);
            delimited(out, |out| list_value(v, out, depth + 1))?;
        }
    }
    Ok(())
}

fn is_value(kind: &Kind) -> bool {
    matches!(kind, Kind::Message(m) if m.full_name() == "google.protobuf.Value")
}

/// Write what `body` writes, preceded by its length: written in place, then the length's
/// varint moved in before it (so a nested message needs no buffer of its own).
fn delimited(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>) -> Result) -> Result {
    let start = out.len();
    body(out)?;
    let mut prefix = [0u8; 10];
    let mut rest = &mut prefix[..];
    encode_varint((out.len() - start) as u64, &mut rest);
    let n = 10 - rest.len();
    out.extend_from_slice(&prefix[..n]);
    out[start..].rotate_right(n);
    Ok(())
}

fn string_field(number: u32, s: &str, out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(s.len() as u64, out);
    out.put_slice(s.as_bytes());
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str> {
    v.as_str()
        .ok_or_else(|| format!("{what}: {v} is not a string"))
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{what}: {v} is not an object"))
}

/// A field mask path's JSON form (`template.maxInstanceRequestConcurrency`) as proto names.
fn snake_case(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DeserializeOptions, DynamicMessage};
    use serde_json::json;

    /// Ours decodes to the very message prost-reflect's JSON parser makes of the same JSON
    /// (compared as prost-reflect prints them, which reads inside `Any`s: their bytes hold
    /// the fields in the JSON's order, as any order is protobuf).
    fn agrees(message: &str, json: Value) {
        agrees_with(message, json.clone(), json);
    }

    /// [`agrees`], where prost-reflect needs the JSON in a form of its own (`theirs`).
    fn agrees_with(message: &str, json: Value, theirs: Value) {
        let desc = runpool_googleapis::pool()
            .get_message_by_name(message)
            .unwrap_or_else(|| panic!("{message} is in the pool"));
        let ours = encode(&desc, &json).unwrap_or_else(|e| panic!("{message}: {e}"));
        let decoded = DynamicMessage::decode(desc.clone(), ours.as_slice()).unwrap();
        let options = DeserializeOptions::new().deny_unknown_fields(false);
        let theirs = DynamicMessage::deserialize_with_options(desc, theirs, &options).unwrap();
        assert_eq!(
            serde_json::to_value(&decoded).unwrap(),
            serde_json::to_value(&theirs).unwrap(),
            "{message}"
        );
    }

    #[test]
    fn a_worker_pool_as_the_routes_answer_it() {
        agrees(
            "google.cloud.run.v2.WorkerPool",
            json!({
                "name": "projects/p/locations/us-central1/workerPools/wp",
                "uid": "0f3c",
                "generation": "3",
                "labels": {"team": "a", "env": "dev"},
                "createTime": "2026-12-07T10:00:00.123456Z",
                "updateTime": "2026-12-07T10:00:01Z",
                "launchStage": 4,
                "template": {
                    "serviceAccount": "sa@p.iam.gserviceaccount.com",
                    "containers": [{
                        "image": "us-docker.pkg.dev/cloudrun/container/worker-pool",
                        "command": ["sh", "-c", "echo hi"],
                        "env": [{"name": "A", "value": "1"}],
                        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}},
                    }],
                    "gpuZonalRedundancyDisabled": false,
                },
                "scaling": {"manualInstanceCount": 2, "scalingMode": "MANUAL"},
                "terminalCondition": {"type": "Ready", "state": 4, "severity": 0},
                "conditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": "2026-12-07T10:00:01Z"}],
                "etag": "\"abc\"",
                "reconciling": false,
                "unknownField": {"ignored": true},
                "instanceSplits": [{"type": 2, "revision": "wp-00001-abc", "percent": 100}],
            }),
        );
    }

    #[test]
    fn an_operation_with_its_response_and_metadata_in_anys() {
        // Google's printers give an `Any` of `Empty` no `value`; prost-reflect wants one.
        let op = |response: Value| {
            json!({
                "name": "projects/p/locations/us-central1/operations/op",
                "done": true,
                "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.WorkerPool", "name": "wp", "generation": "1"},
                "response": response,
            })
        };
        let empty = "type.googleapis.com/google.protobuf.Empty";
        agrees_with(
            "google.longrunning.Operation",
            op(json!({"@type": empty})),
            op(json!({"@type": empty, "value": {}})),
        );
        agrees(
            "google.longrunning.Operation",
            json!({
                "name": "operations/x",
                "done": true,
                "metadata": {"@type": "type.googleapis.com/google.protobuf.Timestamp", "value": "2026-01-01T00:00:00Z"},
                "error": {"code": 7, "message": "denied", "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED", "domain": "iam.googleapis.com", "metadata": {"permission": "run.workerPools.get"}}
                ]},
            }),
        );
    }

    #[test]
    fn a_policy_with_bytes_conditions_and_negative_numbers() {
        agrees(
            "google.iam.v1.Policy",
            json!({
                "version": 3,
                "etag": "BwYxyz8=",
                "bindings": [{
                    "role": "roles/run.developer",
                    "members": ["user:a@example.com", "serviceAccount:s@p.iam.gserviceaccount.com"],
                    "condition": {"expression": "request.time < timestamp('2027-01-01T00:00:00Z')", "title": "t"},
                }],
            }),
        );
        agrees("google.rpc.Status", json!({"code": -5, "message": "m"}));
        agrees(
            "google.cloud.run.v2.WorkerPool",
            json!({"generation": "-9000000000", "observedGeneration": 12}),
        );
        agrees("google.iam.v1.Policy", json!({"etag": "_-8="}));
        agrees(
            "google.protobuf.FieldMask",
            json!("template.serviceAccount,labels"),
        );
        agrees("google.protobuf.Duration", json!("3.000000500s"));
    }

    #[test]
    fn a_recommendation_with_struct_content_and_durations() {
        agrees(
            "google.cloud.recommender.v1.Recommendation",
            json!({
                "name": "projects/1/locations/global/recommenders/google.iam.policy.Recommender/recommendations/r",
                "priority": "P2",
                "content": {
                    "overview": {"member": "user:a@example.com", "removed": ["roles/editor"], "score": 0.5, "none": null, "nested": {"deep": [1, true, "x", {"k": []}]}},
                    "operationGroups": [{"operations": [{"action": "remove", "path": "/iamPolicy/bindings/*/members/*", "pathFilters": {"/role": "roles/editor"}, "value": "user:a@example.com"}]}],
                },
                "primaryImpact": {"category": "SECURITY", "securityProjection": {"details": {"revokedIamPermissionsCount": 12}}},
                "stateInfo": {"state": "ACTIVE", "stateMetadata": {"a": "b"}},
                "lastRefreshTime": "2026-12-07T00:00:00Z",
                "associatedInsights": [{"insight": "i"}],
            }),
        );
        agrees(
            "google.cloud.recommender.v1.Insight",
            json!({"name": "i", "observationPeriod": "7776000s", "content": {}, "severity": 3}),
        );
    }

    #[test]
    fn an_enum_name_it_does_not_know_is_left_out_and_bad_values_are_refused() {
        agrees(
            "google.cloud.run.v2.Condition",
            json!({"type": "Ready", "state": "NO_SUCH_STATE"}),
        );
        let desc = runpool_googleapis::pool()
            .get_message_by_name("google.cloud.run.v2.WorkerPoolScaling")
            .unwrap();
        assert!(encode(&desc, &json!({"manualInstanceCount": 4294967296u64})).is_err());
        assert!(encode(&desc, &json!({"manualInstanceCount": "many"})).is_err());
        assert!(encode(&desc, &json!([])).is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Whatever the JSON, it is written or refused, never a panic, and what is written
            /// is a message Google's decoders read.
            #[test]
            fn any_json_is_written_as_protobuf_or_refused(
                json in crate::wire::schema::tests::fuzz::json(),
                which in 0usize..4,
            ) {
                let name = [
                    "google.cloud.run.v2.WorkerPool",
                    "google.longrunning.Operation",
                    "google.iam.v1.Policy",
                    "google.cloud.recommender.v1.Recommendation",
                ][which];
                let desc = runpool_googleapis::pool().get_message_by_name(name).unwrap();
                if let Ok(bytes) = encode(&desc, &json) {
                    prop_assert!(DynamicMessage::decode(desc, bytes.as_slice()).is_ok());
                }
            }
        }
    }
}
