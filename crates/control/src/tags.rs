//! Resource Manager v3 tags: tag keys (under an organization or a project), their values, and
//! the tag bindings that attach a value to an organization, folder or project.
//!
//! A resource's *effective* tags are its own bindings plus those inherited from its
//! ancestors, a binding lower in the hierarchy overriding one of the same key higher up. Org
//! policy rule conditions ([`crate::tag_condition`]) are evaluated over them.
//!
//! Tag keys and values are IAM resources too: a value sits below its key, a key below its
//! organization or project, so a grant on the organization reaches them (as on Google).
//!
//! Choices where Google's docs are silent (written down here, as DESIGN.md asks):
//! - bindings are accepted on organizations, folders and projects only (the resources Runpool
//!   has); a binding's `parent` is stored with the project number, whatever the caller wrote;
//! - a resource holds at most one value of a key: a second value of the same key is refused
//!   with `FAILED_PRECONDITION` (delete the first binding), the same value twice with
//!   `ALREADY_EXISTS`;
//! - a key with values, or a value with bindings, cannot be deleted (`FAILED_PRECONDITION`).

use crate::error::{Code, Error, Result};
use crate::resourcemanager::{self as rm, Kind, Node};
use crate::state::{Change, State};
use crate::tag_condition::{ResourceTag, valid_short_name};
use crate::{Caller, Control, Target};
use google_cloud_longrunning::model::{Operation, operation};
use google_cloud_resourcemanager_v3::model::{
    CreateTagBindingMetadata, CreateTagKeyMetadata, CreateTagValueMetadata,
    DeleteTagBindingMetadata, DeleteTagKeyMetadata, DeleteTagValueMetadata, EffectiveTag,
    TagBinding, TagKey, TagValue, UpdateTagKeyMetadata, UpdateTagValueMetadata,
};
use google_cloud_wkt::Any;
use std::collections::HashSet;

/// The prefix of a full resource name of a hierarchy node.
pub const FULL_NAME_PREFIX: &str = "//cloudresourcemanager.googleapis.com/";
pub const TAG_KEY_TYPE: &str = "cloudresourcemanager.googleapis.com/TagKey";
pub const TAG_VALUE_TYPE: &str = "cloudresourcemanager.googleapis.com/TagValue";

/// A fresh tag id, unique among keys and values (Google's are 15 digits, `2814…`).
pub(crate) fn new_tag_id(st: &State) -> String {
    use rand::Rng;
    loop {
        let n: u64 = rand::rng().random_range(281_400_000_000_000..281_500_000_000_000);
        let s = n.to_string();
        if !st.tag_keys.contains_key(&format!("tagKeys/{s}"))
            && !st.tag_values.contains_key(&format!("tagValues/{s}"))
        {
            return s;
        }
    }
}

fn etag() -> String {
    use rand::Rng;
    format!("T{:016x}", rand::rng().random::<u64>())
}

/// `//cloudresourcemanager.googleapis.com/projects/1` → `%2F%2Fcloudresourcemanager.googleapis.com%2Fprojects%2F1`,
/// as a binding's name carries its parent.
fn encode(full: &str) -> String {
    full.replace('%', "%25").replace('/', "%2F")
}

/// `tagBindings/{encoded parent}/tagValues/N`
pub fn binding_name(parent_full: &str, value: &str) -> String {
    format!("tagBindings/{}/{value}", encode(parent_full))
}

/// A finished operation with metadata and response, as Google's tag methods return.
fn operation<M, R>(prefix: &str, metadata: &M, response: &R) -> Result<Operation>
where
    M: google_cloud_wkt::message::Message + serde::Serialize,
    R: google_cloud_wkt::message::Message + serde::Serialize,
{
    use rand::Rng;
    let internal = |e: google_cloud_wkt::AnyError| Error::internal(e.to_string());
    let mut op = Operation::new();
    op.name = format!("operations/{prefix}.p-{:x}", rand::rng().random::<u64>());
    op.done = true;
    op.metadata = Some(Any::from_msg(metadata).map_err(internal)?);
    op.result = Some(operation::Result::Response(Box::new(
        Any::from_msg(response).map_err(internal)?,
    )));
    Ok(op)
}

fn numbered(name: &str, collection: &str) -> bool {
    name.strip_prefix(collection)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn etag_mismatch(what: &str) -> Error {
    Error::new(
        Code::Aborted,
        format!(
            "The etag provided does not match the current etag of the {what}; re-read it and retry."
        ),
    )
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > 256 {
        return Err(Error::invalid(
            "description must not exceed 256 characters.",
        ));
    }
    Ok(())
}

impl State {
    /// The namespace a key's parent gives its namespaced name: the organization id, or the
    /// project id of a project.
    fn tag_namespace(&self, parent: &str) -> String {
        match self.projects.get(parent) {
            Some(p) => p.project_id.clone(),
            None => parent
                .split_once('/')
                .map(|(_, id)| id)
                .unwrap_or(parent)
                .to_string(),
        }
    }

    /// The canonical key parent a namespace names: `ORG_ID`, `PROJECT_ID` or `PROJECT_NUMBER`.
    fn namespace_parent(&self, ns: &str) -> Option<String> {
        let org = format!("organizations/{ns}");
        if self.organizations.contains_key(&org) {
            return Some(org);
        }
        self.resolve(&format!("projects/{ns}")).map(|n| n.name)
    }

    /// `ORG_ID/env` (or `PROJECT_ID/env`, `PROJECT_NUMBER/env`) → the key.
    pub fn tag_key_by_namespaced(&self, name: &str) -> Option<&TagKey> {
        let (ns, short) = name.split_once('/')?;
        let parent = self.namespace_parent(ns)?;
        self.tag_keys
            .values()
            .find(|k| k.parent == parent && k.short_name == short)
    }

    /// `ORG_ID/env/dev` → the value.
    pub fn tag_value_by_namespaced(&self, name: &str) -> Option<&TagValue> {
        let (key, short) = name.rsplit_once('/')?;
        let key = self.tag_key_by_namespaced(key)?;
        self.tag_values
            .values()
            .find(|v| v.parent == key.name && v.short_name == short)
    }

    /// Every namespaced name a key answers to in conditions.
    fn tag_key_names(&self, key: &TagKey) -> Vec<String> {
        let mut names = vec![key.namespaced_name.clone()];
        if let Some(number) = key.parent.strip_prefix("projects/") {
            names.push(format!("{number}/{}", key.short_name));
        }
        names
    }

    /// The bindings made directly on a node (canonical name).
    pub fn tag_bindings_on(&self, node: &str) -> impl Iterator<Item = &TagBinding> {
        let prefix = format!(
            "tagBindings/{}/",
            encode(&format!("{FULL_NAME_PREFIX}{node}"))
        );
        self.tag_bindings
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(|(_, b)| b)
    }

    /// A node's effective tags: `(key, value, inherited)`, its own first, then each
    /// ancestor's for keys not yet seen (a lower binding overrides the same key higher up).
    pub fn effective_tags(&self, node: &str) -> Vec<(&TagKey, &TagValue, bool)> {
        let mut seen = HashSet::new();
        let mut out = vec![];
        let mut cursor = Some(node.to_string());
        let mut inherited = false;
        while let Some(n) = cursor {
            for b in self.tag_bindings_on(&n) {
                let Some(v) = self.tag_values.get(&b.tag_value) else {
                    continue;
                };
                let Some(k) = self.tag_keys.get(&v.parent) else {
                    continue;
                };
                if seen.insert(k.name.as_str()) {
                    out.push((k, v, inherited));
                }
            }
            inherited = true;
            cursor = self.parent_of(&n).map(str::to_string);
        }
        out
    }

    /// A node's effective tags as org policy conditions see them.
    pub fn resource_tags(&self, node: &str) -> Vec<ResourceTag> {
        self.effective_tags(node)
            .into_iter()
            .map(|(k, v, _)| ResourceTag {
                key_id: k.name.clone(),
                key_names: self.tag_key_names(k),
                value_id: v.name.clone(),
                value_short_name: v.short_name.clone(),
            })
            .collect()
    }
}

/// Where a permission on a tag key or value is checked.
fn key_target(name: &str) -> Target<'_> {
    Target {
        name,
        shown: name,
        resource_type: TAG_KEY_TYPE,
        service: rm::SERVICE,
    }
}

fn value_target(name: &str) -> Target<'_> {
    Target {
        name,
        shown: name,
        resource_type: TAG_VALUE_TYPE,
        service: rm::SERVICE,
    }
}

impl Control {
    // ---- tag keys ----

    /// A key named `tagKeys/N` (or, where Google accepts it, namespaced `ORG_ID/short`) that
    /// the caller holds `permission` on. A key that does not exist is answered as one the
    /// caller may not see.
    fn tag_key(&self, caller: &Caller, name: &str, permission: &str) -> Result<TagKey> {
        if name.is_empty() {
            return Err(Error::invalid(
                "A tag key name is required, e.g. tagKeys/123.",
            ));
        }
        let key = {
            let st = self.read();
            if name.starts_with("tagKeys/") {
                if !numbered(name, "tagKeys") {
                    return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
                }
                st.tag_keys.get(name).cloned()
            } else {
                st.tag_key_by_namespaced(name).cloned()
            }
        };
        let key = key.ok_or_else(|| Error::permission_denied(permission, name, rm::SERVICE))?;
        self.authorize(
            caller,
            permission,
            &Target {
                shown: name,
                ..key_target(&key.name)
            },
        )?;
        Ok(key)
    }

    /// The organization or project a new key goes under.
    fn tag_key_parent(&self, caller: &Caller, parent: &str, permission: &str) -> Result<Node> {
        if parent.is_empty() {
            return Err(Error::invalid(
                "parent is required, e.g. organizations/123 or projects/my-project.",
            ));
        }
        let node = self.node(parent, permission)?;
        if node.kind == Kind::Folder {
            return Err(Error::invalid(format!(
                "Invalid parent '{parent}': a tag key's parent must be an organization or a project."
            )));
        }
        self.authorize(caller, permission, &node.target())?;
        Ok(node)
    }

    pub fn create_tag_key(
        &self,
        caller: &Caller,
        mut key: TagKey,
        validate_only: bool,
    ) -> Result<Operation> {
        if !valid_short_name(&key.short_name) {
            return Err(Error::invalid(format!(
                "Invalid short_name '{}': it must be 1 to 63 characters, begin and end with a letter or digit, with only letters, digits, '-', '_' and '.' between.",
                key.short_name
            )));
        }
        check_description(&key.description)?;
        if key.purpose == google_cloud_resourcemanager_v3::model::Purpose::GceFirewall
            && !key.purpose_data.contains_key("network")
        {
            return Err(Error::invalid(
                "purpose GCE_FIREWALL requires purpose_data with a 'network' entry.",
            ));
        }
        let parent = self.tag_key_parent(caller, &key.parent, "resourcemanager.tagKeys.create")?;
        self.write(|st| {
            if st
                .tag_keys
                .values()
                .any(|k| k.parent == parent.name && k.short_name == key.short_name)
            {
                return Err(Error::already_exists(format!(
                    "A TagKey with short name '{}' already exists under {}.",
                    key.short_name, key.parent
                )));
            }
            key.name = format!("tagKeys/{}", new_tag_id(st));
            key.parent = parent.name.clone();
            key.namespaced_name = format!("{}/{}", st.tag_namespace(&parent.name), key.short_name);
            key.create_time = Some(rm::now());
            key.update_time = key.create_time;
            key.etag = etag();
            let op = operation("tkc", &CreateTagKeyMetadata::new(), &key)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagKey(key.name.clone(), Some(key.clone())),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn get_tag_key(&self, caller: &Caller, name: &str) -> Result<TagKey> {
        if !name.starts_with("tagKeys/") {
            return Err(Error::invalid(format!(
                "Invalid resource name: '{name}'. Expected tagKeys/{{tag_key_id}}."
            )));
        }
        self.tag_key(caller, name, "resourcemanager.tagKeys.get")
    }

    /// `tagKeys/namespaced?name=ORG_ID/short`
    pub fn get_namespaced_tag_key(&self, caller: &Caller, name: &str) -> Result<TagKey> {
        if name.split('/').count() != 2 {
            return Err(Error::invalid(format!(
                "Invalid namespaced name '{name}': expected ORGANIZATION_ID/SHORT_NAME or PROJECT_ID/SHORT_NAME."
            )));
        }
        self.tag_key(caller, name, "resourcemanager.tagKeys.get")
    }

    pub fn list_tag_keys(&self, caller: &Caller, parent: &str) -> Result<Vec<TagKey>> {
        let node = self.tag_key_parent(caller, parent, "resourcemanager.tagKeys.list")?;
        Ok(self
            .read()
            .tag_keys
            .values()
            .filter(|k| k.parent == node.name)
            .cloned()
            .collect())
    }

    /// `patch`: only `description` is mutable.
    pub fn update_tag_key(
        &self,
        caller: &Caller,
        name: &str,
        patch: TagKey,
        mask: &[String],
        validate_only: bool,
    ) -> Result<Operation> {
        for f in mask {
            if !matches!(f.as_str(), "description" | "etag") {
                return Err(Error::invalid(format!(
                    "Field '{f}' cannot be updated: only description is mutable."
                )));
            }
        }
        check_description(&patch.description)?;
        let key = self.tag_key(caller, name, "resourcemanager.tagKeys.update")?;
        self.write(|st| {
            let mut k = st.tag_keys.get(&key.name).cloned().unwrap_or(key);
            if !patch.etag.is_empty() && patch.etag != k.etag {
                return Err(etag_mismatch("tag key"));
            }
            if mask.is_empty() || mask.iter().any(|f| f == "description") {
                k.description = patch.description.clone();
            }
            k.update_time = Some(rm::now());
            k.etag = etag();
            let op = operation("tku", &UpdateTagKeyMetadata::new(), &k)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagKey(k.name.clone(), Some(k)),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn delete_tag_key(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        validate_only: bool,
    ) -> Result<Operation> {
        let key = self.tag_key(caller, name, "resourcemanager.tagKeys.delete")?;
        self.write(|st| {
            let Some(k) = st.tag_keys.get(&key.name).cloned() else {
                return Err(Error::permission_denied(
                    "resourcemanager.tagKeys.delete",
                    name,
                    rm::SERVICE,
                ));
            };
            if !etag.is_empty() && etag != k.etag {
                return Err(etag_mismatch("tag key"));
            }
            if st.tag_values.values().any(|v| v.parent == k.name) {
                return Err(Error::failed_precondition(format!(
                    "TagKey {} ({}) still has TagValues; delete them first.",
                    k.name, k.namespaced_name
                )));
            }
            let op = operation("tkd", &DeleteTagKeyMetadata::new(), &k)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagKey(k.name.clone(), None),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn tag_key_get_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        version: i32,
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "resourcemanager.tagKeys.getIamPolicy";
        let key = self.tag_key_name(name, perm)?;
        self.get_iam_policy(caller, &key_target(&key), perm, version)
    }

    pub fn tag_key_set_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        policy: google_cloud_iam_v1::model::Policy,
        mask: &[String],
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "resourcemanager.tagKeys.setIamPolicy";
        let key = self.tag_key_name(name, perm)?;
        self.set_iam_policy(caller, &key_target(&key), perm, policy, mask, None)
    }

    pub fn tag_key_test_iam_permissions(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let key = self.tag_key_name(name, "resourcemanager.tagKeys.get")?;
        self.test_iam_permissions(caller, &key_target(&key), permissions)
    }

    /// An existing key's name, for the IAM methods (which authorize on their own).
    fn tag_key_name(&self, name: &str, permission: &str) -> Result<String> {
        if !numbered(name, "tagKeys") {
            return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
        }
        if self.read().tag_keys.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(Error::permission_denied(permission, name, rm::SERVICE))
        }
    }

    // ---- tag values ----

    fn tag_value(&self, caller: &Caller, name: &str, permission: &str) -> Result<TagValue> {
        if name.is_empty() {
            return Err(Error::invalid(
                "A tag value name is required, e.g. tagValues/456.",
            ));
        }
        let value = {
            let st = self.read();
            if name.starts_with("tagValues/") {
                if !numbered(name, "tagValues") {
                    return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
                }
                st.tag_values.get(name).cloned()
            } else {
                st.tag_value_by_namespaced(name).cloned()
            }
        };
        let value = value.ok_or_else(|| Error::permission_denied(permission, name, rm::SERVICE))?;
        self.authorize(
            caller,
            permission,
            &Target {
                shown: name,
                ..value_target(&value.name)
            },
        )?;
        Ok(value)
    }

    pub fn create_tag_value(
        &self,
        caller: &Caller,
        mut value: TagValue,
        validate_only: bool,
    ) -> Result<Operation> {
        if !valid_short_name(&value.short_name) {
            return Err(Error::invalid(format!(
                "Invalid short_name '{}': it must be 1 to 63 characters, begin and end with a letter or digit, with only letters, digits, '-', '_' and '.' between.",
                value.short_name
            )));
        }
        check_description(&value.description)?;
        if value.parent.is_empty() {
            return Err(Error::invalid("parent is required, e.g. tagKeys/123."));
        }
        let key = self.tag_key(caller, &value.parent, "resourcemanager.tagValues.create")?;
        self.write(|st| {
            if st
                .tag_values
                .values()
                .any(|v| v.parent == key.name && v.short_name == value.short_name)
            {
                return Err(Error::already_exists(format!(
                    "A TagValue with short name '{}' already exists under {} ({}).",
                    value.short_name, key.name, key.namespaced_name
                )));
            }
            value.name = format!("tagValues/{}", new_tag_id(st));
            value.parent = key.name.clone();
            value.namespaced_name = format!("{}/{}", key.namespaced_name, value.short_name);
            value.create_time = Some(rm::now());
            value.update_time = value.create_time;
            value.etag = etag();
            let op = operation("tvc", &CreateTagValueMetadata::new(), &value)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagValue(value.name.clone(), Some(value.clone())),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn get_tag_value(&self, caller: &Caller, name: &str) -> Result<TagValue> {
        if !name.starts_with("tagValues/") {
            return Err(Error::invalid(format!(
                "Invalid resource name: '{name}'. Expected tagValues/{{tag_value_id}}."
            )));
        }
        self.tag_value(caller, name, "resourcemanager.tagValues.get")
    }

    /// `tagValues/namespaced?name=ORG_ID/key/value`
    pub fn get_namespaced_tag_value(&self, caller: &Caller, name: &str) -> Result<TagValue> {
        if name.split('/').count() != 3 {
            return Err(Error::invalid(format!(
                "Invalid namespaced name '{name}': expected ORGANIZATION_ID/KEY_SHORT_NAME/VALUE_SHORT_NAME."
            )));
        }
        self.tag_value(caller, name, "resourcemanager.tagValues.get")
    }

    pub fn list_tag_values(&self, caller: &Caller, parent: &str) -> Result<Vec<TagValue>> {
        if parent.is_empty() {
            return Err(Error::invalid("parent is required, e.g. tagKeys/123."));
        }
        let key = self.tag_key(caller, parent, "resourcemanager.tagValues.list")?;
        Ok(self
            .read()
            .tag_values
            .values()
            .filter(|v| v.parent == key.name)
            .cloned()
            .collect())
    }

    pub fn update_tag_value(
        &self,
        caller: &Caller,
        name: &str,
        patch: TagValue,
        mask: &[String],
        validate_only: bool,
    ) -> Result<Operation> {
        for f in mask {
            if !matches!(f.as_str(), "description" | "etag") {
                return Err(Error::invalid(format!(
                    "Field '{f}' cannot be updated: only description is mutable."
                )));
            }
        }
        check_description(&patch.description)?;
        let value = self.tag_value(caller, name, "resourcemanager.tagValues.update")?;
        self.write(|st| {
            let mut v = st.tag_values.get(&value.name).cloned().unwrap_or(value);
            if !patch.etag.is_empty() && patch.etag != v.etag {
                return Err(etag_mismatch("tag value"));
            }
            if mask.is_empty() || mask.iter().any(|f| f == "description") {
                v.description = patch.description.clone();
            }
            v.update_time = Some(rm::now());
            v.etag = etag();
            let op = operation("tvu", &UpdateTagValueMetadata::new(), &v)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagValue(v.name.clone(), Some(v)),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn delete_tag_value(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        validate_only: bool,
    ) -> Result<Operation> {
        let value = self.tag_value(caller, name, "resourcemanager.tagValues.delete")?;
        self.write(|st| {
            let Some(v) = st.tag_values.get(&value.name).cloned() else {
                return Err(Error::permission_denied(
                    "resourcemanager.tagValues.delete",
                    name,
                    rm::SERVICE,
                ));
            };
            if !etag.is_empty() && etag != v.etag {
                return Err(etag_mismatch("tag value"));
            }
            if st.tag_bindings.values().any(|b| b.tag_value == v.name) {
                return Err(Error::failed_precondition(format!(
                    "TagValue {} ({}) is still bound to resources; delete its tag bindings first.",
                    v.name, v.namespaced_name
                )));
            }
            let op = operation("tvd", &DeleteTagValueMetadata::new(), &v)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagValue(v.name.clone(), None),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    fn tag_value_name(&self, name: &str, permission: &str) -> Result<String> {
        if !numbered(name, "tagValues") {
            return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
        }
        if self.read().tag_values.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(Error::permission_denied(permission, name, rm::SERVICE))
        }
    }

    pub fn tag_value_get_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        version: i32,
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "resourcemanager.tagValues.getIamPolicy";
        let value = self.tag_value_name(name, perm)?;
        self.get_iam_policy(caller, &value_target(&value), perm, version)
    }

    pub fn tag_value_set_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        policy: google_cloud_iam_v1::model::Policy,
        mask: &[String],
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "resourcemanager.tagValues.setIamPolicy";
        let value = self.tag_value_name(name, perm)?;
        self.set_iam_policy(caller, &value_target(&value), perm, policy, mask, None)
    }

    pub fn tag_value_test_iam_permissions(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let value = self.tag_value_name(name, "resourcemanager.tagValues.get")?;
        self.test_iam_permissions(caller, &value_target(&value), permissions)
    }

    // ---- tag bindings ----

    /// A full resource name (`//cloudresourcemanager.googleapis.com/projects/ID`) resolved to
    /// its node, authorized for `permission`.
    fn tagged_node(&self, caller: &Caller, full: &str, permission: &str) -> Result<Node> {
        if full.is_empty() {
            return Err(Error::invalid(
                "parent is required, e.g. //cloudresourcemanager.googleapis.com/projects/123.",
            ));
        }
        let Some(name) = full.strip_prefix(FULL_NAME_PREFIX) else {
            return Err(Error::invalid(format!(
                "Invalid parent '{full}': expected the full resource name of an organization, folder or project, e.g. //cloudresourcemanager.googleapis.com/projects/123 (Runpool holds no other taggable resources)."
            )));
        };
        if Kind::of(name).is_none() || name.split('/').count() != 2 {
            return Err(Error::invalid(format!(
                "Invalid parent '{full}': expected //cloudresourcemanager.googleapis.com/organizations/ID, …/folders/ID or …/projects/ID."
            )));
        }
        let node = self
            .read()
            .resolve(name)
            .ok_or_else(|| Error::permission_denied(permission, full, rm::SERVICE))?;
        let target = Target {
            shown: full,
            ..node.target()
        };
        self.authorize(caller, permission, &target)?;
        Ok(node)
    }

    /// `tagBindings.create`: `resourcemanager.tagValueBindings.create` on the value and
    /// `resourcemanager.hierarchyNodes.createTagBinding` on the resource.
    pub fn create_tag_binding(
        &self,
        caller: &Caller,
        binding: TagBinding,
        validate_only: bool,
    ) -> Result<Operation> {
        let given = match (
            binding.tag_value.is_empty(),
            binding.tag_value_namespaced_name.is_empty(),
        ) {
            (false, false) => {
                return Err(Error::invalid(
                    "Only one of tag_value and tag_value_namespaced_name may be set.",
                ));
            }
            (true, true) => {
                return Err(Error::invalid(
                    "tag_value is required, e.g. tagValues/456 (or tag_value_namespaced_name ORG_ID/KEY/VALUE).",
                ));
            }
            (false, true) => binding.tag_value.clone(),
            (true, false) => binding.tag_value_namespaced_name.clone(),
        };
        let value = self.tag_value(caller, &given, "resourcemanager.tagValueBindings.create")?;
        let node = self.tagged_node(
            caller,
            &binding.parent,
            "resourcemanager.hierarchyNodes.createTagBinding",
        )?;
        self.write(|st| {
            let Some(key) = st.tag_keys.get(&value.parent) else {
                return Err(Error::internal(format!("tag value {} has no key", value.name)));
            };
            // A value can only be bound inside its key's organization or project.
            let mut cursor = Some(node.name.clone());
            let mut inside = false;
            while let Some(c) = cursor {
                if c == key.parent {
                    inside = true;
                    break;
                }
                cursor = st.parent_of(&c).map(str::to_string);
            }
            if !inside {
                return Err(Error::invalid(format!(
                    "TagValue {} ({}) belongs to {} and cannot be bound to {}, which is not in it.",
                    value.name, value.namespaced_name, key.parent, binding.parent
                )));
            }
            let parent = format!("{FULL_NAME_PREFIX}{}", node.name);
            let name = binding_name(&parent, &value.name);
            if st.tag_bindings.contains_key(&name) {
                return Err(Error::already_exists(format!(
                    "A binding already exists between {} and {}.",
                    binding.parent, value.name
                )));
            }
            if let Some(other) = st.tag_bindings_on(&node.name).find(|b| {
                st.tag_values
                    .get(&b.tag_value)
                    .is_some_and(|v| v.parent == key.name)
            }) {
                return Err(Error::failed_precondition(format!(
                    "{} already has a value of tag key {} bound ({}); a resource holds one value per key. Delete that binding first.",
                    binding.parent, key.namespaced_name, other.tag_value
                )));
            }
            let mut b = TagBinding::new();
            b.name = name.clone();
            b.parent = parent;
            b.tag_value = value.name.clone();
            b.tag_value_namespaced_name = value.namespaced_name.clone();
            let op = operation("rctb", &CreateTagBindingMetadata::new(), &b)?;
            if validate_only {
                return Ok((vec![], op));
            }
            Ok((
                vec![
                    Change::TagBinding(name, Some(b)),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    pub fn list_tag_bindings(&self, caller: &Caller, parent: &str) -> Result<Vec<TagBinding>> {
        let node = self.tagged_node(
            caller,
            parent,
            "resourcemanager.hierarchyNodes.listTagBindings",
        )?;
        Ok(self.read().tag_bindings_on(&node.name).cloned().collect())
    }

    /// `tagBindings.delete`: `resourcemanager.tagValueBindings.delete` on the value and
    /// `resourcemanager.hierarchyNodes.deleteTagBinding` on the resource.
    pub fn delete_tag_binding(&self, caller: &Caller, name: &str) -> Result<Operation> {
        // `tagBindings/{parent}/tagValues/N`, the parent percent-encoded or (as a router
        // hands it over, decoded) not.
        let bad = || {
            Error::invalid(format!(
                "Invalid tag binding name '{name}': expected tagBindings/{{full resource name}}/tagValues/ID."
            ))
        };
        let rest = name.strip_prefix("tagBindings/").ok_or_else(bad)?;
        let (parent, value) = rest.rsplit_once("/tagValues/").ok_or_else(bad)?;
        let parent = parent
            .replace("%2F", "/")
            .replace("%2f", "/")
            .replace("%25", "%");
        let value = format!("tagValues/{value}");
        if !numbered(&value, "tagValues") {
            return Err(bad());
        }
        let binding = {
            let st = self.read();
            st.tag_bindings.get(&binding_name(&parent, &value)).cloned()
        };
        let perm = "resourcemanager.tagValueBindings.delete";
        let Some(binding) = binding else {
            // Not there (or not visible): the value's permission decides what is said.
            self.tag_value(caller, &value, perm)?;
            return Err(Error::not_found(format!(
                "Tag binding '{name}' was not found."
            )));
        };
        self.tag_value(caller, &value, perm)?;
        self.tagged_node(
            caller,
            &binding.parent,
            "resourcemanager.hierarchyNodes.deleteTagBinding",
        )?;
        self.write(|st| {
            if !st.tag_bindings.contains_key(&binding.name) {
                return Err(Error::not_found(format!(
                    "Tag binding '{name}' was not found."
                )));
            }
            let op = operation(
                "rdtb",
                &DeleteTagBindingMetadata::new(),
                &google_cloud_wkt::Empty::default(),
            )?;
            Ok((
                vec![
                    Change::TagBinding(binding.name.clone(), None),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    /// `effectiveTags.list`: the resource's own and inherited tags.
    pub fn list_effective_tags(&self, caller: &Caller, parent: &str) -> Result<Vec<EffectiveTag>> {
        let node = self.tagged_node(
            caller,
            parent,
            "resourcemanager.hierarchyNodes.listEffectiveTags",
        )?;
        let st = self.read();
        Ok(st
            .effective_tags(&node.name)
            .into_iter()
            .map(|(k, v, inherited)| {
                let mut t = EffectiveTag::new();
                t.tag_value = v.name.clone();
                t.namespaced_tag_value = v.namespaced_name.clone();
                t.tag_key = k.name.clone();
                t.namespaced_tag_key = k.namespaced_name.clone();
                t.tag_key_parent_name = k.parent.clone();
                t.inherited = inherited;
                t
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_names_encode_the_parent() {
        assert_eq!(
            binding_name(
                "//cloudresourcemanager.googleapis.com/projects/123",
                "tagValues/456"
            ),
            "tagBindings/%2F%2Fcloudresourcemanager.googleapis.com%2Fprojects%2F123/tagValues/456"
        );
    }
}
