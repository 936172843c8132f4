//! The wire conventions every route shares: Google's error body, bearer authentication,
//! JSON bodies with a size limit and clear errors, system parameters (`$alt=json;enum-encoding=int`),
//! and page tokens.

pub mod audit;
pub mod operation;
pub mod schema;

use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use google_cloud_gax::error::rpc::StatusDetails;
use google_cloud_rpc::model::{BadRequest, PreconditionFailure};
use runpool_control::base::error::http_status;
use runpool_control::{Caller, Error};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;

/// The largest request body accepted, as Google's front end limits it.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// A failed call rendered as Google renders it.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// Google's error body: `{"error": {code, message, status, details}}`, the code the HTTP
/// status, each detail a `google.rpc` message with its `@type` first.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    code: u16,
    message: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<StatusDetails>,
}

pub fn error_body(e: &Error) -> Value {
    let mut details = vec![];
    if let Some(info) = &e.info {
        details.push(StatusDetails::ErrorInfo((**info).clone()));
    }
    if !e.violations.is_empty() {
        details.push(StatusDetails::PreconditionFailure(
            PreconditionFailure::new().set_violations(e.violations.clone()),
        ));
    }
    if !e.field_violations.is_empty() {
        details.push(StatusDetails::BadRequest(
            BadRequest::new().set_field_violations(e.field_violations.clone()),
        ));
    }
    let body = ErrorBody {
        error: Status {
            code: http_status(e.code),
            message: &e.message,
            status: e.code.name(),
            details,
        },
    };
    serde_json::to_value(body).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(http_status(self.0.code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(error_body(&self.0))).into_response();
        resp.extensions_mut().insert(audit::Failure {
            code: self.0.code as i32,
            message: self.0.message.clone(),
        });
        if self.0.code == runpool_control::Code::Unauthenticated {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(
                    "Bearer realm=\"https://accounts.google.com/\"",
                ),
            );
        }
        resp
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = state.control.authenticate(bearer(&parts.headers))?;
        if let Some(op) = parts.extensions.get::<&'static operation::Op>()
            && let Some(project) = consumer(parts)
        {
            state
                .control
                .require_service(&project, op.interface.service)?;
        }
        Ok(Auth(
            match parts
                .extensions
                .get::<std::sync::Arc<runpool_control::intelligence::audit::Trace>>()
            {
                Some(trace) => caller.traced(trace.clone()),
                None => caller,
            },
        ))
    }
}

/// The project a call is made on behalf of, as Google's front end takes it: the
/// `x-goog-user-project` the client names (gcloud sends its project), else the project the
/// path names (`projects/P/…`, Cloud Run v1's `namespaces/P/…`; `projects/-` names none).
fn consumer(parts: &Parts) -> Option<String> {
    if let Some(p) = parts
        .headers
        .get("x-goog-user-project")
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.is_empty())
    {
        return Some(format!("projects/{p}"));
    }
    let segs: Vec<&str> = parts.uri.path().split('/').collect();
    segs.windows(2)
        .find(|w| w[0] == "projects" || w[0] == "namespaces")
        .map(|w| w[1].split(':').next().unwrap_or_default())
        .filter(|p| !p.is_empty() && *p != "-")
        .map(|p| format!("projects/{p}"))
}

/// The query string, system parameters included (repeated parameters keep every value). Google's system parameters (`$alt`, `alt`,
/// `fields`, `prettyPrint`, `key`, `quotaUser`, …) are accepted everywhere; only the enum
/// encoding changes the answer.
pub struct Params(pub HashMap<String, String>, Vec<(String, String)>);

impl Params {
    /// Every value of a repeated parameter (`keyTypes=A&keyTypes=B`).
    pub fn all(&self, k: &str) -> Vec<String> {
        self.1
            .iter()
            .filter(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn str(&self, k: &str) -> &str {
        self.get(k).unwrap_or("")
    }
    pub fn flag(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v == "true" || v == "1")
    }
    /// Whether the client asked for enums as integers (`$alt=json;enum-encoding=int`).
    pub fn int_enums(&self) -> bool {
        ["$alt", "alt"]
            .iter()
            .any(|k| self.get(k).is_some_and(|v| v.contains("enum-encoding=int")))
    }
    /// `updateMask=a,b` → `["a", "b"]`
    pub fn mask(&self, k: &str) -> Vec<String> {
        self.str(k)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError(Error::invalid(format!(
                    "Invalid value at '{k}' (TYPE_INT32), \"{v}\""
                )))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let map: Vec<(String, String)> = serde_urlencoded::from_str(q)
            .map_err(|e| ApiError(Error::invalid(format!("Invalid query string: {e}"))))?;
        Ok(Params(map.iter().cloned().collect(), map))
    }
}

/// How long a request body may take to arrive, whole: a client that stops sending half way
/// holds its request no longer than this.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A request's whole body, at most [`MAX_BODY`] bytes, arriving within [`BODY_TIMEOUT`].
pub async fn read_body(body: axum::body::Body) -> ApiResult<bytes::Bytes> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(ApiError(Error::invalid(format!(
            "The request body did not arrive within {} seconds.",
            BODY_TIMEOUT.as_secs()
        )))),
    }
}

/// A body over [`MAX_BODY`], in Google's words.
pub fn too_large() -> ApiError {
    ApiError(Error::invalid(format!(
        "Request payload size exceeds the limit: {MAX_BODY} bytes."
    )))
}

/// A JSON body parsed into Google's model type. An empty body is the empty message.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req.into_body()).await?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            ApiError(Error::invalid(format!(
                "Invalid JSON payload received. {e}"
            )))
        })?;
        if !value.is_object() {
            return Err(ApiError(Error::invalid(
                "Invalid JSON payload received. Expected an object at the top level.",
            )));
        }
        serde_json::from_value(value).map(Body).map_err(|e| {
            ApiError(Error::invalid(format!(
                "Invalid JSON payload received. {e}"
            )))
        })
    }
}

/// How one enum field is named: its number to its name, `None` for a number the model does
/// not know (left as a number).
pub type EnumName = fn(i64) -> Option<String>;

/// The enum fields of a response, by dot-separated JSON path (arrays on the way are walked
/// element by element, `*` walks a map's values), each with its model enum (Google's model crates serialize enums as numbers; their names come from there).
pub type Enums = &'static [(&'static str, EnumName)];

/// The name of a model enum's value: its `Display`, which is the proto name for a known value
/// and the number for an unknown one.
pub fn named<E: From<i32> + std::fmt::Display>(n: i64) -> Option<String> {
    let v = i32::try_from(n).ok()?;
    let name = E::from(v).to_string();
    (name != v.to_string()).then_some(name)
}

fn name_enums(v: &mut Value, path: &[&str], names: EnumName) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| name_enums(i, path, names)),
        Value::Object(map) => {
            let Some((first, rest)) = path.split_first() else {
                return;
            };
            // `*` walks every value of a map field (`memberships.*.membership`).
            if *first == "*" {
                map.values_mut().for_each(|v| name_enums(v, rest, names));
                return;
            }
            let Some(child) = map.get_mut(*first) else {
                return;
            };
            if rest.is_empty() {
                if let Some(name) = child.as_i64().and_then(names) {
                    *child = Value::String(name);
                }
            } else {
                name_enums(child, rest, names);
            }
        }
        _ => {}
    }
}

tokio::task_local! {
    /// Set while the gRPC gateway has a call answered by the REST routes: a reply then hands
    /// over its value as it is ([`Answer`]), since the gateway would only parse the JSON
    /// text back into it.
    pub static AS_VALUE: ();
}

/// A reply's value, in its response's extensions (under [`AS_VALUE`]), with an empty body.
#[derive(Clone)]
pub struct Answer(pub Value);

/// Render a model value. Google's Rust model types write enums as integers; a client that
/// did not ask for `enum-encoding=int` gets their names, as from Google.
pub fn reply<T: Serialize>(params: &Params, value: &T, enums: Enums) -> Response {
    reply_under(params, value, &[""], enums)
}

/// [`reply`] with the enum paths applied under each of `prefixes` (`""` for the root), for
/// a resource that also travels inside operations (`response`, `metadata`) and lists.
pub fn reply_under<T: Serialize>(
    params: &Params,
    value: &T,
    prefixes: &[&str],
    enums: Enums,
) -> Response {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    if !params.int_enums() {
        for prefix in prefixes {
            for (path, names) in enums {
                let full = if prefix.is_empty() {
                    path.to_string()
                } else {
                    format!("{prefix}.{path}")
                };
                let parts: Vec<&str> = full.split('.').collect();
                name_enums(&mut v, &parts, *names);
            }
        }
    }
    if AS_VALUE.try_with(|_| ()).is_ok() {
        let mut resp = StatusCode::OK.into_response();
        resp.extensions_mut().insert(Answer(v));
        return resp;
    }
    axum::Json(v).into_response()
}

/// One page of `items` from `pageToken` (an opaque offset), `pageSize` capped at `max`.
pub fn page<T: Clone>(
    params: &Params,
    items: &[T],
    default: usize,
    max: usize,
) -> ApiResult<(Vec<T>, String)> {
    let (start, size) = page_window(params, default, max)?;
    let end = start.saturating_add(size).min(items.len());
    let slice = items
        .get(start.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec();
    Ok((slice, next_page(start, size, items.len())))
}

/// The window a list request asks for, `(first item, how many)`: `pageToken` and
/// `pageSize` (0 or absent: `default`; at most `max`). For lists that can take just the page
/// from their store rather than copy everything and cut it here.
pub fn page_window(params: &Params, default: usize, max: usize) -> ApiResult<(usize, usize)> {
    let size = match params.int("pageSize")? {
        None | Some(0) => default,
        Some(n) if n < 0 => {
            return Err(ApiError(Error::invalid("page_size must not be negative.")));
        }
        Some(n) => (n as usize).min(max),
    };
    Ok((page_offset(params.get("pageToken"))?, size))
}

/// The token of the page after the window `(start, size)` of `total` items; empty after the
/// last.
pub fn next_page(start: usize, size: usize, total: usize) -> String {
    let end = start.saturating_add(size);
    if end < total {
        page_token(end)
    } else {
        String::new()
    }
}

/// How many items the pages before this one held: what a page token stands for (none or
/// empty: the first page).
pub fn page_offset(token: Option<&str>) -> ApiResult<usize> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse::<usize>().ok()))
            .ok_or_else(|| ApiError(Error::invalid("The page token is invalid."))),
    }
}

/// The opaque token of the page that starts after `offset` items.
pub fn page_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

/// Split a `name:verb` path segment.
pub fn split_verb(seg: &str) -> (&str, &str) {
    seg.split_once(':').unwrap_or((seg, ""))
}

pub fn unknown_verb(verb: &str) -> ApiError {
    ApiError(Error::not_found(format!("Method '{verb}' not found.")))
}

/// Parse a JSON value into a model type, with Google's error for a bad payload.
pub fn parse<T: DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_json::from_value(v).map_err(|e| {
        ApiError(Error::invalid(format!(
            "Invalid JSON payload received. {e}"
        )))
    })
}
