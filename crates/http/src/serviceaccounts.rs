//! IAM v1 service accounts (`iam.googleapis.com`).

use crate::wire::{
    ApiError, ApiResult, Auth, Body, Params, page, parse, reply, split_verb, unknown_verb,
};
use crate::{AppState, iam_policy_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_iam_admin_v1::model as admin;
use serde_json::{Value, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/projects/{project}/serviceAccounts",
            get(list).post(create),
        )
        .route(
            "/v1/projects/{project}/serviceAccounts/{seg}",
            get(get_one)
                .patch(patch)
                .put(put)
                .delete(delete)
                .post(post_verb),
        )
}

fn name(project: &str, sa: &str) -> String {
    format!("projects/{project}/serviceAccounts/{sa}")
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
) -> ApiResult {
    let all = s
        .control
        .list_service_accounts(&c, &format!("projects/{project}"))?;
    let (items, next) = page(&p, &all, 20, 100)?;
    let mut resp = admin::ListServiceAccountsResponse::new();
    resp.accounts = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
    Body(req): Body<admin::CreateServiceAccountRequest>,
) -> ApiResult {
    let sa = s.control.create_service_account(
        &c,
        &format!("projects/{project}"),
        &req.account_id,
        req.service_account,
    )?;
    Ok(reply(&p, &sa, &[]))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_service_account(&c, &name(&project, &sa))?,
        &[],
    ))
}

async fn patch(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(req): Body<admin::PatchServiceAccountRequest>,
) -> ApiResult {
    let patch = req.service_account.unwrap_or_default();
    let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
    Ok(reply(
        &p,
        &s.control
            .patch_service_account(&c, &name(&project, &sa), patch, &mask)?,
        &[],
    ))
}

/// The deprecated `PUT` (update): only the display name changes.
async fn put(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(body): Body<admin::ServiceAccount>,
) -> ApiResult {
    let mask = vec!["display_name".to_string()];
    Ok(reply(
        &p,
        &s.control
            .patch_service_account(&c, &name(&project, &sa), body, &mask)?,
        &[],
    ))
}

async fn delete(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
) -> ApiResult {
    s.control.delete_service_account(&c, &name(&project, &sa))?;
    Ok(reply(&p, &json!({}), &[]))
}

async fn post_verb(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, seg)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (sa, verb) = split_verb(&seg);
    let n = name(&project, sa);
    match verb {
        "enable" | "disable" => {
            s.control
                .set_service_account_disabled(&c, &n, verb == "disable")?;
            Ok(reply(&p, &json!({}), &[]))
        }
        "undelete" => {
            let _: admin::UndeleteServiceAccountRequest = parse(body)?;
            let mut resp = admin::UndeleteServiceAccountResponse::new();
            resp.restored_account = Some(s.control.undelete_service_account(&c, &n)?);
            Ok(reply(&p, &resp, &[]))
        }
        "getIamPolicy" | "setIamPolicy" | "testIamPermissions" => {
            let control = &s.control;
            iam_policy_verbs(
                &p,
                verb,
                body,
                |v| control.sa_get_iam_policy(&c, &n, v),
                |pol, mask| control.sa_set_iam_policy(&c, &n, pol, mask),
                |perms| control.sa_test_iam_permissions(&c, &n, perms),
            )
        }
        "" => Err(ApiError(runpool_control::Error::not_found(
            "Method not found.",
        ))),
        _ => Err(unknown_verb(verb)),
    }
}
