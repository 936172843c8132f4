//! The one HTTP helper every command uses: bearer token, Google's error body, paging and
//! long-running operations.

use anyhow::{Result, anyhow};
use reqwest::Method;
use runpool_control::base::error::{Code, http_status};
use serde_json::{Value, json};
use std::time::Duration;

/// A Google API error (`{"error":{"code","message","status"}}`), kept typed so commands can
/// react to `NOT_FOUND` or `ABORTED` instead of string-matching.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub status: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    // `STATUS: message`, as gcloud prints API errors for the newer surfaces (e.g.
    // `PERMISSION_DENIED: Permission 'iam.serviceaccounts.actAs' denied ...`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status.is_empty() {
            write!(f, "HTTP {}: {}", self.code, self.message)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Decode Google's error body; anything else becomes a generic error with the raw text.
    pub fn from_body(code: u16, body: &str) -> ApiError {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let e = &v["error"];
        if e.is_object() {
            return ApiError {
                code: e["code"].as_u64().map(|c| c as u16).unwrap_or(code),
                status: e["status"].as_str().unwrap_or("").to_string(),
                message: e["message"].as_str().unwrap_or("").to_string(),
            };
        }
        // OAuth endpoints answer `{"error":"invalid_grant","error_description":"..."}`.
        if let Some(kind) = e.as_str() {
            return ApiError {
                code,
                status: kind.to_string(),
                message: v["error_description"].as_str().unwrap_or("").to_string(),
            };
        }
        ApiError {
            code,
            status: String::new(),
            message: body.trim().chars().take(500).collect(),
        }
    }
}

/// Whether `err` is an API error with this status.
pub fn has_status(err: &anyhow::Error, status: &str) -> bool {
    err.downcast_ref::<ApiError>()
        .is_some_and(|e| e.status == status)
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("runpool-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static reqwest configuration")
}

/// An authenticated client for one endpoint.
pub struct Api {
    http: reqwest::Client,
    pub endpoint: String,
    token: String,
}

impl Api {
    pub fn new(endpoint: String, token: String) -> Api {
        Api {
            http: http_client(),
            endpoint,
            token,
        }
    }

    /// One call. `path` starts with `/`; `query` pairs are URL-encoded by reqwest.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}{}", self.endpoint, path);
        let mut req = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| connect_error(&self.endpoint, e))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            return Err(ApiError::from_body(status.as_u16(), &text).into());
        }
        if text.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&text).map_err(|e| anyhow!("invalid JSON from {url}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, &[], None).await
    }
    pub async fn get_q(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.call(Method::GET, path, query, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, &[], Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, &[], None).await
    }

    /// Every item of a paged list (`field` is the list's JSON name, e.g. `projects`).
    pub async fn list_all(
        &self,
        path: &str,
        query: &[(&str, String)],
        field: &str,
    ) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(t) = &token {
                q.push(("pageToken", t.clone()));
            }
            let page = self.get_q(path, &q).await?;
            if let Some(list) = page[field].as_array() {
                items.extend(list.iter().cloned());
            }
            match page["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() && token.as_deref() != Some(t) => token = Some(t.into()),
                _ => return Ok(items),
            }
        }
    }

    /// Wait for a long-running operation and return its `response` (without `@type`),
    /// printing gcloud's `Waiting for [operations/...] to finish...done.` on stderr.
    pub async fn wait(&self, op: Value) -> Result<Value> {
        self.poll(op, true).await
    }

    /// [`Api::wait`] without the progress line (Cloud Run's commands print their own).
    pub async fn wait_silently(&self, op: Value) -> Result<Value> {
        self.poll(op, false).await
    }

    /// The one operation poller: Resource Manager's `operations/ID` are read from v3, Cloud
    /// Run's `projects/P/locations/L/operations/ID` from v2; backing off from 50 ms to 2 s,
    /// for at most five minutes.
    async fn poll(&self, op: Value, announce: bool) -> Result<Value> {
        let name = op["name"].as_str().unwrap_or("").to_string();
        let version = if name.starts_with("operations/") {
            "v3"
        } else {
            "v2"
        };
        let mut op = op;
        let announce = announce && !name.is_empty() && op["done"] != json!(true);
        if announce {
            eprint!("Waiting for [{name}] to finish...");
        }
        let mut delay = Duration::from_millis(50);
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while op["done"] != json!(true) {
            if name.is_empty() || std::time::Instant::now() > deadline {
                return Err(anyhow!("Operation [{name}] did not finish in time."));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            op = self.get(&format!("/{version}/{name}")).await?;
        }
        if announce {
            eprintln!("done.");
        }
        operation_result(op)
    }
}

/// The outcome of a finished operation: its `error` as an [`ApiError`], else its `response`.
pub fn operation_result(op: Value) -> Result<Value> {
    if let Some(e) = op.get("error").filter(|e| e.is_object()) {
        // An operation's error carries only the `google.rpc.Code` number.
        let code = e["code"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .map_or(Code::Unknown, Code::from);
        return Err(ApiError {
            code: http_status(code),
            status: code.name().into(),
            message: e["message"].as_str().unwrap_or("").into(),
        }
        .into());
    }
    let mut response = op.get("response").cloned().unwrap_or(json!({}));
    if let Some(m) = response.as_object_mut() {
        m.remove("@type");
    }
    Ok(response)
}

/// A connection failure, explained in terms of what the user can do about it.
pub fn connect_error(endpoint: &str, e: reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow!(
            "Could not reach the Runpool server at [{endpoint}]. Start one with `runpool serve`, \
             or point this client elsewhere with `runpool config set api_endpoint URL`."
        )
    } else {
        anyhow!("Request to [{endpoint}] failed: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_google_error_body() {
        let e = ApiError::from_body(
            403,
            r#"{"error":{"code":403,"message":"The caller does not have permission","status":"PERMISSION_DENIED","details":[]}}"#,
        );
        assert_eq!(e.status, "PERMISSION_DENIED");
        assert_eq!(
            e.to_string(),
            "PERMISSION_DENIED: The caller does not have permission"
        );
    }

    #[test]
    fn decodes_oauth_and_plain_errors() {
        let e = ApiError::from_body(
            400,
            r#"{"error":"invalid_grant","error_description":"Bad refresh token"}"#,
        );
        assert_eq!(e.to_string(), "invalid_grant: Bad refresh token");
        assert_eq!(
            ApiError::from_body(502, "bad gateway").to_string(),
            "HTTP 502: bad gateway"
        );
    }

    #[test]
    fn operation_error_becomes_api_error() {
        let err = operation_result(json!({"name":"operations/x","done":true,
            "error":{"code":6,"message":"exists"}}))
        .unwrap_err();
        assert!(has_status(&err, "ALREADY_EXISTS"));
        let ok =
            operation_result(json!({"done":true,"response":{"@type":"t","name":"projects/1"}}))
                .unwrap();
        assert_eq!(ok, json!({"name":"projects/1"}));
    }
}
