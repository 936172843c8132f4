//! Policy Troubleshooter: why a principal has or lacks a permission on a resource, binding by
//! binding, down the resource's ancestry. The caller sees a policy's explanation only where
//! it may read that policy (else that part is `UNKNOWN_INFO`, as from Google).

use crate::base::error::{Error, Result};
use crate::{Caller, Control, Target};
use google_cloud_iam_v1::model::Policy;
use runpool_authz as authz;

/// One examined resource: canonical name, full resource name, and its policy if the caller
/// may read it.
#[derive(Debug, Clone)]
pub struct ExaminedResource {
    pub name: String,
    pub full_resource_name: String,
    pub policy: Option<Policy>,
}

#[derive(Debug, Clone)]
pub struct Troubleshooting {
    pub explanation: authz::Explanation,
    pub resources: Vec<ExaminedResource>,
    /// The deny policies on the resource's ancestry, nearest first, rule by rule.
    pub deny: Vec<crate::iam::denypolicies::ExplainedDenyPolicies>,
}

/// `user:` or `serviceAccount:` for a bare email, as the troubleshooter takes principals.
pub fn member_of(principal: &str) -> String {
    if principal.contains(':') {
        principal.to_string()
    } else if principal.ends_with(".gserviceaccount.com") {
        format!("serviceAccount:{principal}")
    } else {
        format!("user:{principal}")
    }
}

impl Control {
    /// The canonical name, resource type and service of a full resource name.
    fn resolve_full_name(&self, full: &str) -> Result<(String, &'static str, &'static str)> {
        let bad = || {
            Error::invalid(format!(
                "Unsupported or unknown full resource name '{full}'."
            ))
        };
        if let Some(rest) = full.strip_prefix("//cloudresourcemanager.googleapis.com/") {
            let node = self.read().resolve(rest).ok_or_else(bad)?;
            return Ok((
                node.name.clone(),
                node.kind.resource_type(),
                crate::base::hierarchy::SERVICE,
            ));
        }
        if let Some(rest) = full.strip_prefix("//iam.googleapis.com/") {
            let (project, id) = rest.split_once("/serviceAccounts/").ok_or_else(bad)?;
            let a = self.read().account_by_email(id).ok_or_else(bad)?;
            // The named project must be the account's own (by id or number), or `-`.
            let project = project.trim_start_matches("projects/");
            if project != "-"
                && project != a.stored.account.project_id
                && project != a.project_number
            {
                return Err(bad());
            }
            return Ok((
                a.resource,
                crate::iam::serviceaccounts::RESOURCE_TYPE,
                crate::iam::serviceaccounts::SERVICE,
            ));
        }
        if let Some(rest) = full.strip_prefix("//run.googleapis.com/") {
            let st = self.read();
            if !st.worker_pools.contains_key(rest)
                && crate::run::workerpools::pool_resource(&st, rest).is_none()
            {
                return Err(bad());
            }
            let name = crate::run::workerpools::pool_resource(&st, rest).ok_or_else(bad)?;
            return Ok((
                name,
                crate::run::workerpools::RESOURCE_TYPE,
                crate::run::workerpools::SERVICE,
            ));
        }
        Err(bad())
    }

    /// The full resource name and `getIamPolicy` permission of a canonical name.
    /// Also the resource type and service of that resource (for conditions on the check of
    /// whether the caller may read its policy).
    fn describe_canonical(&self, name: &str) -> (String, String, &'static str, &'static str) {
        let st = self.read();
        let project_id = |num: &str| {
            st.projects
                .get(&format!("projects/{num}"))
                .map(|p| p.project_id.clone())
                .unwrap_or_else(|| num.to_string())
        };
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["projects", num, "serviceAccounts", uid] => {
                let email = st
                    .service_accounts
                    .get(*uid)
                    .map(|a| a.account.email.clone())
                    .unwrap_or_default();
                (
                    format!(
                        "//iam.googleapis.com/projects/{}/serviceAccounts/{email}",
                        project_id(num)
                    ),
                    "iam.serviceAccounts.getIamPolicy".into(),
                    crate::iam::serviceaccounts::RESOURCE_TYPE,
                    crate::iam::serviceaccounts::SERVICE,
                )
            }
            ["projects", num, "locations", loc, "workerPools", id] => (
                format!(
                    "//run.googleapis.com/projects/{}/locations/{loc}/workerPools/{id}",
                    project_id(num)
                ),
                "run.workerpools.getIamPolicy".into(),
                crate::run::workerpools::RESOURCE_TYPE,
                crate::run::workerpools::SERVICE,
            ),
            [kind, _] => (
                format!("//cloudresourcemanager.googleapis.com/{name}"),
                format!("resourcemanager.{kind}.getIamPolicy"),
                crate::base::hierarchy::Kind::of(name)
                    .map(|k| k.resource_type())
                    .unwrap_or_default(),
                crate::base::hierarchy::SERVICE,
            ),
            _ => (name.to_string(), String::new(), "", ""),
        }
    }

    pub fn troubleshoot(
        &self,
        caller: &Caller,
        principal: &str,
        full_resource_name: &str,
        permission: &str,
    ) -> Result<Troubleshooting> {
        if principal.is_empty() || permission.is_empty() || full_resource_name.is_empty() {
            return Err(Error::invalid(
                "access_tuple needs principal, full_resource_name and permission.",
            ));
        }
        let (name, resource_type, service) = self.resolve_full_name(full_resource_name)?;
        let who = self.caller(&member_of(principal));
        let target = Target {
            name: &name,
            shown: full_resource_name,
            resource_type,
            service,
        };
        let ctx = authz::RequestContext {
            request_time: chrono::Utc::now(),
            resource_type: resource_type.to_string(),
            resource_service: service.to_string(),
        };
        let explanation = self
            .snapshot()
            .explain(&who.principal, permission, target.name, &ctx);
        let resources = explanation
            .examined
            .iter()
            .map(|e| {
                let (full, get_perm, resource_type, service) = self.describe_canonical(&e.resource);
                let t = Target {
                    name: &e.resource,
                    shown: &full,
                    resource_type,
                    service,
                };
                let readable = !get_perm.is_empty() && self.allowed(caller, &get_perm, &t);
                ExaminedResource {
                    name: e.resource.clone(),
                    full_resource_name: full,
                    policy: readable.then(|| self.stored_policy(&e.resource)),
                }
            })
            .collect();
        let deny = self.explain_deny(caller, &who.principal, permission, &name);
        Ok(Troubleshooting {
            explanation,
            resources,
            deny,
        })
    }
}
