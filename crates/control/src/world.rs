//! The world a fresh server starts with: the embedded default (one organization, one
//! project, an admin) or one declared in a YAML file (`serve --world FILE`).
//!
//! ```yaml
//! organizations:
//!   - domain: example.com
//!     iam: [{role: roles/owner, members: [user:admin@example.com]}]
//!     orgPolicies: [{constraint: iam.disableCrossProjectServiceAccountUsage, enforce: false}]
//!     # Tag keys and their values (Resource Manager v3 tags), owned by the organization.
//!     tagKeys:
//!       - shortName: env
//!         values: [{shortName: dev}, {shortName: prod}]
//!     folders:
//!       - displayName: eng
//!         # Tag bindings: KEY/VALUE of this organization, or namespaced ORG_ID/KEY/VALUE.
//!         tags: [env/dev]
//!         folders: [{displayName: team-a, projects: [{projectId: a-prod}]}]
//!     projects:
//!       - projectId: demo-project
//!         orgPolicies:
//!           # `enforce` is the rule without a condition; `rules` add conditional ones
//!           # (Org Policy v2 conditions over the evaluated resource's tags).
//!           - constraint: iam.disableCrossProjectServiceAccountUsage
//!             enforce: true
//!             rules:
//!               - condition: "resource.matchTag('123456789012/env', 'dev')"
//!                 enforce: false
//! groups:
//!   - email: devs@example.com
//!     members: [user:alice@example.com, group:leads@example.com]
//! ```

use crate::base::error::{Error, Result};
use crate::base::state::{Change, State};
use crate::{Control, resourcemanager as rm};
use google_cloud_iam_v1::model::{Binding, Policy};
use google_cloud_orgpolicy_v2::model::{Policy as OrgPolicy, PolicySpec, policy_spec};
use google_cloud_resourcemanager_v3::model::{
    Folder, Organization, Project, TagBinding, TagKey, TagValue, folder, organization, project,
};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct World {
    #[serde(default)]
    pub organizations: Vec<OrgSpec>,
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgSpec {
    pub domain: String,
    /// Numeric id; generated when absent.
    pub id: Option<String>,
    #[serde(default)]
    pub iam: Vec<BindingSpec>,
    #[serde(default)]
    pub org_policies: Vec<OrgPolicySpec>,
    #[serde(default)]
    pub tag_keys: Vec<TagKeySpec>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub folders: Vec<FolderSpec>,
    #[serde(default)]
    pub projects: Vec<ProjectSpec>,
}

/// A tag key of an organization, with its values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagKeySpec {
    pub short_name: String,
    /// Numeric id (`tagKeys/ID`); generated when absent.
    pub id: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub values: Vec<TagValueSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagValueSpec {
    pub short_name: String,
    /// Numeric id (`tagValues/ID`); generated when absent.
    pub id: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FolderSpec {
    pub display_name: String,
    pub id: Option<String>,
    #[serde(default)]
    pub iam: Vec<BindingSpec>,
    #[serde(default)]
    pub org_policies: Vec<OrgPolicySpec>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub folders: Vec<FolderSpec>,
    #[serde(default)]
    pub projects: Vec<ProjectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectSpec {
    pub project_id: String,
    /// Project number; generated when absent.
    pub number: Option<String>,
    pub display_name: Option<String>,
    #[serde(default)]
    pub iam: Vec<BindingSpec>,
    #[serde(default)]
    pub org_policies: Vec<OrgPolicySpec>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingSpec {
    pub role: String,
    pub members: Vec<String>,
    pub condition: Option<ConditionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionSpec {
    pub expression: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
}

/// A boolean org policy: `enforce: true|false` (the rule without a condition) and
/// conditional `rules`, or `reset: true`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgPolicySpec {
    pub constraint: String,
    pub enforce: Option<bool>,
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub rules: Vec<OrgPolicyRuleSpec>,
}

/// A conditional rule: `enforce` where `condition` (over resource tags) holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgPolicyRuleSpec {
    pub condition: String,
    pub enforce: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupSpec {
    pub email: String,
    #[serde(default)]
    pub members: Vec<String>,
}

impl World {
    /// What a fresh `runpool serve` holds with no `--world`.
    pub fn default_world() -> World {
        serde_yaml_ng::from_str(DEFAULT_WORLD).expect("the embedded world parses")
    }

    pub fn from_yaml(text: &str) -> Result<World> {
        crate::base::yaml::from_str(text)
            .map_err(|e| Error::invalid(format!("Invalid world file: {e}")))
    }
}

const DEFAULT_WORLD: &str = "
organizations:
  - domain: example.com
    iam:
      - role: roles/owner
        members: [user:admin@example.com]
      # What Google grants a new organization's super admin and domain, so the admin can build
      # the hierarchy (owner alone cannot create folders or projects, nor set org policies).
      - role: roles/resourcemanager.organizationAdmin
        members: [user:admin@example.com]
      - role: roles/resourcemanager.folderAdmin
        members: [user:admin@example.com]
      - role: roles/orgpolicy.policyAdmin
        members: [user:admin@example.com]
      - role: roles/iam.denyAdmin
        members: [user:admin@example.com]
      - role: roles/resourcemanager.projectCreator
        members: [domain:example.com]
    projects:
      - projectId: demo-project
        displayName: Demo Project
";

/// An allow policy of declared bindings.
fn policy_of(specs: &[BindingSpec]) -> Policy {
    crate::base::allow::new_policy(specs.iter().map(BindingSpec::binding).collect())
}

impl BindingSpec {
    fn binding(&self) -> Binding {
        let mut b = Binding::new();
        b.role = self.role.clone();
        b.members = self.members.clone();
        b.condition = self.condition.as_ref().map(|c| {
            let mut e = google_cloud_type::model::Expr::new();
            e.expression = c.expression.clone();
            e.title = c.title.clone();
            e.description = c.description.clone();
            e
        });
        b
    }
}

/// Builds the changes for a declared world, against a state that grows as it goes so that
/// generated numbers stay unique.
struct Seeder {
    state: State,
    changes: Vec<Change>,
    /// The organization being seeded (`organizations/N`): short `KEY/VALUE` tags name its keys.
    org: String,
}

impl Seeder {
    fn push(&mut self, c: Change) {
        self.state.apply(c.clone());
        self.changes.push(c);
    }

    fn number(&self, given: &Option<String>) -> Result<String> {
        match given {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Ok(n.clone()),
            Some(n) => Err(Error::invalid(format!(
                "Invalid world file: id '{n}' must be numeric."
            ))),
            None => Ok(crate::base::ids::new_number(&self.state)),
        }
    }

    fn bindings(&mut self, resource: &str, specs: &[BindingSpec]) {
        if !specs.is_empty() {
            self.push(Change::IamPolicy(resource.to_string(), policy_of(specs)));
        }
    }

    fn org_policies(&mut self, resource: &str, specs: &[OrgPolicySpec]) -> Result<()> {
        for s in specs {
            let short = s.constraint.trim_start_matches("constraints/").to_string();
            if crate::resourcemanager::orgpolicy::constraint(&short).is_none() {
                return Err(Error::invalid(format!(
                    "Invalid world file: unknown constraint '{}'.",
                    s.constraint
                )));
            }
            let mut spec = PolicySpec::new();
            spec.reset = s.reset;
            if let Some(e) = s.enforce {
                let mut rule = policy_spec::PolicyRule::new();
                rule.kind = Some(policy_spec::policy_rule::Kind::Enforce(e));
                spec.rules.push(rule);
            }
            for r in &s.rules {
                let mut rule = policy_spec::PolicyRule::new();
                rule.kind = Some(policy_spec::policy_rule::Kind::Enforce(r.enforce));
                let mut expr = google_cloud_type::model::Expr::new();
                expr.expression = r.condition.clone();
                rule.condition = Some(expr);
                spec.rules.push(rule);
            }
            spec.etag = crate::base::ids::etag("CO", "");
            spec.update_time = Some(crate::base::time::now());
            let mut p = OrgPolicy::new();
            p.name = format!("{resource}/policies/{short}");
            p.spec = Some(spec);
            p.etag = crate::base::ids::etag("CO", "");
            Control::validate(&short, &p).map_err(|e| {
                Error::invalid(format!(
                    "Invalid world file: org policy {} on {resource}: {}",
                    s.constraint, e.message
                ))
            })?;
            self.push(Change::OrgPolicy(resource.to_string(), short, Some(p)));
        }
        Ok(())
    }

    fn project(&mut self, parent: &str, spec: &ProjectSpec) -> Result<()> {
        if !rm::valid_project_id(&spec.project_id)
            || self.state.project_ids.contains_key(&spec.project_id)
        {
            return Err(Error::invalid(format!(
                "Invalid world file: project id '{}' is invalid or declared twice.",
                spec.project_id
            )));
        }
        let mut p = Project::new();
        p.name = format!("projects/{}", self.number(&spec.number)?);
        p.project_id = spec.project_id.clone();
        p.parent = parent.to_string();
        p.display_name = spec
            .display_name
            .clone()
            .unwrap_or_else(|| spec.project_id.clone());
        p.state = project::State::Active;
        p.create_time = Some(crate::base::time::now());
        p.etag = "W/\"1\"".to_string();
        // The project's own org policies first: they decide the default account's grant.
        self.org_policies(&p.name, &spec.org_policies)?;
        for c in rm::project_changes(
            &self.state,
            &p,
            None,
            spec.iam.iter().map(BindingSpec::binding).collect(),
        ) {
            self.push(c);
        }
        for c in crate::serviceusage::world_services(&p) {
            self.push(c);
        }
        self.tags(&p.name, &spec.tags)
    }

    fn tag_id(&self, given: &Option<String>, collection: &str) -> Result<String> {
        match given {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let name = format!("{collection}/{n}");
                if self.state.tag_keys.contains_key(&name)
                    || self.state.tag_values.contains_key(&name)
                {
                    return Err(Error::invalid(format!(
                        "Invalid world file: {name} is declared twice."
                    )));
                }
                Ok(name)
            }
            Some(n) => Err(Error::invalid(format!(
                "Invalid world file: id '{n}' must be numeric."
            ))),
            None => Ok(format!(
                "{collection}/{}",
                crate::resourcemanager::tags::new_tag_id(&self.state)
            )),
        }
    }

    /// The organization's tag keys and their values.
    fn tag_keys(&mut self, org: &str, specs: &[TagKeySpec]) -> Result<()> {
        let ns = org.trim_start_matches("organizations/").to_string();
        for k in specs {
            let bad = |what: &str, name: &str| {
                Error::invalid(format!(
                    "Invalid world file: tag {what} short name '{name}' is invalid or declared twice."
                ))
            };
            if !runpool_authz::condition::tags::valid_short_name(&k.short_name)
                || self
                    .state
                    .tag_key_by_namespaced(&format!("{ns}/{}", k.short_name))
                    .is_some()
            {
                return Err(bad("key", &k.short_name));
            }
            let mut key = TagKey::new();
            key.name = self.tag_id(&k.id, "tagKeys")?;
            key.parent = org.to_string();
            key.short_name = k.short_name.clone();
            key.namespaced_name = format!("{ns}/{}", k.short_name);
            key.description = k.description.clone();
            key.create_time = Some(crate::base::time::now());
            key.update_time = key.create_time;
            key.etag = "T1".to_string();
            self.push(Change::TagKey(key.name.clone(), Some(key.clone())));
            for v in &k.values {
                if !runpool_authz::condition::tags::valid_short_name(&v.short_name)
                    || self
                        .state
                        .tag_value_by_namespaced(&format!(
                            "{}/{}",
                            key.namespaced_name, v.short_name
                        ))
                        .is_some()
                {
                    return Err(bad("value", &v.short_name));
                }
                let mut value = TagValue::new();
                value.name = self.tag_id(&v.id, "tagValues")?;
                value.parent = key.name.clone();
                value.short_name = v.short_name.clone();
                value.namespaced_name = format!("{}/{}", key.namespaced_name, v.short_name);
                value.description = v.description.clone();
                value.create_time = Some(crate::base::time::now());
                value.update_time = value.create_time;
                value.etag = "T1".to_string();
                self.push(Change::TagValue(value.name.clone(), Some(value)));
            }
        }
        Ok(())
    }

    /// Tag bindings on a node: `KEY/VALUE` of the organization being seeded, or a namespaced
    /// `ORG_ID/KEY/VALUE` (`tagValues/ID` too).
    fn tags(&mut self, node: &str, tags: &[String]) -> Result<()> {
        for t in tags {
            let ns = self.org.trim_start_matches("organizations/");
            let value = if t.starts_with("tagValues/") {
                self.state.tag_values.get(t)
            } else if t.split('/').count() == 2 {
                self.state.tag_value_by_namespaced(&format!("{ns}/{t}"))
            } else {
                self.state.tag_value_by_namespaced(t)
            }
            .cloned()
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid world file: tag '{t}' on {node} names no declared tag value."
                ))
            })?;
            let key = self.state.tag_keys[&value.parent].clone();
            if self
                .state
                .effective_tags(node)
                .iter()
                .any(|(k, _, inherited)| !inherited && k.name == key.name)
            {
                return Err(Error::invalid(format!(
                    "Invalid world file: {node} is given two values of tag key {}.",
                    key.namespaced_name
                )));
            }
            let parent = format!("{}{node}", crate::resourcemanager::tags::FULL_NAME_PREFIX);
            let mut b = TagBinding::new();
            b.name = crate::resourcemanager::tags::binding_name(&parent, &value.name);
            b.parent = parent;
            b.tag_value = value.name.clone();
            b.tag_value_namespaced_name = value.namespaced_name.clone();
            self.push(Change::TagBinding(b.name.clone(), Some(b)));
        }
        Ok(())
    }

    fn folder(&mut self, parent: &str, spec: &FolderSpec) -> Result<()> {
        let mut f = Folder::new();
        f.name = format!("folders/{}", self.number(&spec.id)?);
        f.parent = parent.to_string();
        f.display_name = spec.display_name.clone();
        f.state = folder::State::Active;
        f.create_time = Some(crate::base::time::now());
        f.etag = "W/\"1\"".to_string();
        let name = f.name.clone();
        self.push(Change::Folder(f));
        self.bindings(&name, &spec.iam);
        self.tags(&name, &spec.tags)?;
        self.org_policies(&name, &spec.org_policies)?;
        for sub in &spec.folders {
            self.folder(&name, sub)?;
        }
        for p in &spec.projects {
            self.project(&name, p)?;
        }
        Ok(())
    }
}

impl Control {
    /// Seed a fresh store with a world, in one transaction; answers whether it did (a store
    /// that already holds a world is left as it is).
    pub fn seed(&self, world: &World) -> Result<bool> {
        self.write(|st| {
            // Several servers over one database may start at once: the first seeds.
            if !crate::is_empty(st) {
                return Ok((vec![], false));
            }
            let mut s = Seeder {
                state: st.clone(),
                changes: vec![],
                org: String::new(),
            };
            for g in &world.groups {
                for m in &g.members {
                    m.parse::<runpool_authz::Member>().map_err(|e| {
                        Error::invalid(format!("Invalid world file: group {}: {e}", g.email))
                    })?;
                }
                s.push(Change::Group(g.email.to_lowercase(), g.members.clone()));
            }
            for o in &world.organizations {
                let mut org = Organization::new();
                org.name = format!("organizations/{}", s.number(&o.id)?);
                org.display_name = o.domain.to_lowercase();
                org.state = organization::State::Active;
                org.create_time = Some(crate::base::time::now());
                org.etag = "W/\"1\"".to_string();
                org.owner = Some(organization::Owner::DirectoryCustomerId(format!(
                    "C0{}",
                    &org.name[14..].chars().take(7).collect::<String>()
                )));
                let name = org.name.clone();
                s.org = name.clone();
                s.push(Change::Organization(org));
                s.bindings(&name, &o.iam);
                s.tag_keys(&name, &o.tag_keys)?;
                s.tags(&name, &o.tags)?;
                s.org_policies(&name, &o.org_policies)?;
                for f in &o.folders {
                    s.folder(&name, f)?;
                }
                for p in &o.projects {
                    s.project(&name, p)?;
                }
            }
            // Every binding must be valid as if set through the API.
            let catalog = runpool_authz::Catalog::predefined();
            for c in &s.changes {
                if let Change::IamPolicy(r, p) = c {
                    let mut ap = crate::base::allow::to_authz(p);
                    runpool_authz::normalize(&mut ap, &catalog).map_err(|e| {
                        Error::invalid(format!("Invalid world file: policy on {r}: {}", e.message))
                    })?;
                }
            }
            Ok((s.changes, true))
        })
    }
}
