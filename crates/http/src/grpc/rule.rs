//! `google.api.http` rules, read the other way round from Google's front ends: a gRPC
//! request message becomes the REST request its rule describes. Path templates follow the
//! grammar in `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;   Segment = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;   Verb = ":" LITERAL ;
//! ```

use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};

/// One binding of a method: an HTTP method, a path template and where the body comes from.
#[derive(Debug, Clone)]
pub struct Binding {
    pub method: axum::http::Method,
    template: Vec<Segment>,
    verb: Option<String>,
    /// `None`: no body; `Some("*")`: every field not in the path; else one field's name.
    body: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    /// A field path (proto names) and the segments its value must match (none given: any
    /// value, escaped whole into one segment).
    Variable(Vec<String>, Vec<Pattern>),
}

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Literal(String),
    One,
    Any,
}

/// A REST request made from a gRPC request: path with query, and the JSON body if any.
#[derive(Debug, PartialEq)]
pub struct Rest {
    pub method: axum::http::Method,
    pub path_and_query: String,
    pub body: Option<serde_json::Value>,
}

/// What keeps a message from taking a binding.
#[derive(Debug, PartialEq)]
pub struct NoMatch {
    pub field: String,
    pub value: String,
}

impl Binding {
    /// The rule's own binding and its additional ones, from a `google.api.HttpRule` message.
    pub fn from_rule(rule: &DynamicMessage) -> Result<Vec<Binding>, String> {
        let text = |m: &DynamicMessage, f: &str| match m.get_field_by_name(f).as_deref() {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let mut out = vec![];
        let verbs = ["get", "put", "post", "delete", "patch"];
        if let Some((verb, path)) = verbs.iter().find_map(|v| text(rule, v).map(|p| (*v, p))) {
            let method = verb
                .to_ascii_uppercase()
                .parse()
                .map_err(|e| format!("{e}"))?;
            out.push(Binding::new(method, &path, text(rule, "body"))?);
        }
        if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
            for b in more {
                if let Value::Message(m) = b {
                    out.extend(Binding::from_rule(m)?);
                }
            }
        }
        Ok(out)
    }

    /// A binding from its parts (an API's service configuration gives some rules this way).
    pub fn new(
        method: axum::http::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Binding, String> {
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| format!("template {path:?} does not start with '/'"))?;
        // The verb follows the last segment, outside any variable.
        let tail_start = rest.rfind(['/', '}']).map_or(0, |i| i + 1);
        let (segments, verb) = match rest[tail_start..].find(':') {
            Some(i) => (
                &rest[..tail_start + i],
                Some(rest[tail_start + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        let mut template = vec![];
        let mut chars = segments;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let end = inner
                    .find('}')
                    .ok_or_else(|| format!("unclosed variable in {path:?}"))?;
                let (field, pattern) = match inner[..end].split_once('=') {
                    Some((f, p)) => (f, p.split('/').map(Pattern::parse).collect()),
                    None => (&inner[..end], vec![]),
                };
                template.push(Segment::Variable(
                    field.split('.').map(str::to_string).collect(),
                    pattern,
                ));
                chars = &inner[end + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                template.push(Segment::Literal(chars[..end].to_string()));
                chars = &chars[end..];
            }
            chars = chars.strip_prefix('/').unwrap_or(chars);
        }
        Ok(Binding {
            method,
            template,
            verb,
            body,
        })
    }

    /// The REST request for `msg`, or which path field's value this binding does not take.
    pub fn rest(&self, msg: &DynamicMessage) -> Result<Rest, NoMatch> {
        let mut path = String::new();
        let mut bound: Vec<&[String]> = vec![];
        for segment in &self.template {
            path.push('/');
            match segment {
                Segment::Literal(l) => path.push_str(l),
                Segment::Variable(field, pattern) => {
                    let value = field_text(msg, field).unwrap_or_default();
                    if !Pattern::matches(pattern, &value) {
                        return Err(NoMatch {
                            field: field.join("."),
                            value,
                        });
                    }
                    // A bare variable is escaped whole into one segment; a patterned one keeps
                    // its slashes, as the template's grammar says.
                    let keep_slash = !pattern.is_empty();
                    path.push_str(&escape(&value, keep_slash));
                    bound.push(field);
                }
            }
        }
        if let Some(verb) = &self.verb {
            path.push(':');
            path.push_str(verb);
        }
        let mut json = to_json(msg);
        for field in &bound {
            remove_path(&mut json, msg.descriptor(), field);
        }
        let body = match self.body.as_deref() {
            Some("*") => Some(std::mem::take(&mut json)),
            Some(field) => {
                let name = json_name(msg.descriptor(), field);
                Some(
                    json.as_object_mut()
                        .and_then(|o| o.remove(&name))
                        .unwrap_or_else(|| serde_json::json!({})),
                )
            }
            None => None,
        };
        let mut query = vec![];
        flatten("", &json, &mut query);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&serde_urlencoded::to_string(&query).unwrap_or_default());
        }
        Ok(Rest {
            method: self.method.clone(),
            path_and_query: path,
            body,
        })
    }
}

#[cfg(test)]
impl Binding {
    /// A value for each path field that fits its pattern (`x1` for each wildcard). A pattern
    /// that leaves even the collection open (Service Usage's `{parent=*/*}`, for projects,
    /// folders and organizations alike) is given a project, the one Runpool serves.
    pub fn example(&self) -> Vec<(Vec<String>, String)> {
        let pattern_text = |parts: &[Pattern]| -> String {
            if parts.is_empty() {
                return "x1".into();
            }
            parts
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Pattern::Literal(l) => l.as_str(),
                    Pattern::One if i == 0 && parts.len() > 1 => "projects",
                    Pattern::One | Pattern::Any => "x1",
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        self.template
            .iter()
            .filter_map(|s| match s {
                Segment::Variable(f, p) => Some((f.clone(), pattern_text(p))),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

impl Pattern {
    fn parse(s: &str) -> Pattern {
        match s {
            "*" => Pattern::One,
            "**" => Pattern::Any,
            l => Pattern::Literal(l.to_string()),
        }
    }

    /// Whether `value`'s segments match: `*` one non-empty segment, `**` one or more; no
    /// pattern, any value.
    fn matches(pattern: &[Pattern], value: &str) -> bool {
        if pattern.is_empty() {
            return !value.is_empty();
        }
        fn go(p: &[Pattern], s: &[&str]) -> bool {
            match (p.first(), s.first()) {
                (None, None) => true,
                (Some(Pattern::Any), Some(_)) => (1..=s.len()).any(|n| go(&p[1..], &s[n..])),
                (Some(Pattern::One), Some(seg)) => !seg.is_empty() && go(&p[1..], &s[1..]),
                (Some(Pattern::Literal(l)), Some(seg)) => l == seg && go(&p[1..], &s[1..]),
                _ => false,
            }
        }
        !value.is_empty() && go(pattern, &value.split('/').collect::<Vec<_>>())
    }
}

/// Percent-encode what a path segment cannot hold as is.
fn escape(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || b"-._~@!$&'()*+,;=".contains(&b)
            || (keep_slash && b == b'/');
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A field's value as path text (resource names are strings; numbers print as they are).
fn field_text(msg: &DynamicMessage, path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let value = msg.get_field_by_name(first)?;
    match (&*value, rest.is_empty()) {
        (Value::Message(m), false) => field_text(m, rest),
        (Value::String(s), true) => Some(s.clone()),
        (Value::I32(n), true) => Some(n.to_string()),
        (Value::I64(n), true) => Some(n.to_string()),
        (Value::U32(n), true) => Some(n.to_string()),
        (Value::U64(n), true) => Some(n.to_string()),
        _ => None,
    }
}

/// A message in proto3's JSON mapping (lowerCamelCase names, defaults left out): what the
/// REST surface reads.
pub fn to_json(msg: &DynamicMessage) -> serde_json::Value {
    msg.serialize_with_options(
        serde_json::value::Serializer,
        &prost_reflect::SerializeOptions::new(),
    )
    .unwrap_or_else(|_| serde_json::json!({}))
}

fn json_name(desc: MessageDescriptor, field: &str) -> String {
    desc.get_field_by_name(field)
        .map_or_else(|| field.to_string(), |f| f.json_name().to_string())
}

/// Take a path-bound field out of the JSON (the path carries it).
fn remove_path(json: &mut serde_json::Value, desc: MessageDescriptor, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let name = json_name(desc.clone(), first);
    let Some(obj) = json.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        obj.remove(&name);
        return;
    }
    let inner = desc.get_field_by_name(first).and_then(|f| match f.kind() {
        prost_reflect::Kind::Message(m) => Some(m),
        _ => None,
    });
    if let (Some(child), Some(inner)) = (obj.get_mut(&name), inner) {
        remove_path(child, inner, rest);
    }
}

/// Query parameters: nested fields by dotted names, repeated ones once per value.
fn flatten(prefix: &str, json: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value as J;
    match json {
        J::Object(o) => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        J::Array(items) => items.iter().for_each(|v| flatten(prefix, v, out)),
        J::String(s) => out.push((prefix.to_string(), s.clone())),
        J::Null => {}
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn message(name: &str, json: serde_json::Value) -> DynamicMessage {
        let desc = runpool_googleapis::pool()
            .get_message_by_name(name)
            .unwrap();
        DynamicMessage::deserialize(desc, json).unwrap()
    }

    #[test]
    fn a_path_variable_takes_its_field_and_the_rest_goes_to_the_query() {
        let b = Binding::new(
            Method::GET,
            "/v2/{parent=projects/*/locations/*}/workerPools",
            None,
        )
        .unwrap();
        let msg = message(
            "google.cloud.run.v2.ListWorkerPoolsRequest",
            serde_json::json!({"parent": "projects/p/locations/l", "pageSize": 5, "showDeleted": true}),
        );
        let rest = b.rest(&msg).unwrap();
        let (path, query) = rest.path_and_query.split_once('?').unwrap();
        assert_eq!(path, "/v2/projects/p/locations/l/workerPools");
        let mut params: Vec<_> = query.split('&').collect();
        params.sort();
        assert_eq!(params, ["pageSize=5", "showDeleted=true"]);
        assert_eq!(rest.body, None);
    }

    #[test]
    fn a_body_field_is_the_body_and_a_nested_path_field_leaves_it() {
        let b = Binding::new(
            Method::PATCH,
            "/v2/{worker_pool.name=projects/*/locations/*/workerPools/*}",
            Some("worker_pool".into()),
        )
        .unwrap();
        let msg = message(
            "google.cloud.run.v2.UpdateWorkerPoolRequest",
            serde_json::json!({"workerPool": {"name": "projects/p/locations/l/workerPools/w", "client": "x"}, "validateOnly": true}),
        );
        let rest = b.rest(&msg).unwrap();
        assert_eq!(
            rest.path_and_query,
            "/v2/projects/p/locations/l/workerPools/w?validateOnly=true"
        );
        assert_eq!(rest.body, Some(serde_json::json!({"client": "x"})));
    }

    #[test]
    fn a_custom_verb_follows_the_path_and_a_whole_body_takes_every_other_field() {
        let b = Binding::new(
            Method::POST,
            "/v1/{resource=projects/*/serviceAccounts/*}:setIamPolicy",
            Some("*".into()),
        )
        .unwrap();
        let msg = message(
            "google.iam.v1.SetIamPolicyRequest",
            serde_json::json!({"resource": "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com", "policy": {"etag": "BwE="}}),
        );
        let rest = b.rest(&msg).unwrap();
        assert_eq!(
            rest.path_and_query,
            "/v1/projects/p/serviceAccounts/a@p.iam.gserviceaccount.com:setIamPolicy"
        );
        assert_eq!(
            rest.body,
            Some(serde_json::json!({"policy": {"etag": "BwE="}}))
        );
    }

    #[test]
    fn a_value_outside_the_pattern_does_not_take_the_binding() {
        let b = Binding::new(Method::GET, "/v1/{name=roles/*}", None).unwrap();
        let msg = message(
            "google.iam.admin.v1.GetRoleRequest",
            serde_json::json!({"name": "projects/p/roles/r"}),
        );
        assert_eq!(
            b.rest(&msg),
            Err(NoMatch {
                field: "name".into(),
                value: "projects/p/roles/r".into()
            })
        );
        let any = Binding::new(Method::GET, "/v3/{name=operations/**}", None).unwrap();
        let op = message(
            "google.longrunning.GetOperationRequest",
            serde_json::json!({"name": "operations/cp.123/x"}),
        );
        assert_eq!(
            any.rest(&op).unwrap().path_and_query,
            "/v3/operations/cp.123/x"
        );
        let single = Binding::new(Method::GET, "/v3/tagKeys/{name}", None).unwrap();
        let slash = message(
            "google.longrunning.GetOperationRequest",
            serde_json::json!({"name": "a/b c"}),
        );
        assert_eq!(
            single.rest(&slash).unwrap().path_and_query,
            "/v3/tagKeys/a%2Fb%20c"
        );
    }
}
