//! IAM v1 roles: the predefined catalog (read-only) and custom roles on projects and
//! organizations (create, get, list, patch, delete with undelete).

use crate::base::error::{Error, Result};
use crate::base::state::Change;
use crate::{Caller, Control, Target};
use google_cloud_iam_admin_v1::model::{Role, role::RoleLaunchStage};

pub const SERVICE: &str = "iam.googleapis.com";

fn stage_of(s: &str) -> RoleLaunchStage {
    match s {
        "GA" => RoleLaunchStage::Ga,
        "BETA" => RoleLaunchStage::Beta,
        "DEPRECATED" => RoleLaunchStage::Deprecated,
        "DISABLED" => RoleLaunchStage::Disabled,
        "EAP" => RoleLaunchStage::Eap,
        _ => RoleLaunchStage::Alpha,
    }
}

/// A predefined role as the wire shows it; `full` adds its permissions (view FULL).
pub fn predefined_wire(r: &runpool_authz::Role, full: bool) -> Role {
    let mut w = Role::new();
    w.name = r.name.clone();
    w.title = r.title.clone();
    w.description = r.description.clone();
    w.stage = stage_of(&r.stage);
    w.etag = bytes::Bytes::from_static(b"\x00\x00");
    if full {
        w.included_permissions = r.permissions.clone();
    }
    w
}

fn valid_role_id(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

impl Control {
    /// The predefined role `roles/X`.
    pub fn get_predefined_role(&self, name: &str) -> Result<Role> {
        let snap = self.snapshot();
        snap.catalog()
            .predefined_roles()
            .find(|r| r.name == name)
            .map(|r| predefined_wire(r, true))
            .ok_or_else(|| Error::not_found(format!("The role named {name} was not found.")))
    }

    pub fn list_predefined_roles(&self, full: bool) -> Vec<Role> {
        self.snapshot()
            .catalog()
            .predefined_roles()
            .map(|r| predefined_wire(r, full))
            .collect()
    }

    /// Resolve `projects/P` or `organizations/O` and authorize `permission` there.
    fn role_parent(&self, caller: &Caller, parent: &str, permission: &str) -> Result<()> {
        let node = self.node(parent, permission)?;
        if node.kind == crate::base::hierarchy::Kind::Folder {
            return Err(Error::invalid(
                "Custom roles live on projects and organizations, not folders.",
            ));
        }
        let target = Target {
            service: SERVICE,
            ..node.target()
        };
        self.authorize(caller, permission, &target)
    }

    fn parent_of_role(name: &str) -> Result<&str> {
        name.rsplit_once("/roles/")
            .map(|(p, _)| p)
            .ok_or_else(|| Error::invalid(format!("Invalid role name '{name}'.")))
    }

    pub fn create_role(
        &self,
        caller: &Caller,
        parent: &str,
        role_id: &str,
        mut role: Role,
    ) -> Result<Role> {
        self.role_parent(caller, parent, "iam.roles.create")?;
        if !valid_role_id(role_id) {
            return Err(Error::invalid(format!(
                "The role id '{role_id}' is invalid: use 3 to 64 letters, digits, underscores and periods."
            )));
        }
        if role.title.chars().count() > 100 {
            return Err(Error::invalid(
                "The role title must be at most 100 characters.",
            ));
        }
        let snap = self.snapshot();
        for p in &role.included_permissions {
            if !snap.catalog().is_known_permission(p) {
                return Err(Error::invalid(format!("Permission {p} is not valid.")));
            }
        }
        role.name = format!("{parent}/roles/{role_id}");
        role.included_permissions.sort();
        role.included_permissions.dedup();
        role.etag = crate::base::ids::policy_etag();
        role.deleted = false;
        self.write(|st| {
            if st.custom_roles.contains_key(&role.name) {
                return Err(Error::already_exists(format!(
                    "A role named {role_id} in {parent} already exists."
                )));
            }
            Ok((vec![Change::CustomRole(role.clone())], role))
        })
    }

    pub fn get_role(&self, caller: &Caller, name: &str) -> Result<Role> {
        if name.starts_with("roles/") {
            return self.get_predefined_role(name);
        }
        self.role_parent(caller, Self::parent_of_role(name)?, "iam.roles.get")?;
        self.read()
            .custom_roles
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("The role named {name} was not found.")))
    }

    pub fn list_roles(
        &self,
        caller: &Caller,
        parent: &str,
        show_deleted: bool,
        full: bool,
    ) -> Result<Vec<Role>> {
        self.role_parent(caller, parent, "iam.roles.list")?;
        let prefix = format!("{parent}/roles/");
        Ok(self
            .read()
            .custom_roles
            .values()
            .filter(|r| r.name.starts_with(&prefix) && (show_deleted || !r.deleted))
            .map(|r| {
                let mut r = r.clone();
                if !full {
                    r.included_permissions.clear();
                }
                r
            })
            .collect())
    }

    /// `patch` with an update mask over title, description, includedPermissions, stage.
    pub fn update_role(
        &self,
        caller: &Caller,
        name: &str,
        patch: Role,
        mask: &[String],
    ) -> Result<Role> {
        self.role_parent(caller, Self::parent_of_role(name)?, "iam.roles.update")?;
        let snap = self.snapshot();
        for p in &patch.included_permissions {
            if !snap.catalog().is_known_permission(p) {
                return Err(Error::invalid(format!("Permission {p} is not valid.")));
            }
        }
        self.write(|st| {
            let mut r =
                st.custom_roles.get(name).cloned().ok_or_else(|| {
                    Error::not_found(format!("The role named {name} was not found."))
                })?;
            if !patch.etag.is_empty() && patch.etag != r.etag {
                return Err(Error::concurrent_change());
            }
            let all = mask.is_empty();
            let has = |f: &str, g: &str| all || mask.iter().any(|m| m == f || m == g);
            if has("title", "title") {
                r.title = patch.title.clone();
            }
            if has("description", "description") {
                r.description = patch.description.clone();
            }
            if has("includedPermissions", "included_permissions") {
                r.included_permissions = patch.included_permissions.clone();
                r.included_permissions.sort();
                r.included_permissions.dedup();
            }
            if has("stage", "stage") {
                r.stage = patch.stage.clone();
            }
            r.etag = crate::base::ids::policy_etag();
            Ok((vec![Change::CustomRole(r.clone())], r))
        })
    }

    /// Delete (`deleted: true`, bindings stop granting) or undelete.
    pub fn set_role_deleted(&self, caller: &Caller, name: &str, deleted: bool) -> Result<Role> {
        let perm = if deleted {
            "iam.roles.delete"
        } else {
            "iam.roles.undelete"
        };
        self.role_parent(caller, Self::parent_of_role(name)?, perm)?;
        self.write(|st| {
            let mut r =
                st.custom_roles.get(name).cloned().ok_or_else(|| {
                    Error::not_found(format!("The role named {name} was not found."))
                })?;
            if r.deleted == deleted {
                return Err(Error::failed_precondition(format!(
                    "The role {name} is {}deleted.",
                    if deleted { "already " } else { "not " }
                )));
            }
            r.deleted = deleted;
            r.etag = crate::base::ids::policy_etag();
            Ok((vec![Change::CustomRole(r.clone())], r))
        })
    }
}
