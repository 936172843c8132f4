//! Resource Manager v1 projects and organizations (what gcloud's `projects` and
//! `organizations` commands call): another view of the v3 resources, each call answered by
//! the same `control` method as its v3 twin, so a change through one version is seen through
//! the other.
//!
//! v1 names a project by its id (`/v1/projects/my-project`; a number works too) and shapes it
//! differently: `projectNumber`, `lifecycleState`, `name` for the display name and
//! `parent: {type, id}`. `orgpolicy` is v1's org policy methods on all three kinds.

pub mod orgpolicy;

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{ApiError, ApiResult, Auth, Body, Params, page, split_verb, unknown_verb};
use crate::{AppState, iam_verbs};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use google_cloud_resourcemanager_v3::model as rm;
use runpool_control::Code;
use runpool_control::resourcemanager::Kind;
use serde_json::{Map, Value, json};

const SERVICE: &str = "cloudresourcemanager.googleapis.com";
static PROJECTS: Interface = Interface {
    service: SERVICE,
    name: "google.cloudresourcemanager.v1.Projects",
};
static ORGANIZATIONS: Interface = Interface {
    service: SERVICE,
    name: "google.cloudresourcemanager.v1.Organizations",
};
static FOLDERS: Interface = Interface {
    service: SERVICE,
    name: "google.cloudresourcemanager.v1.Folders",
};
const PROJECTS_IAM: [Op; 3] = iam_ops(&PROJECTS, "POST");
const ORGANIZATIONS_IAM: [Op; 3] = iam_ops(&ORGANIZATIONS, "POST");
const PROJECTS_ORG_POLICY: [Op; 6] = orgpolicy::ops(&PROJECTS);
const FOLDERS_ORG_POLICY: [Op; 6] = orgpolicy::ops(&FOLDERS);
const ORGANIZATIONS_ORG_POLICY: [Op; 6] = orgpolicy::ops(&ORGANIZATIONS);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/projects",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &PROJECTS, "ListProjects"),
                        Op::write("POST", "", &PROJECTS, "CreateProject"),
                    ]]
                },
                get(list_projects).post(create_project),
            ),
        )
        .route(
            "/v1/projects/{seg}",
            serves(
                const {
                    &[
                        &[
                            Op::read("GET", "", &PROJECTS, "GetProject"),
                            Op::write("PUT", "", &PROJECTS, "UpdateProject"),
                            Op::write("DELETE", "", &PROJECTS, "DeleteProject"),
                            Op::write("POST", "undelete", &PROJECTS, "UndeleteProject"),
                            Op::read("POST", "getAncestry", &PROJECTS, "GetAncestry"),
                        ],
                        &PROJECTS_IAM,
                        &PROJECTS_ORG_POLICY,
                    ]
                },
                get(get_project)
                    .put(update_project)
                    .delete(delete_project)
                    .post(post_project),
            ),
        )
        .route(
            "/v1/folders/{seg}",
            serves(const { &[&FOLDERS_ORG_POLICY] }, post(post_folder)),
        )
        .route(
            "/v1/organizations:search",
            serves(
                const {
                    &[&[Op::read(
                        "POST",
                        "search",
                        &ORGANIZATIONS,
                        "SearchOrganizations",
                    )]]
                },
                post(search_organizations),
            ),
        )
        .route(
            "/v1/organizations/{seg}",
            serves(
                const {
                    &[
                        &[Op::read("GET", "", &ORGANIZATIONS, "GetOrganization")],
                        &ORGANIZATIONS_IAM,
                        &ORGANIZATIONS_ORG_POLICY,
                    ]
                },
                get(get_organization).post(post_organization),
            ),
        )
}

/// A parent name (`organizations/1`, `folders/2`) as v1's `ResourceId`.
fn resource_id(name: &str) -> Value {
    let (collection, id) = name.split_once('/').unwrap_or_default();
    json!({"type": collection.trim_end_matches('s'), "id": id})
}

/// v1's `ResourceId` parent (`{type: "folder", id: "2"}`) as a v3 name (`folders/2`).
fn parent_name(parent: &Value) -> Result<String, ApiError> {
    if parent.is_null() {
        return Ok(String::new());
    }
    let id = parent["id"].as_str().unwrap_or_default();
    match parent["type"].as_str().unwrap_or_default() {
        kind @ ("organization" | "folder") if !id.is_empty() => Ok(format!("{kind}s/{id}")),
        other => Err(ApiError(runpool_control::Error::invalid(format!(
            "Invalid parent {{type: '{other}', id: '{id}'}}: parent.type must be 'organization' or 'folder' and parent.id must be set."
        )))),
    }
}

/// The fields a v1 project body sets, as a v3 project.
fn from_v1(body: &Value) -> Result<rm::Project, ApiError> {
    let mut p = rm::Project::new();
    p.project_id = body["projectId"].as_str().unwrap_or_default().to_string();
    p.display_name = body["name"].as_str().unwrap_or_default().to_string();
    p.parent = parent_name(&body["parent"])?;
    if let Some(labels) = body["labels"].as_object() {
        p.labels = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
    }
    Ok(p)
}

/// A v3 project in v1's shape.
pub(super) fn project(p: &rm::Project) -> Value {
    let mut v = Map::new();
    v.insert(
        "projectNumber".into(),
        json!(p.name.trim_start_matches("projects/")),
    );
    v.insert("projectId".into(), json!(p.project_id));
    v.insert(
        "lifecycleState".into(),
        json!(p.state.name().unwrap_or("LIFECYCLE_STATE_UNSPECIFIED")),
    );
    v.insert("name".into(), json!(p.display_name));
    v.insert("createTime".into(), json!(p.create_time));
    if !p.labels.is_empty() {
        v.insert("labels".into(), json!(p.labels));
    }
    if !p.parent.is_empty() {
        v.insert("parent".into(), resource_id(&p.parent));
    }
    v.retain(|_, x| !x.is_null());
    Value::Object(v)
}

/// A v3 organization in v1's shape.
fn organization(o: &rm::Organization) -> Value {
    let mut v = json!({
        "name": o.name,
        "displayName": o.display_name,
        "lifecycleState": o.state.name().unwrap_or("LIFECYCLE_STATE_UNSPECIFIED"),
        "creationTime": json!(o.create_time),
    });
    if let Some(rm::organization::Owner::DirectoryCustomerId(id)) = &o.owner {
        v["owner"] = json!({"directoryCustomerId": id});
    }
    if v["creationTime"].is_null() {
        v.as_object_mut().map(|m| m.remove("creationTime"));
    }
    v
}

/// gcloud's `projects list` sends `filter` (`id:`, `name:`, `labels.K:`, `parent.id:`,
/// `lifecycleState:`); it is the same query grammar as v3's `projects.search`.
async fn list_projects(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (_, mut projects) = s.control.search(&c, Kind::Project, p.str("filter"))?;
    projects.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    let (items, next) = page(&p, &projects, 500, 1000)?;
    let mut resp = json!({"projects": items.iter().map(project).collect::<Vec<_>>()});
    if !next.is_empty() {
        resp["nextPageToken"] = json!(next);
    }
    Ok(Json(resp).into_response())
}

/// v1 refuses a project the caller may not see (or that does not exist) in fewer words than
/// v3: `The caller does not have permission`.
fn v1_denied(mut e: runpool_control::Error) -> ApiError {
    if e.code == Code::PermissionDenied {
        e.message = "The caller does not have permission".into();
    }
    ApiError(e)
}

async fn get_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let pr = s
        .control
        .get_project(&c, &format!("projects/{id}"))
        .map_err(v1_denied)?;
    Ok(Json(project(&pr)).into_response())
}

/// v1's `create` answers an operation whose response is the v1 project.
async fn create_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    Body(body): Body<Value>,
) -> ApiResult {
    let op = s.control.create_project(&c, from_v1(&body)?)?;
    super::older_reply(&op)
}

/// v1's `update` replaces the project's mutable fields (its name and labels) with the
/// body's and answers the project; a new parent moves it, as v1 allows.
async fn update_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let name = format!("projects/{id}");
    let want = from_v1(&body)?;
    let now = s.control.get_project(&c, &name).map_err(v1_denied)?;
    if !want.parent.is_empty() && want.parent != now.parent {
        s.control.move_node(&c, &name, &want.parent)?;
    }
    let mask = ["display_name".to_string(), "labels".to_string()];
    s.control.update_project(&c, &name, want, &mask)?;
    get_project(State(s), Auth(c), Path(id)).await
}

/// v1's `delete` marks the project `DELETE_REQUESTED` and answers `{}`.
async fn delete_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    s.control
        .set_deleted(&c, &format!("projects/{id}"), true)
        .map_err(v1_denied)?;
    Ok(Json(json!({})).into_response())
}

async fn post_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("projects/{id}");
    if verb == "undelete" {
        s.control.set_deleted(&c, &name, false).map_err(v1_denied)?;
        return Ok(Json(json!({})).into_response());
    }
    if verb == "getAncestry" {
        let chain = s.control.project_ancestry(&c, &name).map_err(v1_denied)?;
        let ancestor: Vec<Value> = chain
            .iter()
            .map(|n| json!({"resourceId": resource_id(n)}))
            .collect();
        return Ok(Json(json!({"ancestor": ancestor})).into_response());
    }
    orgpolicy::verb(&s, &c, &name, verb, &body)
        .or_else(|| iam_verbs(&s, &c, &p, &name, verb, body))
        .unwrap_or_else(|| Err(unknown_verb(verb)))
}

async fn post_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    orgpolicy::verb(&s, &c, &format!("folders/{id}"), verb, &body)
        .unwrap_or_else(|| Err(unknown_verb(verb)))
}

async fn search_organizations(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(body): Body<Value>,
) -> ApiResult {
    let filter = body["filter"].as_str().unwrap_or_default();
    // v1's filter says `domain:example.com` as v3's query does.
    let orgs = s.control.search_organizations(&c, filter);
    let (items, next) = page(&p, &orgs, 50, 1000)?;
    let mut resp = json!({"organizations": items.iter().map(organization).collect::<Vec<_>>()});
    if !next.is_empty() {
        resp["nextPageToken"] = json!(next);
    }
    Ok(Json(resp).into_response())
}

async fn get_organization(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> ApiResult {
    let o = s
        .control
        .get_organization(&c, &format!("organizations/{id}"))?;
    Ok(Json(organization(&o)).into_response())
}

async fn post_organization(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<Response> {
    let (id, verb) = split_verb(&seg);
    let name = format!("organizations/{id}");
    orgpolicy::verb(&s, &c, &name, verb, &body)
        .or_else(|| iam_verbs(&s, &c, &p, &name, verb, body))
        .unwrap_or_else(|| Err(unknown_verb(verb)))
}
