//! Resource Manager v1's org policy methods (`gcloud resource-manager org-policies`), on
//! organizations, folders and projects: `:getOrgPolicy`, `:setOrgPolicy`,
//! `:getEffectiveOrgPolicy`, `:listOrgPolicies`, `:clearOrgPolicy`,
//! `:listAvailableOrgPolicyConstraints`. They read and write the one store Org Policy v2
//! uses, through its `control` methods: a v1 `booleanPolicy{enforced}` is a v2 rule
//! `{enforce}`, `restoreDefault` is `spec.reset`, a `listPolicy` is v2's value rules and
//! `inheritFromParent`. v1 has no conditions: a policy with conditional rules shows with
//! `version: 2`, as Google shows it (gcloud then sends the user to `gcloud org-policies`).

use crate::AppState;
use crate::wire::operation::{Interface, Op};
use crate::wire::{ApiError, ApiResult};
use axum::Json;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use google_cloud_orgpolicy_v2::model as op;
use op::policy_spec::{PolicyRule, policy_rule};
use runpool_control::{Caller, Code, Error};
use serde_json::{Map, Value, json};

/// The six methods, as each resource's route lists them.
pub const fn ops(interface: &'static Interface) -> [Op; 6] {
    [
        Op::read("POST", "getOrgPolicy", interface, "GetOrgPolicy"),
        Op::write("POST", "setOrgPolicy", interface, "SetOrgPolicy"),
        Op::read(
            "POST",
            "getEffectiveOrgPolicy",
            interface,
            "GetEffectiveOrgPolicy",
        ),
        Op::read("POST", "listOrgPolicies", interface, "ListOrgPolicies"),
        Op::write("POST", "clearOrgPolicy", interface, "ClearOrgPolicy"),
        Op::read(
            "POST",
            "listAvailableOrgPolicyConstraints",
            interface,
            "ListAvailableOrgPolicyConstraints",
        ),
    ]
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::invalid(msg))
}

/// `constraints/iam.x` (or a bare `iam.x`) → `iam.x`.
fn short(constraint: &str) -> ApiResult<&str> {
    let s = constraint
        .strip_prefix("constraints/")
        .unwrap_or(constraint);
    if s.is_empty() {
        return Err(invalid("constraint is required."));
    }
    Ok(s)
}

fn constraint_of(body: &Value, field: &str) -> ApiResult<String> {
    Ok(short(body[field].as_str().unwrap_or_default())?.to_string())
}

fn is_boolean(short: &str) -> bool {
    runpool_control::resourcemanager::orgpolicy::constraint(short).is_some_and(|c| {
        matches!(
            c.constraint_type,
            Some(op::constraint::ConstraintType::BooleanConstraint(_))
        )
    })
}

/// v1's etag is bytes; it carries the v2 policy's etag.
fn etag_v1(etag: &str) -> Value {
    json!(STANDARD.encode(etag))
}

fn etag_v2(v1: &Value) -> ApiResult<String> {
    let Some(s) = v1.as_str().filter(|s| !s.is_empty()) else {
        return Ok(String::new());
    };
    let s = s.replace('-', "+").replace('_', "/");
    STANDARD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid("Invalid value at 'policy.etag' (TYPE_BYTES)."))
}

/// A v2 policy (or effective policy, `with_etag` false) in v1's shape.
fn to_v1(short: &str, p: &op::Policy, with_etag: bool) -> Value {
    let mut v = Map::new();
    let spec = p.spec.clone().unwrap_or_default();
    if spec.rules.iter().any(|r| r.condition.is_some()) {
        v.insert("version".into(), json!(2));
    }
    v.insert("constraint".into(), json!(format!("constraints/{short}")));
    if with_etag && !p.etag.is_empty() {
        v.insert("etag".into(), etag_v1(&p.etag));
    }
    if with_etag && let Some(t) = &spec.update_time {
        v.insert("updateTime".into(), json!(t));
    }
    let plain = || spec.rules.iter().filter(|r| r.condition.is_none());
    if spec.reset {
        v.insert("restoreDefault".into(), json!({}));
    } else if is_boolean(short) {
        let enforced = plain().any(|r| matches!(r.kind, Some(policy_rule::Kind::Enforce(true))));
        // proto3 JSON leaves `enforced: false` out: `booleanPolicy: {}`.
        let b = if enforced {
            json!({"enforced": true})
        } else {
            json!({})
        };
        v.insert("booleanPolicy".into(), b);
    } else {
        let mut l = Map::new();
        let (mut allowed, mut denied) = (vec![], vec![]);
        for r in plain() {
            match &r.kind {
                Some(policy_rule::Kind::AllowAll(true)) => {
                    l.insert("allValues".into(), json!("ALLOW"));
                }
                Some(policy_rule::Kind::DenyAll(true)) => {
                    l.insert("allValues".into(), json!("DENY"));
                }
                Some(policy_rule::Kind::Values(vals)) => {
                    allowed.extend(vals.allowed_values.iter().cloned());
                    denied.extend(vals.denied_values.iter().cloned());
                }
                _ => {}
            }
        }
        if !allowed.is_empty() {
            l.insert("allowedValues".into(), json!(allowed));
        }
        if !denied.is_empty() {
            l.insert("deniedValues".into(), json!(denied));
        }
        if spec.inherit_from_parent {
            l.insert("inheritFromParent".into(), json!(true));
        }
        v.insert("listPolicy".into(), Value::Object(l));
    }
    Value::Object(v)
}

/// A v1 policy as the v2 policy `name` that says the same.
fn to_v2(name: String, short: &str, v1: &Value) -> ApiResult<op::Policy> {
    let mut spec = op::PolicySpec::new();
    let rule = |kind| {
        let mut r = PolicyRule::new();
        r.kind = Some(kind);
        r
    };
    let set: Vec<&str> = ["booleanPolicy", "listPolicy", "restoreDefault"]
        .into_iter()
        .filter(|k| v1.get(*k).is_some_and(|x| !x.is_null()))
        .collect();
    match set.as_slice() {
        ["restoreDefault"] => spec.reset = true,
        ["booleanPolicy"] => {
            if !is_boolean(short) {
                return Err(invalid(format!(
                    "Policy type BooleanPolicy does not match the constraint type of 'constraints/{short}'."
                )));
            }
            let enforced = v1["booleanPolicy"]["enforced"].as_bool().unwrap_or(false);
            spec.rules.push(rule(policy_rule::Kind::Enforce(enforced)));
        }
        ["listPolicy"] => {
            if is_boolean(short) {
                return Err(invalid(format!(
                    "Policy type ListPolicy does not match the constraint type of 'constraints/{short}'."
                )));
            }
            let l = &v1["listPolicy"];
            let strs = |k: &str| -> Vec<String> {
                l[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            match l["allValues"].as_str() {
                Some("ALLOW") => spec.rules.push(rule(policy_rule::Kind::AllowAll(true))),
                Some("DENY") => spec.rules.push(rule(policy_rule::Kind::DenyAll(true))),
                _ => {}
            }
            let (allowed, denied) = (strs("allowedValues"), strs("deniedValues"));
            if !allowed.is_empty() || !denied.is_empty() {
                let mut vals = policy_rule::StringValues::new();
                vals.allowed_values = allowed;
                vals.denied_values = denied;
                spec.rules
                    .push(rule(policy_rule::Kind::Values(Box::new(vals))));
            }
            spec.inherit_from_parent = l["inheritFromParent"].as_bool().unwrap_or(false);
        }
        [] => {
            return Err(invalid(
                "policy must set one of booleanPolicy, listPolicy or restoreDefault.",
            ));
        }
        _ => return Err(invalid("policy sets more than one policy type.")),
    }
    let mut p = op::Policy::new();
    p.name = name;
    p.etag = etag_v2(&v1["etag"])?;
    p.spec = Some(spec);
    Ok(p)
}

/// The verbs [`verb`] answers.
const VERBS: [&str; 6] = [
    "getOrgPolicy",
    "setOrgPolicy",
    "getEffectiveOrgPolicy",
    "listOrgPolicies",
    "clearOrgPolicy",
    "listAvailableOrgPolicyConstraints",
];

/// Answer one of the six verbs on `resource` (`projects/P`, `folders/F`, `organizations/O`),
/// or `None` for any other verb.
pub fn verb(
    s: &AppState,
    c: &Caller,
    resource: &str,
    verb: &str,
    body: &Value,
) -> Option<ApiResult> {
    VERBS
        .contains(&verb)
        .then(|| answer(s, c, resource, verb, body).map(|v| Json(v).into_response()))
}

fn answer(s: &AppState, c: &Caller, resource: &str, verb: &str, body: &Value) -> ApiResult<Value> {
    let name = |short: &str| format!("{resource}/policies/{short}");
    Ok(match verb {
        "getOrgPolicy" => {
            let short = constraint_of(body, "constraint")?;
            match s.control.get_org_policy(c, &name(&short)) {
                Ok(p) => to_v1(&short, &p, true),
                // No policy set: v1 answers an empty one for the constraint.
                Err(e) if e.code == Code::NotFound => {
                    json!({"constraint": format!("constraints/{short}")})
                }
                Err(e) => return Err(e.into()),
            }
        }
        "getEffectiveOrgPolicy" => {
            let short = constraint_of(body, "constraint")?;
            let p = s.control.effective_org_policy(c, &name(&short))?;
            to_v1(&short, &p, false)
        }
        "setOrgPolicy" => {
            let policy = &body["policy"];
            let short = constraint_of(policy, "constraint")?;
            let mut v2 = to_v2(name(&short), &short, policy)?;
            // v1 knows only the live spec: a dry-run spec set through v2 stays as it was.
            if let Ok(old) = s.control.get_org_policy(c, &v2.name) {
                v2.dry_run_spec = old.dry_run_spec;
            }
            let p = s.control.update_org_policy(c, v2, true)?;
            to_v1(&short, &p, true)
        }
        "clearOrgPolicy" => {
            let short = constraint_of(body, "constraint")?;
            let etag = etag_v2(&body["etag"])?;
            match s.control.delete_org_policy(c, &name(&short), &etag) {
                // Clearing what is not set is no error on v1.
                Ok(()) => json!({}),
                Err(e) if e.code == Code::NotFound => json!({}),
                Err(e) => return Err(e.into()),
            }
        }
        "listOrgPolicies" => {
            let policies: Vec<Value> = s
                .control
                .list_org_policies(c, resource)?
                .iter()
                .filter_map(|p| {
                    let short = p.name.rsplit_once("/policies/")?.1;
                    Some(to_v1(short, p, true))
                })
                .collect();
            if policies.is_empty() {
                json!({})
            } else {
                json!({"policies": policies})
            }
        }
        "listAvailableOrgPolicyConstraints" => {
            let constraints: Vec<Value> = s
                .control
                .list_constraints(c, resource)?
                .iter()
                .map(|k| {
                    let short = k.name.rsplit_once("/constraints/").map_or("", |x| x.1);
                    let default = match k.constraint_default {
                        op::constraint::ConstraintDefault::Deny => "DENY",
                        _ => "ALLOW",
                    };
                    let mut v = json!({
                        "name": format!("constraints/{short}"),
                        "displayName": k.display_name,
                        "description": k.description,
                        "constraintDefault": default,
                    });
                    if is_boolean(short) {
                        v["booleanConstraint"] = json!({});
                    } else {
                        v["listConstraint"] = json!({"supportsUnder": true});
                    }
                    v
                })
                .collect();
            json!({"constraints": constraints})
        }
        _ => return Err(crate::wire::unknown_verb(verb)),
    })
}
