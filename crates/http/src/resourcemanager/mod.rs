//! Resource Manager v3 (`cloudresourcemanager.googleapis.com`): organizations, folders,
//! projects, their IAM policies, and the operations their mutations return.

pub mod orgpolicy;
pub mod tags;
pub mod v1;
pub mod v2;

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{
    ApiError, ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply, split_verb,
    unknown_verb,
};
use crate::{AppState, iam_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use google_cloud_longrunning::model::{Operation, operation};
use google_cloud_resourcemanager_v3::model as rm;
use runpool_control::resourcemanager::Kind;
use serde_json::Value;

const STATE: EnumName = named::<google_cloud_resourcemanager_v3::model::project::State>;
const ONE: Enums = &[("state", STATE), ("response.state", STATE)];
const MANY: Enums = &[
    ("projects.state", STATE),
    ("folders.state", STATE),
    ("organizations.state", STATE),
];

/// An operation as v1 and v2 read it: a v3 project or folder in its response is shown in
/// v1's project (v2's folder) shape, as those versions' own operations carry it; gcloud
/// polls every Resource Manager operation through v1 and prints that response.
pub(crate) fn older_operation(op: &Operation) -> Option<Value> {
    let Some(operation::Result::Response(any)) = &op.result else {
        return None;
    };
    let (kind, mut shown) = if let Ok(p) = any.to_msg::<rm::Project>() {
        ("google.cloudresourcemanager.v1.Project", v1::project(&p))
    } else {
        let f = any.to_msg::<rm::Folder>().ok()?;
        ("google.cloudresourcemanager.v2.Folder", v2::folder(&f))
    };
    shown["@type"] = Value::String(format!("type.googleapis.com/{kind}"));
    let mut v = serde_json::to_value(op).ok()?;
    v["response"] = shown;
    Some(v)
}

/// The answer of a v1 or v2 method that returns the operation of a project or folder.
fn older_reply(op: &Operation) -> ApiResult {
    let v = older_operation(op).ok_or_else(|| {
        ApiError(runpool_control::Error::internal(
            "a Resource Manager operation without its project or folder",
        ))
    })?;
    Ok(axum::response::IntoResponse::into_response(axum::Json(v)))
}

const SERVICE: &str = "cloudresourcemanager.googleapis.com";
static ORGANIZATIONS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.Organizations",
};
static FOLDERS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.Folders",
};
static PROJECTS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.Projects",
};
static OPERATIONS: Interface = Interface {
    service: SERVICE,
    name: "google.longrunning.Operations",
};
const ORGANIZATIONS_IAM: [Op; 3] = iam_ops(&ORGANIZATIONS, "POST");
const FOLDERS_IAM: [Op; 3] = iam_ops(&FOLDERS, "POST");
const PROJECTS_IAM: [Op; 3] = iam_ops(&PROJECTS, "POST");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/organizations:search",
            serves(
                const {
                    &[&[Op::read(
                        "GET",
                        "search",
                        &ORGANIZATIONS,
                        "SearchOrganizations",
                    )]]
                },
                get(search_organizations),
            ),
        )
        .route(
            "/v3/organizations/{seg}",
            serves(
                const {
                    &[
                        &[Op::read("GET", "", &ORGANIZATIONS, "GetOrganization")],
                        &ORGANIZATIONS_IAM,
                    ]
                },
                get(get_organization).post(post_organization),
            ),
        )
        .route(
            "/v3/folders",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &FOLDERS, "ListFolders"),
                        Op::write("POST", "", &FOLDERS, "CreateFolder"),
                    ]]
                },
                get(list_folders).post(create_folder),
            ),
        )
        .route(
            "/v3/folders:search",
            serves(
                const { &[&[Op::read("GET", "search", &FOLDERS, "SearchFolders")]] },
                get(search_folders),
            ),
        )
        .route(
            "/v3/folders/{seg}",
            serves(
                const {
                    &[
                        &[
                            Op::read("GET", "", &FOLDERS, "GetFolder"),
                            Op::write("PATCH", "", &FOLDERS, "UpdateFolder"),
                            Op::write("DELETE", "", &FOLDERS, "DeleteFolder"),
                            Op::write("POST", "undelete", &FOLDERS, "UndeleteFolder"),
                            Op::write("POST", "move", &FOLDERS, "MoveFolder"),
                        ],
                        &FOLDERS_IAM,
                    ]
                },
                get(get_folder)
                    .patch(patch_folder)
                    .delete(delete_folder)
                    .post(post_folder),
            ),
        )
        .route(
            "/v3/projects",
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
            "/v3/projects:search",
            serves(
                const { &[&[Op::read("GET", "search", &PROJECTS, "SearchProjects")]] },
                get(search_projects),
            ),
        )
        .route(
            "/v3/projects/{seg}",
            serves(
                const {
                    &[
                        &[
                            Op::read("GET", "", &PROJECTS, "GetProject"),
                            Op::write("PATCH", "", &PROJECTS, "UpdateProject"),
                            Op::write("DELETE", "", &PROJECTS, "DeleteProject"),
                            Op::write("POST", "undelete", &PROJECTS, "UndeleteProject"),
                            Op::write("POST", "move", &PROJECTS, "MoveProject"),
                        ],
                        &PROJECTS_IAM,
                    ]
                },
                get(get_project)
                    .patch(patch_project)
                    .delete(delete_project)
                    .post(post_project),
            ),
        )
        .route(
            "/v3/operations/{*rest}",
            serves(
                const { &[&[Op::read("GET", "", &OPERATIONS, "GetOperation")]] },
                get(get_operation),
            ),
        )
}

async fn search_organizations(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let orgs = s.control.search_organizations(&c, p.str("query"));
    let (items, next) = page(&p, &orgs, 50, 1000)?;
    let mut resp = rm::SearchOrganizationsResponse::new();
    resp.organizations = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn get_organization(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control
            .get_organization(&c, &format!("organizations/{id}"))?,
        ONE,
    ))
}

async fn post_organization(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    iam_verbs(&s, &c, &p, &format!("organizations/{id}"), verb, body)
        .unwrap_or_else(|| Err(unknown_verb(verb)))
}

async fn list_folders(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (folders, _) =
        s.control
            .list_children(&c, Kind::Folder, p.str("parent"), p.flag("showDeleted"))?;
    let (items, next) = page(&p, &folders, 100, 100)?;
    let mut resp = rm::ListFoldersResponse::new();
    resp.folders = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn search_folders(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (folders, _) = s.control.search(&c, Kind::Folder, p.str("query"))?;
    let (items, next) = page(&p, &folders, 100, 100)?;
    let mut resp = rm::SearchFoldersResponse::new();
    resp.folders = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn create_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(f): Body<rm::Folder>,
) -> ApiResult {
    Ok(reply(&p, &s.control.create_folder(&c, f)?, ONE))
}

async fn get_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_folder(&c, &format!("folders/{id}"))?,
        ONE,
    ))
}

async fn patch_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
    Body(f): Body<rm::Folder>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.update_folder(&c, &format!("folders/{id}"), f)?,
        ONE,
    ))
}

async fn delete_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.set_deleted(&c, &format!("folders/{id}"), true)?,
        ONE,
    ))
}

async fn post_folder(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    node_verb(&s, &c, &p, "folders", &seg, body)
}

async fn list_projects(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (_, projects) =
        s.control
            .list_children(&c, Kind::Project, p.str("parent"), p.flag("showDeleted"))?;
    let (items, next) = page(&p, &projects, 100, 100)?;
    let mut resp = rm::ListProjectsResponse::new();
    resp.projects = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn search_projects(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (_, projects) = s.control.search(&c, Kind::Project, p.str("query"))?;
    let (items, next) = page(&p, &projects, 100, 100)?;
    let mut resp = rm::SearchProjectsResponse::new();
    resp.projects = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn create_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(pr): Body<rm::Project>,
) -> ApiResult {
    Ok(reply(&p, &s.control.create_project(&c, pr)?, ONE))
}

async fn get_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_project(&c, &format!("projects/{id}"))?,
        ONE,
    ))
}

async fn patch_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
    Body(pr): Body<rm::Project>,
) -> ApiResult {
    let op = s
        .control
        .update_project(&c, &format!("projects/{id}"), pr, &p.mask("updateMask"))?;
    Ok(reply(&p, &op, ONE))
}

async fn delete_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.set_deleted(&c, &format!("projects/{id}"), true)?,
        ONE,
    ))
}

async fn post_project(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    node_verb(&s, &c, &p, "projects", &seg, body)
}

/// `POST /v3/{folders|projects}/ID:VERB`
fn node_verb(
    s: &AppState,
    c: &runpool_control::Caller,
    p: &Params,
    collection: &str,
    seg: &str,
    body: Value,
) -> ApiResult {
    let (id, verb) = split_verb(seg);
    let name = format!("{collection}/{id}");
    match verb {
        "undelete" => Ok(reply(p, &s.control.set_deleted(c, &name, false)?, ONE)),
        "move" => {
            let dest = body
                .get("destinationParent")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if dest.is_empty() {
                return Err(ApiError(runpool_control::Error::invalid(
                    "destination_parent is required.",
                )));
            }
            Ok(reply(p, &s.control.move_node(c, &name, &dest)?, ONE))
        }
        _ => iam_verbs(s, c, p, &name, verb, body).unwrap_or_else(|| Err(unknown_verb(verb))),
    }
}

async fn get_operation(
    State(s): State<AppState>,
    Auth(_): Auth,
    p: Params,
    Path(rest): Path<String>,
) -> ApiResult<Response> {
    Ok(reply(
        &p,
        &s.control.get_operation(&format!("operations/{rest}"))?,
        ONE,
    ))
}
