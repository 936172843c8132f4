//! Request bodies checked as Google's front end checks them, before any handler sees them:
//! every name must be a field of the message (camelCase JSON name or the proto's snake_case
//! name), every value of the field's type (strings, int32/int64 ranges, booleans, enum value
//! names, nested messages, lists, maps). Google answers a body that fails with 400
//! `INVALID_ARGUMENT`, one line per fault (`Invalid JSON payload received. Unknown name "x" at
//! 'worker_pool.template': Cannot find field.`) and a `google.rpc.BadRequest` naming each
//! field; so does this.
//!
//! The schemas are Google's own: `data/discovery.json` is the Discovery documents of every
//! API served, reduced by `scripts/update-discovery`, plus `EXTRA_FIELDS` for fields Google's
//! API accepts that its public documents do not list. A request is matched to its method by
//! HTTP verb and path template, the way the documents describe each method.

use crate::wire::ApiError;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use runpool_control::Error;
use runpool_control::base::error::FieldViolation;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// One field's type, as the Discovery document gives it.
#[derive(Debug, Deserialize, Default, Clone)]
struct Prop {
    /// A message type, by schema name.
    #[serde(default)]
    r: Option<String>,
    /// `string`, `integer`, `number`, `boolean`, `array`, `object`, `any`.
    #[serde(default)]
    t: Option<String>,
    /// `int32`, `int64`, `uint32`, `uint64`, `google-datetime`, …
    #[serde(default)]
    f: Option<String>,
    /// Enum value names.
    #[serde(default)]
    e: Option<Vec<String>>,
    /// A list's item type.
    #[serde(default)]
    i: Option<Box<Prop>>,
    /// A map's value type.
    #[serde(default)]
    m: Option<Box<Prop>>,
    /// A message's fields.
    #[serde(default)]
    p: Option<BTreeMap<String, Prop>>,
}

#[derive(Deserialize)]
struct Doc {
    apis: Vec<ApiDoc>,
}

#[derive(Deserialize)]
struct ApiDoc {
    api: String,
    methods: Vec<(String, String, String)>,
    schemas: HashMap<String, Prop>,
}

/// A path template segment: `workerPools`, `{workerPoolsId}`, `{workerPoolsId}:setIamPolicy`.
#[derive(Debug)]
enum Seg {
    Lit(String),
    Var { verb: Option<String> },
}

struct Method {
    verb: String,
    template: Vec<Seg>,
    api: usize,
    request: String,
}

struct Schemas {
    apis: Vec<HashMap<String, Prop>>,
    methods: Vec<Method>,
}

/// Fields Google's APIs accept that the Discovery documents do not list (their visibility
/// is restricted), with where they are seen sent. Terraform's `google_cloud_run_v2_worker_pool`
/// sends all of `scaling` (GoogleCloudPlatform/magic-modules
/// mmv1/products/cloudrunv2/WorkerPool.yaml).
const EXTRA_FIELDS: &[(&str, &str, &str, &str)] = &[
    (
        "run.v2",
        "GoogleCloudRunV2WorkerPoolScaling",
        "scalingMode",
        "string",
    ),
    (
        "run.v2",
        "GoogleCloudRunV2WorkerPoolScaling",
        "minInstanceCount",
        "int32",
    ),
    (
        "run.v2",
        "GoogleCloudRunV2WorkerPoolScaling",
        "maxInstanceCount",
        "int32",
    ),
    (
        "run.v2",
        "GoogleCloudRunV2WorkerPoolScaling",
        "maxSurge",
        "int32",
    ),
];

fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        let doc: Doc = serde_json::from_str(include_str!("../../data/discovery.json"))
            .expect("data/discovery.json is valid");
        let mut apis = vec![];
        let mut methods = vec![];
        for (n, a) in doc.apis.into_iter().enumerate() {
            let mut schemas = a.schemas;
            for (api, schema, field, ty) in EXTRA_FIELDS {
                if *api == a.api
                    && let Some(p) = schemas.get_mut(*schema).and_then(|s| s.p.as_mut())
                {
                    let prop = match *ty {
                        "int32" => Prop {
                            t: Some("integer".into()),
                            f: Some("int32".into()),
                            ..Prop::default()
                        },
                        t => Prop {
                            t: Some(t.into()),
                            ..Prop::default()
                        },
                    };
                    p.insert(field.to_string(), prop);
                }
            }
            for (verb, path, request) in a.methods {
                methods.push(Method {
                    verb,
                    template: path.split('/').map(segment).collect(),
                    api: n,
                    request,
                });
            }
            apis.push(schemas);
        }
        Schemas { apis, methods }
    })
}

fn segment(s: &str) -> Seg {
    match s.strip_prefix('{') {
        Some(rest) => {
            let (_, after) = rest.split_once('}').unwrap_or((rest, ""));
            Seg::Var {
                verb: after.strip_prefix(':').map(str::to_string),
            }
        }
        None => Seg::Lit(s.to_string()),
    }
}

fn matches(template: &[Seg], path: &[&str]) -> bool {
    template.len() == path.len()
        && template.iter().zip(path).all(|(t, p)| match t {
            Seg::Lit(l) => l == p,
            Seg::Var { verb: None } => !p.is_empty() && !p.contains(':'),
            Seg::Var { verb: Some(v) } => p
                .rsplit_once(':')
                .is_some_and(|(id, pv)| !id.is_empty() && pv == v),
        })
}

/// The method of a served API that `verb` `path` (e.g. `POST
/// /v2/projects/p/locations/l/workerPools`) calls, if it takes a request body. A path no such
/// method has is left to the router, which answers 404 or reads no body.
pub fn method(verb: &str, path: &str) -> Option<BodyMethod> {
    let s = schemas();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = s
        .methods
        .iter()
        .find(|m| m.verb == verb && matches(&m.template, &segs))?;
    Some(BodyMethod(m))
}

/// A method whose request body can be checked.
pub struct BodyMethod(&'static Method);

impl BodyMethod {
    /// Check a body against the method's request message, and put each `bytes` field in
    /// the standard base64 alphabet. Answers whether the body was rewritten.
    pub fn check(&self, body: &mut Value) -> Result<bool, Error> {
        let api = &schemas().apis[self.0.api];
        let Some(schema) = api.get(&self.0.request) else {
            return Ok(false);
        };
        let mut faults = vec![];
        let mut walk = Walk {
            api,
            faults: &mut faults,
            depth: 0,
            rewritten: false,
        };
        walk.value(schema, body, &body_field(&self.0.request));
        let rewritten = walk.rewritten;
        if faults.is_empty() {
            return Ok(rewritten);
        }
        let message = faults
            .iter()
            .map(|f| f.description.clone())
            .collect::<Vec<_>>()
            .join("\n");
        let mut e = Error::invalid(message);
        e.field_violations = faults;
        Err(e)
    }
}

/// Refuse a request whose body its method's message does not allow, before any handler.
pub async fn layer(req: Request, next: Next) -> Response {
    let Some(m) = method(req.method().as_str(), req.uri().path()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let mut bytes = match crate::wire::read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // A body that is not JSON at all is left to the handler's parser, which says where.
    if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
        match m.check(&mut v) {
            Err(e) => return ApiError(e).into_response(),
            Ok(true) => bytes = serde_json::to_vec(&v).unwrap_or_default().into(),
            Ok(false) => {}
        }
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The request field a method's body fills, as Google's messages name it: the whole request
/// (`…Request`, Google's `body: "*"`) has no name; otherwise the body is one field named after
/// its message (`GoogleCloudRunV2WorkerPool` → `worker_pool`).
fn body_field(schema: &str) -> String {
    if schema.ends_with("Request") {
        return String::new();
    }
    // Discovery prefixes a message with its package: `GoogleCloudRunV2`, `GoogleIamV2`.
    let short = match schema.strip_prefix("Google") {
        Some(rest) => {
            let b = rest.as_bytes();
            (0..b.len())
                .find(|&i| {
                    b[i] == b'V'
                        && b.get(i + 1).is_some_and(u8::is_ascii_digit)
                        && (i == 0 || b[i - 1].is_ascii_lowercase())
                })
                .map(|i| {
                    let tail = &rest[i + 1..];
                    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
                    // `V1beta1`, `V2alpha`: the version's own lowercase suffix.
                    let tail = &tail[digits..];
                    let lower = tail.bytes().take_while(u8::is_ascii_lowercase).count();
                    let tail = &tail[lower..];
                    let d = tail.bytes().take_while(u8::is_ascii_digit).count();
                    &tail[d..]
                })
                .unwrap_or(schema)
        }
        None => schema,
    };
    snake(short)
}

/// `manualInstanceCount` → `manual_instance_count`
fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `manual_instance_count` → `manualInstanceCount`
fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.push(c.to_ascii_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Proto3 JSON `bytes` as Google reads them: padding optional.
const BYTES: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The deepest message nesting followed; deeper bodies are refused (JSON itself is already
/// bounded at 128 levels by the parser).
const MAX_DEPTH: usize = 64;

struct Walk<'a> {
    api: &'a HashMap<String, Prop>,
    faults: &'a mut Vec<FieldViolation>,
    depth: usize,
    /// A `bytes` field was turned into the standard base64 alphabet.
    rewritten: bool,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The most faults reported for one body: the walk stops there (a body of a million wrong
/// values must not cost a million messages).
const MAX_FAULTS: usize = 100;

impl Walk<'_> {
    fn full(&self) -> bool {
        self.faults.len() >= MAX_FAULTS
    }

    fn fault(&mut self, field: &str, description: String) {
        if self.full() {
            return;
        }
        self.faults.push(
            FieldViolation::new()
                .set_field(field)
                .set_description(description),
        );
    }

    fn invalid(&mut self, path: &str, ty: &str, v: &Value) {
        self.fault(path, format!("Invalid value at '{path}' ({ty}), {v}"));
    }

    fn message(
        &mut self,
        fields: &BTreeMap<String, Prop>,
        obj: &mut Map<String, Value>,
        path: &str,
    ) {
        for (k, v) in obj.iter_mut() {
            // A message taken from an operation's `response` (an `Any`) carries its type;
            // sending it back as it came is harmless.
            if k == "@type" && v.is_string() {
                continue;
            }
            let prop = fields.get(k.as_str()).or_else(|| {
                k.contains('_')
                    .then(|| fields.get(camel(k).as_str()))
                    .flatten()
            });
            match prop {
                Some(p) => {
                    let name = if k.contains('_') { k.clone() } else { snake(k) };
                    self.value(p, v, &join(path, &name));
                }
                None => {
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" at '{path}'")
                    };
                    self.fault(
                        path,
                        format!(
                            "Invalid JSON payload received. Unknown name \"{k}\"{at}: Cannot find field."
                        ),
                    );
                }
            }
        }
    }

    fn value(&mut self, p: &Prop, v: &mut Value, path: &str) {
        if v.is_null() || self.full() {
            return;
        }
        // A list where one value belongs, in Google's words.
        if v.is_array() && p.t.as_deref() != Some("array") && p.t.as_deref() != Some("any") {
            let (parent, name) = path.rsplit_once('.').unwrap_or(("", path));
            let at = if parent.is_empty() {
                String::new()
            } else {
                format!(" at '{parent}'")
            };
            let name = name.split('[').next().unwrap_or(name);
            return self.fault(
                parent,
                format!(
                    "Invalid JSON payload received. Unknown name \"{}\"{at}: Proto field is not repeating, cannot start list.",
                    camel(name)
                ),
            );
        }
        if let Some(r) = &p.r {
            let Some(schema) = self.api.get(r) else {
                return;
            };
            return self.value(schema, v, path);
        }
        match p.t.as_deref().unwrap_or("any") {
            "string" => self.string(p, v, path),
            "integer" => {
                let ok = match p.f.as_deref() {
                    Some("uint32") => {
                        int_of(v).is_some_and(|n| (0..=u32::MAX as i128).contains(&n))
                    }
                    _ => int_of(v)
                        .is_some_and(|n| (i32::MIN as i128..=i32::MAX as i128).contains(&n)),
                };
                if !ok {
                    let ty = if p.f.as_deref() == Some("uint32") {
                        "TYPE_UINT32"
                    } else {
                        "TYPE_INT32"
                    };
                    self.invalid(path, ty, v);
                }
            }
            "number" => {
                let ok = v.is_number()
                    || v.as_str().is_some_and(|s| {
                        matches!(s, "NaN" | "Infinity" | "-Infinity") || s.parse::<f64>().is_ok()
                    });
                if !ok {
                    let ty = if p.f.as_deref() == Some("float") {
                        "TYPE_FLOAT"
                    } else {
                        "TYPE_DOUBLE"
                    };
                    self.invalid(path, ty, v);
                }
            }
            "boolean" if !v.is_boolean() => self.invalid(path, "TYPE_BOOL", v),
            "array" => match v.as_array_mut() {
                Some(items) => {
                    if let Some(item) = &p.i {
                        for (n, x) in items.iter_mut().enumerate() {
                            self.value(item, x, &format!("{path}[{n}]"));
                        }
                    }
                }
                None => {
                    let ty = match p.i.as_deref().and_then(|i| i.t.as_deref()) {
                        Some("integer") => "TYPE_INT32",
                        Some("boolean") => "TYPE_BOOL",
                        Some("number") => "TYPE_DOUBLE",
                        Some("string") | None if p.i.as_ref().is_some_and(|i| i.r.is_none()) => {
                            "TYPE_STRING"
                        }
                        _ => "TYPE_MESSAGE",
                    };
                    self.invalid(path, ty, v)
                }
            },
            "object" => match v.as_object_mut() {
                Some(obj) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        self.fault(
                            path,
                            format!("Invalid JSON payload received. Message nesting at '{path}' is deeper than {MAX_DEPTH} levels."),
                        );
                    } else if let Some(fields) = &p.p {
                        self.message(fields, obj, path);
                    } else if let Some(val) = &p.m {
                        // Google names a map entry by its position: `labels[0].value`.
                        for (n, x) in obj.values_mut().enumerate() {
                            self.value(val, x, &format!("{path}[{n}].value"));
                        }
                    }
                    self.depth -= 1;
                }
                None => self.invalid(path, "TYPE_MESSAGE", v),
            },
            _ => {}
        }
    }

    fn string(&mut self, p: &Prop, v: &mut Value, path: &str) {
        match p.f.as_deref() {
            // Proto3 JSON's `bytes` come in either base64 alphabet, padded or not, and gcloud's
            // REST client sends the URL-safe one; the model crates read the standard one only.
            Some("byte") => {
                match v {
                    Value::String(s) => match BYTES.decode(s.replace('-', "+").replace('_', "/")) {
                        Ok(raw) => {
                            let standard = STANDARD.encode(raw);
                            if standard != *s {
                                *s = standard;
                                self.rewritten = true;
                            }
                        }
                        Err(_) => {
                            let shown = format!("{s:?}");
                            self.fault(
                                path,
                                format!(
                                    "Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for {shown}"
                                ),
                            );
                        }
                    },
                    _ => self.invalid(path, "TYPE_BYTES", v),
                }
                return;
            }
            Some("int64") => {
                if !int_of(v).is_some_and(|n| (i64::MIN as i128..=i64::MAX as i128).contains(&n)) {
                    self.invalid(path, "TYPE_INT64", v);
                }
                return;
            }
            Some("uint64") => {
                if !int_of(v).is_some_and(|n| (0..=u64::MAX as i128).contains(&n)) {
                    self.invalid(path, "TYPE_UINT64", v);
                }
                return;
            }
            _ => {}
        }
        match (&*v, &p.e) {
            (Value::String(s), Some(names)) => {
                if !names.iter().any(|n| n == s) {
                    self.invalid(path, "TYPE_ENUM", v);
                }
            }
            // Proto3 JSON also takes an enum by its number.
            (Value::Number(n), Some(names)) => {
                if n.as_u64().is_none_or(|n| (n as usize) >= names.len()) {
                    self.invalid(path, "TYPE_ENUM", v);
                }
            }
            (Value::String(_), None) => {}
            _ => self.invalid(path, "TYPE_STRING", v),
        }
    }
}

/// An integer given as a JSON number or a decimal string, as proto3 JSON allows.
fn int_of(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e30)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn check(verb: &str, path: &str, body: &Value) -> Result<(), Error> {
        match method(verb, path) {
            Some(m) => m.check(&mut body.clone()).map(|_| ()),
            None => Ok(()),
        }
    }

    #[test]
    fn bytes_come_in_either_base64_alphabet_and_nothing_else() {
        let m = method("POST", "/v3/projects/p:setIamPolicy").expect("a body method");
        // gcloud sends `BwY-_w==` for the etag Google gave as `BwY+/w==`; unpadded is fine too.
        for sent in ["BwY-_w==", "BwY-_w", "BwY+/w=="] {
            let mut body = json!({"policy": {"etag": sent, "bindings": []}});
            let rewritten = m.check(&mut body).unwrap();
            assert_eq!(rewritten, sent != "BwY+/w==", "{sent}");
            let req: google_cloud_iam_v1::model::SetIamPolicyRequest =
                crate::wire::parse(body).unwrap();
            assert_eq!(req.policy.unwrap().etag.as_ref(), [0x07, 0x06, 0x3e, 0xff]);
        }
        let err = m
            .check(&mut json!({"policy": {"etag": "not base64!"}}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "Invalid value at 'policy.etag' (TYPE_BYTES), Base64 decoding failed for \"not base64!\""
        );
        assert_eq!(err.field_violations[0].field, "policy.etag");
    }

    fn create(body: Value) -> Result<(), Error> {
        check(
            "POST",
            "/v2/projects/p/locations/us-central1/workerPools",
            &body,
        )
    }

    #[test]
    fn a_misspelt_field_is_refused_at_its_path() {
        let e = create(json!({"template": {"serviceAcount": "a@p.iam.gserviceaccount.com"}}))
            .unwrap_err();
        assert_eq!(
            e.message,
            "Invalid JSON payload received. Unknown name \"serviceAcount\" at 'worker_pool.template': Cannot find field."
        );
        assert_eq!(e.field_violations[0].field, "worker_pool.template");
    }

    #[test]
    fn known_fields_in_either_spelling_pass_and_extra_scaling_fields_are_known() {
        create(json!({
            "template": {"serviceAccount": "a@p.iam.gserviceaccount.com", "containers": [{"image": "x", "command": ["a"]}]},
            "scaling": {"manual_instance_count": 2, "scalingMode": "MANUAL", "maxSurge": 1},
            "launchStage": "BETA",
            "labels": {"a": "b"},
        }))
        .unwrap();
    }

    #[test]
    fn wrong_types_enum_names_and_int32_range_are_refused_each_on_its_line() {
        let e = create(json!({
            "launchStage": "NOT_A_STAGE",
            "scaling": {"manualInstanceCount": 2147483648i64},
            "template": {"containers": [{"image": 5, "bogus": 1}]},
        }))
        .unwrap_err();
        let lines: Vec<&str> = e.message.lines().collect();
        assert!(
            lines.contains(
                &"Invalid value at 'worker_pool.launch_stage' (TYPE_ENUM), \"NOT_A_STAGE\""
            ),
            "{lines:?}"
        );
        assert!(lines.contains(&"Invalid value at 'worker_pool.scaling.manual_instance_count' (TYPE_INT32), 2147483648"), "{lines:?}");
        assert!(
            lines.contains(
                &"Invalid value at 'worker_pool.template.containers[0].image' (TYPE_STRING), 5"
            ),
            "{lines:?}"
        );
        assert!(lines.contains(&"Invalid JSON payload received. Unknown name \"bogus\" at 'worker_pool.template.containers[0]': Cannot find field."), "{lines:?}");
        assert_eq!(e.field_violations.len(), 4);
    }

    #[test]
    fn a_whole_request_body_has_no_prefix_and_verbs_match_their_method() {
        let e = check(
            "POST",
            "/v1/projects/p/serviceAccounts",
            &json!({"accountId": 123, "serviceAcount": {}}),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("Invalid value at 'account_id' (TYPE_STRING), 123"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("Unknown name \"serviceAcount\": Cannot find field."),
            "{}",
            e.message
        );
        let e = check(
            "POST",
            "/v3/projects/p:setIamPolicy",
            &json!({"policy": {"bindings": [{"role": "roles/viewer", "member": ["x"]}]}}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("at 'policy.bindings[0]'"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_list_for_one_value_and_a_flood_of_faults_are_answered_as_google_does() {
        let e = create(json!({"template": {"serviceAccount": ["a", "b"]}})).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid JSON payload received. Unknown name \"serviceAccount\" at 'worker_pool.template': Proto field is not repeating, cannot start list."
        );
        let many: Vec<Value> = (0..100_000).map(|_| json!(1)).collect();
        let e = create(json!({"template": {"containers": [{"args": many}]}})).unwrap_err();
        assert_eq!(e.field_violations.len(), MAX_FAULTS);
    }

    #[test]
    fn paths_no_served_method_has_are_left_to_the_router() {
        check("POST", "/v9/nothing", &json!({"x": 1})).unwrap();
        check(
            "GET",
            "/v2/projects/p/locations/l/workerPools",
            &json!({"x": 1}),
        )
        .unwrap();
    }

    #[test]
    fn body_fields_are_named_after_their_message() {
        assert_eq!(body_field("GoogleCloudRunV2WorkerPool"), "worker_pool");
        assert_eq!(body_field("GoogleIamV2Policy"), "policy");
        assert_eq!(body_field("GoogleCloudOrgpolicyV2Policy"), "policy");
        assert_eq!(body_field("TagKey"), "tag_key");
        assert_eq!(body_field("GoogleIamV1SetIamPolicyRequest"), "");
    }

    pub(crate) mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON, its objects keyed mostly by the fields of the APIs' messages.
        pub(crate) fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                "[a-zA-Z_@ 0-9]{0,12}".prop_map(Value::String),
            ];
            leaf.prop_recursive(6, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop::sample::select(vec![
                            "template",
                            "containers",
                            "image",
                            "scaling",
                            "manualInstanceCount",
                            "labels",
                            "launchStage",
                            "serviceAccount",
                            "env",
                            "name",
                            "value",
                            "instanceSplits",
                            "percent",
                            "policy",
                            "bindings",
                            "members",
                            "condition",
                            "expression",
                            "bogus",
                            "account_id",
                            "@type",
                            "metadata",
                            "response",
                            "content",
                            "overview",
                            "etag",
                            "createTime",
                            "version",
                        ])
                        .prop_map(str::to_string),
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn any_body_is_checked_without_panicking(body in json(), which in 0usize..4) {
                let (verb, path) = [
                    ("POST", "/v2/projects/p/locations/l/workerPools"),
                    ("PATCH", "/v2/projects/p/locations/l/workerPools/w"),
                    ("POST", "/v3/projects/p:setIamPolicy"),
                    ("POST", "/v1/projects/p/serviceAccounts"),
                ][which];
                let r = check(verb, path, &body);
                // Every refusal names its faults, one line each.
                if let Err(e) = r {
                    prop_assert_eq!(e.message.lines().count(), e.field_violations.len());
                }
            }
        }

        #[test]
        fn a_body_nested_past_any_schema_is_bounded() {
            let mut v = json!({"image": "x"});
            for _ in 0..10_000 {
                v = json!({"template": v, "containers": [v.clone()]});
                if v.to_string().len() > 1_000_000 {
                    break;
                }
            }
            // A revision template has no `template` field: refused, at the first level.
            let e = create(v).unwrap_err();
            assert!(
                e.message
                    .contains("Unknown name \"template\" at 'worker_pool.template'"),
                "{}",
                e.message
            );
        }
    }
}
