//! Resource Manager v3 tags (`cloudresourcemanager.googleapis.com`): `tagKeys`, `tagValues`
//! (with `namespaced` lookups and IAM policies), `tagBindings` and `effectiveTags`. Mutations
//! answer with a finished long-running `Operation`, as Google's do.
//!
//! Keys and values have the same methods at the same paths under their own collection, so one
//! set of handlers, generic over [`TagKind`], serves both.

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply, split_verb};
use crate::{AppState, iam_policy_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_resourcemanager_v3::model as rm;
use runpool_control::resourcemanager::tags::TagKind;
use serde::Serialize;
use serde_json::Value;

const PURPOSE: EnumName = named::<google_cloud_resourcemanager_v3::model::Purpose>;

/// What the wire adds to a [`TagKind`]: the enums its JSON carries and its list response.
const SERVICE: &str = "cloudresourcemanager.googleapis.com";
static TAG_KEYS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.TagKeys",
};
static TAG_VALUES: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.TagValues",
};
static TAG_BINDINGS: Interface = Interface {
    service: SERVICE,
    name: "google.cloud.resourcemanager.v3.TagBindings",
};

trait Wire: TagKind {
    /// Enum paths of one (and of an operation whose response is one).
    const ONE: Enums;
    /// Enum paths of a list response.
    const MANY: Enums;
    /// The collection's methods: list and create; the namespaced get; an item's get, update,
    /// delete and IAM policy methods.
    const COLLECTION_OPS: &'static [Op];
    const NAMESPACED_OPS: &'static [Op];
    const ITEM_OPS: &'static [Op];
    const IAM_OPS: &'static [Op];
    fn list_response(items: Vec<Self>, next_page_token: String) -> impl Serialize;
}

impl Wire for rm::TagKey {
    const ONE: Enums = &[("purpose", PURPOSE), ("response.purpose", PURPOSE)];
    const MANY: Enums = &[("tagKeys.purpose", PURPOSE)];
    const COLLECTION_OPS: &'static [Op] = &[
        Op::read("GET", "", &TAG_KEYS, "ListTagKeys"),
        Op::write("POST", "", &TAG_KEYS, "CreateTagKey"),
    ];
    const NAMESPACED_OPS: &'static [Op] = &[Op::read("GET", "", &TAG_KEYS, "GetNamespacedTagKey")];
    const ITEM_OPS: &'static [Op] = &[
        Op::read("GET", "", &TAG_KEYS, "GetTagKey"),
        Op::write("PATCH", "", &TAG_KEYS, "UpdateTagKey"),
        Op::write("DELETE", "", &TAG_KEYS, "DeleteTagKey"),
    ];
    const IAM_OPS: &'static [Op] = &iam_ops(&TAG_KEYS, "POST");
    fn list_response(items: Vec<Self>, next_page_token: String) -> impl Serialize {
        let mut resp = rm::ListTagKeysResponse::new();
        resp.tag_keys = items;
        resp.next_page_token = next_page_token;
        resp
    }
}

impl Wire for rm::TagValue {
    const ONE: Enums = &[];
    const MANY: Enums = &[];
    const COLLECTION_OPS: &'static [Op] = &[
        Op::read("GET", "", &TAG_VALUES, "ListTagValues"),
        Op::write("POST", "", &TAG_VALUES, "CreateTagValue"),
    ];
    const NAMESPACED_OPS: &'static [Op] =
        &[Op::read("GET", "", &TAG_VALUES, "GetNamespacedTagValue")];
    const ITEM_OPS: &'static [Op] = &[
        Op::read("GET", "", &TAG_VALUES, "GetTagValue"),
        Op::write("PATCH", "", &TAG_VALUES, "UpdateTagValue"),
        Op::write("DELETE", "", &TAG_VALUES, "DeleteTagValue"),
    ];
    const IAM_OPS: &'static [Op] = &iam_ops(&TAG_VALUES, "POST");
    fn list_response(items: Vec<Self>, next_page_token: String) -> impl Serialize {
        let mut resp = rm::ListTagValuesResponse::new();
        resp.tag_values = items;
        resp.next_page_token = next_page_token;
        resp
    }
}

pub fn router() -> Router<AppState> {
    let router = with_kind::<rm::TagKey>(Router::new());
    with_kind::<rm::TagValue>(router)
        .route(
            "/v3/tagBindings",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &TAG_BINDINGS, "ListTagBindings"),
                        Op::write("POST", "", &TAG_BINDINGS, "CreateTagBinding"),
                    ]]
                },
                get(list_bindings).post(create_binding),
            ),
        )
        .route(
            "/v3/tagBindings/{*rest}",
            serves(
                const { &[&[Op::write("DELETE", "", &TAG_BINDINGS, "DeleteTagBinding")]] },
                axum::routing::delete(delete_binding),
            ),
        )
        .route(
            "/v3/effectiveTags",
            serves(
                const { &[&[Op::read("GET", "", &TAG_BINDINGS, "ListEffectiveTags")]] },
                get(effective_tags),
            ),
        )
}

/// `/v3/tagKeys`, `/v3/tagKeys/namespaced` and `/v3/tagKeys/{id}` (likewise `tagValues`).
fn with_kind<K: Wire>(router: Router<AppState>) -> Router<AppState> {
    let collection = format!("/v3/{}", K::COLLECTION);
    router
        .route(
            &collection,
            serves(
                const { &[K::COLLECTION_OPS] },
                get(list::<K>).post(create::<K>),
            ),
        )
        .route(
            &format!("{collection}/namespaced"),
            serves(const { &[K::NAMESPACED_OPS] }, get(namespaced::<K>)),
        )
        .route(
            &format!("{collection}/{{seg}}"),
            serves(
                const { &[K::ITEM_OPS, K::IAM_OPS] },
                get(get_one::<K>)
                    .patch(patch::<K>)
                    .delete(delete::<K>)
                    .post(post::<K>),
            ),
        )
}

/// `tagKeys/ID` (or `tagValues/ID`) from the path's id.
fn name<K: TagKind>(id: &str) -> String {
    format!("{}/{id}", K::COLLECTION)
}

async fn list<K: Wire>(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let all = s.control.list_tags::<K>(&c, p.str("parent"))?;
    let (items, next) = page(&p, &all, 300, 300)?;
    Ok(reply(&p, &K::list_response(items, next), K::MANY))
}

async fn create<K: Wire>(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(item): Body<K>,
) -> ApiResult {
    let op = s.control.create_tag(&c, item, p.flag("validateOnly"))?;
    Ok(reply(&p, &op, K::ONE))
}

async fn namespaced<K: Wire>(State(s): State<AppState>, Auth(c): Auth, p: Params) -> ApiResult {
    let item: K = s.control.get_namespaced_tag(&c, p.str("name"))?;
    Ok(reply(&p, &item, K::ONE))
}

async fn get_one<K: Wire>(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    let item: K = s.control.get_tag(&c, &name::<K>(&id))?;
    Ok(reply(&p, &item, K::ONE))
}

async fn patch<K: Wire>(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
    Body(item): Body<K>,
) -> ApiResult {
    let op = s.control.update_tag(
        &c,
        &name::<K>(&id),
        item,
        &p.mask("updateMask"),
        p.flag("validateOnly"),
    )?;
    Ok(reply(&p, &op, K::ONE))
}

async fn delete<K: Wire>(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(id): Path<String>,
) -> ApiResult {
    let op =
        s.control
            .delete_tag::<K>(&c, &name::<K>(&id), p.str("etag"), p.flag("validateOnly"))?;
    Ok(reply(&p, &op, K::ONE))
}

/// `POST /v3/tagKeys/ID:getIamPolicy|setIamPolicy|testIamPermissions` (likewise `tagValues`);
/// any other verb is answered as an unknown method.
async fn post<K: Wire>(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(seg): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (id, verb) = split_verb(&seg);
    let name = name::<K>(id);
    iam_policy_verbs(
        &p,
        verb,
        body,
        |v| s.control.tag_get_iam_policy::<K>(&c, &name, v),
        |pol, mask| s.control.tag_set_iam_policy::<K>(&c, &name, pol, mask),
        |perms| s.control.tag_test_iam_permissions::<K>(&c, &name, perms),
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
