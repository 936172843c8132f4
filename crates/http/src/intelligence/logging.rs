//! Cloud Logging v2 `entries:list` (`logging.googleapis.com`), over worker pool instance
//! logs, with Cloud Run's resource type `cloud_run_worker_pool`.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{self, ApiError, ApiResult, Auth, Body, Params};
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use runpool_control::Error;
use runpool_control::intelligence::logging::severity;
use serde_json::{Value, json};

static LOGGING: Interface = Interface {
    service: "logging.googleapis.com",
    name: "google.logging.v2.LoggingServiceV2",
};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/v2/entries:list",
        serves(
            const { &[&[Op::query("POST", "list", &LOGGING, "ListLogEntries")]] },
            post(list),
        ),
    )
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    _p: Params,
    Body(req): Body<Value>,
) -> ApiResult {
    let names: Vec<&str> = req["resourceNames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let [project] = names.as_slice() else {
        return Err(ApiError(Error::invalid(
            "resourceNames must name exactly one project, e.g. projects/my-project.",
        )));
    };
    let limit = match &req["pageSize"] {
        Value::Null => 50,
        v => match v.as_i64() {
            Some(n) if n > 0 => n.min(1000) as usize,
            _ => {
                return Err(ApiError(Error::invalid(format!(
                    "Invalid page_size: {v}. It must be a positive number."
                ))));
            }
        },
    };
    let desc = match req["orderBy"].as_str().map(|o| o.trim().to_lowercase()) {
        None => false,
        Some(o) if o.is_empty() || o == "timestamp" || o == "timestamp asc" => false,
        Some(o) if o == "timestamp desc" => true,
        Some(o) => {
            return Err(ApiError(Error::invalid(format!(
                "Invalid order_by '{o}': only \"timestamp asc\" and \"timestamp desc\" are supported."
            ))));
        }
    };
    // The page token is the number of entries already returned: each page reads that many
    // more from both sources and skips them (logs are bounded, so this stays cheap).
    let skip = wire::page_offset(req["pageToken"].as_str())?;
    // One more than the page, to know whether another page follows.
    let want = skip + limit + 1;
    let filter = req["filter"].as_str().unwrap_or_default();
    let (audit, instances) = runpool_control::intelligence::logging::Filter::parse(filter)?.wants();
    let entries = if instances {
        s.control
            .list_log_entries(&c, project, filter, want, desc)?
    } else {
        vec![]
    };
    let mut items: Vec<Value> = entries
        .into_iter()
        .map(|(e, project_id, region, pool)| {
            let ts = e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            json!({
                "logName": format!("projects/{project_id}/logs/run.googleapis.com%2F{}", e.stream),
                "resource": {"type": "cloud_run_worker_pool", "labels": {
                    "project_id": project_id, "worker_pool_name": pool, "revision_name": e.revision, "location": region}},
                "textPayload": e.text,
                "timestamp": ts,
                "receiveTimestamp": ts,
                "severity": severity(&e.stream),
                // Stable across calls: the instance and the line's time name it.
                "insertId": format!("{:x}{}", e.time.timestamp_micros(), &e.instance[..e.instance.len().min(8)]),
                "labels": {"instanceId": e.instance},
            })
        })
        .collect();
    if audit {
        items.extend(
            s.control
                .list_audit_entries(&c, project, filter, want, desc)?,
        );
        // RFC 3339 in UTC with a fixed precision sorts as text.
        items.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
        if desc {
            items.reverse();
        }
    }
    let more = items.len() > skip + limit;
    let page: Vec<Value> = items.into_iter().skip(skip).take(limit).collect();
    let mut body = json!({ "entries": page });
    if more {
        body["nextPageToken"] = json!(wire::page_token(skip + limit));
    }
    Ok(axum::Json(body).into_response())
}
