//! Policy Troubleshooter (`policytroubleshooter.googleapis.com`): v3 `POST /v3/iam:troubleshoot`
//! and v1 `POST /v1/iam:troubleshoot`, two shapes of the same control explanation.
//!
//! v1 carries no condition evaluation (no `conditionExplanation`, no condition context): a
//! conditional binding whose condition Runpool evaluated is `GRANTED` or `NOT_GRANTED` as in
//! v3, and one whose condition could not be evaluated (but would otherwise grant) is
//! `UNKNOWN_CONDITIONAL`. A policy the caller may not read is `UNKNOWN_INFO_DENIED` with
//! every other field omitted, as v1's proto says.

use crate::AppState;
use crate::wire::{ApiError, ApiResult, Auth, Body, Enums, Params, reply};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use google_cloud_iam_v1::model::Policy;
use google_cloud_policytroubleshooter_iam_v3::model as pt;
use google_cloud_policytroubleshooter_v1::model as v1;
use runpool_authz::{ConditionOutcome, ExplainedBinding};
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

/// v1's one access state, for the response, each policy and each binding.
const ACCESS_V1: &[(i64, &str)] = &[
    (0, "ACCESS_STATE_UNSPECIFIED"),
    (1, "GRANTED"),
    (2, "NOT_GRANTED"),
    (3, "UNKNOWN_CONDITIONAL"),
    (4, "UNKNOWN_INFO_DENIED"),
];
const RELEVANCE_V1: &[(i64, &str)] = &[
    (0, "HEURISTIC_RELEVANCE_UNSPECIFIED"),
    (1, "NORMAL"),
    (2, "HIGH"),
];
const ROLE_PERMISSION_V1: &[(i64, &str)] = &[
    (0, "ROLE_PERMISSION_UNSPECIFIED"),
    (1, "ROLE_PERMISSION_INCLUDED"),
    (2, "ROLE_PERMISSION_NOT_INCLUDED"),
    (3, "ROLE_PERMISSION_UNKNOWN_INFO_DENIED"),
];
const MEMBERSHIP_V1: &[(i64, &str)] = &[
    (0, "MEMBERSHIP_UNSPECIFIED"),
    (1, "MEMBERSHIP_INCLUDED"),
    (2, "MEMBERSHIP_NOT_INCLUDED"),
    (3, "MEMBERSHIP_UNKNOWN_INFO_DENIED"),
    (4, "MEMBERSHIP_UNKNOWN_UNSUPPORTED"),
];

const ENUMS_V1: Enums = &[
    ("access", ACCESS_V1),
    ("explainedPolicies.access", ACCESS_V1),
    ("explainedPolicies.relevance", RELEVANCE_V1),
    ("explainedPolicies.bindingExplanations.access", ACCESS_V1),
    (
        "explainedPolicies.bindingExplanations.rolePermission",
        ROLE_PERMISSION_V1,
    ),
    (
        "explainedPolicies.bindingExplanations.rolePermissionRelevance",
        RELEVANCE_V1,
    ),
    (
        "explainedPolicies.bindingExplanations.relevance",
        RELEVANCE_V1,
    ),
    (
        "explainedPolicies.bindingExplanations.memberships.*.membership",
        MEMBERSHIP_V1,
    ),
    (
        "explainedPolicies.bindingExplanations.memberships.*.relevance",
        RELEVANCE_V1,
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/iam:troubleshoot", post(troubleshoot))
        .route("/v1/iam:troubleshoot", post(troubleshoot_v1))
}

/// Every member of the policy binding an explained binding stands for (same role, same
/// condition), each to be shown matched or not, as Google lists them.
fn bound_members(policy: &Policy, b: &ExplainedBinding) -> Vec<String> {
    policy
        .bindings
        .iter()
        .find(|pb| {
            pb.role == b.role
                && pb.condition.as_ref().map(|c| &c.expression)
                    == b.condition.as_ref().map(|(e, _)| &e.expression)
        })
        .map(|pb| pb.members.clone())
        .unwrap_or_default()
}

fn expr_of(expr: &runpool_authz::Expr) -> google_cloud_type::model::Expr {
    let mut e = google_cloud_type::model::Expr::new();
    e.expression = expr.expression.clone();
    e.title = expr.title.clone();
    e.description = expr.description.clone();
    e
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
            be.memberships = bound_members(policy, b)
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
                be.condition = Some(expr_of(expr));
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

fn annotated_v1(included: bool) -> v1::binding_explanation::AnnotatedMembership {
    let mut a = v1::binding_explanation::AnnotatedMembership::new();
    a.membership = if included {
        v1::binding_explanation::Membership::Included
    } else {
        v1::binding_explanation::Membership::NotIncluded
    };
    a.relevance = if included {
        v1::HeuristicRelevance::High
    } else {
        v1::HeuristicRelevance::Normal
    };
    a
}

/// v1 `iam.troubleshoot`: the v3 explanation in v1's shape (see the module doc).
async fn troubleshoot_v1(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(req): Body<v1::TroubleshootIamPolicyRequest>,
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
    let mut info_denied = false;
    let mut conditional = false;
    let mut policies = vec![];
    for (examined, res) in t.explanation.examined.iter().zip(&t.resources) {
        let mut ep = v1::ExplainedPolicy::new();
        let Some(policy) = &res.policy else {
            info_denied = true;
            ep.access = v1::AccessState::UnknownInfoDenied;
            policies.push(ep);
            continue;
        };
        ep.full_resource_name = res.full_resource_name.clone();
        ep.policy = Some(policy.clone());
        for b in &examined.bindings {
            let matched = !b.memberships.is_empty();
            let mut be = v1::BindingExplanation::new();
            be.role = b.role.clone();
            be.role_permission = if b.role_includes_permission {
                v1::binding_explanation::RolePermission::Included
            } else {
                v1::binding_explanation::RolePermission::NotIncluded
            };
            be.role_permission_relevance = if b.role_includes_permission {
                v1::HeuristicRelevance::Normal
            } else {
                v1::HeuristicRelevance::High
            };
            be.memberships = bound_members(policy, b)
                .into_iter()
                .map(|m| {
                    let hit = b.memberships.iter().any(|(bm, _)| *bm == m);
                    (m, annotated_v1(hit))
                })
                .collect::<HashMap<_, _>>();
            be.condition = b.condition.as_ref().map(|(e, _)| expr_of(e));
            let undecided = matched
                && b.role_includes_permission
                && matches!(b.condition, Some((_, ConditionOutcome::Error(_))));
            be.access = if b.grants {
                v1::AccessState::Granted
            } else if undecided {
                v1::AccessState::UnknownConditional
            } else {
                v1::AccessState::NotGranted
            };
            be.relevance = if b.grants || (matched && b.role_includes_permission) {
                v1::HeuristicRelevance::High
            } else {
                v1::HeuristicRelevance::Normal
            };
            ep.binding_explanations.push(be);
        }
        let states: Vec<&v1::AccessState> =
            ep.binding_explanations.iter().map(|b| &b.access).collect();
        ep.access = if states.contains(&&v1::AccessState::Granted) {
            v1::AccessState::Granted
        } else if states.contains(&&v1::AccessState::UnknownConditional) {
            conditional = true;
            v1::AccessState::UnknownConditional
        } else {
            v1::AccessState::NotGranted
        };
        ep.relevance = if ep.access == v1::AccessState::NotGranted {
            v1::HeuristicRelevance::Normal
        } else {
            v1::HeuristicRelevance::High
        };
        policies.push(ep);
    }
    let mut resp = v1::TroubleshootIamPolicyResponse::new();
    resp.access = if t.explanation.granted {
        v1::AccessState::Granted
    } else if info_denied {
        v1::AccessState::UnknownInfoDenied
    } else if conditional {
        v1::AccessState::UnknownConditional
    } else {
        v1::AccessState::NotGranted
    };
    resp.explained_policies = policies;
    Ok(reply(&p, &resp, ENUMS_V1))
}
