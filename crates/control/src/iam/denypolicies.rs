//! IAM v2 deny policies (`iam.googleapis.com/v2`): attached to an organization, folder or
//! project, inherited below it, checked before any allow policy (the matching itself is
//! `runpool_authz::deny`, in every authorization check).
//!
//! Names are Google's: `policies/{URL-encoded attachment point}/denypolicies/{id}`, the
//! attachment point a full resource name (`cloudresourcemanager.googleapis.com/projects/P`,
//! projects named by number in answers). Create, update and delete answer with a finished
//! long-running operation; a stale etag on update or delete is 409 `ABORTED`. Rules are
//! checked when written: principals in v2 syntax, permissions as `SERVICE_FQDN/RESOURCE.VERB`
//! (known to the role catalog, or a `*` pattern), conditions over resource tags only.
//!
//! A rule's `denialCondition` is parsed once, when the rules are indexed (on a deny policy
//! change), and evaluated at check time over the effective tags the snapshot holds.

use crate::base::error::{Code, Error, Result};
use crate::base::hierarchy::Node;
use crate::base::state::{Change, State};
use crate::{Caller, Control};
use google_cloud_iam_v2::model::{DenyRule, Policy, PolicyOperationMetadata, policy_rule};
use google_cloud_longrunning::model::Operation;
use google_cloud_wkt::Any;
use runpool_authz as authz;
use runpool_authz::condition::tags::TagCondition;

const SERVICE: &str = "iam.googleapis.com";
const HOST: &str = "cloudresourcemanager.googleapis.com/";
/// Google's limit on the rules of all deny policies of one attachment point.
const MAX_RULES: usize = 500;

/// `policies/{attachment}/denypolicies/{id}` for a canonical node (`projects/NUMBER`).
fn policy_name(node: &str, id: &str) -> String {
    format!(
        "policies/{}/denypolicies/{id}",
        format!("{HOST}{node}").replace('/', "%2F")
    )
}

/// The attachment point of a policy name or parent, decoded: `cloudresourcemanager.googleapis.com/projects/P`.
fn attachment(encoded: &str) -> String {
    encoded.replace("%2F", "/").replace("%2f", "/")
}

/// A deny policy id: 3 to 63 characters, a lowercase letter first, then lowercase letters,
/// digits, `.` and `-`.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (3..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
}

fn deny_rules(p: &Policy) -> impl Iterator<Item = &DenyRule> {
    p.rules.iter().filter_map(|r| match &r.kind {
        Some(policy_rule::Kind::DenyRule(d)) => Some(&**d),
        _ => None,
    })
}

/// Check a policy's rules as Google does before storing it.
fn validate(p: &Policy, catalog: &authz::Catalog) -> Result<()> {
    if p.rules.is_empty() {
        return Err(Error::invalid("A deny policy must have at least one rule."));
    }
    if p.display_name.chars().count() > 63 {
        return Err(Error::invalid(
            "display_name must be at most 63 characters.",
        ));
    }
    for (i, r) in p.rules.iter().enumerate() {
        let n = i + 1;
        let Some(policy_rule::Kind::DenyRule(d)) = &r.kind else {
            return Err(Error::invalid(format!("Rule {n} has no denyRule.")));
        };
        if d.denied_principals.is_empty() || d.denied_permissions.is_empty() {
            return Err(Error::invalid(format!(
                "Rule {n} must name at least one denied principal and one denied permission."
            )));
        }
        for m in d.denied_principals.iter().chain(&d.exception_principals) {
            authz::deny::member_of_principal(m)
                .map_err(|e| Error::invalid(format!("Rule {n}: {e}")))?;
        }
        if d.exception_principals
            .iter()
            .any(|m| m == "principalSet://goog/public:all")
        {
            return Err(Error::invalid(format!(
                "Rule {n}: principalSet://goog/public:all cannot be an exception principal."
            )));
        }
        for perm in d.denied_permissions.iter().chain(&d.exception_permissions) {
            let v1 = authz::deny::v1_permission(perm)
                .map_err(|e| Error::invalid(format!("Rule {n}: {e}")))?;
            if !v1.contains('*') && !catalog.is_known_permission(&v1) {
                return Err(Error::invalid(format!(
                    "Rule {n}: permission '{perm}' is not a known permission."
                )));
            }
        }
        if let Some(c) = &d.denial_condition {
            TagCondition::parse(&c.expression).map_err(|e| {
                Error::invalid(format!(
                    "Rule {n}: invalid denial_condition (deny conditions may only test resource tags): {e}."
                ))
            })?;
        }
    }
    Ok(())
}

/// Every deny rule in the state, compiled for the authorization index: principals as member
/// strings, permissions as v1 patterns, the condition parsed.
pub(crate) fn compile(st: &State) -> Vec<(String, Vec<authz::deny::DenyRule>)> {
    let mut by_node: Vec<(String, Vec<authz::deny::DenyRule>)> = vec![];
    for (name, p) in &st.deny_policies {
        let Some(node) = attached_to(name) else {
            continue;
        };
        let rules = compile_policy(name, p);
        match by_node.iter_mut().find(|(n, _)| *n == node) {
            Some((_, v)) => v.extend(rules),
            None => by_node.push((node, rules)),
        }
    }
    by_node
}

/// The canonical node a deny policy name is attached to (`projects/NUMBER`).
fn attached_to(name: &str) -> Option<String> {
    name.strip_prefix("policies/")
        .and_then(|r| r.split_once("/denypolicies/"))
        .map(|(a, _)| attachment(a))
        .and_then(|a| a.strip_prefix(HOST).map(str::to_string))
}

/// One policy's rules compiled: principals as member strings, permissions as v1 patterns,
/// the condition parsed.
fn compile_policy(name: &str, p: &Policy) -> Vec<authz::deny::DenyRule> {
    deny_rules(p)
        .map(|d| {
            let condition = d
                .denial_condition
                .as_ref()
                .map(|c| authz::deny::DenyCondition::new(c.expression.clone()));
            let members = |v: &[String]| {
                v.iter()
                    .filter_map(|m| authz::deny::member_of_principal(m).ok())
                    .collect()
            };
            let perms = |v: &[String]| {
                v.iter()
                    .filter_map(|p| authz::deny::v1_permission(p).ok())
                    .collect()
            };
            authz::deny::DenyRule {
                policy: name.to_string(),
                denied_principals: members(&d.denied_principals),
                exception_principals: members(&d.exception_principals),
                denied_permissions: perms(&d.denied_permissions),
                exception_permissions: perms(&d.exception_permissions),
                condition,
            }
        })
        .collect()
}

/// A deny policy with its rules compiled.
type Compiled = (Policy, Vec<authz::deny::DenyRule>);

/// How one deny rule bears on a principal, permission and resource, for the troubleshooter.
#[derive(Debug, Clone)]
pub struct RuleVerdict {
    pub denied_principal: bool,
    pub exception_principal: bool,
    pub denied_permission: bool,
    pub exception_permission: bool,
    /// The condition's expression and whether it holds at the resource.
    pub condition: Option<(String, bool)>,
    /// All of the above line up: the rule denies.
    pub denies: bool,
}

/// The deny policies attached to one node of the resource's ancestry.
#[derive(Debug, Clone)]
pub struct ExplainedDenyPolicies {
    /// Canonical node.
    pub node: String,
    /// `None`: the caller may not read this node's deny policies.
    pub policies: Option<Vec<(Policy, Vec<RuleVerdict>)>>,
}

impl Control {
    /// Every deny policy on `resource`'s ancestry (nearest first) and how each rule bears on
    /// `principal` and `permission`; policies the caller may not read are left unknown.
    pub(crate) fn explain_deny(
        &self,
        caller: &Caller,
        who: &authz::Principal,
        permission: &str,
        resource: &str,
    ) -> Vec<ExplainedDenyPolicies> {
        let snap = self.snapshot();
        let ancestry = snap.ancestry(resource);
        // Conditions are evaluated at the resource's nearest organization, folder or project.
        let at = ancestry
            .iter()
            .find(|n| authz::snapshot::is_hierarchy_node(n))
            .cloned();
        // Gather under the state lock, check readability after it (a check reads the state).
        let attached: Vec<(String, Vec<Compiled>)> = {
            let st = self.read();
            ancestry
                .iter()
                .map(|node| {
                    let prefix = policy_name(node, "");
                    let policies = st
                        .deny_policies
                        .range(prefix.clone()..)
                        .take_while(|(n, _)| n.starts_with(&prefix))
                        .map(|(name, p)| (p.clone(), compile_policy(name, p)))
                        .collect::<Vec<_>>();
                    (node.clone(), policies)
                })
                .filter(|(_, p)| !p.is_empty())
                .collect()
        };
        attached
            .into_iter()
            .map(|(node, policies)| {
                let readable = self
                    .service_node(caller, &node, "iam.denypolicies.get", SERVICE)
                    .is_ok();
                let policies = readable.then(|| {
                    policies
                        .into_iter()
                        .map(|(p, rules)| {
                            let verdicts = rules
                                .iter()
                                .map(|r| verdict(r, who, permission, at.as_deref(), &snap))
                                .collect();
                            (p, verdicts)
                        })
                        .collect()
                });
                ExplainedDenyPolicies { node, policies }
            })
            .collect()
    }
}

fn verdict(
    r: &authz::deny::DenyRule,
    who: &authz::Principal,
    permission: &str,
    at: Option<&str>,
    snap: &authz::Snapshot,
) -> RuleVerdict {
    let names = |v: &[String]| v.iter().any(|m| who.is(m));
    let covers = |v: &[String]| {
        v.iter()
            .any(|p| authz::deny::permission_matches(p, permission))
    };
    let holds = r.condition.is_none() || at.is_some_and(|a| r.holds(snap.node_tags(a)));
    RuleVerdict {
        denied_principal: names(&r.denied_principals),
        exception_principal: names(&r.exception_principals),
        denied_permission: covers(&r.denied_permissions),
        exception_permission: covers(&r.exception_permissions),
        condition: r
            .condition
            .as_ref()
            .map(|c| (c.expression().to_string(), holds)),
        denies: holds && r.names_principal(|m| who.is(m)) && r.names_permission(permission),
    }
}

/// Whether a change can alter the compiled deny rules (tags and the hierarchy do not: a
/// condition is evaluated at check time over the snapshot's effective tags).
pub(crate) fn affects_deny(c: &Change) -> bool {
    matches!(c, Change::DenyPolicy(..))
}

/// The finished operation a create, update or delete answers with, as Google's: the policy
/// as its response, `PolicyOperationMetadata` as its metadata.
fn operation(p: &Policy) -> Result<Operation> {
    let mut op = crate::base::operation::done_operation("dp", p)?;
    let mut meta = PolicyOperationMetadata::new();
    meta.create_time = Some(crate::base::time::now());
    op.metadata = Some(Any::from_msg(&meta).map_err(|e| Error::internal(e.to_string()))?);
    Ok(op)
}

impl Control {
    /// The node of an attachment point (`cloudresourcemanager.googleapis.com/projects/P`,
    /// URL-encoded or not), with `iam.denypolicies.VERB` checked on it.
    fn attachment_node(&self, caller: &Caller, encoded: &str, verb: &str) -> Result<Node> {
        let decoded = attachment(encoded);
        let node_name = decoded.strip_prefix(HOST).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid attachment point '{decoded}': deny policies attach to organizations, folders and projects, e.g. cloudresourcemanager.googleapis.com/projects/my-project."
            ))
        })?;
        self.service_node(
            caller,
            node_name,
            &format!("iam.denypolicies.{verb}"),
            SERVICE,
        )
    }

    /// `policies/{attachment}/denypolicies/{id}` → (canonical name, node).
    fn deny_policy_at(&self, caller: &Caller, name: &str, verb: &str) -> Result<(String, Node)> {
        let (parent, id) = name
            .strip_prefix("policies/")
            .and_then(|r| r.split_once("/denypolicies/"))
            .filter(|(_, id)| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| Error::invalid(format!("Invalid policy name '{name}'.")))?;
        let node = self.attachment_node(caller, parent, verb)?;
        Ok((policy_name(&node.name, id), node))
    }

    fn stored_deny_policy(&self, canonical: &str, shown: &str) -> Result<Policy> {
        self.read()
            .deny_policies
            .get(canonical)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Policy {shown} not found.")))
    }

    /// `policies.createPolicy`.
    pub fn create_deny_policy(
        &self,
        caller: &Caller,
        parent: &str,
        id: &str,
        mut policy: Policy,
    ) -> Result<Operation> {
        let (parent_enc, kind) = parent
            .strip_prefix("policies/")
            .and_then(|r| r.rsplit_once('/'))
            .ok_or_else(|| Error::invalid(format!("Invalid parent '{parent}'.")))?;
        if kind != "denypolicies" {
            return Err(Error::invalid(format!(
                "Unsupported policy kind '{kind}': Runpool serves denypolicies."
            )));
        }
        if !valid_id(id) {
            return Err(Error::invalid(format!(
                "Invalid policy_id '{id}': 3 to 63 characters, a lowercase letter first, then lowercase letters, digits, '.' and '-'."
            )));
        }
        let node = self.attachment_node(caller, parent_enc, "create")?;
        validate(&policy, self.snapshot().catalog())?;
        let name = policy_name(&node.name, id);
        self.write(|st| {
            if st.deny_policies.contains_key(&name) {
                return Err(Error::already_exists(format!(
                    "Policy {name} already exists."
                )));
            }
            let prefix = format!("{}/", name.rsplit_once('/').map(|(p, _)| p).unwrap_or(""));
            let rules: usize = st
                .deny_policies
                .range(prefix.clone()..)
                .take_while(|(n, _)| n.starts_with(&prefix))
                .map(|(_, p)| p.rules.len())
                .sum();
            if rules + policy.rules.len() > MAX_RULES {
                return Err(Error::failed_precondition(format!(
                    "An attachment point may hold at most {MAX_RULES} deny rules in all."
                )));
            }
            let now = crate::base::time::now();
            policy.name = name.clone();
            policy.uid = crate::base::ids::uuid4();
            policy.kind = "DenyPolicy".to_string();
            policy.etag = crate::base::ids::etag("W/\"", "\"");
            policy.create_time = Some(now);
            policy.update_time = Some(now);
            policy.delete_time = None;
            Ok((
                vec![Change::DenyPolicy(name.clone(), Some(policy.clone()))],
                policy.clone(),
            ))
        })
        .and_then(|p| operation(&p))
    }

    /// `policies.get`.
    pub fn get_deny_policy(&self, caller: &Caller, name: &str) -> Result<Policy> {
        let (canonical, _) = self.deny_policy_at(caller, name, "get")?;
        self.stored_deny_policy(&canonical, name)
    }

    /// `policies.listPolicies` (every deny policy of an attachment point, rules left out as
    /// Google leaves them out of lists).
    pub fn list_deny_policies(&self, caller: &Caller, parent: &str) -> Result<Vec<Policy>> {
        let (parent_enc, _) = parent
            .strip_prefix("policies/")
            .and_then(|r| r.rsplit_once('/'))
            .filter(|(_, k)| *k == "denypolicies")
            .ok_or_else(|| Error::invalid(format!("Invalid parent '{parent}'.")))?;
        let node = self.attachment_node(caller, parent_enc, "list")?;
        let prefix = policy_name(&node.name, "");
        Ok(self
            .read()
            .deny_policies
            .range(prefix.clone()..)
            .take_while(|(n, _)| n.starts_with(&prefix))
            .map(|(_, p)| {
                let mut p = p.clone();
                p.rules.clear();
                p
            })
            .collect())
    }

    /// `policies.updatePolicy`: the whole policy replaced; a stale etag is 409 `ABORTED`.
    pub fn update_deny_policy(&self, caller: &Caller, mut policy: Policy) -> Result<Operation> {
        let shown = policy.name.clone();
        let (canonical, _) = self.deny_policy_at(caller, &shown, "update")?;
        validate(&policy, self.snapshot().catalog())?;
        self.write(|st| {
            let current = st
                .deny_policies
                .get(&canonical)
                .ok_or_else(|| Error::not_found(format!("Policy {shown} not found.")))?;
            if !policy.etag.is_empty() && policy.etag != current.etag {
                return Err(Error::new(
                    Code::Aborted,
                    "The etag in the request does not match the policy's current etag.",
                ));
            }
            policy.name = canonical.clone();
            policy.uid = current.uid.clone();
            policy.kind = current.kind.clone();
            policy.create_time = current.create_time;
            policy.update_time = Some(crate::base::time::now());
            policy.etag = crate::base::ids::etag("W/\"", "\"");
            Ok((
                vec![Change::DenyPolicy(canonical.clone(), Some(policy.clone()))],
                policy.clone(),
            ))
        })
        .and_then(|p| operation(&p))
    }

    /// `policies.deletePolicy` (an `etag`, when given, must be the current one).
    pub fn delete_deny_policy(&self, caller: &Caller, name: &str, etag: &str) -> Result<Operation> {
        let (canonical, _) = self.deny_policy_at(caller, name, "delete")?;
        self.write(|st| {
            let mut current = st
                .deny_policies
                .get(&canonical)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("Policy {name} not found.")))?;
            if !etag.is_empty() && etag != current.etag {
                return Err(Error::new(
                    Code::Aborted,
                    "The etag in the request does not match the policy's current etag.",
                ));
            }
            current.delete_time = Some(crate::base::time::now());
            Ok((vec![Change::DenyPolicy(canonical.clone(), None)], current))
        })
        .and_then(|p| operation(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_encode_the_attachment_point() {
        assert_eq!(
            policy_name("projects/123", "no-delete"),
            "policies/cloudresourcemanager.googleapis.com%2Fprojects%2F123/denypolicies/no-delete"
        );
        assert_eq!(
            attachment("cloudresourcemanager.googleapis.com%2Fprojects%2Fp"),
            "cloudresourcemanager.googleapis.com/projects/p"
        );
        assert!(valid_id("no-delete.v1"));
        assert!(!valid_id("No"));
        assert!(!valid_id("1abc"));
    }
}
