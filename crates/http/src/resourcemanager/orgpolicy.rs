//! Organization Policy v2 (`orgpolicy.googleapis.com`).

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{
    ApiResult, Auth, Body, EnumName, Enums, Params, named, page, reply, split_verb, unknown_verb,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_orgpolicy_v2::model as op;

const DEFAULTS: EnumName = named::<google_cloud_orgpolicy_v2::model::constraint::ConstraintDefault>;
const CONSTRAINTS: Enums = &[("constraints.constraintDefault", DEFAULTS)];

static ORG_POLICY: Interface = Interface {
    service: "orgpolicy.googleapis.com",
    name: "google.cloud.orgpolicy.v2.OrgPolicy",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/{kind}/{id}/constraints",
            serves(
                const { &[&[Op::read("GET", "", &ORG_POLICY, "ListConstraints")]] },
                get(list_constraints),
            ),
        )
        .route(
            "/v2/{kind}/{id}/policies",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &ORG_POLICY, "ListPolicies"),
                        Op::write("POST", "", &ORG_POLICY, "CreatePolicy"),
                    ]]
                },
                get(list_policies).post(create_policy),
            ),
        )
        .route(
            "/v2/{kind}/{id}/policies/{c}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &ORG_POLICY, "GetPolicy"),
                        Op::read(
                            "GET",
                            "getEffectivePolicy",
                            &ORG_POLICY,
                            "GetEffectivePolicy",
                        ),
                        Op::write("PATCH", "", &ORG_POLICY, "UpdatePolicy"),
                        Op::write("DELETE", "", &ORG_POLICY, "DeletePolicy"),
                    ]]
                },
                get(get_policy).patch(patch_policy).delete(delete_policy),
            ),
        )
}

fn parent(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

async fn list_constraints(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult {
    let all = s.control.list_constraints(&c, &parent(&kind, &id))?;
    let (items, next) = page(&p, &all, 100, 1000)?;
    let mut resp = op::ListConstraintsResponse::new();
    resp.constraints = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, CONSTRAINTS))
}

async fn list_policies(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult {
    let all = s.control.list_org_policies(&c, &parent(&kind, &id))?;
    let (items, next) = page(&p, &all, 100, 1000)?;
    let mut resp = op::ListPoliciesResponse::new();
    resp.policies = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id)): Path<(String, String)>,
    Body(policy): Body<op::Policy>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control
            .create_org_policy(&c, &parent(&kind, &id), policy)?,
        &[],
    ))
}

async fn get_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, seg)): Path<(String, String, String)>,
) -> ApiResult {
    let (constraint, verb) = split_verb(&seg);
    let name = format!("{kind}/{id}/policies/{constraint}");
    match verb {
        "" => Ok(reply(&p, &s.control.get_org_policy(&c, &name)?, &[])),
        "getEffectivePolicy" => Ok(reply(&p, &s.control.effective_org_policy(&c, &name)?, &[])),
        _ => Err(unknown_verb(verb)),
    }
}

async fn patch_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, constraint)): Path<(String, String, String)>,
    Body(mut policy): Body<op::Policy>,
) -> ApiResult {
    let name = format!("{kind}/{id}/policies/{constraint}");
    if policy.name.is_empty() {
        policy.name = name;
    } else if policy.name != name {
        return Err(runpool_control::Error::invalid(format!(
            "The policy name '{}' does not match the request path '{name}'.",
            policy.name
        ))
        .into());
    }
    // PATCH creates a policy that does not exist yet (gcloud's `set-policy` relies on it).
    Ok(reply(
        &p,
        &s.control.update_org_policy(&c, policy, true)?,
        &[],
    ))
}

async fn delete_policy(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((kind, id, constraint)): Path<(String, String, String)>,
) -> ApiResult {
    s.control.delete_org_policy(
        &c,
        &format!("{kind}/{id}/policies/{constraint}"),
        p.str("etag"),
    )?;
    Ok(reply(&p, &serde_json::json!({}), &[]))
}
