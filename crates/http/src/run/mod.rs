//! Cloud Run Admin API v2 (`run.googleapis.com`): worker pools, their revisions, IAM
//! policies and operations.

pub mod images;
pub mod kubernetes;
pub mod v1;

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{
    self, ApiError, ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply_under,
    split_verb, unknown_verb,
};
use crate::{AppState, iam_policy_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_run_v2::model as run;
use runpool_control::Error;
use serde_json::{Value, json};

const LAUNCH_STAGE: EnumName = named::<google_cloud_api::model::LaunchStage>;
const CONDITION_STATE: EnumName = named::<run::condition::State>;
const SEVERITY: EnumName = named::<run::condition::Severity>;
const REASON: EnumName = named::<run::condition::CommonReason>;
const SPLIT_TYPE: EnumName = named::<run::InstanceSplitAllocationType>;
const REVOCATION: EnumName = named::<run::EncryptionKeyRevocationAction>;
const EGRESS: EnumName = named::<run::vpc_access::VpcEgress>;

/// The enum fields of a worker pool, a revision, and their conditions.
const ENUMS: Enums = &[
    ("launchStage", LAUNCH_STAGE),
    ("terminalCondition.state", CONDITION_STATE),
    ("terminalCondition.severity", SEVERITY),
    ("terminalCondition.reason", REASON),
    ("conditions.state", CONDITION_STATE),
    ("conditions.severity", SEVERITY),
    ("conditions.reason", REASON),
    ("instanceSplits.type", SPLIT_TYPE),
    ("instanceSplitStatuses.type", SPLIT_TYPE),
    ("template.encryptionKeyRevocationAction", REVOCATION),
    ("template.vpcAccess.egress", EGRESS),
    ("encryptionKeyRevocationAction", REVOCATION),
    ("vpcAccess.egress", EGRESS),
];
/// Where a pool or revision appears inside the answers.
const AT: &[&str] = &[
    "",
    "response",
    "metadata",
    "workerPools",
    "revisions",
    "operations.response",
    "operations.metadata",
];

const SERVICE: &str = "run.googleapis.com";
static WORKER_POOLS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.run.v2.WorkerPools",
};
static REVISIONS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.run.v2.Revisions",
};
static OPERATIONS: Interface = Interface {
    service: SERVICE,
    name: "google.longrunning.Operations",
};

pub fn router() -> Router<AppState> {
    const BASE: &str = "/v2/projects/{project}/locations/{location}";
    Router::new()
        .route(
            &format!("{BASE}/workerPools"),
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &WORKER_POOLS, "ListWorkerPools"),
                        Op::write("POST", "", &WORKER_POOLS, "CreateWorkerPool"),
                    ]]
                },
                get(list).post(create),
            ),
        )
        .route(
            &format!("{BASE}/workerPools/{{seg}}"),
            serves(
                const {
                    &[
                        &[
                            Op::read("GET", "", &WORKER_POOLS, "GetWorkerPool"),
                            Op::write("PATCH", "", &WORKER_POOLS, "UpdateWorkerPool"),
                            Op::write("DELETE", "", &WORKER_POOLS, "DeleteWorkerPool"),
                        ],
                        &iam_ops(&WORKER_POOLS, "GET"),
                    ]
                },
                get(get_or_policy)
                    .patch(patch)
                    .delete(delete)
                    .post(post_verb),
            ),
        )
        .route(
            &format!("{BASE}/workerPools/{{pool}}/revisions"),
            serves(
                const { &[&[Op::read("GET", "", &REVISIONS, "ListRevisions")]] },
                get(list_revisions),
            ),
        )
        .route(
            &format!("{BASE}/workerPools/{{pool}}/revisions/{{rev}}"),
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &REVISIONS, "GetRevision"),
                        Op::write("DELETE", "", &REVISIONS, "DeleteRevision"),
                    ]]
                },
                get(get_revision).delete(delete_revision),
            ),
        )
        .route(
            &format!("{BASE}/operations"),
            serves(
                const { &[&[Op::read("GET", "", &OPERATIONS, "ListOperations")]] },
                get(list_operations),
            ),
        )
        .route(
            &format!("{BASE}/operations/{{seg}}"),
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &OPERATIONS, "GetOperation"),
                        Op::write("DELETE", "", &OPERATIONS, "DeleteOperation"),
                        Op::read("POST", "wait", &OPERATIONS, "WaitOperation"),
                    ]]
                },
                get(get_operation)
                    .delete(delete_operation)
                    .post(wait_operation),
            ),
        )
}

fn parent(project: &str, location: &str) -> String {
    format!("projects/{project}/locations/{location}")
}

fn out<T: serde::Serialize>(p: &Params, v: &T) -> ApiResult {
    Ok(reply_under(p, v, AT, ENUMS))
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location)): Path<(String, String)>,
    Body(pool): Body<run::WorkerPool>,
) -> ApiResult {
    let op = s.control.create_worker_pool(
        &c,
        &parent(&project, &location),
        p.str("workerPoolId"),
        pool,
        p.flag("validateOnly"),
    )?;
    out(&p, &op)
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location)): Path<(String, String)>,
) -> ApiResult {
    let (start, size) = wire::page_window(&p, 100, 1000)?;
    let (items, total) =
        s.control
            .list_worker_pools(&c, &parent(&project, &location), Some((start, size)))?;
    let mut resp = run::ListWorkerPoolsResponse::new();
    resp.worker_pools = items;
    resp.next_page_token = wire::next_page(start, size, total);
    out(&p, &resp)
}

async fn get_or_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, seg)): Path<(String, String, String)>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("{}/workerPools/{id}", parent(&project, &location));
    match verb {
        "" => out(&p, &s.control.get_worker_pool(&c, &name)?),
        // Cloud Run answers getIamPolicy on GET, with the version in the query.
        "getIamPolicy" => iam_policy_verbs(
            &p,
            verb,
            json!({}),
            |v| s.control.pool_get_iam_policy(&c, &name, v),
            |_, _| unreachable!("GET is only getIamPolicy"),
            |_| unreachable!("GET is only getIamPolicy"),
        ),
        _ => Err(unknown_verb(verb)),
    }
}

async fn post_verb(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, seg)): Path<(String, String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("{}/workerPools/{id}", parent(&project, &location));
    match verb {
        "setIamPolicy" | "testIamPermissions" => iam_policy_verbs(
            &p,
            verb,
            body,
            |v| s.control.pool_get_iam_policy(&c, &name, v),
            |pol, mask| s.control.pool_set_iam_policy(&c, &name, pol, mask),
            |perms| s.control.pool_test_iam_permissions(&c, &name, perms),
        ),
        _ => Err(unknown_verb(verb)),
    }
}

async fn patch(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, id)): Path<(String, String, String)>,
    Body(mut pool): Body<run::WorkerPool>,
) -> ApiResult {
    let name = format!("{}/workerPools/{id}", parent(&project, &location));
    if pool.name.is_empty() {
        pool.name = name;
    } else if pool.name != name {
        return Err(ApiError(Error::invalid(format!(
            "The worker pool name '{}' does not match the request path '{name}'.",
            pool.name
        ))));
    }
    let op = s.control.update_worker_pool(
        &c,
        pool,
        &p.mask("updateMask"),
        p.flag("allowMissing"),
        p.flag("forceNewRevision"),
        p.flag("validateOnly"),
    )?;
    out(&p, &op)
}

async fn delete(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, id)): Path<(String, String, String)>,
) -> ApiResult {
    let name = format!("{}/workerPools/{id}", parent(&project, &location));
    out(
        &p,
        &s.control
            .delete_worker_pool(&c, &name, p.str("etag"), p.flag("validateOnly"))?,
    )
}

async fn list_revisions(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, pool)): Path<(String, String, String)>,
) -> ApiResult {
    let revs = s.control.list_revisions(
        &c,
        &format!("{}/workerPools/{pool}", parent(&project, &location)),
    )?;
    let (items, next) = page(&p, &revs, 100, 1000)?;
    let mut resp = run::ListRevisionsResponse::new();
    resp.revisions = items;
    resp.next_page_token = next;
    out(&p, &resp)
}

async fn get_revision(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, pool, rev)): Path<(String, String, String, String)>,
) -> ApiResult {
    let name = format!(
        "{}/workerPools/{pool}/revisions/{rev}",
        parent(&project, &location)
    );
    out(&p, &s.control.get_revision(&c, &name)?)
}

async fn delete_revision(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, pool, rev)): Path<(String, String, String, String)>,
) -> ApiResult {
    let name = format!(
        "{}/workerPools/{pool}/revisions/{rev}",
        parent(&project, &location)
    );
    out(&p, &s.control.delete_revision(&c, &name)?)
}

async fn list_operations(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location)): Path<(String, String)>,
) -> ApiResult {
    let ops = s
        .control
        .list_run_operations(&c, &parent(&project, &location))?;
    let (items, next) = page(&p, &ops, 100, 1000)?;
    let mut resp = google_cloud_longrunning::model::ListOperationsResponse::new();
    resp.operations = items;
    resp.next_page_token = next;
    out(&p, &resp)
}

async fn get_operation(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, id)): Path<(String, String, String)>,
) -> ApiResult {
    out(
        &p,
        &s.control.get_run_operation(
            &c,
            &format!("{}/operations/{id}", parent(&project, &location)),
        )?,
    )
}

async fn delete_operation(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, id)): Path<(String, String, String)>,
) -> ApiResult {
    s.control.delete_run_operation(
        &c,
        &format!("{}/operations/{id}", parent(&project, &location)),
    )?;
    out(&p, &json!({}))
}

/// `operations/ID:wait`: every operation is already done when it is returned.
async fn wait_operation(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, location, seg)): Path<(String, String, String)>,
    Body(_): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    if verb != "wait" {
        return Err(unknown_verb(verb));
    }
    out(
        &p,
        &s.control.get_run_operation(
            &c,
            &format!("{}/operations/{id}", parent(&project, &location)),
        )?,
    )
}
