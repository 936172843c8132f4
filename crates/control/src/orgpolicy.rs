//! Organization Policy v2: the constraint catalog, policies on organizations, folders and
//! projects, and boolean evaluation down the hierarchy (nearest policy wins; `reset` restores
//! the constraint's default).

use crate::error::{Error, Result};
use crate::resourcemanager::Node;
use crate::state::{Change, State};
use crate::{Caller, Control, Target};
use google_cloud_orgpolicy_v2::model::{
    Constraint, Policy, PolicySpec, constraint, policy_spec::PolicyRule, policy_spec::policy_rule,
};

pub const SERVICE: &str = "orgpolicy.googleapis.com";

/// A constraint Runpool knows: (short name, display name, description, default enforced,
/// boolean).
struct Known {
    name: &'static str,
    display: &'static str,
    description: &'static str,
    enforced_by_default: bool,
    boolean: bool,
}

const CATALOG: &[Known] = &[
    Known {
        name: "iam.disableCrossProjectServiceAccountUsage",
        display: "Disable Cross-Project Service Account Usage",
        description: "When enforced, service accounts can only be deployed (using ServiceAccountUser role) to jobs (VMs, functions, etc) running in the same project as the service account.",
        enforced_by_default: true,
        boolean: true,
    },
    Known {
        name: "iam.automaticIamGrantsForDefaultServiceAccounts",
        display: "Disable Automatic IAM Grants for Default Service Accounts",
        description: "This boolean constraint, when enforced, prevents the default App Engine and Compute Engine service accounts that are created in your projects from being automatically granted any IAM role on the project when the accounts are created.",
        enforced_by_default: false,
        boolean: true,
    },
    Known {
        name: "iam.disableServiceAccountKeyCreation",
        display: "Disable service account key creation",
        description: "This boolean constraint, when set to 'True', disables the creation of service account external keys.",
        enforced_by_default: false,
        boolean: true,
    },
    Known {
        name: "iam.disableServiceAccountCreation",
        display: "Disable service account creation",
        description: "This boolean constraint disables the creation of service accounts where this constraint is set to `True`.",
        enforced_by_default: false,
        boolean: true,
    },
    Known {
        name: "iam.allowServiceAccountCredentialLifetimeExtension",
        display: "Allow extending lifetime of OAuth 2.0 access tokens to up to 12 hours",
        description: "This list constraint defines the set of service accounts that can be granted OAuth 2.0 access tokens with a lifetime of up to 12 hours.",
        enforced_by_default: false,
        boolean: false,
    },
    Known {
        name: "iam.allowedPolicyMemberDomains",
        display: "Domain restricted sharing",
        description: "This list constraint defines one or more Cloud Identity or Google Workspace customer IDs whose principals can be added to IAM policies.",
        enforced_by_default: false,
        boolean: false,
    },
];

fn known(short: &str) -> Option<&'static Known> {
    CATALOG.iter().find(|k| k.name == short)
}

/// The wire `Constraint` for a short name, as listed under `parent`.
pub fn constraint(short: &str) -> Option<Constraint> {
    let k = known(short)?;
    let mut c = Constraint::new();
    c.name = format!("constraints/{}", k.name);
    c.display_name = k.display.to_string();
    c.description = k.description.to_string();
    c.constraint_default = if k.enforced_by_default {
        constraint::ConstraintDefault::Deny
    } else {
        constraint::ConstraintDefault::Allow
    };
    c.supports_dry_run = true;
    c.constraint_type = Some(if k.boolean {
        constraint::ConstraintType::BooleanConstraint(Box::default())
    } else {
        let mut l = constraint::ListConstraint::new();
        l.supports_in = true;
        l.supports_under = true;
        constraint::ConstraintType::ListConstraint(Box::new(l))
    });
    Some(c)
}

pub(crate) fn new_etag() -> String {
    use rand::Rng;
    format!("CO{:x}", rand::rng().random::<u64>())
}

/// The `enforce` of a spec's unconditional rule. Conditional rules match on resource tags;
/// Runpool has no tags yet, so only the unconditional rule decides.
fn unconditional_enforce(spec: &PolicySpec) -> Option<bool> {
    spec.rules
        .iter()
        .filter(|r| r.condition.is_none())
        .find_map(|r| match r.kind {
            Some(policy_rule::Kind::Enforce(e)) => Some(e),
            _ => None,
        })
}

/// Whether a (non-reset) boolean spec enforces its constraint.
pub(crate) fn spec_enforces(spec: &PolicySpec) -> bool {
    unconditional_enforce(spec).unwrap_or(false)
}

/// Evaluate a boolean constraint at `resource` (canonical name) down the hierarchy.
pub fn enforced_in(state: &State, resource: &str, short: &str) -> bool {
    let Some(k) = known(short) else { return false };
    let mut cursor = Some(resource.to_string());
    while let Some(node) = cursor {
        if let Some(spec) = state
            .org_policies
            .get(&(node.clone(), short.to_string()))
            .and_then(|p| p.spec.as_ref())
        {
            if spec.reset {
                return k.enforced_by_default;
            }
            // Conditional rules match on resource tags; Runpool has no tags yet, so only the
            // unconditional rule decides.
            if let Some(e) = spec
                .rules
                .iter()
                .filter(|r| r.condition.is_none())
                .find_map(|r| match r.kind {
                    Some(policy_rule::Kind::Enforce(e)) => Some(e),
                    _ => None,
                })
            {
                return e;
            }
        }
        cursor = state.parent_of(&node).map(str::to_string);
    }
    k.enforced_by_default
}

fn etag_mismatch() -> Error {
    Error::new(
        crate::Code::Aborted,
        "The etag provided does not match the current etag of the policy; re-read the policy and retry.",
    )
}

/// A read-modify-write is stale when the policy's etag, or the etag of a spec it sends, is
/// not the current one (`PolicySpec.etag` guards the spec alone).
fn stale(sent: &Policy, current: &Policy) -> bool {
    let spec_stale = |s: &Option<PolicySpec>, c: &Option<PolicySpec>| match (s, c) {
        (Some(s), Some(c)) => !s.etag.is_empty() && s.etag != c.etag,
        (Some(s), None) => !s.etag.is_empty(),
        _ => false,
    };
    (!sent.etag.is_empty() && sent.etag != current.etag)
        || spec_stale(&sent.spec, &current.spec)
        || spec_stale(&sent.dry_run_spec, &current.dry_run_spec)
}

/// Split `projects/x/policies/c` into parent and constraint short name.
fn split_policy_name(name: &str) -> Result<(&str, &str)> {
    let (parent, c) = name
        .rsplit_once("/policies/")
        .ok_or_else(|| Error::invalid(format!("Invalid policy name '{name}'.")))?;
    Ok((parent, c.trim_start_matches("constraints/")))
}

impl Control {
    fn policy_parent(&self, caller: &Caller, parent: &str, permission: &str) -> Result<Node> {
        let node = self.node(parent, permission)?;
        let target = Target {
            service: SERVICE,
            ..node.target()
        };
        self.authorize(caller, permission, &target)?;
        Ok(node)
    }

    /// The constraints available at a node, named under it as Google names them
    /// (`projects/NUMBER/constraints/iam.…`).
    pub fn list_constraints(&self, caller: &Caller, parent: &str) -> Result<Vec<Constraint>> {
        let node = self.policy_parent(caller, parent, "orgpolicy.constraints.list")?;
        Ok(CATALOG
            .iter()
            .filter_map(|k| constraint(k.name))
            .map(|mut c| {
                c.name = format!("{}/{}", node.name, c.name);
                c
            })
            .collect())
    }

    pub fn list_org_policies(&self, caller: &Caller, parent: &str) -> Result<Vec<Policy>> {
        let node = self.policy_parent(caller, parent, "orgpolicy.policies.list")?;
        Ok(self
            .read()
            .org_policies
            .iter()
            .filter(|((r, _), _)| *r == node.name)
            .map(|(_, p)| p.clone())
            .collect())
    }

    pub fn get_org_policy(&self, caller: &Caller, name: &str) -> Result<Policy> {
        let (parent, short) = split_policy_name(name)?;
        let node = self.policy_parent(caller, parent, "orgpolicy.policy.get")?;
        self.read()
            .org_policies
            .get(&(node.name.clone(), short.to_string()))
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!("Requested entity was not found: policy '{name}'."))
            })
    }

    /// `getEffectivePolicy`: the merged result, without etag or conditions.
    pub fn effective_org_policy(&self, caller: &Caller, name: &str) -> Result<Policy> {
        let (parent, short) = split_policy_name(name)?;
        let node = self.policy_parent(caller, parent, "orgpolicy.policy.get")?;
        let k = known(short).ok_or_else(|| {
            Error::not_found(format!("Constraint 'constraints/{short}' was not found."))
        })?;
        let mut spec = PolicySpec::new();
        if k.boolean {
            let mut rule = PolicyRule::new();
            rule.kind = Some(policy_rule::Kind::Enforce(enforced_in(
                &self.read(),
                &node.name,
                short,
            )));
            spec.rules.push(rule);
        } else {
            let st = self.read();
            let mut cursor = Some(node.name.clone());
            let mut found = None;
            while let Some(n) = cursor {
                if let Some(s) = st
                    .org_policies
                    .get(&(n.clone(), short.to_string()))
                    .and_then(|p| p.spec.clone())
                {
                    found = Some(s);
                    break;
                }
                cursor = st.parent_of(&n).map(str::to_string);
            }
            let mut rules = found.map(|s| s.rules).unwrap_or_default();
            if rules.is_empty() {
                let mut rule = PolicyRule::new();
                rule.kind = Some(policy_rule::Kind::AllowAll(true));
                rules.push(rule);
            }
            for r in &mut rules {
                r.condition = None;
            }
            spec.rules = rules;
        }
        let mut p = Policy::new();
        p.name = format!("{}/policies/{short}", node.name);
        p.spec = Some(spec);
        Ok(p)
    }

    /// Check a policy's spec against its constraint, as the API does on create and update.
    fn validate(short: &str, p: &Policy) -> Result<()> {
        let k = known(short).ok_or_else(|| {
            Error::not_found(format!("Constraint 'constraints/{short}' was not found."))
        })?;
        for spec in p.spec.iter().chain(p.dry_run_spec.iter()) {
            if spec.reset && (!spec.rules.is_empty() || spec.inherit_from_parent) {
                return Err(Error::invalid(
                    "A policy with reset set must have no rules and inherit_from_parent false.",
                ));
            }
            if k.boolean {
                if spec.inherit_from_parent {
                    return Err(Error::invalid(
                        "inherit_from_parent can only be set for list constraints.",
                    ));
                }
                for r in &spec.rules {
                    if !matches!(r.kind, Some(policy_rule::Kind::Enforce(_))) {
                        return Err(Error::invalid(format!(
                            "Rules of boolean constraint 'constraints/{short}' must set enforce."
                        )));
                    }
                }
                let unconditional = spec.rules.iter().filter(|r| r.condition.is_none()).count();
                if !spec.rules.is_empty() && unconditional != 1 {
                    return Err(Error::invalid(
                        "A boolean policy must have exactly one rule without a condition.",
                    ));
                }
            } else if spec
                .rules
                .iter()
                .any(|r| matches!(r.kind, Some(policy_rule::Kind::Enforce(_))))
            {
                return Err(Error::invalid(format!(
                    "enforce can only be set for boolean constraints, not 'constraints/{short}'."
                )));
            }
        }
        Ok(())
    }

    fn stamp(node: &Node, short: &str, mut p: Policy) -> Policy {
        p.name = format!("{}/policies/{short}", node.name);
        p.etag = new_etag();
        for spec in p.spec.iter_mut().chain(p.dry_run_spec.iter_mut()) {
            spec.etag = new_etag();
            spec.update_time = Some(crate::resourcemanager::now());
        }
        p
    }

    pub fn create_org_policy(
        &self,
        caller: &Caller,
        parent: &str,
        policy: Policy,
    ) -> Result<Policy> {
        let (pparent, short) = split_policy_name(&policy.name)?;
        let node = self.policy_parent(caller, parent, "orgpolicy.policies.create")?;
        let named = self.read().resolve(pparent).map(|n| n.name);
        if named.as_deref() != Some(&node.name) {
            return Err(Error::invalid(format!(
                "Policy name '{}' is not under parent '{parent}'.",
                policy.name
            )));
        }
        Self::validate(short, &policy)?;
        let short = short.to_string();
        self.write(|st| {
            if st
                .org_policies
                .contains_key(&(node.name.clone(), short.clone()))
            {
                return Err(Error::already_exists(format!(
                    "Policy already exists: '{}/policies/{short}'.",
                    node.name
                )));
            }
            let p = Self::stamp(&node, &short, policy);
            Ok((
                vec![Change::OrgPolicy(node.name.clone(), short, Some(p.clone()))],
                p,
            ))
        })
    }

    /// `PATCH`: a full overwrite, guarded by the etag when one is given.
    pub fn update_org_policy(
        &self,
        caller: &Caller,
        policy: Policy,
        allow_missing: bool,
    ) -> Result<Policy> {
        let (parent, short) = split_policy_name(&policy.name)?;
        let node = self.policy_parent(caller, parent, "orgpolicy.policies.update")?;
        Self::validate(short, &policy)?;
        let short = short.to_string();
        self.write(|st| {
            let key = (node.name.clone(), short.clone());
            match st.org_policies.get(&key) {
                None if !allow_missing => {
                    return Err(Error::not_found(format!(
                        "Requested entity was not found: policy '{}'.",
                        policy.name
                    )));
                }
                Some(cur) if stale(&policy, cur) => return Err(etag_mismatch()),
                _ => {}
            }
            let p = Self::stamp(&node, &short, policy);
            Ok((
                vec![Change::OrgPolicy(node.name.clone(), short, Some(p.clone()))],
                p,
            ))
        })
    }

    pub fn delete_org_policy(&self, caller: &Caller, name: &str, etag: &str) -> Result<()> {
        let (parent, short) = split_policy_name(name)?;
        let node = self.policy_parent(caller, parent, "orgpolicy.policies.delete")?;
        let short = short.to_string();
        self.write(|st| {
            let key = (node.name.clone(), short.clone());
            let cur = st.org_policies.get(&key).ok_or_else(|| {
                Error::not_found(format!("Requested entity was not found: policy '{name}'."))
            })?;
            if !etag.is_empty() && etag != cur.etag {
                return Err(etag_mismatch());
            }
            Ok((vec![Change::OrgPolicy(node.name.clone(), short, None)], ()))
        })
    }

    /// Whether a boolean constraint is enforced at a node (canonical or caller-given name).
    pub fn is_enforced(&self, resource: &str, short: &str) -> bool {
        let st = self.read();
        let name = st
            .resolve(resource)
            .map(|n| n.name)
            .unwrap_or_else(|| resource.to_string());
        enforced_in(&st, &name, short)
    }
}
