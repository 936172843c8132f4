//! Cloud Run Admin API v1 (Knative style) for worker pools:
//! `/apis/run.googleapis.com/v1/namespaces/NS/workerpools[/NAME]` — get, list, create,
//! replace (PUT, `metadata.resourceVersion` for optimistic concurrency), delete. It is another
//! view of the same pools: each call is translated to the v2 model and goes through the same
//! `control` methods and identity rules.
//!
//! The v1 path carries no region (Google routes by regional host, `REGION-run.googleapis.com`),
//! so the region comes from the `Host` prefix, the `cloud.googleapis.com/location` label, or,
//! for reads, the one region holding a pool of that name.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{ApiError, ApiResult, Auth, Body, Params};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use google_cloud_run_v2::model::WorkerPool;
use runpool_control::Error;
use runpool_control::run::v1::V1Name;
use runpool_control::run::workerpools::REGIONS;
use serde_json::{Map, Value, json};

pub const LOCATION_LABEL: &str = "cloud.googleapis.com/location";
const API_VERSION: &str = "run.googleapis.com/v1";

/// v1 annotations that carry v2 fields, and the output-only ones Cloud Run writes.
const LAUNCH_STAGE: &str = "run.googleapis.com/launch-stage";
const SCALING_MODE: &str = "run.googleapis.com/scalingMode";
const MANUAL_COUNT: &str = "run.googleapis.com/manualInstanceCount";
const MIN_SCALE: &str = "run.googleapis.com/minScale";
const MAX_SCALE: &str = "run.googleapis.com/maxScale";
const DESCRIPTION: &str = "run.googleapis.com/description";
const CLIENT_NAME: &str = "run.googleapis.com/client-name";
const CLIENT_VERSION: &str = "run.googleapis.com/client-version";
const CREATOR: &str = "serving.knative.dev/creator";
const LAST_MODIFIER: &str = "serving.knative.dev/lastModifier";

static WORKER_POOLS_V1: Interface = Interface {
    service: "run.googleapis.com",
    name: "google.cloud.run.v1.WorkerPools",
};

pub fn router() -> Router<AppState> {
    const BASE: &str = "/apis/run.googleapis.com/v1/namespaces/{ns}/workerpools";
    Router::new()
        .route(
            BASE,
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &WORKER_POOLS_V1, "ListWorkerPools"),
                        Op::write("POST", "", &WORKER_POOLS_V1, "CreateWorkerPool"),
                    ]]
                },
                get(list).post(create),
            ),
        )
        .route(
            &format!("{BASE}/{{name}}"),
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &WORKER_POOLS_V1, "GetWorkerPool"),
                        Op::write("PUT", "", &WORKER_POOLS_V1, "ReplaceWorkerPool"),
                        Op::write("DELETE", "", &WORKER_POOLS_V1, "DeleteWorkerPool"),
                    ]]
                },
                get(get_one).put(replace).delete(delete),
            ),
        )
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::invalid(msg))
}

/// The region named by a regional host (`us-central1-run.googleapis.com`, or any
/// `REGION-…` host).
fn host_region(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    REGIONS
        .iter()
        .find(|r| host.starts_with(&format!("{r}-")))
        .map(|r| r.to_string())
}

fn str_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// v1 `WorkerPool` → v2 `WorkerPool` (the writable fields).
fn to_v2(v1: &Value) -> ApiResult<(String, Option<String>, WorkerPool)> {
    if v1
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "WorkerPool")
    {
        return Err(invalid(format!(
            "kind must be WorkerPool, not {}.",
            v1["kind"]
        )));
    }
    if v1
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|a| a != API_VERSION)
    {
        return Err(invalid(format!(
            "apiVersion must be {API_VERSION}, not {}.",
            v1["apiVersion"]
        )));
    }
    let meta = &v1["metadata"];
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(invalid("metadata.name is required."));
    }
    let mut labels = str_map(&meta["labels"]);
    let region = labels
        .remove(LOCATION_LABEL)
        .and_then(|v| v.as_str().map(str::to_string));
    let mut annotations = str_map(&meta["annotations"]);
    let take = |a: &mut Map<String, Value>, k: &str| {
        a.remove(k).and_then(|v| v.as_str().map(str::to_string))
    };
    let mut scaling = Map::new();
    if let Some(m) = take(&mut annotations, SCALING_MODE) {
        scaling.insert("scalingMode".into(), json!(m.to_uppercase()));
    }
    for (k, field) in [
        (MANUAL_COUNT, "manualInstanceCount"),
        (MIN_SCALE, "minInstanceCount"),
        (MAX_SCALE, "maxInstanceCount"),
    ] {
        if let Some(n) = take(&mut annotations, k) {
            let n: i64 = n
                .parse()
                .map_err(|_| invalid(format!("Annotation {k} must be a number, not '{n}'.")))?;
            scaling.insert(field.into(), json!(n));
        }
    }
    let mut v2 = json!({ "labels": labels });
    if let Some(stage) = take(&mut annotations, LAUNCH_STAGE) {
        v2["launchStage"] = json!(stage.to_uppercase());
    }
    if let Some(d) = take(&mut annotations, DESCRIPTION) {
        v2["description"] = json!(d);
    }
    if let Some(c) = take(&mut annotations, CLIENT_NAME) {
        v2["client"] = json!(c);
    }
    if let Some(c) = take(&mut annotations, CLIENT_VERSION) {
        v2["clientVersion"] = json!(c);
    }
    // What Cloud Run writes itself (creator, operation id, …) is not the caller's to set.
    annotations.retain(|k, _| {
        !k.starts_with("serving.knative.dev/") && !k.starts_with("run.googleapis.com/")
    });
    v2["annotations"] = Value::Object(annotations);
    if !scaling.is_empty() {
        v2["scaling"] = Value::Object(scaling);
    }
    let spec = &v1["spec"];
    let tpl = spec.get("template").filter(|t| t.is_object()).ok_or_else(|| {
        invalid("spec.template is required but missing. Please check the content in your yaml file.")
    })?;
    let tmeta = &tpl["metadata"];
    let tspec = &tpl["spec"];
    let mut tannotations = str_map(&tmeta["annotations"]);
    tannotations.retain(|k, _| {
        !k.starts_with("serving.knative.dev/")
            && !k.starts_with("run.googleapis.com/")
            && !k.starts_with("autoscaling.knative.dev/")
    });
    let mut template = json!({
        "labels": str_map(&tmeta["labels"]),
        "annotations": tannotations,
        "containers": tspec.get("containers").cloned().unwrap_or(json!([])),
    });
    if let Some(r) = tmeta["name"].as_str() {
        template["revision"] = json!(r);
    }
    if let Some(sa) = tspec["serviceAccountName"].as_str() {
        template["serviceAccount"] = json!(sa);
    }
    if let Some(vols) = tspec.get("volumes") {
        template["volumes"] = vols.clone();
    }
    // v1 containers carry Kubernetes fields v2 has no place for; keep the shared ones.
    if let Some(cs) = template["containers"].as_array_mut() {
        for c in cs {
            if let Some(o) = c.as_object_mut() {
                o.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "name"
                            | "image"
                            | "command"
                            | "args"
                            | "env"
                            | "resources"
                            | "workingDir"
                            | "volumeMounts"
                            | "dependsOn"
                    )
                });
                if let Some(limits) = o.get_mut("resources").and_then(|r| r.as_object_mut()) {
                    limits.retain(|k, _| k == "limits");
                }
            }
        }
    }
    v2["template"] = template;
    if let Some(splits) = spec["instanceSplits"].as_array() {
        let s: Vec<Value> = splits
            .iter()
            .map(|s| {
                if s["latestRevision"].as_bool() == Some(true) {
                    json!({"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "percent": s["percent"]})
                } else {
                    json!({"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": s["revisionName"], "percent": s["percent"]})
                }
            })
            .collect();
        v2["instanceSplits"] = json!(s);
    }
    let mut pool: WorkerPool =
        serde_json::from_value(v2).map_err(|e| invalid(format!("Invalid worker pool: {e}")))?;
    // `resourceVersion` is the v2 etag: a stale one fails the replace.
    pool.etag = meta["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((name, region, pool))
}

/// v2 `WorkerPool` → v1 `WorkerPool`.
fn to_v1(pool: &WorkerPool, project_number: &str) -> Value {
    let v2 = serde_json::to_value(pool).unwrap_or(Value::Null);
    let parts: Vec<&str> = pool.name.split('/').collect();
    let (region, id) = (
        parts.get(3).copied().unwrap_or_default(),
        parts.get(5).copied().unwrap_or_default(),
    );
    let mut labels = str_map(&v2["labels"]);
    labels.insert(LOCATION_LABEL.into(), json!(region));
    let mut annotations = str_map(&v2["annotations"]);
    annotations.insert(CREATOR.into(), json!(pool.creator));
    annotations.insert(LAST_MODIFIER.into(), json!(pool.last_modifier));
    let stage = pool.launch_stage.name().unwrap_or("GA");
    if stage != "GA" {
        annotations.insert(LAUNCH_STAGE.into(), json!(stage));
    }
    if !pool.description.is_empty() {
        annotations.insert(DESCRIPTION.into(), json!(pool.description));
    }
    if !pool.client.is_empty() {
        annotations.insert(CLIENT_NAME.into(), json!(pool.client));
    }
    let scaling = &v2["scaling"];
    if let Some(m) = scaling["scalingMode"].as_str() {
        annotations.insert(SCALING_MODE.into(), json!(m.to_lowercase()));
    } else if scaling["scalingMode"].is_number() {
        let m = if scaling["scalingMode"] == 1 {
            "automatic"
        } else {
            "manual"
        };
        annotations.insert(SCALING_MODE.into(), json!(m));
    }
    for (k, field) in [
        (MANUAL_COUNT, "manualInstanceCount"),
        (MIN_SCALE, "minInstanceCount"),
        (MAX_SCALE, "maxInstanceCount"),
    ] {
        if let Some(n) = scaling[field].as_i64() {
            annotations.insert(k.into(), json!(n.to_string()));
        }
    }
    let tpl = &v2["template"];
    let mut tspec = json!({
        "serviceAccountName": tpl["serviceAccount"],
        "containers": tpl.get("containers").cloned().unwrap_or(json!([])),
    });
    if let Some(v) = tpl.get("volumes") {
        tspec["volumes"] = v.clone();
    }
    let mut tmeta = json!({});
    if let Some(l) = tpl.get("labels") {
        tmeta["labels"] = l.clone();
    }
    if let Some(a) = tpl.get("annotations") {
        tmeta["annotations"] = a.clone();
    }
    let splits: Vec<Value> = pool
        .instance_splits
        .iter()
        .map(|s| {
            if s.revision.is_empty() {
                json!({"latestRevision": true, "percent": s.percent})
            } else {
                json!({"revisionName": s.revision, "percent": s.percent})
            }
        })
        .collect();
    let status_splits: Vec<Value> = pool
        .instance_split_statuses
        .iter()
        .map(|s| json!({"revisionName": s.revision, "percent": s.percent}))
        .collect();
    let rev = |r: &str| r.rsplit('/').next().unwrap_or_default().to_string();
    let ready = pool.terminal_condition.as_ref().map(|c| {
        json!({
            "type": "Ready",
            "status": if c.state == google_cloud_run_v2::model::condition::State::ConditionSucceeded { "True" } else { "False" },
            "message": c.message,
            "lastTransitionTime": serde_json::to_value(c.last_transition_time).unwrap_or(Value::Null),
        })
    });
    json!({
        "apiVersion": API_VERSION,
        "kind": "WorkerPool",
        "metadata": {
            "name": id,
            "namespace": project_number,
            "selfLink": format!("/apis/run.googleapis.com/v1/namespaces/{project_number}/workerpools/{id}"),
            "uid": pool.uid,
            "resourceVersion": pool.etag,
            "generation": pool.generation,
            "creationTimestamp": v2["createTime"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": { "template": { "metadata": tmeta, "spec": tspec }, "instanceSplits": splits },
        "status": {
            "observedGeneration": pool.observed_generation,
            "conditions": ready.into_iter().collect::<Vec<_>>(),
            "latestReadyRevisionName": rev(&pool.latest_ready_revision),
            "latestCreatedRevisionName": rev(&pool.latest_created_revision),
            "instanceSplits": status_splits,
        },
    })
}

fn pool_reply(s: &AppState, pool: &WorkerPool) -> ApiResult {
    let number = s.control.project_number_of(&pool.name).unwrap_or_default();
    Ok(axum::Json(to_v1(pool, &number)).into_response())
}

/// A pool named in a v1 path, with the region of the regional endpoint the call reached.
fn at<'a>(namespace: &'a str, name: &'a str, region: &'a Option<String>) -> V1Name<'a> {
    V1Name {
        namespace,
        name,
        host_region: region.as_deref(),
    }
}

async fn get_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let region = host_region(&headers);
    let pool = s.control.v1_get_worker_pool(&c, &at(&ns, &name, &region))?;
    pool_reply(&s, &pool)
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    headers: HeaderMap,
    Path(ns): Path<String>,
) -> ApiResult {
    let mut items = vec![];
    for pool in s
        .control
        .v1_list_worker_pools(&c, &ns, host_region(&headers).as_deref())?
    {
        let number = s.control.project_number_of(&pool.name).unwrap_or_default();
        items.push(to_v1(&pool, &number));
    }
    let limit = p
        .int("limit")?
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .unwrap_or(usize::MAX);
    let start: usize = p.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = start.saturating_add(limit).min(items.len());
    let next = if end < items.len() {
        end.to_string()
    } else {
        String::new()
    };
    let page: Vec<Value> = items
        .get(start.min(items.len())..end)
        .unwrap_or(&[])
        .to_vec();
    Ok(axum::Json(json!({
        "apiVersion": API_VERSION,
        "kind": "WorkerPoolList",
        "metadata": { "selfLink": format!("/apis/run.googleapis.com/v1/namespaces/{ns}/workerpools"), "continue": next },
        "items": page,
    }))
    .into_response())
}

fn dry_run(p: &Params) -> bool {
    p.get("dryRun").is_some_and(|v| v == "all")
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (name, label_region, pool) = to_v2(&body)?;
    let region = host_region(&headers);
    let pool = s.control.v1_create_worker_pool(
        &c,
        &at(&ns, &name, &region),
        body["metadata"]["namespace"].as_str(),
        label_region.as_deref(),
        pool,
        dry_run(&p),
    )?;
    pool_reply(&s, &pool)
}

async fn replace(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    headers: HeaderMap,
    Path((ns, path_name)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (name, label_region, pool) = to_v2(&body)?;
    let region = host_region(&headers);
    let pool = s.control.v1_replace_worker_pool(
        &c,
        &at(&ns, &path_name, &region),
        &name,
        body["metadata"]["namespace"].as_str(),
        label_region.as_deref(),
        pool,
        dry_run(&p),
    )?;
    pool_reply(&s, &pool)
}

async fn delete(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult {
    let region = host_region(&headers);
    let pool = s
        .control
        .v1_delete_worker_pool(&c, &at(&ns, &name, &region), dry_run(&p))?;
    Ok(axum::Json(json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Success",
        "details": { "name": name, "group": "run.googleapis.com", "kind": "workerpools", "uid": pool.uid },
    }))
    .into_response())
}
