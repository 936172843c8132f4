//! Service Usage v1 (`serviceusage.googleapis.com`): services get, list, batchGet, enable,
//! disable and batchEnable on projects, and the operations they return.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{
    ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply, split_verb, unknown_verb,
};
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use google_cloud_api_serviceusage_v1::model as su;
use serde_json::Value;

const STATE: EnumName = named::<su::State>;
const ENUMS: Enums = &[
    ("state", STATE),
    ("services.state", STATE),
    ("response.service.state", STATE),
    ("response.services.state", STATE),
];
/// An operation from this path may be Resource Manager's, carrying a v3 folder or project.
const OPERATION: Enums = &[
    ("response.service.state", STATE),
    ("response.services.state", STATE),
    (
        "response.state",
        named::<google_cloud_resourcemanager_v3::model::project::State>,
    ),
];

static SERVICE_USAGE: Interface = Interface {
    service: "serviceusage.googleapis.com",
    name: "google.api.serviceusage.v1.ServiceUsage",
};
static OPERATIONS: Interface = Interface {
    service: "serviceusage.googleapis.com",
    name: "google.longrunning.Operations",
};

pub fn router() -> Router<AppState> {
    const BASE: &str = "/v1/projects/{project}/services";
    Router::new()
        .route(
            BASE,
            serves(
                const { &[&[Op::read("GET", "", &SERVICE_USAGE, "ListServices")]] },
                get(list),
            ),
        )
        .route(
            &format!("{BASE}:batchGet"),
            serves(
                const {
                    &[&[Op::read(
                        "GET",
                        "batchGet",
                        &SERVICE_USAGE,
                        "BatchGetServices",
                    )]]
                },
                get(batch_get),
            ),
        )
        .route(
            &format!("{BASE}:batchEnable"),
            serves(
                const {
                    &[&[Op::write(
                        "POST",
                        "batchEnable",
                        &SERVICE_USAGE,
                        "BatchEnableServices",
                    )]]
                },
                post(batch_enable),
            ),
        )
        .route(
            &format!("{BASE}/{{seg}}"),
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &SERVICE_USAGE, "GetService"),
                        Op::write("POST", "enable", &SERVICE_USAGE, "EnableService"),
                        Op::write("POST", "disable", &SERVICE_USAGE, "DisableService"),
                    ]]
                },
                get(get_one).post(post_one),
            ),
        )
        // Resource Manager's v1 operations share this path on their own host; both are
        // answered from the one operation store, a Resource Manager one in v1's shape.
        .route(
            "/v1/operations/{*rest}",
            serves(
                const { &[&[Op::read("GET", "", &OPERATIONS, "GetOperation")]] },
                get(get_operation),
            ),
        )
}

fn parent(project: &str) -> String {
    format!("projects/{project}")
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
) -> ApiResult {
    let all = s
        .control
        .list_services(&c, &parent(&project), p.str("filter"))?;
    let (items, next) = page(&p, &all, 50, 200)?;
    let mut resp = su::ListServicesResponse::new();
    resp.services = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, ENUMS))
}

async fn batch_get(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
) -> ApiResult {
    let mut resp = su::BatchGetServicesResponse::new();
    resp.services = s
        .control
        .batch_get_services(&c, &parent(&project), &p.all("names"))?;
    Ok(reply(&p, &resp, ENUMS))
}

async fn batch_enable(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
    Body(req): Body<su::BatchEnableServicesRequest>,
) -> ApiResult {
    let op = s
        .control
        .enable_services(&c, &parent(&project), &req.service_ids, true)?;
    Ok(reply(&p, &op, ENUMS))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, seg)): Path<(String, String)>,
) -> ApiResult {
    let name = format!("{}/services/{seg}", parent(&project));
    Ok(reply(&p, &s.control.get_service(&c, &name)?, ENUMS))
}

async fn post_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, seg)): Path<(String, String)>,
    Body(_): Body<Value>,
) -> ApiResult {
    let (svc, verb) = split_verb(&seg);
    let op = match verb {
        "enable" => s
            .control
            .enable_services(&c, &parent(&project), &[svc.to_string()], false)?,
        "disable" => s
            .control
            .disable_service(&c, &format!("{}/services/{svc}", parent(&project)))?,
        _ => return Err(unknown_verb(verb)),
    };
    Ok(reply(&p, &op, ENUMS))
}

async fn get_operation(
    State(s): State<AppState>,
    Auth(_): Auth,
    p: Params,
    Path(rest): Path<String>,
) -> ApiResult {
    let op = s.control.get_operation(&format!("operations/{rest}"))?;
    Ok(match crate::resourcemanager::older_operation(&op) {
        Some(v) => Json(v).into_response(),
        None => reply(&p, &op, OPERATION),
    })
}
