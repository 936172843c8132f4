//! The in-memory state and the changes that move it. A mutation produces a list of
//! [`Change`]s; each one knows its stored row, so the same changes are written to the store in
//! one transaction and then applied here, and replayed from the rows at start.

use crate::base::error::{Error, Result};
use crate::base::store::{Row, Write};
use google_cloud_iam_admin_v1::model::{Role, ServiceAccount};
use google_cloud_iam_v1::model::Policy as IamPolicy;
use google_cloud_iam_v2::model::Policy as DenyPolicy;
use google_cloud_longrunning::model::Operation;
use google_cloud_orgpolicy_v2::model::Policy as OrgPolicy;
use google_cloud_recommender_v1::model::Recommendation;
use google_cloud_resourcemanager_v3::model::{
    Folder, Organization, Project, TagBinding, TagKey, TagValue,
};
use google_cloud_run_v2::model::{Revision, WorkerPool};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A stored token: only its SHA-256 is kept, never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    /// The member the token stands for, e.g. `user:alice@example.com`.
    pub member: String,
    /// Unix seconds.
    pub expires: i64,
    pub kind: TokenKind,
    /// The service account key whose assertion obtained the token: deleting or disabling the
    /// key revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The worker pool (`projects/NUMBER/locations/L/workerPools/ID`) whose instance was
    /// given the token: its calls are attributed to that pool in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// A one-time sign-in code waiting for its use (`runpool console`), kept by its SHA-256 so
/// that whichever server the browser reaches redeems it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SigninCode {
    pub member: String,
    /// The session it opens may mint simulated users' tokens (it carries the admin
    /// credential).
    #[serde(default)]
    pub admin: bool,
    /// Unix seconds.
    pub expires: i64,
}

/// A service account key (or the server's own ID-token key, `account` empty). User-managed
/// keys keep only their public half; keys the server signs with keep their private key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredKey {
    pub key_id: String,
    /// Unique id of the owning account; empty for the server's ID-token key.
    pub account: String,
    pub public: crate::base::crypto::PublicKey,
    /// Unix seconds.
    pub valid_after: i64,
    pub valid_before: i64,
    pub user_managed: bool,
    pub uploaded: bool,
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_pem: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A service account with its deletion mark: a deleted account is kept (by unique id) for
/// the undelete window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredAccount {
    pub account: ServiceAccount,
    /// Unix seconds of deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

impl StoredAccount {
    /// The name the hierarchy and IAM know it by: `projects/NUMBER/serviceAccounts/UNIQUE_ID`
    /// (the unique id, not the email, so a recreated account does not inherit old grants).
    pub fn resource(&self, project_number: &str) -> String {
        format!(
            "projects/{project_number}/serviceAccounts/{}",
            self.account.unique_id
        )
    }
}

/// Everything Runpool knows, keyed by canonical resource names (`organizations/N`,
/// `folders/N`, `projects/NUMBER`).
#[derive(Default, Clone)]
pub struct State {
    pub organizations: BTreeMap<String, Organization>,
    pub folders: BTreeMap<String, Folder>,
    pub projects: BTreeMap<String, Project>,
    /// project id → `projects/NUMBER`
    pub project_ids: HashMap<String, String>,
    pub iam_policies: HashMap<String, IamPolicy>,
    /// (canonical parent, constraint short name) → policy
    pub org_policies: BTreeMap<(String, String), OrgPolicy>,
    /// Every org policy rule condition of [`State::org_policies`], parsed once as it is
    /// stored (by expression; an expression that does not parse is absent and applies
    /// nowhere).
    pub org_conditions:
        HashMap<String, std::sync::Arc<runpool_authz::condition::tags::TagCondition>>,
    /// group email → member strings
    pub groups: BTreeMap<String, Vec<String>>,
    pub custom_roles: BTreeMap<String, Role>,
    /// unique id → account (live and deleted)
    pub service_accounts: BTreeMap<String, StoredAccount>,
    /// email → unique id, live accounts only
    pub sa_emails: HashMap<String, String>,
    /// key id → key
    pub keys: BTreeMap<String, StoredKey>,
    /// `projects/PROJECT_ID/locations/L/workerPools/ID` → pool
    pub worker_pools: BTreeMap<String, WorkerPool>,
    /// `…/workerPools/ID/revisions/R` → revision
    pub revisions: BTreeMap<String, Revision>,
    /// sha256 hex → record
    pub tokens: HashMap<String, TokenRecord>,
    pub signin_codes: HashMap<String, SigninCode>,
    pub operations: HashMap<String, Operation>,
    pub settings: BTreeMap<String, String>,
    /// The services enabled on each project: `projects/NUMBER/services/NAME`.
    pub enabled_services: std::collections::BTreeSet<String>,
    /// Recommendations once marked (claimed, succeeded, failed, dismissed), by name: their
    /// content frozen as it was.
    pub recommendations: BTreeMap<String, Recommendation>,
    /// `tagKeys/N` → key
    pub tag_keys: BTreeMap<String, TagKey>,
    /// `tagValues/N` → value
    pub tag_values: BTreeMap<String, TagValue>,
    /// `tagBindings/{encoded parent}/tagValues/N` → binding (ordered, so a node's bindings
    /// are one range)
    pub tag_bindings: BTreeMap<String, TagBinding>,
    /// `policies/{attachment}/denypolicies/ID` → deny policy (IAM v2)
    pub deny_policies: BTreeMap<String, DenyPolicy>,
}

/// One change to the state.
// A mutation makes a handful of these and drops them at once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Change {
    Organization(Organization),
    Folder(Folder),
    Project(Project),
    IamPolicy(String, IamPolicy),
    OrgPolicy(String, String, Option<OrgPolicy>),
    Group(String, Vec<String>),
    CustomRole(Role),
    ServiceAccount(StoredAccount),
    Key(String, Option<StoredKey>),
    WorkerPool(String, Option<WorkerPool>),
    Revision(String, Option<Revision>),
    Token(String, Option<TokenRecord>),
    SigninCode(String, Option<SigninCode>),
    Operation(Operation),
    OperationDeleted(String),
    Setting(String, String),
    Recommendation(String, Recommendation),
    TagKey(String, Option<TagKey>),
    TagValue(String, Option<TagValue>),
    TagBinding(String, Option<TagBinding>),
    DenyPolicy(String, Option<DenyPolicy>),
    /// `projects/NUMBER/services/NAME`, enabled (true) or not.
    Service(String, bool),
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model types always serialise")
}

fn parse<T: serde::de::DeserializeOwned>(row: &Row) -> Result<T> {
    serde_json::from_str(&row.value).map_err(|e| {
        Error::internal(format!(
            "stored row {}/{} is unreadable: {e}",
            row.kind, row.key
        ))
    })
}

impl Change {
    pub fn write(&self) -> Write {
        let put = |kind, key: &str, value: String| Write::Put {
            kind,
            key: key.to_string(),
            value,
        };
        match self {
            Change::Organization(o) => put("organization", &o.name, json(o)),
            Change::Folder(f) => put("folder", &f.name, json(f)),
            Change::Project(p) => put("project", &p.name, json(p)),
            Change::IamPolicy(r, p) => put("iam_policy", r, json(p)),
            Change::OrgPolicy(parent, c, Some(p)) => {
                put("org_policy", &format!("{parent}#{c}"), json(p))
            }
            Change::OrgPolicy(parent, c, None) => Write::Delete {
                kind: "org_policy",
                key: format!("{parent}#{c}"),
            },
            Change::Group(g, m) => put("group", g, json(m)),
            Change::CustomRole(r) => put("custom_role", &r.name, json(r)),
            Change::ServiceAccount(a) => put("service_account", &a.account.unique_id, json(a)),
            Change::Key(id, Some(k)) => put("key", id, json(k)),
            Change::Key(id, None) => Write::Delete {
                kind: "key",
                key: id.clone(),
            },
            Change::WorkerPool(n, Some(w)) => put("worker_pool", n, json(w)),
            Change::WorkerPool(n, None) => Write::Delete {
                kind: "worker_pool",
                key: n.clone(),
            },
            Change::Revision(n, Some(r)) => put("revision", n, json(r)),
            Change::Revision(n, None) => Write::Delete {
                kind: "revision",
                key: n.clone(),
            },
            Change::Token(h, Some(t)) => put("token", h, json(t)),
            Change::SigninCode(h, Some(c)) => put("signin_code", h, json(c)),
            Change::SigninCode(h, None) => Write::Delete {
                kind: "signin_code",
                key: h.clone(),
            },
            Change::Token(h, None) => Write::Delete {
                kind: "token",
                key: h.clone(),
            },
            Change::Operation(o) => put("operation", &o.name, json(o)),
            Change::OperationDeleted(n) => Write::Delete {
                kind: "operation",
                key: n.clone(),
            },
            Change::Setting(k, v) => put("setting", k, v.clone()),
            Change::Recommendation(n, r) => put("recommendation", n, json(r)),
            Change::TagKey(n, Some(k)) => put("tag_key", n, json(k)),
            Change::TagKey(n, None) => Write::Delete {
                kind: "tag_key",
                key: n.clone(),
            },
            Change::TagValue(n, Some(v)) => put("tag_value", n, json(v)),
            Change::TagValue(n, None) => Write::Delete {
                kind: "tag_value",
                key: n.clone(),
            },
            Change::TagBinding(n, Some(b)) => put("tag_binding", n, json(b)),
            Change::TagBinding(n, None) => Write::Delete {
                kind: "tag_binding",
                key: n.clone(),
            },
            Change::DenyPolicy(n, Some(p)) => put("deny_policy", n, json(p)),
            Change::DenyPolicy(n, None) => Write::Delete {
                kind: "deny_policy",
                key: n.clone(),
            },
            Change::Service(n, true) => put("enabled_service", n, "true".into()),
            Change::Service(n, false) => Write::Delete {
                kind: "enabled_service",
                key: n.clone(),
            },
        }
    }

    /// A row as another server's batch left it: its value, or `None` where the batch deleted
    /// it (the deletions [`Change::write`] makes).
    pub fn from_stored(kind: &str, key: &str, value: Option<&str>) -> Result<Change> {
        let Some(value) = value else {
            let key = key.to_string();
            return Ok(match kind {
                "org_policy" => {
                    let (parent, c) = key
                        .split_once('#')
                        .ok_or_else(|| Error::internal(format!("bad org policy key {key}")))?;
                    Change::OrgPolicy(parent.to_string(), c.to_string(), None)
                }
                "key" => Change::Key(key, None),
                "worker_pool" => Change::WorkerPool(key, None),
                "revision" => Change::Revision(key, None),
                "token" => Change::Token(key, None),
                "signin_code" => Change::SigninCode(key, None),
                "operation" => Change::OperationDeleted(key),
                "tag_key" => Change::TagKey(key, None),
                "tag_value" => Change::TagValue(key, None),
                "tag_binding" => Change::TagBinding(key, None),
                "deny_policy" => Change::DenyPolicy(key, None),
                "enabled_service" => Change::Service(key, false),
                other => return Err(Error::internal(format!("a deleted row of kind {other}"))),
            });
        };
        Change::from_row(&Row {
            kind: kind.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    pub fn from_row(row: &Row) -> Result<Change> {
        Ok(match row.kind.as_str() {
            "organization" => Change::Organization(parse(row)?),
            "folder" => Change::Folder(parse(row)?),
            "project" => Change::Project(parse(row)?),
            "iam_policy" => Change::IamPolicy(row.key.clone(), parse(row)?),
            "org_policy" => {
                let (parent, c) = row
                    .key
                    .split_once('#')
                    .ok_or_else(|| Error::internal(format!("bad org policy key {}", row.key)))?;
                Change::OrgPolicy(parent.to_string(), c.to_string(), Some(parse(row)?))
            }
            "group" => Change::Group(row.key.clone(), parse(row)?),
            "custom_role" => Change::CustomRole(parse(row)?),
            "service_account" => Change::ServiceAccount(parse(row)?),
            "key" => Change::Key(row.key.clone(), Some(parse(row)?)),
            "worker_pool" => Change::WorkerPool(row.key.clone(), Some(parse(row)?)),
            "revision" => Change::Revision(row.key.clone(), Some(parse(row)?)),
            "token" => Change::Token(row.key.clone(), Some(parse(row)?)),
            "signin_code" => Change::SigninCode(row.key.clone(), Some(parse(row)?)),
            "operation" => Change::Operation(parse(row)?),
            "setting" => Change::Setting(row.key.clone(), row.value.clone()),
            "recommendation" => Change::Recommendation(row.key.clone(), parse(row)?),
            "tag_key" => Change::TagKey(row.key.clone(), Some(parse(row)?)),
            "tag_value" => Change::TagValue(row.key.clone(), Some(parse(row)?)),
            "tag_binding" => Change::TagBinding(row.key.clone(), Some(parse(row)?)),
            "deny_policy" => Change::DenyPolicy(row.key.clone(), Some(parse(row)?)),
            "enabled_service" => Change::Service(row.key.clone(), true),
            other => return Err(Error::internal(format!("unknown stored kind {other}"))),
        })
    }
}

impl State {
    /// Keep [`State::org_conditions`] to the expressions the stored policies hold, parsing
    /// only the new ones.
    fn reparse_org_conditions(&mut self) {
        let mut old = std::mem::take(&mut self.org_conditions);
        for p in self.org_policies.values() {
            for rule in p.spec.iter().chain(&p.dry_run_spec).flat_map(|s| &s.rules) {
                let Some(e) = &rule.condition else { continue };
                if self.org_conditions.contains_key(&e.expression) {
                    continue;
                }
                let parsed = match old.remove(&e.expression) {
                    Some(c) => c,
                    None => {
                        match runpool_authz::condition::tags::TagCondition::parse(&e.expression) {
                            Ok(c) => std::sync::Arc::new(c),
                            Err(_) => continue,
                        }
                    }
                };
                self.org_conditions.insert(e.expression.clone(), parsed);
            }
        }
    }

    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Organization(o) => {
                self.organizations.insert(o.name.clone(), o);
            }
            Change::Folder(f) => {
                self.folders.insert(f.name.clone(), f);
            }
            Change::Project(p) => {
                self.project_ids
                    .insert(p.project_id.clone(), p.name.clone());
                self.projects.insert(p.name.clone(), p);
            }
            Change::IamPolicy(r, p) => {
                self.iam_policies.insert(r, p);
            }
            Change::OrgPolicy(parent, c, p) => match p {
                Some(p) => {
                    self.org_policies.insert((parent, c), p);
                    self.reparse_org_conditions();
                }
                None => {
                    self.org_policies.remove(&(parent, c));
                    self.reparse_org_conditions();
                }
            },
            Change::Group(g, m) => {
                self.groups.insert(g, m);
            }
            Change::CustomRole(r) => {
                self.custom_roles.insert(r.name.clone(), r);
            }
            Change::ServiceAccount(a) => {
                if a.deleted_at.is_none() {
                    self.sa_emails
                        .insert(a.account.email.clone(), a.account.unique_id.clone());
                } else if self.sa_emails.get(&a.account.email) == Some(&a.account.unique_id) {
                    self.sa_emails.remove(&a.account.email);
                }
                self.service_accounts.insert(a.account.unique_id.clone(), a);
            }
            Change::Key(id, k) => match k {
                Some(k) => {
                    self.keys.insert(id, k);
                }
                None => {
                    self.keys.remove(&id);
                }
            },
            Change::WorkerPool(n, w) => match w {
                Some(w) => {
                    self.worker_pools.insert(n, w);
                }
                None => {
                    self.worker_pools.remove(&n);
                }
            },
            Change::Revision(n, r) => match r {
                Some(r) => {
                    self.revisions.insert(n, r);
                }
                None => {
                    self.revisions.remove(&n);
                }
            },
            Change::Token(h, t) => match t {
                Some(t) => {
                    self.tokens.insert(h, t);
                }
                None => {
                    self.tokens.remove(&h);
                }
            },
            Change::SigninCode(h, c) => match c {
                Some(c) => {
                    self.signin_codes.insert(h, c);
                }
                None => {
                    self.signin_codes.remove(&h);
                }
            },
            Change::Operation(o) => {
                self.operations.insert(o.name.clone(), o);
            }
            Change::OperationDeleted(n) => {
                self.operations.remove(&n);
            }
            Change::Setting(k, v) => {
                self.settings.insert(k, v);
            }
            Change::Service(n, enabled) => {
                if enabled {
                    self.enabled_services.insert(n);
                } else {
                    self.enabled_services.remove(&n);
                }
            }
            Change::Recommendation(n, r) => {
                self.recommendations.insert(n, r);
            }
            Change::TagKey(n, k) => match k {
                Some(k) => {
                    self.tag_keys.insert(n, k);
                }
                None => {
                    self.tag_keys.remove(&n);
                }
            },
            Change::TagValue(n, v) => match v {
                Some(v) => {
                    self.tag_values.insert(n, v);
                }
                None => {
                    self.tag_values.remove(&n);
                }
            },
            Change::TagBinding(n, b) => match b {
                Some(b) => {
                    self.tag_bindings.insert(n, b);
                }
                None => {
                    self.tag_bindings.remove(&n);
                }
            },
            Change::DenyPolicy(n, p) => match p {
                Some(p) => {
                    self.deny_policies.insert(n, p);
                }
                None => {
                    self.deny_policies.remove(&n);
                }
            },
        }
    }

    /// The project number of a project id (`demo-project` → `123456789012`).
    pub fn project_number(&self, project_id: &str) -> Option<&str> {
        self.project_ids
            .get(project_id)
            .map(|n| n.trim_start_matches("projects/"))
    }

    /// The parent of a hierarchy node, by canonical name.
    pub fn parent_of(&self, name: &str) -> Option<&str> {
        let p = if let Some(f) = self.folders.get(name) {
            &f.parent
        } else if let Some(p) = self.projects.get(name) {
            &p.parent
        } else {
            return None;
        };
        (!p.is_empty()).then_some(p.as_str())
    }
}
