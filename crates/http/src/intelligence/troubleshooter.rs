//! Policy Troubleshooter (`policytroubleshooter.googleapis.com`): v3 `POST /v3/iam:troubleshoot`
//! and v1 `POST /v1/iam:troubleshoot`, two shapes of the same control explanation.
//!
//! v1 carries no condition evaluation (no `conditionExplanation`, no condition context): a
//! conditional binding whose condition Runpool evaluated is `GRANTED` or `NOT_GRANTED` as in
//! v3, and one whose condition could not be evaluated (but would otherwise grant) is
//! `UNKNOWN_CONDITIONAL`. A policy the caller may not read is `UNKNOWN_INFO_DENIED` with
//! every other field omitted, as v1's proto says.

use crate::AppState;
use crate::wire::operation::{Interface, Op, serves};
use crate::wire::{ApiError, ApiResult, Auth, Body, EnumName, Enums, Params, named, reply};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use google_cloud_iam_v1::model::Policy;
use google_cloud_policytroubleshooter_iam_v3::model as pt;
use google_cloud_policytroubleshooter_v1::model as v1;
use runpool_authz::{ConditionOutcome, ExplainedBinding};
use runpool_control::intelligence::troubleshoot::{ExaminedResource, Troubleshooting};
use runpool_control::{Caller, Error};
use std::collections::HashMap;

const OVERALL: EnumName = named::<pt::troubleshoot_iam_policy_response::OverallAccessState>;
const ALLOW: EnumName = named::<pt::AllowAccessState>;
const DENY: EnumName = named::<pt::DenyAccessState>;
const ROLE_PERMISSION: EnumName = named::<pt::RolePermissionInclusionState>;
const MEMBERSHIP: EnumName = named::<pt::MembershipMatchingState>;
const RELEVANCE: EnumName = named::<pt::HeuristicRelevance>;

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
    (
        "denyPolicyExplanation.explainedResources.denyAccessState",
        DENY,
    ),
    (
        "denyPolicyExplanation.explainedResources.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.denyAccessState",
        DENY,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.denyAccessState",
        DENY,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedDeniedPermission.permissionMatchingState",
        PERMISSION_PATTERN,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedDeniedPermission.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedExceptionPermission.permissionMatchingState",
        PERMISSION_PATTERN,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedExceptionPermission.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedDeniedPrincipal.membership",
        MEMBERSHIP,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedDeniedPrincipal.relevance",
        RELEVANCE,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedExceptionPrincipal.membership",
        MEMBERSHIP,
    ),
    (
        "denyPolicyExplanation.explainedResources.explainedPolicies.ruleExplanations.combinedExceptionPrincipal.relevance",
        RELEVANCE,
    ),
];
const PERMISSION_PATTERN: EnumName = named::<pt::PermissionPatternMatchingState>;

/// v1's one access state, for the response, each policy and each binding.
const ACCESS_V1: EnumName = named::<v1::AccessState>;
const RELEVANCE_V1: EnumName = named::<v1::HeuristicRelevance>;
const ROLE_PERMISSION_V1: EnumName = named::<v1::binding_explanation::RolePermission>;
const MEMBERSHIP_V1: EnumName = named::<v1::binding_explanation::Membership>;

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

static TROUBLESHOOTER: Interface = Interface {
    service: "policytroubleshooter.googleapis.com",
    name: "google.cloud.policytroubleshooter.iam.v3.PolicyTroubleshooter",
};
static IAM_CHECKER: Interface = Interface {
    service: "policytroubleshooter.googleapis.com",
    name: "google.cloud.policytroubleshooter.v1.IamChecker",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/iam:troubleshoot",
            serves(
                const {
                    &[&[Op::query(
                        "POST",
                        "troubleshoot",
                        &TROUBLESHOOTER,
                        "TroubleshootIamPolicy",
                    )]]
                },
                post(troubleshoot),
            ),
        )
        .route(
            "/v1/iam:troubleshoot",
            serves(
                const {
                    &[&[Op::query(
                        "POST",
                        "troubleshoot",
                        &IAM_CHECKER,
                        "TroubleshootIamPolicy",
                    )]]
                },
                post(troubleshoot_v1),
            ),
        )
}

/// v1's and v3's access tuples, which carry the same three fields.
trait AccessTuple {
    fn parts(&self) -> (&str, &str, &str);
}

/// v1's and v3's heuristic relevance: high or normal.
trait Relevance {
    fn of(high: bool) -> Self;
}

macro_rules! same_shape {
    ($tuple:ty, $relevance:ty) => {
        impl AccessTuple for $tuple {
            fn parts(&self) -> (&str, &str, &str) {
                (&self.principal, &self.full_resource_name, &self.permission)
            }
        }
        impl Relevance for $relevance {
            fn of(high: bool) -> Self {
                if high { Self::High } else { Self::Normal }
            }
        }
    };
}
same_shape!(pt::AccessTuple, pt::HeuristicRelevance);
same_shape!(v1::AccessTuple, v1::HeuristicRelevance);

/// The control explanation of a request's access tuple, which both versions require.
fn examine<T: AccessTuple>(
    s: &AppState,
    c: &Caller,
    tuple: Option<T>,
) -> ApiResult<(T, Troubleshooting)> {
    let tuple = tuple.ok_or_else(|| ApiError(Error::invalid("access_tuple is required.")))?;
    let (principal, full_resource_name, permission) = tuple.parts();
    let t = s
        .control
        .troubleshoot(c, principal, full_resource_name, permission)?;
    Ok((tuple, t))
}

/// One examined binding as both versions read it.
struct Verdict<'a> {
    binding: &'a ExplainedBinding,
    /// A member of the binding includes the principal.
    matched: bool,
    /// The binding's own relevance is high.
    high: bool,
    /// Every member of the policy binding it stands for (same role, same condition), and
    /// whether it includes the principal: each is shown matched or not, as Google lists them.
    members: Vec<(String, bool)>,
}

impl<'a> Verdict<'a> {
    fn of(policy: &Policy, b: &'a ExplainedBinding) -> Self {
        let matched = !b.memberships.is_empty();
        let members = policy
            .bindings
            .iter()
            .find(|pb| {
                pb.role == b.role
                    && pb.condition.as_ref().map(|c| &c.expression)
                        == b.condition.as_ref().map(|(e, _)| &e.expression)
            })
            .map(|pb| pb.members.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let hit = b.memberships.iter().any(|(bm, _)| *bm == m);
                (m, hit)
            })
            .collect();
        Verdict {
            binding: b,
            matched,
            high: b.grants || (matched && b.role_includes_permission),
            members,
        }
    }
}

/// Each examined resource, with its bindings' verdicts where the caller may read its policy.
fn examined(
    t: &Troubleshooting,
) -> impl Iterator<Item = (&ExaminedResource, Option<Vec<Verdict<'_>>>)> {
    t.explanation
        .examined
        .iter()
        .zip(&t.resources)
        .map(|(examined, res)| {
            let verdicts = res.policy.as_ref().map(|policy| {
                examined
                    .bindings
                    .iter()
                    .map(|b| Verdict::of(policy, b))
                    .collect()
            });
            (res, verdicts)
        })
}

fn expr_of(expr: &runpool_authz::Expr) -> google_cloud_type::model::Expr {
    let mut e = google_cloud_type::model::Expr::new();
    e.expression = expr.expression.clone();
    e.title = expr.title.clone();
    e.description = expr.description.clone();
    e
}

fn annotated(hit: bool, high: bool) -> pt::allow_binding_explanation::AnnotatedAllowMembership {
    let mut a = pt::allow_binding_explanation::AnnotatedAllowMembership::new();
    a.membership = if hit {
        pt::MembershipMatchingState::MembershipMatched
    } else {
        pt::MembershipMatchingState::MembershipNotMatched
    };
    a.relevance = Relevance::of(high);
    a
}

fn allow_state(granted: bool) -> pt::AllowAccessState {
    if granted {
        pt::AllowAccessState::Granted
    } else {
        pt::AllowAccessState::NotGranted
    }
}

/// v3's explanation of one binding.
fn binding_v3(v: &Verdict) -> pt::AllowBindingExplanation {
    let b = v.binding;
    let mut be = pt::AllowBindingExplanation::new();
    be.role = b.role.clone();
    be.role_permission = if b.role_includes_permission {
        pt::RolePermissionInclusionState::RolePermissionIncluded
    } else {
        pt::RolePermissionInclusionState::RolePermissionNotIncluded
    };
    be.role_permission_relevance = Relevance::of(!b.role_includes_permission);
    be.combined_membership = Some(annotated(
        v.matched,
        !v.matched && b.role_includes_permission,
    ));
    be.memberships = v
        .members
        .iter()
        .map(|(m, hit)| (m.clone(), annotated(*hit, *hit)))
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
            st.code = runpool_control::Code::InvalidArgument as i32;
            st.message = msg.clone();
            ce.errors.push(st);
        }
        be.condition_explanation = Some(ce);
    }
    be.allow_access_state = allow_state(b.grants);
    be.relevance = Relevance::of(v.high);
    be
}

fn deny_state(denied: bool) -> pt::DenyAccessState {
    if denied {
        pt::DenyAccessState::Denied
    } else {
        pt::DenyAccessState::NotDenied
    }
}

fn permission_matching(hit: bool) -> pt::deny_rule_explanation::AnnotatedPermissionMatching {
    let mut a = pt::deny_rule_explanation::AnnotatedPermissionMatching::new();
    a.permission_matching_state = if hit {
        pt::PermissionPatternMatchingState::PermissionPatternMatched
    } else {
        pt::PermissionPatternMatchingState::PermissionPatternNotMatched
    };
    a.relevance = Relevance::of(hit);
    a
}

fn principal_matching(hit: bool) -> pt::deny_rule_explanation::AnnotatedDenyPrincipalMatching {
    let mut a = pt::deny_rule_explanation::AnnotatedDenyPrincipalMatching::new();
    a.membership = if hit {
        pt::MembershipMatchingState::MembershipMatched
    } else {
        pt::MembershipMatchingState::MembershipNotMatched
    };
    a.relevance = Relevance::of(hit);
    a
}

/// The deny side of v3's answer: every deny policy on the ancestry, rule by rule (whether
/// it names the principal and the permission, its exceptions, its condition).
fn deny_explanation(t: &Troubleshooting) -> pt::DenyPolicyExplanation {
    let mut denied = false;
    let mut unknown = false;
    let resources = t
        .deny
        .iter()
        .map(|d| {
            let mut er = pt::ExplainedDenyResource::new();
            er.full_resource_name = t
                .resources
                .iter()
                .find(|r| r.name == d.node)
                .map(|r| r.full_resource_name.clone())
                .unwrap_or_else(|| format!("//cloudresourcemanager.googleapis.com/{}", d.node));
            let Some(policies) = &d.policies else {
                unknown = true;
                er.deny_access_state = pt::DenyAccessState::UnknownInfo;
                er.relevance = pt::HeuristicRelevance::Normal;
                return er;
            };
            let mut any_here = false;
            er.explained_policies = policies
                .iter()
                .map(|(policy, rules)| {
                    let mut ep = pt::ExplainedDenyPolicy::new();
                    ep.policy = Some(policy.clone());
                    ep.rule_explanations = rules
                        .iter()
                        .map(|v| {
                            let mut re = pt::DenyRuleExplanation::new();
                            re.deny_access_state = deny_state(v.denies);
                            re.combined_denied_permission =
                                Some(permission_matching(v.denied_permission));
                            re.combined_exception_permission =
                                Some(permission_matching(v.exception_permission));
                            re.combined_denied_principal =
                                Some(principal_matching(v.denied_principal));
                            re.combined_exception_principal =
                                Some(principal_matching(v.exception_principal));
                            if let Some((expr, holds)) = &v.condition {
                                let mut e = google_cloud_type::model::Expr::new();
                                e.expression = expr.clone();
                                re.condition = Some(e);
                                let mut ce = pt::ConditionExplanation::new();
                                ce.value = Some(serde_json::Value::Bool(*holds));
                                re.condition_explanation = Some(ce);
                            }
                            re.relevance = Relevance::of(v.denies);
                            re
                        })
                        .collect();
                    let here = rules.iter().any(|v| v.denies);
                    any_here |= here;
                    ep.deny_access_state = deny_state(here);
                    ep.relevance = Relevance::of(here);
                    ep
                })
                .collect();
            denied |= any_here;
            er.deny_access_state = deny_state(any_here);
            er.relevance = Relevance::of(any_here);
            er
        })
        .collect();
    let mut deny = pt::DenyPolicyExplanation::new();
    deny.deny_access_state = if denied {
        pt::DenyAccessState::Denied
    } else if unknown {
        pt::DenyAccessState::UnknownInfo
    } else {
        pt::DenyAccessState::NotDenied
    };
    deny.explained_resources = resources;
    deny.relevance = Relevance::of(denied);
    deny.permission_deniable = true;
    deny
}

async fn troubleshoot(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(req): Body<pt::TroubleshootIamPolicyRequest>,
) -> ApiResult {
    let (tuple, t) = examine(&s, &c, req.access_tuple)?;
    let mut unknown = false;
    let mut policies = vec![];
    for (res, verdicts) in examined(&t) {
        let mut ep = pt::ExplainedAllowPolicy::new();
        ep.full_resource_name = res.full_resource_name.clone();
        let Some(verdicts) = verdicts else {
            // The caller may not read this policy: Google answers UNKNOWN_INFO for it.
            unknown = true;
            ep.allow_access_state = pt::AllowAccessState::UnknownInfo;
            ep.relevance = pt::HeuristicRelevance::Normal;
            policies.push(ep);
            continue;
        };
        ep.policy = res.policy.clone();
        ep.binding_explanations = verdicts.iter().map(binding_v3).collect();
        let any = verdicts.iter().any(|v| v.binding.grants);
        ep.allow_access_state = allow_state(any);
        ep.relevance = Relevance::of(any);
        policies.push(ep);
    }
    let mut allow = pt::AllowPolicyExplanation::new();
    allow.allow_access_state = if !t.explanation.granted && unknown {
        pt::AllowAccessState::UnknownInfo
    } else {
        allow_state(t.explanation.granted)
    };
    allow.explained_policies = policies;
    allow.relevance = pt::HeuristicRelevance::High;
    let deny = deny_explanation(&t);
    let mut resp = pt::TroubleshootIamPolicyResponse::new();
    // A deny rule wins over any grant.
    resp.overall_access_state = match allow.allow_access_state {
        _ if deny.deny_access_state == pt::DenyAccessState::Denied => {
            pt::troubleshoot_iam_policy_response::OverallAccessState::CannotAccess
        }
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
    a.relevance = Relevance::of(included);
    a
}

/// v1's explanation of one binding: no condition evaluation, and `UNKNOWN_CONDITIONAL` where
/// only a condition that could not be evaluated stands between it and a grant.
fn binding_v1(v: &Verdict) -> v1::BindingExplanation {
    let b = v.binding;
    let mut be = v1::BindingExplanation::new();
    be.role = b.role.clone();
    be.role_permission = if b.role_includes_permission {
        v1::binding_explanation::RolePermission::Included
    } else {
        v1::binding_explanation::RolePermission::NotIncluded
    };
    be.role_permission_relevance = Relevance::of(!b.role_includes_permission);
    be.memberships = v
        .members
        .iter()
        .map(|(m, hit)| (m.clone(), annotated_v1(*hit)))
        .collect::<HashMap<_, _>>();
    be.condition = b.condition.as_ref().map(|(e, _)| expr_of(e));
    let undecided = v.matched
        && b.role_includes_permission
        && matches!(b.condition, Some((_, ConditionOutcome::Error(_))));
    be.access = if b.grants {
        v1::AccessState::Granted
    } else if undecided {
        v1::AccessState::UnknownConditional
    } else {
        v1::AccessState::NotGranted
    };
    be.relevance = Relevance::of(v.high);
    be
}

/// v1 `iam.troubleshoot`: the v3 explanation in v1's shape (see the module doc).
async fn troubleshoot_v1(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Body(req): Body<v1::TroubleshootIamPolicyRequest>,
) -> ApiResult {
    let (_, t) = examine(&s, &c, req.access_tuple)?;
    let mut info_denied = false;
    let mut conditional = false;
    let mut policies = vec![];
    for (res, verdicts) in examined(&t) {
        let mut ep = v1::ExplainedPolicy::new();
        let Some(verdicts) = verdicts else {
            info_denied = true;
            ep.access = v1::AccessState::UnknownInfoDenied;
            policies.push(ep);
            continue;
        };
        ep.full_resource_name = res.full_resource_name.clone();
        ep.policy = res.policy.clone();
        ep.binding_explanations = verdicts.iter().map(binding_v1).collect();
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
        ep.relevance = Relevance::of(ep.access != v1::AccessState::NotGranted);
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
