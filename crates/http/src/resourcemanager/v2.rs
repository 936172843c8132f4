//! Resource Manager v2 folders (what `gcloud resource-manager folders` calls): the v3 folders
//! in v2's shape (`lifecycleState`, no etag), answered by the same `control` methods. v2's
//! `patch`, `delete` and `undelete` answer the folder itself; `create` and `move` an
//! operation, as v3's do.

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{ApiError, ApiResult, Auth, Body, Params, page, split_verb, unknown_verb};
use crate::{AppState, iam_verbs};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use google_cloud_resourcemanager_v3::model as rm;
use runpool_control::Caller;
use runpool_control::resourcemanager::Kind;
use serde_json::{Value, json};

static FOLDERS: Interface = Interface {
    service: "cloudresourcemanager.googleapis.com",
    name: "google.cloud.resourcemanager.v2.Folders",
};
const FOLDERS_IAM: [Op; 3] = iam_ops(&FOLDERS, "POST");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/folders",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &FOLDERS, "ListFolders"),
                        Op::write("POST", "", &FOLDERS, "CreateFolder"),
                    ]]
                },
                get(list).post(create),
            ),
        )
        .route(
            "/v2/folders:search",
            serves(
                const { &[&[Op::read("POST", "search", &FOLDERS, "SearchFolders")]] },
                post(search),
            ),
        )
        .route(
            "/v2/folders/{seg}",
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
                get(get_one).patch(patch).delete(delete).post(post_one),
            ),
        )
}

/// A v3 folder in v2's shape.
pub(super) fn folder(f: &rm::Folder) -> Value {
    let mut v = json!({
        "name": f.name,
        "parent": f.parent,
        "displayName": f.display_name,
        "lifecycleState": f.state.name().unwrap_or("LIFECYCLE_STATE_UNSPECIFIED"),
        "createTime": f.create_time,
    });
    if v["createTime"].is_null() {
        v.as_object_mut().map(|m| m.remove("createTime"));
    }
    v
}

fn folders(list: &[rm::Folder], next: String) -> ApiResult {
    let mut resp = json!({"folders": list.iter().map(folder).collect::<Vec<_>>()});
    if !next.is_empty() {
        resp["nextPageToken"] = json!(next);
    }
    Ok(Json(resp).into_response())
}

/// v2's list is sorted by display name.
async fn list(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let (mut all, _) =
        s.control
            .list_children(&c, Kind::Folder, p.str("parent"), p.flag("showDeleted"))?;
    all.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let (items, next) = page(&p, &all, 100, 1000)?;
    folders(&items, next)
}

async fn search(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(body): Body<Value>,
) -> ApiResult {
    let (all, _) =
        s.control
            .search(&c, Kind::Folder, body["query"].as_str().unwrap_or_default())?;
    let (items, next) = page(&p, &all, 100, 1000)?;
    folders(&items, next)
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(body): Body<Value>,
) -> ApiResult {
    let mut f = rm::Folder::new();
    f.parent = p.str("parent").to_string();
    f.display_name = body["displayName"].as_str().unwrap_or_default().to_string();
    if f.parent.is_empty() {
        return Err(ApiError(runpool_control::Error::invalid(
            "parent is required, e.g. organizations/123 or folders/456.",
        )));
    }
    super::older_reply(&s.control.create_folder(&c, f)?)
}

/// The folder as it is now, in v2's shape.
fn current(s: &AppState, c: &Caller, name: &str) -> ApiResult {
    Ok(Json(folder(&s.control.get_folder(c, name)?)).into_response())
}

async fn get_one(State(s): State<AppState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult {
    current(&s, &c, &format!("folders/{id}"))
}

async fn patch(
    State(s): State<AppState>,
    Auth(c): Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let name = format!("folders/{id}");
    let mut f = rm::Folder::new();
    f.display_name = body["displayName"].as_str().unwrap_or_default().to_string();
    s.control.update_folder(&c, &name, f)?;
    current(&s, &c, &name)
}

async fn delete(State(s): State<AppState>, Auth(c): Auth, Path(id): Path<String>) -> ApiResult {
    let name = format!("folders/{id}");
    s.control.set_deleted(&c, &name, true)?;
    current(&s, &c, &name)
}

async fn post_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("folders/{id}");
    match verb {
        "undelete" => {
            s.control.set_deleted(&c, &name, false)?;
            current(&s, &c, &name)
        }
        "move" => {
            let dest = body["destinationParent"].as_str().unwrap_or_default();
            if dest.is_empty() {
                return Err(ApiError(runpool_control::Error::invalid(
                    "destination_parent is required.",
                )));
            }
            super::older_reply(&s.control.move_node(&c, &name, dest)?)
        }
        _ => iam_verbs(&s, &c, &p, &name, verb, body).unwrap_or_else(|| Err(unknown_verb(verb))),
    }
}
