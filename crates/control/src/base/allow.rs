//! Allow policies on any resource: `getIamPolicy`, `setIamPolicy`, `testIamPermissions`, with
//! Google's etag and version rules. Each API passes its own permissions and target; the
//! semantics live here once.

use crate::base::error::{Code, Error, Result};
use crate::base::state::Change;
use crate::{Caller, Control, Target};
use base64::Engine;
use google_cloud_iam_v1::model::{Binding, Policy};
use google_cloud_type::model::Expr;
use runpool_authz as authz;

/// The etag of a resource that never had a policy set, as Google answers it (`"ACAB"`).
pub fn initial_etag() -> bytes::Bytes {
    bytes::Bytes::from_static(&[0x00, 0x20, 0x01])
}

/// A new allow policy of these bindings: version 3 where any binding has a condition (as
/// Google requires), else 1.
pub fn new_policy(bindings: Vec<Binding>) -> Policy {
    let mut p = Policy::new();
    p.version = if bindings.iter().any(|b| b.condition.is_some()) {
        3
    } else {
        1
    };
    p.bindings = bindings;
    p.etag = crate::base::ids::policy_etag();
    p
}

pub fn to_authz(p: &Policy) -> authz::Policy {
    authz::Policy {
        version: p.version,
        bindings: p
            .bindings
            .iter()
            .map(|b| authz::Binding {
                role: b.role.clone(),
                members: b.members.clone(),
                condition: b.condition.as_ref().map(|c| authz::Expr {
                    expression: c.expression.clone(),
                    title: c.title.clone(),
                    description: c.description.clone(),
                    location: c.location.clone(),
                }),
            })
            .collect(),
        audit_configs_json: None,
    }
}

fn from_authz(p: &authz::Policy, etag: bytes::Bytes, audit: &Policy) -> Policy {
    let mut out = Policy::new();
    out.version = p.version;
    out.etag = etag;
    out.audit_configs = audit.audit_configs.clone();
    out.bindings = p
        .bindings
        .iter()
        .map(|b| {
            let mut nb = Binding::new();
            nb.role = b.role.clone();
            nb.members = b.members.clone();
            nb.condition = b.condition.as_ref().map(|c| {
                let mut e = Expr::new();
                e.expression = c.expression.clone();
                e.title = c.title.clone();
                e.description = c.description.clone();
                e.location = c.location.clone();
                e
            });
            nb
        })
        .collect();
    out
}

/// Extra rules a resource type adds to the common ones, e.g. projects refuse public members.
pub type PolicyCheck = fn(&authz::Policy) -> Result<()>;

impl Control {
    /// The stored policy of a resource, or the empty one Google answers for a fresh resource.
    pub(crate) fn stored_policy(&self, name: &str) -> Policy {
        self.read()
            .iam_policies
            .get(name)
            .cloned()
            .unwrap_or_else(|| {
                let mut p = Policy::new();
                p.version = 1;
                p.etag = initial_etag();
                p
            })
    }

    pub fn get_iam_policy(
        &self,
        caller: &Caller,
        target: &Target,
        permission: &str,
        requested_version: i32,
    ) -> Result<Policy> {
        self.authorize(caller, permission, target)?;
        if ![0, 1, 3].contains(&requested_version) {
            return Err(Error::invalid(format!(
                "Invalid requested policy version: {requested_version}. Valid values are 0, 1 and 3."
            )));
        }
        let stored = self.stored_policy(target.name);
        let shown = authz::for_requested_version(&to_authz(&stored), requested_version);
        Ok(from_authz(&shown, stored.etag.clone(), &stored))
    }

    /// Replace a resource's policy. `mask` lists the fields to set (default `bindings`,
    /// `etag`); an etag that is not the current one fails with ABORTED and changes nothing.
    /// Google refuses a policy naming a service account that does not exist: a
    /// user-managed account (`ID@PROJECT.iam.gserviceaccount.com`) or a project's default
    /// compute account (`NUMBER-compute@developer.gserviceaccount.com`). Google-managed
    /// service agents (`service-…`, `gcp-sa-…` domains), which Runpool does not all model, and
    /// `deleted:` members are taken as written.
    fn check_members_exist(&self, policy: &Policy) -> Result<()> {
        let st = self.read();
        for m in policy.bindings.iter().flat_map(|b| &b.members) {
            let Some(email) = m.strip_prefix("serviceAccount:") else {
                continue;
            };
            let Some((local, domain)) = email.rsplit_once('@') else {
                continue;
            };
            let user_managed = domain
                .strip_suffix(".iam.gserviceaccount.com")
                .is_some_and(|p| !p.starts_with("gcp-sa-") && !local.starts_with("service-"));
            let default_compute =
                domain == "developer.gserviceaccount.com" && local.ends_with("-compute");
            if (user_managed || default_compute) && st.account_by_email(email).is_none() {
                return Err(Error::invalid(format!(
                    "Service account {email} does not exist."
                )));
            }
        }
        Ok(())
    }

    pub fn set_iam_policy(
        &self,
        caller: &Caller,
        target: &Target,
        permission: &str,
        policy: Policy,
        mask: &[String],
        extra: Option<PolicyCheck>,
    ) -> Result<Policy> {
        self.authorize(caller, permission, target)?;
        let snap = self.snapshot();
        let mut wanted = to_authz(&policy);
        authz::normalize(&mut wanted, snap.catalog()).map_err(|e| Error::invalid(e.message))?;
        if let Some(check) = extra {
            check(&wanted)?;
        }
        self.check_members_exist(&policy)?;
        let name = target.name.to_string();
        self.write(|st| {
            let current = st.iam_policies.get(&name);
            let current_etag = current.map(|p| p.etag.clone()).unwrap_or_else(initial_etag);
            let current_version = current.map(|p| p.version).unwrap_or(1);
            if !policy.etag.is_empty() {
                if policy.etag != current_etag {
                    return Err(Error::concurrent_change());
                }
                let sent = policy.version.max(1);
                if sent < current_version {
                    return Err(Error::invalid(format!(
                        "Specified policy version ({}) cannot be less than the existing policy version ({current_version}). For more information, please refer to https://cloud.google.com/iam/docs/policies#versions",
                        sent
                    )));
                }
            }
            let base = current.cloned().unwrap_or_default();
            let fields: Vec<&str> = if mask.is_empty() {
                vec!["bindings", "etag"]
            } else {
                mask.iter().map(String::as_str).collect()
            };
            let mut stored_bindings = to_authz(&base);
            if fields.contains(&"bindings") {
                stored_bindings = wanted.clone();
            }
            stored_bindings.version =
                if stored_bindings.bindings.iter().any(|b| b.condition.is_some()) { 3 } else { 1 };
            let mut audit = base.clone();
            if fields.iter().any(|f| *f == "auditConfigs" || *f == "audit_configs") {
                audit.audit_configs = policy.audit_configs.clone();
            }
            let out = from_authz(&stored_bindings, crate::base::ids::policy_etag(), &audit);
            Ok((vec![Change::IamPolicy(name.clone(), out.clone())], out))
        })
    }

    pub fn test_iam_permissions(
        &self,
        caller: &Caller,
        target: &Target,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        for p in permissions {
            if p.contains('*') {
                return Err(Error::invalid(format!(
                    "Permission {p} is not valid: wildcards are not allowed."
                )));
            }
        }
        Ok(self.permitted(caller, permissions, target))
    }
}

/// Projects refuse the public principals in their allow policy.
pub fn no_public_members(p: &authz::Policy) -> Result<()> {
    for b in &p.bindings {
        for m in &b.members {
            if m == "allUsers" || m == "allAuthenticatedUsers" {
                return Err(Error::new(
                    Code::InvalidArgument,
                    format!("Policy members must not include {m} for this resource type."),
                ));
            }
        }
    }
    Ok(())
}

/// Decode a base64 etag as Google sends it, with Google's error for garbage.
pub fn parse_etag(s: &str) -> Result<bytes::Bytes> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(bytes::Bytes::from)
        .map_err(|_| Error::invalid("Invalid etag"))
}
