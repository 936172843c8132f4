//! Resource Manager v3 tags (`cloudresourcemanager.googleapis.com`): `tagKeys`, `tagValues`
//! (with `namespaced` lookups and IAM policies), `tagBindings` and `effectiveTags`. Mutations
//! answer with a finished long-running `Operation`, as Google's do.

use crate::wire::{ApiResult, Auth, Body, Enums, Params, page, reply, split_verb, unknown_verb};
use crate::{AppState, iam_policy_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_resourcemanager_v3::model as rm;
use serde_json::Value;

const PURPOSE: &[(i64, &str)] = &[(0, "PURPOSE_UNSPECIFIED"), (1, "GCE_FIREWALL")];
const KEY: Enums = &[("purpose", PURPOSE), ("response.purpose", PURPOSE)];
const KEYS: Enums = &[("tagKeys.purpose", PURPOSE)];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/tagKeys", get(list_keys).post(create_key))
        .route("/v3/tagKeys/namespaced", get(namespaced_key))
        .route(
            "/v3/tagKeys/{seg}",
            get(get_key)
                .patch(patch_key)
                .delete(delete_key)
                .post(post_key),
        )
        .route("/v3/tagValues", get(list_values).post(create_value))
        .route("/v3/tagValues/namespaced", get(namespaced_value))
        .route(
            "/v3/tagValues/{seg}",
            get(get_value)
                .patch(patch_value)
                .delete(delete_value)
                .post(post_value),
        )
        .route("/v3/tagBindings", get(list_bindings).post(create_binding))
        .route(
            "/v3/tagBindings/{*rest}",
            axum::routing::delete(delete_binding),
        )
        .route("/v3/effectiveTags", get(effective_tags))
}

async fn list_keys(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let all = s.control.list_tag_keys(&c, p.str("parent"))?;
    let (items, next) = page(&p, &all, 300, 300)?;
    let mut resp = rm::ListTagKeysResponse::new();
    resp.tag_keys = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, KEYS))
}

async fn create_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(key): Body<rm::TagKey>,
) -> ApiResult {
    let op = s.control.create_tag_key(&c, key, p.flag("validateOnly"))?;
    Ok(reply(&p, &op, KEY))
}

async fn namespaced_key(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_namespaced_tag_key(&c, p.str("name"))?,
        KEY,
    ))
}

async fn get_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_tag_key(&c, &format!("tagKeys/{id}"))?,
        KEY,
    ))
}

async fn patch_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
    Body(key): Body<rm::TagKey>,
) -> ApiResult {
    let op = s.control.update_tag_key(
        &c,
        &format!("tagKeys/{id}"),
        key,
        &p.mask("updateMask"),
        p.flag("validateOnly"),
    )?;
    Ok(reply(&p, &op, KEY))
}

async fn delete_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    let op = s.control.delete_tag_key(
        &c,
        &format!("tagKeys/{id}"),
        p.str("etag"),
        p.flag("validateOnly"),
    )?;
    Ok(reply(&p, &op, KEY))
}

/// `POST /v3/tagKeys/ID:getIamPolicy|setIamPolicy|testIamPermissions`
async fn post_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("tagKeys/{id}");
    if !matches!(verb, "getIamPolicy" | "setIamPolicy" | "testIamPermissions") {
        return Err(unknown_verb(verb));
    }
    iam_policy_verbs(
        &p,
        verb,
        body,
        |v| s.control.tag_key_get_iam_policy(&c, &name, v),
        |pol, mask| s.control.tag_key_set_iam_policy(&c, &name, pol, mask),
        |perms| s.control.tag_key_test_iam_permissions(&c, &name, perms),
    )
}

async fn list_values(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let all = s.control.list_tag_values(&c, p.str("parent"))?;
    let (items, next) = page(&p, &all, 300, 300)?;
    let mut resp = rm::ListTagValuesResponse::new();
    resp.tag_values = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create_value(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(value): Body<rm::TagValue>,
) -> ApiResult {
    let op = s
        .control
        .create_tag_value(&c, value, p.flag("validateOnly"))?;
    Ok(reply(&p, &op, &[]))
}

async fn namespaced_value(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_namespaced_tag_value(&c, p.str("name"))?,
        &[],
    ))
}

async fn get_value(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_tag_value(&c, &format!("tagValues/{id}"))?,
        &[],
    ))
}

async fn patch_value(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
    Body(value): Body<rm::TagValue>,
) -> ApiResult {
    let op = s.control.update_tag_value(
        &c,
        &format!("tagValues/{id}"),
        value,
        &p.mask("updateMask"),
        p.flag("validateOnly"),
    )?;
    Ok(reply(&p, &op, &[]))
}

async fn delete_value(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    let op = s.control.delete_tag_value(
        &c,
        &format!("tagValues/{id}"),
        p.str("etag"),
        p.flag("validateOnly"),
    )?;
    Ok(reply(&p, &op, &[]))
}

/// `POST /v3/tagValues/ID:getIamPolicy|setIamPolicy|testIamPermissions`
async fn post_value(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = format!("tagValues/{id}");
    if !matches!(verb, "getIamPolicy" | "setIamPolicy" | "testIamPermissions") {
        return Err(unknown_verb(verb));
    }
    iam_policy_verbs(
        &p,
        verb,
        body,
        |v| s.control.tag_value_get_iam_policy(&c, &name, v),
        |pol, mask| s.control.tag_value_set_iam_policy(&c, &name, pol, mask),
        |perms| s.control.tag_value_test_iam_permissions(&c, &name, perms),
    )
}

async fn list_bindings(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let all = s.control.list_tag_bindings(&c, p.str("parent"))?;
    let (items, next) = page(&p, &all, 300, 300)?;
    let mut resp = rm::ListTagBindingsResponse::new();
    resp.tag_bindings = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create_binding(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(binding): Body<rm::TagBinding>,
) -> ApiResult {
    let op = s
        .control
        .create_tag_binding(&c, binding, p.flag("validateOnly"))?;
    Ok(reply(&p, &op, &[]))
}

/// `DELETE /v3/tagBindings/{parent, percent-encoded}/tagValues/ID`
async fn delete_binding(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(rest): Path<String>,
) -> ApiResult {
    let op = s
        .control
        .delete_tag_binding(&c, &format!("tagBindings/{rest}"))?;
    Ok(reply(&p, &op, &[]))
}

async fn effective_tags(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let all = s.control.list_effective_tags(&c, p.str("parent"))?;
    let (items, next) = page(&p, &all, 300, 300)?;
    let mut resp = rm::ListEffectiveTagsResponse::new();
    resp.effective_tags = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}
