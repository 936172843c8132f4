//! Policy Troubleshooter v3 (`policytroubleshooter.googleapis.com`): `POST /v3/iam:troubleshoot`.

use crate::AppState;
use crate::wire::{ApiError, ApiResult, Auth, Body, Enums, Params, reply};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use google_cloud_policytroubleshooter_iam_v3::model as pt;
use runpool_authz::ConditionOutcome;
use runpool_control::Error;
use std::collections::HashMap;

const OVERALL: &[(i64, &str)] = &[
    (0, "OVERALL_ACCESS_STATE_UNSPECIFIED"),
    (1, "CAN_ACCESS"),
    (2, "CANNOT_ACCESS"),
    (3, "UNKNOWN_INFO"),
    (4, "UNKNOWN_CONDITIONAL"),
];
const ALLOW: &[(i64, &str)] = &[
    (0, "ALLOW_ACCESS_STATE_UNSPECIFIED"),
    (1, "ALLOW_ACCESS_STATE_GRANTED"),
    (2, "ALLOW_ACCESS_STATE_NOT_GRANTED"),
    (3, "ALLOW_ACCESS_STATE_UNKNOWN_CONDITIONAL"),
    (4, "ALLOW_ACCESS_STATE_UNKNOWN_INFO"),
];
const DENY: &[(i64, &str)] = &[
    (0, "DENY_ACCESS_STATE_UNSPECIFIED"),
    (1, "DENY_ACCESS_STATE_DENIED"),
    (2, "DENY_ACCESS_STATE_NOT_DENIED"),
    (3, "DENY_ACCESS_STATE_UNKNOWN_CONDITIONAL"),
    (4, "DENY_ACCESS_STATE_UNKNOWN_INFO"),
];
const ROLE_PERMISSION: &[(i64, &str)] = &[
    (0, "ROLE_PERMISSION_INCLUSION_STATE_UNSPECIFIED"),
    (1, "ROLE_PERMISSION_INCLUDED"),
    (2, "ROLE_PERMISSION_NOT_INCLUDED"),
    (3, "ROLE_PERMISSION_UNKNOWN_INFO"),
];
const MEMBERSHIP: &[(i64, &str)] = &[
    (0, "MEMBERSHIP_MATCHING_STATE_UNSPECIFIED"),
    (1, "MEMBERSHIP_MATCHED"),
    (2, "MEMBERSHIP_NOT_MATCHED"),
    (3, "MEMBERSHIP_UNKNOWN_INFO"),
    (4, "MEMBERSHIP_UNKNOWN_UNSUPPORTED"),
];
const RELEVANCE: &[(i64, &str)] = &[
    (0, "HEURISTIC_RELEVANCE_UNSPECIFIED"),
    (1, "HEURISTIC_RELEVANCE_NORMAL"),
    (2, "HEURISTIC_RELEVANCE_HIGH"),
];

const ENUMS: Enums = &[
    ("overallAccessState", OVERALL),
    ("allowPolicyExplanation.allowAccessState", ALLOW),
    ("allowPolicyExplanation.relevance", RELEVANCE),
    (
        "allowPolicyExplanation.explainedPolicies.allowAccessState",
        ALLOW,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.relevance",
        RELEVANCE,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.allowAccessState",
        ALLOW,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.rolePermission",
        ROLE_PERMISSION,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.rolePermissionRelevance",
        RELEVANCE,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.relevance",
        RELEVANCE,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.combinedMembership.membership",
        MEMBERSHIP,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.combinedMembership.relevance",
        RELEVANCE,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.memberships.*.membership",
        MEMBERSHIP,
    ),
    (
        "allowPolicyExplanation.explainedPolicies.bindingExplanations.memberships.*.relevance",
        RELEVANCE,
    ),
    ("denyPolicyExplanation.denyAccessState", DENY),
    ("denyPolicyExplanation.relevance", RELEVANCE),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/v3/iam:troubleshoot", post(troubleshoot))
}

fn annotated(
    m: pt::MembershipMatchingState,
    high: bool,
) -> pt::allow_binding_explanation::AnnotatedAllowMembership {
    let mut a = pt::allow_binding_explanation::AnnotatedAllowMembership::new();
    a.membership = m;
    a.relevance = if high {
        pt::HeuristicRelevance::High
    } else {
        pt::HeuristicRelevance::Normal
    };
    a
}

async fn troubleshoot(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(req): Body<pt::TroubleshootIamPolicyRequest>,
) -> ApiResult {
    let tuple = req
        .access_tuple
        .ok_or_else(|| ApiError(Error::invalid("access_tuple is required.")))?;
    let t = s.control.troubleshoot(
        &c,
        &tuple.principal,
        &tuple.full_resource_name,
        &tuple.permission,
    )?;
    let granted = t.explanation.granted;
    let mut unknown = false;
    let mut policies = vec![];
    for (examined, res) in t.explanation.examined.iter().zip(&t.resources) {
        let mut ep = pt::ExplainedAllowPolicy::new();
        ep.full_resource_name = res.full_resource_name.clone();
        let Some(policy) = &res.policy else {
            // The caller may not read this policy: Google answers UNKNOWN_INFO for it.
            unknown = true;
            ep.allow_access_state = pt::AllowAccessState::UnknownInfo;
            ep.relevance = pt::HeuristicRelevance::Normal;
            policies.push(ep);
            continue;
        };
        ep.policy = Some(policy.clone());
        let mut any = false;
        for b in &examined.bindings {
            let mut be = pt::AllowBindingExplanation::new();
            be.role = b.role.clone();
            be.role_permission = if b.role_includes_permission {
                pt::RolePermissionInclusionState::RolePermissionIncluded
            } else {
                pt::RolePermissionInclusionState::RolePermissionNotIncluded
            };
            be.role_permission_relevance = if b.role_includes_permission {
                pt::HeuristicRelevance::Normal
            } else {
                pt::HeuristicRelevance::High
            };
            let matched = !b.memberships.is_empty();
            be.combined_membership = Some(annotated(
                if matched {
                    pt::MembershipMatchingState::MembershipMatched
                } else {
                    pt::MembershipMatchingState::MembershipNotMatched
                },
                !matched && b.role_includes_permission,
            ));
            // Every member of the binding, each matched or not, as Google lists them.
            let bound: Vec<String> = policy
                .bindings
                .iter()
                .find(|pb| {
                    pb.role == b.role
                        && pb.condition.as_ref().map(|c| &c.expression)
                            == b.condition.as_ref().map(|(e, _)| &e.expression)
                })
                .map(|pb| pb.members.clone())
                .unwrap_or_default();
            be.memberships = bound
                .iter()
                .map(|m| {
                    let hit = b.memberships.iter().any(|(bm, _)| bm == m);
                    let state = if hit {
                        pt::MembershipMatchingState::MembershipMatched
                    } else {
                        pt::MembershipMatchingState::MembershipNotMatched
                    };
                    (m.clone(), annotated(state, hit))
                })
                .collect::<HashMap<_, _>>();
            if let Some((expr, outcome)) = &b.condition {
                let mut e = google_cloud_type::model::Expr::new();
                e.expression = expr.expression.clone();
                e.title = expr.title.clone();
                e.description = expr.description.clone();
                be.condition = Some(e);
                let mut ce = pt::ConditionExplanation::new();
                ce.value = match outcome {
                    ConditionOutcome::True => Some(serde_json::Value::Bool(true)),
                    ConditionOutcome::False => Some(serde_json::Value::Bool(false)),
                    ConditionOutcome::Error(_) => None,
                };
                if let ConditionOutcome::Error(msg) = outcome {
                    let mut st = google_cloud_rpc::model::Status::new();
                    st.code = 3;
                    st.message = msg.clone();
                    ce.errors.push(st);
                }
                be.condition_explanation = Some(ce);
            }
            be.allow_access_state = if b.grants {
                pt::AllowAccessState::Granted
            } else {
                pt::AllowAccessState::NotGranted
            };
            be.relevance = if b.grants || (matched && b.role_includes_permission) {
                pt::HeuristicRelevance::High
            } else {
                pt::HeuristicRelevance::Normal
            };
            any |= b.grants;
            ep.binding_explanations.push(be);
        }
        ep.allow_access_state = if any {
            pt::AllowAccessState::Granted
        } else {
            pt::AllowAccessState::NotGranted
        };
        ep.relevance = if any {
            pt::HeuristicRelevance::High
        } else {
            pt::HeuristicRelevance::Normal
        };
        policies.push(ep);
    }
    let mut allow = pt::AllowPolicyExplanation::new();
    allow.allow_access_state = if granted {
        pt::AllowAccessState::Granted
    } else if unknown {
        pt::AllowAccessState::UnknownInfo
    } else {
        pt::AllowAccessState::NotGranted
    };
    allow.explained_policies = policies;
    allow.relevance = pt::HeuristicRelevance::High;
    // Runpool has no deny policies yet: nothing is denied.
    let mut deny = pt::DenyPolicyExplanation::new();
    deny.deny_access_state = pt::DenyAccessState::NotDenied;
    deny.relevance = pt::HeuristicRelevance::Normal;
    deny.permission_deniable = true;
    let mut resp = pt::TroubleshootIamPolicyResponse::new();
    resp.overall_access_state = match allow.allow_access_state {
        pt::AllowAccessState::Granted => {
            pt::troubleshoot_iam_policy_response::OverallAccessState::CanAccess
        }
        pt::AllowAccessState::UnknownInfo => {
            pt::troubleshoot_iam_policy_response::OverallAccessState::UnknownInfo
        }
        _ => pt::troubleshoot_iam_policy_response::OverallAccessState::CannotAccess,
    };
    resp.access_tuple = Some(tuple);
    resp.allow_policy_explanation = Some(allow);
    resp.deny_policy_explanation = Some(deny);
    Ok(reply(&p, &resp, ENUMS))
}
