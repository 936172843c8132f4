//! IAM v1 roles (`iam.googleapis.com`): predefined and custom.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{
    ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply, split_verb, unknown_verb,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_iam_admin_v1::model as admin;
use serde_json::Value;

const STAGE: EnumName = named::<google_cloud_iam_admin_v1::model::role::RoleLaunchStage>;
const ONE: Enums = &[("stage", STAGE)];
const MANY: Enums = &[("roles.stage", STAGE)];

static IAM: Interface = Interface {
    service: "iam.googleapis.com",
    name: "google.iam.admin.v1.IAM",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/roles",
            serves(
                const { &[&[Op::read("GET", "", &IAM, "ListRoles")]] },
                get(list_predefined),
            ),
        )
        .route(
            "/v1/roles/{id}",
            serves(
                const { &[&[Op::read("GET", "", &IAM, "GetRole")]] },
                get(get_predefined),
            ),
        )
        .route(
            "/v1/{kind}/{id}/roles",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &IAM, "ListRoles"),
                        Op::write("POST", "", &IAM, "CreateRole"),
                    ]]
                },
                get(list_custom).post(create_custom),
            ),
        )
        .route(
            "/v1/{kind}/{id}/roles/{seg}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &IAM, "GetRole"),
                        Op::write("PATCH", "", &IAM, "UpdateRole"),
                        Op::write("DELETE", "", &IAM, "DeleteRole"),
                        Op::write("POST", "undelete", &IAM, "UndeleteRole"),
                    ]]
                },
                get(get_custom)
                    .patch(patch_custom)
                    .delete(delete_custom)
                    .post(post_custom),
            ),
        )
}

fn full(p: &Params) -> bool {
    p.get("view").is_some_and(|v| v == "FULL" || v == "1")
}

async fn list_predefined(State(s): State<AppState>, Auth(_): Auth, p: Params) -> ApiResult {
    let roles = s.control.list_predefined_roles(full(&p));
    let (items, next) = page(&p, &roles, 300, 1000)?;
    let mut resp = admin::ListRolesResponse::new();
    resp.roles = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn get_predefined(
    State(s): State<AppState>,
    Auth(_): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_predefined_role(&format!("roles/{id}"))?,
        ONE,
    ))
}

async fn list_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult {
    let roles =
        s.control
            .list_roles(&c, &format!("{kind}/{id}"), p.flag("showDeleted"), full(&p))?;
    let (items, next) = page(&p, &roles, 300, 1000)?;
    let mut resp = admin::ListRolesResponse::new();
    resp.roles = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, MANY))
}

async fn create_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id)): Path<(String, String)>,
    Body(req): Body<admin::CreateRoleRequest>,
) -> ApiResult {
    let role = req.role.unwrap_or_default();
    Ok(reply(
        &p,
        &s.control
            .create_role(&c, &format!("{kind}/{id}"), &req.role_id, role)?,
        ONE,
    ))
}

async fn get_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, role)): Path<(String, String, String)>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control
            .get_role(&c, &format!("{kind}/{id}/roles/{role}"))?,
        ONE,
    ))
}

async fn patch_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, role)): Path<(String, String, String)>,
    Body(patch): Body<admin::Role>,
) -> ApiResult {
    let name = format!("{kind}/{id}/roles/{role}");
    Ok(reply(
        &p,
        &s.control
            .update_role(&c, &name, patch, &p.mask("updateMask"))?,
        ONE,
    ))
}

async fn delete_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, role)): Path<(String, String, String)>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control
            .set_role_deleted(&c, &format!("{kind}/{id}/roles/{role}"), true)?,
        ONE,
    ))
}

async fn post_custom(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, seg)): Path<(String, String, String)>,
    Body(_): Body<Value>,
) -> ApiResult {
    let (role, verb) = split_verb(&seg);
    match verb {
        "undelete" => Ok(reply(
            &p,
            &s.control
                .set_role_deleted(&c, &format!("{kind}/{id}/roles/{role}"), false)?,
            ONE,
        )),
        _ => Err(unknown_verb(verb)),
    }
}
