//! Organization Policy v2: the constraint catalog, policies on organizations, folders and
//! projects, and boolean evaluation down the hierarchy (nearest policy wins; `reset` restores
//! the constraint's default).
//!
//! Rules may carry a `condition` over the tags of the resource being evaluated
//! ([`runpool_authz::condition::tags`]): a conditional rule applies only where its condition is true
//! for that resource's effective tags (its own and its ancestors'). In a boolean policy, as
//! Google specifies, there is exactly one rule without a condition, conditional rules set
//! `enforce` to the opposite of it, and a conditional rule that holds takes precedence.

use crate::base::error::{Error, Result};
use crate::base::hierarchy::Node;
use crate::base::state::{Change, State};
use crate::{Caller, Control, Target};
use google_cloud_orgpolicy_v2::model::{
    Constraint, Policy, PolicySpec, constraint, policy_spec::PolicyRule, policy_spec::policy_rule,
};
use runpool_authz::Tag;
use runpool_authz::condition::tags::TagCondition;

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

/// Whether a rule applies to a resource with these effective tags: no condition, or one
/// that holds. A stored condition that no longer parses (conditions are checked when
/// written) applies nowhere.
fn rule_applies(state: &State, rule: &PolicyRule, tags: &[Tag]) -> bool {
    match &rule.condition {
        None => true,
        // Stored rules were parsed as they were stored; a spec not (yet) stored is parsed here.
        Some(c) => match state.org_conditions.get(&c.expression) {
            Some(parsed) => parsed.eval(tags),
            None => TagCondition::parse(&c.expression).is_ok_and(|c| c.eval(tags)),
        },
    }
}

/// What a (non-reset) boolean spec decides for a resource: a conditional rule that holds
/// wins, else the unconditional rule. `None` when the spec has no rule to decide with.
fn boolean_decision(
    state: &State,
    spec: &PolicySpec,
    tags: &mut dyn FnMut() -> Vec<Tag>,
) -> Option<bool> {
    let enforce = |r: &PolicyRule| match r.kind {
        Some(policy_rule::Kind::Enforce(e)) => Some(e),
        _ => None,
    };
    if spec.rules.iter().any(|r| r.condition.is_some()) {
        let tags = tags();
        if let Some(e) = spec
            .rules
            .iter()
            .filter(|r| r.condition.is_some() && rule_applies(state, r, &tags))
            .find_map(enforce)
        {
            return Some(e);
        }
    }
    spec.rules
        .iter()
        .filter(|r| r.condition.is_none())
        .find_map(enforce)
}

/// Whether a (non-reset) boolean spec enforces its constraint on a resource whose effective
/// tags are those of `tags_of` (for a project being created: its parent's, since a resource
/// cannot carry tags of its own before it exists).
pub(crate) fn spec_enforces(state: &State, spec: &PolicySpec, tags_of: &str) -> bool {
    boolean_decision(state, spec, &mut || state.resource_tags(tags_of)).unwrap_or(false)
}

/// The rules of a list policy that apply to `resource`, conditions evaluated over its tags.
pub fn applicable_rules(state: &State, spec: &PolicySpec, resource: &str) -> Vec<PolicyRule> {
    let tags = if spec.rules.iter().any(|r| r.condition.is_some()) {
        state.resource_tags(resource)
    } else {
        vec![]
    };
    spec.rules
        .iter()
        .filter(|r| rule_applies(state, r, &tags))
        .cloned()
        .collect()
}

/// Evaluate a boolean constraint at `resource` (canonical name) down the hierarchy: the
/// nearest policy decides, its conditions evaluated over `resource`'s effective tags.
pub fn enforced_in(state: &State, resource: &str, short: &str) -> bool {
    let Some(k) = known(short) else { return false };
    let mut tags: Option<Vec<Tag>> = None;
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
            let mut lazy = || {
                tags.get_or_insert_with(|| state.resource_tags(resource))
                    .clone()
            };
            if let Some(e) = boolean_decision(state, spec, &mut lazy) {
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

    /// `getEffectivePolicy`: the merged result for this resource, conditions evaluated over
    /// its effective tags, without etag or conditions.
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
            let mut rules = found
                .map(|s| applicable_rules(&st, &s, &node.name))
                .unwrap_or_default();
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
    pub(crate) fn validate(short: &str, p: &Policy) -> Result<()> {
        let k = known(short).ok_or_else(|| {
            Error::not_found(format!("Constraint 'constraints/{short}' was not found."))
        })?;
        for spec in p.spec.iter().chain(p.dry_run_spec.iter()) {
            for (i, r) in spec.rules.iter().enumerate() {
                if let Some(c) = &r.condition {
                    TagCondition::parse(&c.expression).map_err(|e| {
                        Error::invalid(format!(
                            "Invalid condition in rule {} of the policy for constraints/{short}: {e}. Expression: \"{}\". A condition is 1 to 10 subexpressions resource.matchTag('ORGANIZATION_ID/KEY', 'VALUE'), resource.matchTagId('tagKeys/ID', 'tagValues/ID'), resource.hasTagKey('ORGANIZATION_ID/KEY') or resource.hasTagKeyId('tagKeys/ID'), joined by && or ||.",
                            i + 1,
                            c.expression
                        ))
                    })?;
                }
            }
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
                let base = spec
                    .rules
                    .iter()
                    .find(|r| r.condition.is_none())
                    .and_then(|r| match r.kind {
                        Some(policy_rule::Kind::Enforce(e)) => Some(e),
                        _ => None,
                    });
                let same = spec.rules.iter().any(|r| {
                    r.condition.is_some()
                        && matches!(r.kind, Some(policy_rule::Kind::Enforce(e)) if Some(e) == base)
                });
                if same {
                    return Err(Error::invalid(format!(
                        "Conditional rules of a boolean policy must set enforce to the opposite of the rule without a condition (enforce: {}).",
                        !base.unwrap_or(false)
                    )));
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
        p.etag = crate::base::ids::etag("CO", "");
        for spec in p.spec.iter_mut().chain(p.dry_run_spec.iter_mut()) {
            spec.etag = crate::base::ids::etag("CO", "");
            spec.update_time = Some(crate::base::time::now());
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

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_resourcemanager_v3::model::{
        Folder, Organization, Project, TagBinding, TagKey, TagValue,
    };
    use google_cloud_type::model::Expr;

    const C: &str = "iam.disableCrossProjectServiceAccountUsage";

    /// organizations/1 → folders/2 → projects/3 (tagged-proj), organizations/1 → projects/4
    /// (plain-proj); tag key `1/env` with values dev (tagValues/11) and prod (tagValues/12).
    fn state() -> State {
        let mut st = State::default();
        let mut o = Organization::new();
        o.name = "organizations/1".into();
        st.apply(Change::Organization(o));
        let mut f = Folder::new();
        f.name = "folders/2".into();
        f.parent = "organizations/1".into();
        st.apply(Change::Folder(f));
        for (n, id, parent) in [
            ("projects/3", "tagged-proj", "folders/2"),
            ("projects/4", "plain-proj", "organizations/1"),
        ] {
            let mut p = Project::new();
            p.name = n.into();
            p.project_id = id.into();
            p.parent = parent.into();
            st.apply(Change::Project(p));
        }
        let mut k = TagKey::new();
        k.name = "tagKeys/10".into();
        k.parent = "organizations/1".into();
        k.short_name = "env".into();
        k.namespaced_name = "1/env".into();
        st.apply(Change::TagKey(k.name.clone(), Some(k)));
        for (id, short) in [("tagValues/11", "dev"), ("tagValues/12", "prod")] {
            let mut v = TagValue::new();
            v.name = id.into();
            v.parent = "tagKeys/10".into();
            v.short_name = short.into();
            v.namespaced_name = format!("1/env/{short}");
            st.apply(Change::TagValue(id.into(), Some(v)));
        }
        st
    }

    fn bind(st: &mut State, node: &str, value: &str) {
        let parent = format!("{}{node}", crate::resourcemanager::tags::FULL_NAME_PREFIX);
        let mut b = TagBinding::new();
        b.name = crate::resourcemanager::tags::binding_name(&parent, value);
        b.parent = parent;
        b.tag_value = value.into();
        st.apply(Change::TagBinding(b.name.clone(), Some(b)));
    }

    fn rule(enforce: bool, condition: Option<&str>) -> PolicyRule {
        rule_of(policy_rule::Kind::Enforce(enforce), condition)
    }

    fn rule_of(kind: policy_rule::Kind, condition: Option<&str>) -> PolicyRule {
        let mut r = PolicyRule::new();
        r.kind = Some(kind);
        r.condition = condition.map(|c| {
            let mut e = Expr::new();
            e.expression = c.into();
            e
        });
        r
    }

    fn policy(name: &str, rules: Vec<PolicyRule>) -> Policy {
        let mut spec = PolicySpec::new();
        spec.rules = rules;
        let mut p = Policy::new();
        p.name = name.into();
        p.spec = Some(spec);
        p
    }

    fn set(st: &mut State, node: &str, rules: Vec<PolicyRule>) {
        let p = policy(&format!("{node}/policies/{C}"), rules);
        Control::validate(C, &p).expect("valid policy");
        st.apply(Change::OrgPolicy(node.into(), C.into(), Some(p)));
    }

    const DEV: &str = "resource.matchTag('1/env', 'dev')";

    /// [`state`] with the policy on the organization: enforced, except where env is dev.
    fn dev_exempt_at_org() -> State {
        let mut st = state();
        set(
            &mut st,
            "organizations/1",
            vec![rule(true, None), rule(false, Some(DEV))],
        );
        st
    }

    #[test]
    fn a_conditional_rule_applies_only_where_its_tag_is() {
        let mut st = dev_exempt_at_org();
        bind(&mut st, "projects/4", "tagValues/11");
        assert!(!enforced_in(&st, "projects/4", C), "tagged env=dev");
        assert!(enforced_in(&st, "projects/3", C), "untagged");
        assert!(enforced_in(&st, "organizations/1", C), "the org itself");
    }

    #[test]
    fn tags_are_inherited_and_a_lower_binding_overrides_the_same_key() {
        let mut st = dev_exempt_at_org();
        bind(&mut st, "folders/2", "tagValues/11");
        assert!(
            !enforced_in(&st, "projects/3", C),
            "dev inherited from the folder"
        );
        assert!(!enforced_in(&st, "folders/2", C));
        bind(&mut st, "projects/3", "tagValues/12");
        assert!(
            enforced_in(&st, "projects/3", C),
            "prod on the project wins"
        );
        let tags = st.effective_tags("projects/3");
        assert_eq!(tags.len(), 1);
        assert_eq!((tags[0].1.short_name.as_str(), tags[0].2), ("prod", false));
    }

    #[test]
    fn conditions_are_evaluated_for_the_resource_not_where_the_policy_sits() {
        // The policy is on the folder; the tag on the project below it.
        let mut st = state();
        set(
            &mut st,
            "folders/2",
            vec![rule(false, None), rule(true, Some(DEV))],
        );
        assert!(!enforced_in(&st, "projects/3", C));
        bind(&mut st, "projects/3", "tagValues/11");
        assert!(enforced_in(&st, "projects/3", C));
        assert!(
            !enforced_in(&st, "folders/2", C),
            "the folder is not tagged"
        );
        // matchTagId and hasTagKey forms.
        set(
            &mut st,
            "folders/2",
            vec![
                rule(false, None),
                rule(
                    true,
                    Some("resource.matchTagId('tagKeys/10', 'tagValues/11')"),
                ),
            ],
        );
        assert!(enforced_in(&st, "projects/3", C));
        set(
            &mut st,
            "folders/2",
            vec![
                rule(false, None),
                rule(true, Some("!resource.hasTagKey('1/env')")),
            ],
        );
        assert!(!enforced_in(&st, "projects/3", C));
        assert!(enforced_in(&st, "folders/2", C));
    }

    #[test]
    fn validation_refuses_bad_conditions_and_same_direction_rules() {
        let policy = |rules: Vec<PolicyRule>| Control::validate(C, &policy("", rules));
        let e = policy(vec![
            rule(true, None),
            rule(false, Some("resource.matchTag('env')")),
        ])
        .unwrap_err();
        assert!(
            e.message.starts_with("Invalid condition in rule 2"),
            "{}",
            e.message
        );
        let e = policy(vec![rule(true, None), rule(true, Some(DEV))]).unwrap_err();
        assert!(e.message.contains("opposite"), "{}", e.message);
        let e = policy(vec![rule(false, Some(DEV))]).unwrap_err();
        assert!(e.message.contains("exactly one rule without a condition"));
        assert!(policy(vec![rule(true, None), rule(false, Some(DEV))]).is_ok());
    }

    #[test]
    fn list_rules_keep_only_those_whose_condition_holds() {
        let mut st = state();
        bind(&mut st, "projects/4", "tagValues/11");
        let mut spec = PolicySpec::new();
        spec.rules = vec![
            rule_of(policy_rule::Kind::DenyAll(true), None),
            rule_of(policy_rule::Kind::AllowAll(true), Some(DEV)),
        ];
        assert_eq!(applicable_rules(&st, &spec, "projects/4").len(), 2);
        assert_eq!(applicable_rules(&st, &spec, "projects/3").len(), 1);
    }

    #[test]
    fn stored_conditions_are_parsed_once_and_forgotten_with_their_policy() {
        let mut st = dev_exempt_at_org();
        let parsed = st
            .org_conditions
            .get(DEV)
            .cloned()
            .expect("parsed as stored");
        set(
            &mut st,
            "folders/2",
            vec![rule(true, None), rule(false, Some(DEV))],
        );
        assert!(
            std::sync::Arc::ptr_eq(&parsed, &st.org_conditions[DEV]),
            "the same expression is not parsed again"
        );
        st.apply(Change::OrgPolicy("organizations/1".into(), C.into(), None));
        st.apply(Change::OrgPolicy("folders/2".into(), C.into(), None));
        assert!(
            st.org_conditions.is_empty(),
            "{:?}",
            st.org_conditions.keys()
        );
    }
}
