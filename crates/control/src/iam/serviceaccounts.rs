//! IAM v1 service accounts: the account as a **resource** (who may see, change, use or
//! administer it). Accounts hang below their project, so grants on the project, its folders
//! and organization reach every account in it, including ones created later.

use crate::base::error::{Code, Error, Result};
use crate::base::hierarchy::Kind;
use crate::base::state::{Change, State, StoredAccount};
use crate::{Caller, Control, Target};
use google_cloud_iam_admin_v1::model::ServiceAccount;
use google_cloud_iam_v1::model::Policy;

pub const SERVICE: &str = "iam.googleapis.com";
pub const RESOURCE_TYPE: &str = "iam.googleapis.com/ServiceAccount";
/// Deleted accounts can be undeleted for this long.
pub const UNDELETE_WINDOW_SECONDS: i64 = 30 * 24 * 3600;

/// A resolved account: its record, canonical IAM name and project number.
#[derive(Debug, Clone)]
pub struct Account {
    pub stored: StoredAccount,
    /// `projects/NUMBER/serviceAccounts/UNIQUE_ID`
    pub resource: String,
    pub project_number: String,
    /// As the caller wrote it, for messages.
    pub shown: String,
}

impl Account {
    pub fn target(&self) -> Target<'_> {
        Target {
            name: &self.resource,
            shown: &self.shown,
            resource_type: RESOURCE_TYPE,
            service: SERVICE,
        }
    }
    pub fn email(&self) -> &str {
        &self.stored.account.email
    }
}

/// The Compute Engine default service account of a project.
pub fn default_compute_email(project_number: &str) -> String {
    format!("{project_number}-compute@developer.gserviceaccount.com")
}

/// RFC 1035 account ids of 6 to 30 characters, as Google requires.
pub fn valid_account_id(id: &str) -> bool {
    let b = id.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn new_unique_id(st: &State) -> String {
    use rand::Rng;
    loop {
        // 21 digits, starting with 1, like Google's.
        let n: u128 =
            rand::rng().random_range(100_000_000_000_000_000_000..200_000_000_000_000_000_000);
        let s = n.to_string();
        if !st.service_accounts.contains_key(&s) {
            return s;
        }
    }
}

fn sa_etag() -> bytes::Bytes {
    bytes::Bytes::from_static(b"\x00\x00\x00\x00")
}

/// Whether an account email is one Runpool keeps as a service account resource (user-created
/// and default compute accounts); Google-managed service agents are not.
pub fn is_simulated_account(email: &str) -> bool {
    email.ends_with(".iam.gserviceaccount.com")
        && !email.ends_with("@serverless-robot-prod.iam.gserviceaccount.com")
        || email.ends_with("-compute@developer.gserviceaccount.com")
}

/// A new account record (not yet stored).
pub(crate) fn new_account(
    st: &State,
    project_id: &str,
    email: String,
    display_name: &str,
    description: &str,
) -> StoredAccount {
    let unique_id = new_unique_id(st);
    let mut a = ServiceAccount::new();
    a.name = format!("projects/{project_id}/serviceAccounts/{email}");
    a.project_id = project_id.to_string();
    a.unique_id = unique_id.clone();
    a.oauth2_client_id = unique_id;
    a.email = email;
    a.display_name = display_name.to_string();
    a.description = description.to_string();
    #[allow(deprecated)] // Google still sends this deprecated field; so do we.
    {
        a.etag = sa_etag();
    }
    StoredAccount {
        account: a,
        deleted_at: None,
    }
}

/// Rewrite every allow policy that names `from` to name `to` instead (deletion turns
/// `serviceAccount:E` into `deleted:serviceAccount:E?uid=U`; undeletion turns it back).
fn rename_member(st: &State, from: &str, to: &str) -> Vec<Change> {
    st.iam_policies
        .iter()
        .filter(|(_, p)| {
            p.bindings
                .iter()
                .any(|b| b.members.iter().any(|m| m == from))
        })
        .map(|(r, p)| {
            let mut p = p.clone();
            for b in &mut p.bindings {
                for m in &mut b.members {
                    if m == from {
                        *m = to.to_string();
                    }
                }
            }
            Change::IamPolicy(r.clone(), p)
        })
        .collect()
}

impl State {
    /// Find a live account by email or unique id, optionally only within one project.
    fn find_account(&self, project: Option<&str>, id: &str) -> Option<&StoredAccount> {
        let uid = if id.contains('@') {
            self.sa_emails.get(&id.to_lowercase())?
        } else {
            &id.to_string()
        };
        let a = self.service_accounts.get(uid)?;
        if a.deleted_at.is_some() {
            return None;
        }
        match project {
            Some(p)
                if p != a.account.project_id
                    && self.project_number(&a.account.project_id) != Some(p) =>
            {
                None
            }
            _ => Some(a),
        }
    }

    fn account(&self, stored: &StoredAccount, shown: &str) -> Option<Account> {
        let number = self.project_number(&stored.account.project_id)?.to_string();
        Some(Account {
            resource: stored.resource(&number),
            project_number: number,
            stored: stored.clone(),
            shown: shown.to_string(),
        })
    }

    /// A live account by email.
    pub fn account_by_email(&self, email: &str) -> Option<Account> {
        let a = self.find_account(None, email)?;
        self.account(a, email)
    }
}

/// Split `projects/P/serviceAccounts/ID`.
fn split_name(name: &str) -> Result<(&str, &str)> {
    name.strip_prefix("projects/")
        .and_then(|r| r.split_once("/serviceAccounts/"))
        .filter(|(p, id)| !p.is_empty() && !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| Error::invalid(format!("Invalid service account name '{name}'.")))
}

impl Control {
    /// Resolve a caller-given account name. A missing account is answered like one the
    /// caller may not see (403 naming `permission`), unless the caller holds `permission` on
    /// the named project, who learns it does not exist (404), as from Google.
    pub fn account(&self, caller: &Caller, name: &str, permission: &str) -> Result<Account> {
        let (project, id) = split_name(name)?;
        let st = self.read();
        let project = (project != "-").then_some(project);
        if let Some(a) = st
            .find_account(project, id)
            .and_then(|a| st.account(a, name))
        {
            return Ok(a);
        }
        if let Some(node) = project.and_then(|p| st.resolve(&format!("projects/{p}"))) {
            drop(st);
            if self.allowed(caller, permission, &node.target()) {
                return Err(Error::not_found(format!(
                    "Service account {name} does not exist."
                )));
            }
        }
        Err(Error::permission_denied(permission, name, SERVICE))
    }

    fn authorized_account(&self, caller: &Caller, name: &str, permission: &str) -> Result<Account> {
        let a = self.account(caller, name, permission)?;
        self.authorize(caller, permission, &a.target())?;
        Ok(a)
    }

    pub fn create_service_account(
        &self,
        caller: &Caller,
        project: &str,
        account_id: &str,
        template: Option<ServiceAccount>,
    ) -> Result<ServiceAccount> {
        let perm = "iam.serviceAccounts.create";
        let node = self.node(project, perm)?;
        if node.kind != Kind::Project {
            return Err(Error::invalid(format!("Invalid project name '{project}'.")));
        }
        self.authorize(
            caller,
            perm,
            &Target {
                service: SERVICE,
                ..node.target()
            },
        )?;
        if !valid_account_id(account_id) {
            return Err(Error::invalid(format!(
                "Account ID '{account_id}' is invalid: it must be 6 to 30 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen."
            )));
        }
        let t = template.unwrap_or_default();
        if t.display_name.len() > 100 {
            return Err(Error::invalid(
                "The display name must be at most 100 bytes.",
            ));
        }
        if t.description.len() > 256 {
            return Err(Error::invalid("The description must be at most 256 bytes."));
        }
        if self.is_enforced(&node.name, "iam.disableServiceAccountCreation") {
            return Err(Error::failed_precondition(format!(
                "Service account creation is not allowed on this project: the organization policy constraint 'constraints/iam.disableServiceAccountCreation' is enforced on {}.",
                node.shown
            )));
        }
        self.write(|st| {
            let project_id = st.projects[&node.name].project_id.clone();
            let email = format!("{account_id}@{project_id}.iam.gserviceaccount.com");
            if st.sa_emails.contains_key(&email) {
                return Err(Error::new(
                    Code::AlreadyExists,
                    format!("Service account {account_id} already exists within project projects/{project_id}."),
                ));
            }
            let a = new_account(st, &project_id, email, &t.display_name, &t.description);
            Ok((vec![Change::ServiceAccount(a.clone())], a.account))
        })
    }

    pub fn get_service_account(&self, caller: &Caller, name: &str) -> Result<ServiceAccount> {
        Ok(self
            .authorized_account(caller, name, "iam.serviceAccounts.get")?
            .stored
            .account)
    }

    /// Live accounts of a project, for `serviceAccounts.list`.
    pub fn list_service_accounts(
        &self,
        caller: &Caller,
        project: &str,
    ) -> Result<Vec<ServiceAccount>> {
        let perm = "iam.serviceAccounts.list";
        let node = self.node(project, perm)?;
        self.authorize(
            caller,
            perm,
            &Target {
                service: SERVICE,
                ..node.target()
            },
        )?;
        let st = self.read();
        let project_id = &st.projects[&node.name].project_id;
        let mut out: Vec<ServiceAccount> = st
            .service_accounts
            .values()
            .filter(|a| a.deleted_at.is_none() && &a.account.project_id == project_id)
            .map(|a| a.account.clone())
            .collect();
        out.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(out)
    }

    /// `patch` of display name and description (the mutable fields).
    pub fn patch_service_account(
        &self,
        caller: &Caller,
        name: &str,
        patch: ServiceAccount,
        mask: &[String],
    ) -> Result<ServiceAccount> {
        let a = self.authorized_account(caller, name, "iam.serviceAccounts.update")?;
        for f in mask {
            if !matches!(f.as_str(), "display_name" | "displayName" | "description") {
                return Err(Error::invalid(format!("Field '{f}' cannot be updated.")));
            }
        }
        self.write(|st| {
            let mut s = st.service_accounts[&a.stored.account.unique_id].clone();
            let has = |x: &str, y: &str| mask.is_empty() || mask.iter().any(|m| m == x || m == y);
            if has("display_name", "displayName") {
                s.account.display_name = patch.display_name.clone();
            }
            if has("description", "description") {
                s.account.description = patch.description.clone();
            }
            Ok((vec![Change::ServiceAccount(s.clone())], s.account))
        })
    }

    pub fn set_service_account_disabled(
        &self,
        caller: &Caller,
        name: &str,
        disabled: bool,
    ) -> Result<()> {
        let perm = if disabled {
            "iam.serviceAccounts.disable"
        } else {
            "iam.serviceAccounts.enable"
        };
        let a = self.authorized_account(caller, name, perm)?;
        self.write(|st| {
            let mut s = st.service_accounts[&a.stored.account.unique_id].clone();
            s.account.disabled = disabled;
            Ok((vec![Change::ServiceAccount(s)], ()))
        })
    }

    /// Delete: the account is kept for the undelete window under its unique id, and every
    /// policy that named it now names `deleted:serviceAccount:EMAIL?uid=ID`.
    pub fn delete_service_account(&self, caller: &Caller, name: &str) -> Result<()> {
        let a = self.authorized_account(caller, name, "iam.serviceAccounts.delete")?;
        self.write(|st| {
            let mut s = st.service_accounts[&a.stored.account.unique_id].clone();
            s.deleted_at = Some(chrono::Utc::now().timestamp());
            let email = &s.account.email;
            let mut changes = rename_member(
                st,
                &format!("serviceAccount:{email}"),
                &format!("deleted:serviceAccount:{email}?uid={}", s.account.unique_id),
            );
            // Its tokens die with it: an undelete must not bring them back.
            let member = format!("serviceAccount:{email}");
            changes.insert(0, Change::ServiceAccount(s));
            changes.extend(
                st.tokens
                    .iter()
                    .filter(|(_, t)| t.member == member)
                    .map(|(h, _)| Change::Token(h.clone(), None)),
            );
            Ok((changes, ()))
        })
    }

    /// Undelete by unique id (`projects/-/serviceAccounts/UNIQUE_ID:undelete`) within the
    /// window, if the email was not taken again meanwhile.
    pub fn undelete_service_account(&self, caller: &Caller, name: &str) -> Result<ServiceAccount> {
        let (_, id) = split_name(name)?;
        let perm = "iam.serviceAccounts.undelete";
        let st = self.read();
        let stored = st
            .service_accounts
            .get(id)
            .filter(|a| a.deleted_at.is_some())
            .cloned();
        let number = stored
            .as_ref()
            .and_then(|a| st.project_number(&a.account.project_id))
            .map(str::to_string);
        drop(st);
        let (Some(stored), Some(number)) = (stored, number) else {
            return Err(Error::permission_denied(perm, name, SERVICE));
        };
        let project = format!("projects/{number}");
        let target = Target {
            name: &project,
            shown: name,
            resource_type: RESOURCE_TYPE,
            service: SERVICE,
        };
        self.authorize(caller, perm, &target)?;
        if chrono::Utc::now().timestamp() - stored.deleted_at.unwrap_or(0) > UNDELETE_WINDOW_SECONDS
        {
            return Err(Error::failed_precondition(format!(
                "Service account {name} was deleted more than 30 days ago."
            )));
        }
        self.write(|st| {
            let email = stored.account.email.clone();
            if st.sa_emails.contains_key(&email) {
                return Err(Error::failed_precondition(format!(
                    "Cannot undelete {email}: a service account with that email exists."
                )));
            }
            let mut s = stored.clone();
            s.deleted_at = None;
            let mut changes = rename_member(
                st,
                &format!("deleted:serviceAccount:{email}?uid={}", s.account.unique_id),
                &format!("serviceAccount:{email}"),
            );
            changes.insert(0, Change::ServiceAccount(s.clone()));
            Ok((changes, s.account))
        })
    }

    pub fn sa_get_iam_policy(&self, caller: &Caller, name: &str, version: i32) -> Result<Policy> {
        let perm = "iam.serviceAccounts.getIamPolicy";
        let a = self.account(caller, name, perm)?;
        self.get_iam_policy(caller, &a.target(), perm, version)
    }

    pub fn sa_set_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        policy: Policy,
        mask: &[String],
    ) -> Result<Policy> {
        let perm = "iam.serviceAccounts.setIamPolicy";
        let a = self.account(caller, name, perm)?;
        self.set_iam_policy(caller, &a.target(), perm, policy, mask, None)
    }

    pub fn sa_test_iam_permissions(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let a = self.account(caller, name, "iam.serviceAccounts.get")?;
        self.test_iam_permissions(caller, &a.target(), permissions)
    }
}

/// IAM's part in a new project: its default compute account, with `roles/editor` on the
/// project unless `iam.automaticIamGrantsForDefaultServiceAccounts` is enforced there.
pub(crate) fn provision_project(
    st: &State,
    project: &google_cloud_resourcemanager_v3::model::Project,
) -> crate::base::hierarchy::Provision {
    let (compute, grant_editor) = default_compute_account(st, project);
    let grants = if grant_editor {
        vec![(
            "roles/editor".to_string(),
            format!("serviceAccount:{}", compute.account.email),
        )]
    } else {
        vec![]
    };
    crate::base::hierarchy::Provision {
        changes: vec![Change::ServiceAccount(compute)],
        grants,
    }
}

/// The default compute account of a new project, and whether it gets `roles/editor` on it:
/// yes unless `iam.automaticIamGrantsForDefaultServiceAccounts` is enforced there (a policy
/// on the project itself, else what its parent inherits).
pub(crate) fn default_compute_account(
    st: &State,
    project: &google_cloud_resourcemanager_v3::model::Project,
) -> (StoredAccount, bool) {
    let number = project.name.trim_start_matches("projects/");
    let a = new_account(
        st,
        &project.project_id,
        default_compute_email(number),
        "Compute Engine default service account",
        "",
    );
    let c = "iam.automaticIamGrantsForDefaultServiceAccounts";
    let own = st
        .org_policies
        .get(&(project.name.clone(), c.to_string()))
        .and_then(|p| p.spec.as_ref());
    let restricted = match own {
        Some(spec) if !spec.reset => {
            crate::resourcemanager::orgpolicy::spec_enforces(st, spec, &project.parent)
        }
        Some(_) => false,
        None => {
            !project.parent.is_empty()
                && crate::resourcemanager::orgpolicy::enforced_in(st, &project.parent, c)
        }
    };
    (a, !restricted)
}
