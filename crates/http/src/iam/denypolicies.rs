//! IAM v2 deny policies (`iam.googleapis.com/v2`): `/v2/policies/{attachment point}/denypolicies`.
//! The attachment point travels URL-encoded in one path segment
//! (`cloudresourcemanager.googleapis.com%2Fprojects%2Fmy-project`), as Google's clients send it.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{ApiError, ApiResult, Auth, Body, Params, page, reply};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use google_cloud_iam_v2::model as v2;
use runpool_control::Error;

static POLICIES: Interface = Interface {
    service: "iam.googleapis.com",
    name: "google.iam.v2.Policies",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/policies/{attachment}/{kind}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &POLICIES, "ListPolicies"),
                        Op::write("POST", "", &POLICIES, "CreatePolicy"),
                    ]]
                },
                get(list).post(create),
            ),
        )
        .route(
            "/v2/policies/{attachment}/{kind}/{id}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &POLICIES, "GetPolicy"),
                        Op::write("PUT", "", &POLICIES, "UpdatePolicy"),
                        Op::write("DELETE", "", &POLICIES, "DeletePolicy"),
                    ]]
                },
                get(get_one).put(update).delete(delete),
            ),
        )
}

fn parent(attachment: &str, kind: &str) -> String {
    format!("policies/{attachment}/{kind}")
}

/// The policy a `/v2/policies/{attachment}/{kind}/{id}` path names.
type Named = Path<(String, String, String)>;

fn name((attachment, kind, id): (String, String, String)) -> String {
    format!("{}/{id}", parent(&attachment, &kind))
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((attachment, kind)): Path<(String, String)>,
) -> ApiResult {
    let all = s
        .control
        .list_deny_policies(&c, &parent(&attachment, &kind))?;
    // Google lists a page of up to 1,000 whatever the page size asked.
    let (items, next) = page(&p, &all, 1000, 1000)?;
    let mut resp = v2::ListPoliciesResponse::new();
    resp.policies = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((attachment, kind)): Path<(String, String)>,
    Body(policy): Body<v2::Policy>,
) -> ApiResult {
    let id = p
        .get("policyId")
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError(Error::invalid("policy_id is required.")))?;
    let op = s
        .control
        .create_deny_policy(&c, &parent(&attachment, &kind), id, policy)?;
    Ok(reply(&p, &op, &[]))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(at): Named,
) -> ApiResult {
    Ok(reply(&p, &s.control.get_deny_policy(&c, &name(at))?, &[]))
}

async fn update(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(at): Named,
    Body(mut policy): Body<v2::Policy>,
) -> ApiResult {
    // The path names the policy when the body does not.
    if policy.name.is_empty() {
        policy.name = name(at);
    }
    Ok(reply(&p, &s.control.update_deny_policy(&c, policy)?, &[]))
}

async fn delete(State(s): State<AppState>, Auth(c): Auth, p: Params, Path(at): Named) -> ApiResult {
    let op = s.control.delete_deny_policy(&c, &name(at), p.str("etag"))?;
    Ok(reply(&p, &op, &[]))
}
