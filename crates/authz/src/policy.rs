//! The allow policy as a domain type, and what Google does to one on `setIamPolicy`
//! ([`normalize`]) and on `getIamPolicy` ([`for_requested_version`]).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::condition::{Condition, logical_operator_count};
use crate::error::PolicyError;
use crate::member::Member;

/// Most principals a policy may hold, counted per occurrence (policy.proto).
pub const MAX_PRINCIPALS: usize = 1500;
/// Most `group:` principals a policy may hold, counted per occurrence (policy.proto).
pub const MAX_GROUPS: usize = 250;
/// Most logical operators in one condition (IAM quotas page).
pub const MAX_LOGICAL_OPERATORS: usize = 12;
/// The basic roles, which never take conditions.
pub const BASIC_ROLES: [&str; 3] = ["roles/owner", "roles/editor", "roles/viewer"];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub version: i32,
    pub bindings: Vec<Binding>,
    /// Passed through untouched: audit logging is not evaluated here.
    pub audit_configs_json: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binding {
    pub role: String,
    pub members: Vec<String>,
    pub condition: Option<Expr>,
}

/// `google.type.Expr`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Expr {
    pub expression: String,
    pub title: String,
    pub description: String,
    pub location: String,
}

impl Policy {
    pub fn has_conditions(&self) -> bool {
        self.bindings.iter().any(|b| b.condition.is_some())
    }
}

/// Validates and canonicalises a policy as Google does on `setIamPolicy`.
///
/// After success: every member is canonical (emails lowercased), bindings without members are
/// gone, members are deduplicated and sorted, unconditional bindings of one role are merged into
/// one (conditional bindings with an identical role and condition likewise), bindings are sorted
/// by role with the unconditional one first, and `version` is 3 if any binding is conditional,
/// else 1. On error the policy is left unchanged.
pub fn normalize(policy: &mut Policy, catalog: &Catalog) -> Result<(), PolicyError> {
    if !matches!(policy.version, 0 | 1 | 3) {
        // Google rejects other versions; its exact text is not in our reference.
        return Err(PolicyError::new(format!(
            "Invalid policy version {}. Valid versions are 0, 1 and 3. For more information, \
             please refer to https://cloud.google.com/iam/docs/policies#versions",
            policy.version
        )));
    }
    // BTreeMaps give the deterministic order for free.
    let mut plain: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut conditional: BTreeMap<(String, Expr), BTreeSet<String>> = BTreeMap::new();

    for b in &policy.bindings {
        if !catalog.has_role(&b.role) {
            return Err(PolicyError::new(format!(
                "Role ({}) does not exist in the resource's hierarchy.",
                b.role
            )));
        }
        let mut members = BTreeSet::new();
        let mut public = false;
        for m in &b.members {
            let parsed: Member = m
                .parse()
                .map_err(|e: crate::member::MemberError| PolicyError::new(e.message))?;
            public |= parsed.is_public();
            members.insert(parsed.to_string());
        }
        match &b.condition {
            None => plain.entry(b.role.clone()).or_default().extend(members),
            Some(cond) => {
                if members.is_empty() {
                    continue;
                }
                check_condition(policy.version, &b.role, public, cond)?;
                conditional
                    .entry((b.role.clone(), cond.clone()))
                    .or_default()
                    .extend(members);
            }
        }
    }

    let mut bindings = Vec::with_capacity(plain.len() + conditional.len());
    let mut cond_iter = conditional.into_iter().peekable();
    for (role, members) in plain {
        // Conditional bindings whose role sorts before this one come first.
        while let Some(((r, _), _)) = cond_iter.peek() {
            if *r >= role {
                break;
            }
            let ((r, e), m) = cond_iter.next().unwrap();
            bindings.push(binding(r, m, Some(e)));
        }
        if !members.is_empty() {
            bindings.push(binding(role, members, None));
        }
    }
    for ((r, e), m) in cond_iter {
        bindings.push(binding(r, m, Some(e)));
    }

    let principals: usize = bindings.iter().map(|b| b.members.len()).sum();
    if principals > MAX_PRINCIPALS {
        return Err(PolicyError::new(format!(
            "The number of members in the policy ({}) is larger than the maximum allowed size {}.",
            thousands(principals),
            thousands(MAX_PRINCIPALS)
        )));
    }
    let groups = bindings
        .iter()
        .flat_map(|b| &b.members)
        .filter(|m| m.starts_with("group:"))
        .count();
    if groups > MAX_GROUPS {
        return Err(PolicyError::new(format!(
            "The number of groups in the policy ({groups}) is larger than the maximum allowed size {MAX_GROUPS}."
        )));
    }

    policy.version = if bindings.iter().any(|b| b.condition.is_some()) {
        3
    } else {
        1
    };
    policy.bindings = bindings;
    Ok(())
}

fn binding(role: String, members: BTreeSet<String>, condition: Option<Expr>) -> Binding {
    Binding {
        role,
        members: members.into_iter().collect(),
        condition,
    }
}

fn thousands(n: usize) -> String {
    // 1500 → "1,500", as Google writes the limit.
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|c| c.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

fn check_condition(version: i32, role: &str, public: bool, cond: &Expr) -> Result<(), PolicyError> {
    // None of these texts is quoted in our reference; they state Google's documented rules
    // plainly, prefixed like Google's INVALID_ARGUMENT messages.
    if version != 3 {
        return Err(PolicyError::new(format!(
            "Invalid argument: policy version {version} cannot contain conditional role bindings; \
             conditions require policy version 3. For more information, please refer to \
             https://cloud.google.com/iam/docs/policies#versions"
        )));
    }
    if BASIC_ROLES.contains(&role) {
        return Err(PolicyError::new(format!(
            "Invalid argument: conditions are not supported for basic role ({role})."
        )));
    }
    if public {
        return Err(PolicyError::new(
            "Invalid argument: conditions are not supported for allUsers and \
             allAuthenticatedUsers."
                .to_string(),
        ));
    }
    // Google's docs make the title required (the condition-overview page); a third-party
    // measurement says some services accept an untitled one. We follow the documentation.
    if cond.title.trim().is_empty() {
        return Err(PolicyError::new(
            "Invalid argument: condition title must not be empty.".to_string(),
        ));
    }
    let ops = logical_operator_count(&cond.expression);
    if ops > MAX_LOGICAL_OPERATORS {
        return Err(PolicyError::new(format!(
            "Invalid argument: condition expression has {ops} logical operators; at most \
             {MAX_LOGICAL_OPERATORS} are allowed."
        )));
    }
    Condition::compile(&cond.expression)?;
    Ok(())
}

/// Short stable hex of a condition, used in `ROLE_withcond_HASH` role names.
pub fn condition_hash(e: &Expr) -> String {
    let mut h = Sha256::new();
    for part in [&e.expression, &e.title, &e.description, &e.location] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The policy as `getIamPolicy` returns it for `requested` (`options.requestedPolicyVersion`).
///
/// No conditional binding: version 1. Conditional bindings and `requested >= 3`: unchanged,
/// version 3. Conditional bindings and `requested < 3`: each condition is dropped and its role
/// renamed `ROLE_withcond_HASH` so that a version-1 client cannot mistake it for an
/// unconditional grant; version 1.
pub fn for_requested_version(policy: &Policy, requested: i32) -> Policy {
    let mut out = policy.clone();
    if !policy.has_conditions() {
        out.version = 1;
    } else if requested >= 3 {
        out.version = 3;
    } else {
        out.version = 1;
        for b in &mut out.bindings {
            if let Some(c) = b.condition.take() {
                b.role = format!("{}_withcond_{}", b.role, condition_hash(&c));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(role: &str, members: &[&str], cond: Option<&str>) -> Binding {
        Binding {
            role: role.into(),
            members: members.iter().map(|s| s.to_string()).collect(),
            condition: cond.map(|e| Expr {
                expression: e.into(),
                title: "t".into(),
                ..Default::default()
            }),
        }
    }

    fn pol(version: i32, bindings: Vec<Binding>) -> Policy {
        Policy {
            version,
            bindings,
            audit_configs_json: None,
        }
    }

    #[test]
    fn merges_dedupes_lowercases_drops_and_orders() {
        let cat = Catalog::predefined();
        let mut p = pol(
            1,
            vec![
                b(
                    "roles/run.admin",
                    &["user:Bob@X.com", "user:alice@x.com"],
                    None,
                ),
                b("roles/editor", &[], None),
                b(
                    "roles/run.admin",
                    &["user:bob@x.com", "group:G@x.com"],
                    None,
                ),
                b(
                    "roles/iam.serviceAccountUser",
                    &["serviceAccount:SA@p.iam.gserviceaccount.com"],
                    None,
                ),
            ],
        );
        normalize(&mut p, &cat).unwrap();
        assert_eq!(p.version, 1);
        assert_eq!(
            p.bindings,
            vec![
                b(
                    "roles/iam.serviceAccountUser",
                    &["serviceAccount:sa@p.iam.gserviceaccount.com"],
                    None
                ),
                b(
                    "roles/run.admin",
                    &["group:g@x.com", "user:alice@x.com", "user:bob@x.com"],
                    None
                ),
            ]
        );
        // Idempotent.
        let before = p.clone();
        normalize(&mut p, &cat).unwrap();
        assert_eq!(p, before);
    }

    #[test]
    fn conditional_bindings_kept_apart_and_version_3() {
        let cat = Catalog::predefined();
        let mut p = pol(
            3,
            vec![
                b(
                    "roles/run.admin",
                    &["user:a@x.com"],
                    Some("request.time < timestamp('2030-01-01T00:00:00Z')"),
                ),
                b("roles/run.admin", &["user:b@x.com"], None),
                b(
                    "roles/run.admin",
                    &["user:c@x.com"],
                    Some("request.time < timestamp('2030-01-01T00:00:00Z')"),
                ),
            ],
        );
        normalize(&mut p, &cat).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.bindings.len(), 2);
        assert!(p.bindings[0].condition.is_none());
        assert_eq!(p.bindings[1].members, vec!["user:a@x.com", "user:c@x.com"]);
    }

    #[test]
    fn rejects_what_google_rejects() {
        let cat = Catalog::predefined();
        let err = |p: Policy| {
            let mut p = p;
            normalize(&mut p, &cat).unwrap_err().message
        };
        assert!(err(pol(2, vec![])).contains("Invalid policy version 2"));
        assert!(
            err(pol(1, vec![b("roles/run.admin", &["usr:bob"], None)]))
                .contains("Invalid principal: 'usr:bob'")
        );
        assert_eq!(
            err(pol(1, vec![b("roles/xyz", &["user:a@x.com"], None)])),
            "Role (roles/xyz) does not exist in the resource's hierarchy."
        );
        assert!(
            err(pol(
                3,
                vec![b("roles/owner", &["user:a@x.com"], Some("true"))]
            ))
            .contains("basic role (roles/owner)")
        );
        assert!(
            err(pol(
                3,
                vec![b("roles/run.admin", &["allUsers"], Some("true"))]
            ))
            .contains("allUsers")
        );
        assert!(
            err(pol(
                1,
                vec![b("roles/run.admin", &["user:a@x.com"], Some("true"))]
            ))
            .contains("conditions require policy version 3")
        );
        assert!(
            err(pol(
                3,
                vec![b(
                    "roles/run.admin",
                    &["user:a@x.com"],
                    Some("request.time <")
                )]
            ))
            .contains("not valid CEL")
        );
        // 13 operands joined by && = 12 logical operators: the limit, accepted; 13 rejected.
        let twelve = (0..13).map(|_| "true").collect::<Vec<_>>().join(" && ");
        let mut ok = pol(
            3,
            vec![b("roles/run.admin", &["user:a@x.com"], Some(&twelve))],
        );
        normalize(&mut ok, &cat).unwrap();
        let thirteen = format!("{twelve} && !false");
        assert!(
            err(pol(
                3,
                vec![b("roles/run.admin", &["user:a@x.com"], Some(&thirteen))]
            ))
            .contains("14 logical operators; at most 12")
        );
        let mut untitled = b("roles/run.admin", &["user:a@x.com"], Some("true"));
        untitled.condition.as_mut().unwrap().title.clear();
        assert!(err(pol(3, vec![untitled])).contains("title"));

        // 1,500 per occurrence: 750 users in two roles is fine, one more is not.
        let users: Vec<String> = (0..750).map(|i| format!("user:u{i}@x.com")).collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let mut ok = pol(
            1,
            vec![
                b("roles/run.admin", &refs, None),
                b("roles/run.viewer", &refs, None),
            ],
        );
        normalize(&mut ok, &cat).unwrap();
        let mut over = ok.clone();
        over.bindings[0].members.push("user:extra@x.com".into());
        assert_eq!(
            err(over),
            "The number of members in the policy (1,501) is larger than the maximum allowed size 1,500."
        );
    }

    #[test]
    fn error_leaves_policy_unchanged() {
        let cat = Catalog::predefined();
        let mut p = pol(
            1,
            vec![b("roles/run.admin", &["user:A@x.com", "bad"], None)],
        );
        let before = p.clone();
        assert!(normalize(&mut p, &cat).is_err());
        assert_eq!(p, before);
    }

    #[test]
    fn withcond_downgrade() {
        let cat = Catalog::predefined();
        let mut p = pol(
            3,
            vec![
                b(
                    "roles/run.admin",
                    &["user:a@x.com"],
                    Some("request.time < timestamp('2030-01-01T00:00:00Z')"),
                ),
                b("roles/run.viewer", &["user:b@x.com"], None),
            ],
        );
        normalize(&mut p, &cat).unwrap();
        let v1 = for_requested_version(&p, 1);
        assert_eq!(v1.version, 1);
        let r = &v1.bindings[0].role;
        assert!(r.starts_with("roles/run.admin_withcond_"), "{r}");
        let hash = r.rsplit('_').next().unwrap();
        assert_eq!(hash.len(), 20);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(v1.bindings.iter().all(|b| b.condition.is_none()));
        assert_eq!(v1.bindings[1].role, "roles/run.viewer");
        // Stable.
        assert_eq!(for_requested_version(&p, 0).bindings[0].role, *r);
        let v3 = for_requested_version(&p, 3);
        assert_eq!(v3.version, 3);
        assert_eq!(v3.bindings, p.bindings);
        let plain = pol(3, vec![b("roles/run.viewer", &["user:b@x.com"], None)]);
        assert_eq!(for_requested_version(&plain, 3).version, 1);
    }
}
