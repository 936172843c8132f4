//! A GCE / Cloud Run compatible metadata server, one per instance, on loopback. It answers
//! as Google's does: `Metadata-Flavor: Google` required on requests and sent on responses,
//! requests carrying `X-Forwarded-For` refused, `?recursive=true` and `?alt=json|text`, and
//! tokens for the instance's service identity minted by the pool project's service agent.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use runpool_control::Control;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who an instance is.
#[derive(Debug, Clone)]
pub struct InstanceIdentity {
    pub instance_id: String,
    pub project_id: String,
    pub project_number: String,
    pub region: String,
    pub service_account: String,
    /// `projects/NUMBER/locations/REGION/workerPools/ID`: the tokens minted here carry it.
    pub pool: String,
}

/// Refresh a cached token this long before it expires, as Google's metadata server does.
const REFRESH_MARGIN_SECONDS: i64 = 300;
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

#[derive(Clone)]
struct Md {
    control: Arc<Control>,
    id: Arc<InstanceIdentity>,
    /// (token, expiry in unix seconds)
    cached: Arc<Mutex<Option<(String, i64)>>>,
}

/// What a metadata server answers a local process that is not its instance.
pub fn refused() -> Router {
    Router::new().fallback(|| async {
        flavored(
            StatusCode::FORBIDDEN,
            "text/plain; charset=UTF-8",
            "This metadata server answers only its own worker pool instance.\n".to_string(),
        )
    })
}

/// A metadata server's bounds: an instance needs few connections at once.
pub fn limits() -> runpool_listener::Limits {
    runpool_listener::Limits {
        max_connections: Some(64),
        ..runpool_listener::Limits::default()
    }
}

pub fn router(control: Arc<Control>, id: InstanceIdentity) -> Router {
    let state = Md {
        control,
        id: Arc::new(id),
        cached: Arc::new(Mutex::new(None)),
    };
    Router::new().fallback(handle).with_state(state)
}

fn flavored(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert("Metadata-Flavor", HeaderValue::from_static("Google"));
    h.insert(
        "Server",
        HeaderValue::from_static("Metadata Server for Serverless"),
    );
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

fn text(body: String) -> Response {
    flavored(StatusCode::OK, "application/text", body)
}

fn as_json(v: &Value) -> Response {
    flavored(StatusCode::OK, "application/json", v.to_string())
}

fn not_found() -> Response {
    flavored(
        StatusCode::NOT_FOUND,
        "text/html; charset=UTF-8",
        "Not Found\n".to_string(),
    )
}

/// `project-id` → `projectId`, as recursive answers spell keys.
fn camel(k: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in k.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Field names become camelCase; keys that are account emails stay as they are.
fn camel_tree(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = if k.contains('@') { k.clone() } else { camel(k) };
                    (key, camel_tree(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Md {
    /// The static part of the metadata tree.
    fn tree(&self) -> Value {
        let id = &self.id;
        let account =
            json!({"aliases": ["default"], "email": id.service_account, "scopes": [SCOPE]});
        json!({
            "project": {"project-id": id.project_id, "numeric-project-id": id.project_number.parse::<u64>().unwrap_or_default()},
            "instance": {
                "id": id.instance_id,
                "region": format!("projects/{}/regions/{}", id.project_number, id.region),
                "zone": format!("projects/{}/zones/{}-1", id.project_number, id.region),
                "service-accounts": {"default": account.clone(), id.service_account.clone(): account},
            },
        })
    }

    fn token(&self) -> Result<(String, i64), String> {
        let now = chrono_now();
        // Every request re-checks that the service agent may still mint for the account, so
        // a revoked grant shows at once even while a cached token is still valid.
        self.control
            .check_instance_minting(&self.id.project_number, &self.id.service_account)
            .map_err(|e| e.message)?;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, exp)) = cached.as_ref()
            && exp - now > REFRESH_MARGIN_SECONDS
        {
            return Ok((t.clone(), exp - now));
        }
        let t = self
            .control
            .instance_token(
                &self.id.project_number,
                &self.id.service_account,
                &self.id.pool,
            )
            .map_err(|e| e.message)?;
        *cached = Some((t.access_token.clone(), now + t.expires_in));
        Ok((t.access_token, t.expires_in))
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn handle(
    State(md): State<Md>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if headers.contains_key("x-forwarded-for") {
        return flavored(
            StatusCode::FORBIDDEN,
            "text/plain",
            "Request with X-Forwarded-For header is not allowed.\n".into(),
        );
    }
    let flavor_ok = headers
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("google"));
    if !flavor_ok {
        return flavored(
            StatusCode::FORBIDDEN,
            "text/plain",
            "Missing required header \"Metadata-Flavor\": \"Google\"\n".into(),
        );
    }
    let path = uri.path();
    if path == "/" {
        return text("computeMetadata/\n".into());
    }
    let Some(rest) = path.strip_prefix("/computeMetadata/v1") else {
        return not_found();
    };
    let rest = rest.trim_start_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let recursive = q.get("recursive").is_some_and(|v| v == "true");
    let want_json = q.get("alt").map(String::as_str) == Some("json");

    // The dynamic leaves: tokens.
    if let ["instance", "service-accounts", acct, leaf] = segs.as_slice()
        && (*acct == "default" || *acct == md.id.service_account)
    {
        match *leaf {
            "token" => {
                return match md.token() {
                    Ok((t, expires_in)) => as_json(
                        &json!({"access_token": t, "expires_in": expires_in, "token_type": "Bearer"}),
                    ),
                    Err(msg) => flavored(StatusCode::FORBIDDEN, "text/plain", format!("{msg}\n")),
                };
            }
            "identity" => {
                let Some(aud) = q.get("audience").filter(|a| !a.is_empty()) else {
                    return flavored(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "non-empty audience parameter required\n".into(),
                    );
                };
                let full = q.get("format").is_some_and(|f| f == "full");
                return match md.control.instance_id_token(
                    &md.id.project_number,
                    &md.id.service_account,
                    aud,
                    full,
                ) {
                    Ok(t) => text(t),
                    Err(e) => flavored(
                        StatusCode::FORBIDDEN,
                        "text/plain",
                        format!("{}\n", e.message),
                    ),
                };
            }
            _ => {}
        }
    }

    let mut node = md.tree();
    for s in segs.iter().filter(|s| !s.is_empty()) {
        node = match node.get(*s) {
            Some(v) => v.clone(),
            None => return not_found(),
        };
    }
    let is_dir = rest.is_empty() || rest.ends_with('/');
    match &node {
        Value::Object(map) if recursive || (want_json && !is_dir) => {
            as_json(&camel_tree(&Value::Object(map.clone())))
        }
        // GCE redirects a directory asked without its slash; answering the listing serves
        // the same clients.
        Value::Object(map) => {
            let mut list = listing(map);
            // An account's directory also lists its dynamic leaves.
            if let ["instance", "service-accounts", _] = segs
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .as_slice()
            {
                list.push_str("identity\ntoken\n");
                let mut lines: Vec<&str> = list.lines().collect();
                lines.sort();
                list = lines.iter().map(|l| format!("{l}\n")).collect();
            }
            text(list)
        }
        Value::Array(items) if want_json => as_json(&Value::Array(items.clone())),
        Value::Array(items) => text(
            items
                .iter()
                .map(|i| format!("{}\n", i.as_str().unwrap_or_default()))
                .collect(),
        ),
        Value::String(s) if want_json => as_json(&json!(s)),
        Value::String(s) => text(s.clone()),
        other if want_json => as_json(other),
        other => text(other.to_string()),
    }
}

fn listing(map: &Map<String, Value>) -> String {
    map.iter()
        .map(|(k, v)| {
            if v.is_object() {
                format!("{k}/\n")
            } else {
                format!("{k}\n")
            }
        })
        .collect()
}
