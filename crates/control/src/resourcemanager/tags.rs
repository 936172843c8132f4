//! Resource Manager v3 tags: tag keys (under an organization or a project), their values, and
//! the tag bindings that attach a value to an organization, folder or project.
//!
//! A resource's *effective* tags are its own bindings plus those inherited from its
//! ancestors, a binding lower in the hierarchy overriding one of the same key higher up. Org
//! policy rule conditions ([`runpool_authz::condition::tags`]) are evaluated over them.
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

use crate::base::error::{Code, Error, Result};
use crate::base::hierarchy::{Kind, Node};
use crate::base::state::{Change, State};
use crate::{Caller, Control, Target};
use google_cloud_longrunning::model::{Operation, operation};
use google_cloud_resourcemanager_v3::model::{
    CreateTagBindingMetadata, CreateTagKeyMetadata, CreateTagValueMetadata,
    DeleteTagBindingMetadata, DeleteTagKeyMetadata, DeleteTagValueMetadata, EffectiveTag,
    TagBinding, TagKey, TagValue, UpdateTagKeyMetadata, UpdateTagValueMetadata,
};
use google_cloud_wkt::{Any, Timestamp};
use runpool_authz::Tag;
use runpool_authz::condition::tags::valid_short_name;
use std::collections::{BTreeMap, HashSet};

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
    pub fn resource_tags(&self, node: &str) -> Vec<Tag> {
        self.effective_tags(node)
            .into_iter()
            .map(|(k, v, _)| Tag {
                key_id: k.name.clone(),
                key_names: self.tag_key_names(k),
                value_id: v.name.clone(),
                value_short_name: v.short_name.clone(),
            })
            .collect()
    }
}

/// Whether a change can alter any resource's effective tags: tags themselves, or where a
/// node hangs in the hierarchy.
pub(crate) fn affects_tags(c: &Change) -> bool {
    matches!(
        c,
        Change::TagKey(..)
            | Change::TagValue(..)
            | Change::TagBinding(..)
            | Change::Project(..)
            | Change::Folder(..)
            | Change::Organization(..)
    )
}

/// The fields tag keys and values share (same names, same meaning), for the code that
/// serves both.
pub struct Fields<'a> {
    name: &'a mut String,
    parent: &'a mut String,
    namespaced_name: &'a mut String,
    description: &'a mut String,
    etag: &'a mut String,
    create_time: &'a mut Option<Timestamp>,
    update_time: &'a mut Option<Timestamp>,
}

/// Where a new key or value goes: its canonical parent, the namespace its namespaced name
/// starts with, and the parent as the "already exists" message names it.
pub struct TagParent {
    name: String,
    namespace: String,
    shown: String,
}

/// A tag key or a tag value. Their methods (create, get, namespaced get, list, update,
/// delete and the IAM policy trio) are one generic implementation over this: what differs
/// is the collection, the wording of messages, the parent each goes under, and what keeps
/// one from being deleted.
pub trait TagKind:
    Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + google_cloud_wkt::message::Message
    + Send
    + Sync
    + 'static
{
    /// `tagKeys`: the name's collection, and the middle of the permissions.
    const COLLECTION: &'static str;
    /// `tag key`, as messages call it.
    const NOUN: &'static str;
    /// `TagKey`, as Google's "already exists" and precondition messages name the type.
    const TYPE_NAME: &'static str;
    /// The IAM resource type its policies are checked under.
    const RESOURCE_TYPE: &'static str;
    /// An example name, for "required" messages.
    const EXAMPLE: &'static str;
    /// How many `/`-separated parts a namespaced name has, and their form.
    const NAMESPACED_PARTS: usize;
    const NAMESPACED_FORM: &'static str;
    /// Google's operation name prefix: `tk` (`tkc`, `tku`, `tkd`) or `tv`.
    const OP: &'static str;
    type CreateMetadata: google_cloud_wkt::message::Message + serde::Serialize + Default;
    type UpdateMetadata: google_cloud_wkt::message::Message + serde::Serialize + Default;
    type DeleteMetadata: google_cloud_wkt::message::Message + serde::Serialize + Default;

    fn all(st: &State) -> &BTreeMap<String, Self>;
    fn by_namespaced<'a>(st: &'a State, name: &str) -> Option<&'a Self>;
    fn change(name: String, item: Option<Self>) -> Change;
    /// Checks of a new one beyond its short name and description.
    fn check_new(&self) -> Result<()> {
        Ok(())
    }
    /// The parent named by a create or list request, authorized for `permission`.
    fn parent_for(
        ctl: &Control,
        caller: &Caller,
        parent: &str,
        permission: &str,
    ) -> Result<TagParent>;
    /// Why it cannot be deleted now (the end of Google's message), if it cannot.
    fn in_use(&self, st: &State) -> Option<&'static str>;

    fn name(&self) -> &str;
    fn parent(&self) -> &str;
    fn short_name(&self) -> &str;
    fn namespaced_name(&self) -> &str;
    fn fields(&mut self) -> Fields<'_>;
}

/// The field accessors of [`TagKind`], the same for both types.
macro_rules! tag_fields {
    () => {
        fn name(&self) -> &str {
            &self.name
        }
        fn parent(&self) -> &str {
            &self.parent
        }
        fn short_name(&self) -> &str {
            &self.short_name
        }
        fn namespaced_name(&self) -> &str {
            &self.namespaced_name
        }
        fn fields(&mut self) -> Fields<'_> {
            Fields {
                name: &mut self.name,
                parent: &mut self.parent,
                namespaced_name: &mut self.namespaced_name,
                description: &mut self.description,
                etag: &mut self.etag,
                create_time: &mut self.create_time,
                update_time: &mut self.update_time,
            }
        }
    };
}

impl TagKind for TagKey {
    const COLLECTION: &'static str = "tagKeys";
    const NOUN: &'static str = "tag key";
    const TYPE_NAME: &'static str = "TagKey";
    const RESOURCE_TYPE: &'static str = TAG_KEY_TYPE;
    const EXAMPLE: &'static str = "tagKeys/123";
    const NAMESPACED_PARTS: usize = 2;
    const NAMESPACED_FORM: &'static str = "ORGANIZATION_ID/SHORT_NAME or PROJECT_ID/SHORT_NAME";
    const OP: &'static str = "tk";
    type CreateMetadata = CreateTagKeyMetadata;
    type UpdateMetadata = UpdateTagKeyMetadata;
    type DeleteMetadata = DeleteTagKeyMetadata;

    fn all(st: &State) -> &BTreeMap<String, Self> {
        &st.tag_keys
    }
    fn by_namespaced<'a>(st: &'a State, name: &str) -> Option<&'a Self> {
        st.tag_key_by_namespaced(name)
    }
    fn change(name: String, item: Option<Self>) -> Change {
        Change::TagKey(name, item)
    }
    fn check_new(&self) -> Result<()> {
        if self.purpose == google_cloud_resourcemanager_v3::model::Purpose::GceFirewall
            && !self.purpose_data.contains_key("network")
        {
            return Err(Error::invalid(
                "purpose GCE_FIREWALL requires purpose_data with a 'network' entry.",
            ));
        }
        Ok(())
    }
    /// An organization or a project.
    fn parent_for(
        ctl: &Control,
        caller: &Caller,
        parent: &str,
        permission: &str,
    ) -> Result<TagParent> {
        let node = ctl.tag_key_parent(caller, parent, permission)?;
        let namespace = ctl.read().tag_namespace(&node.name);
        Ok(TagParent {
            name: node.name,
            namespace,
            shown: parent.to_string(),
        })
    }
    fn in_use(&self, st: &State) -> Option<&'static str> {
        st.tag_values
            .values()
            .any(|v| v.parent == self.name)
            .then_some("still has TagValues; delete them first.")
    }
    tag_fields!();
}

impl TagKind for TagValue {
    const COLLECTION: &'static str = "tagValues";
    const NOUN: &'static str = "tag value";
    const TYPE_NAME: &'static str = "TagValue";
    const RESOURCE_TYPE: &'static str = TAG_VALUE_TYPE;
    const EXAMPLE: &'static str = "tagValues/456";
    const NAMESPACED_PARTS: usize = 3;
    const NAMESPACED_FORM: &'static str = "ORGANIZATION_ID/KEY_SHORT_NAME/VALUE_SHORT_NAME";
    const OP: &'static str = "tv";
    type CreateMetadata = CreateTagValueMetadata;
    type UpdateMetadata = UpdateTagValueMetadata;
    type DeleteMetadata = DeleteTagValueMetadata;

    fn all(st: &State) -> &BTreeMap<String, Self> {
        &st.tag_values
    }
    fn by_namespaced<'a>(st: &'a State, name: &str) -> Option<&'a Self> {
        st.tag_value_by_namespaced(name)
    }
    fn change(name: String, item: Option<Self>) -> Change {
        Change::TagValue(name, item)
    }
    /// A tag key (by id or namespaced name).
    fn parent_for(
        ctl: &Control,
        caller: &Caller,
        parent: &str,
        permission: &str,
    ) -> Result<TagParent> {
        if parent.is_empty() {
            return Err(Error::invalid("parent is required, e.g. tagKeys/123."));
        }
        let key = ctl.tag::<TagKey>(caller, parent, permission)?;
        Ok(TagParent {
            shown: format!("{} ({})", key.name, key.namespaced_name),
            name: key.name,
            namespace: key.namespaced_name,
        })
    }
    fn in_use(&self, st: &State) -> Option<&'static str> {
        st.tag_bindings
            .values()
            .any(|b| b.tag_value == self.name)
            .then_some("is still bound to resources; delete its tag bindings first.")
    }
    tag_fields!();
}

/// `resourcemanager.tagKeys.VERB` or `resourcemanager.tagValues.VERB`.
fn permission<K: TagKind>(verb: &str) -> String {
    format!("resourcemanager.{}.{verb}", K::COLLECTION)
}

/// Where a permission on a tag key or value is checked.
fn tag_target<K: TagKind>(name: &str) -> Target<'_> {
    Target {
        name,
        shown: name,
        resource_type: K::RESOURCE_TYPE,
        service: crate::base::hierarchy::SERVICE,
    }
}

/// What a mutation stores and answers: its change and finished operation, or with
/// `validate_only` the operation alone, nothing stored.
fn commit(change: Change, op: Operation, validate_only: bool) -> Result<(Vec<Change>, Operation)> {
    if validate_only {
        return Ok((vec![], op));
    }
    Ok((vec![change, Change::Operation(op.clone())], op))
}

impl Control {
    // ---- tag keys and values ----

    /// A key or value named `tagKeys/N` (or, where Google accepts it, namespaced
    /// `ORG_ID/short`) that the caller holds `permission` on. One that does not exist is
    /// answered as one the caller may not see.
    fn tag<K: TagKind>(&self, caller: &Caller, name: &str, permission: &str) -> Result<K> {
        if name.is_empty() {
            return Err(Error::invalid(format!(
                "A {} name is required, e.g. {}.",
                K::NOUN,
                K::EXAMPLE
            )));
        }
        let item = {
            let st = self.read();
            if name
                .strip_prefix(K::COLLECTION)
                .is_some_and(|r| r.starts_with('/'))
            {
                if !numbered(name, K::COLLECTION) {
                    return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
                }
                K::all(&st).get(name).cloned()
            } else {
                K::by_namespaced(&st, name).cloned()
            }
        };
        let item = item.ok_or_else(|| {
            Error::permission_denied(permission, name, crate::base::hierarchy::SERVICE)
        })?;
        self.authorize(
            caller,
            permission,
            &Target {
                shown: name,
                ..tag_target::<K>(item.name())
            },
        )?;
        Ok(item)
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

    pub fn create_tag<K: TagKind>(
        &self,
        caller: &Caller,
        mut item: K,
        validate_only: bool,
    ) -> Result<Operation> {
        let short = item.short_name().to_string();
        if !valid_short_name(&short) {
            return Err(Error::invalid(format!(
                "Invalid short_name '{short}': it must be 1 to 63 characters, begin and end with a letter or digit, with only letters, digits, '-', '_' and '.' between."
            )));
        }
        check_description(item.fields().description)?;
        item.check_new()?;
        let parent = K::parent_for(self, caller, item.parent(), &permission::<K>("create"))?;
        self.write(|st| {
            if K::all(st)
                .values()
                .any(|x| x.parent() == parent.name && x.short_name() == short)
            {
                return Err(Error::already_exists(format!(
                    "A {} with short name '{short}' already exists under {}.",
                    K::TYPE_NAME,
                    parent.shown
                )));
            }
            let now = Some(crate::base::time::now());
            let f = item.fields();
            *f.name = format!("{}/{}", K::COLLECTION, new_tag_id(st));
            *f.parent = parent.name.clone();
            *f.namespaced_name = format!("{}/{short}", parent.namespace);
            *f.create_time = now;
            *f.update_time = now;
            *f.etag = crate::base::ids::etag("T", "");
            let op = operation(&format!("{}c", K::OP), &K::CreateMetadata::default(), &item)?;
            commit(
                K::change(item.name().to_string(), Some(item.clone())),
                op,
                validate_only,
            )
        })
    }

    pub fn get_tag<K: TagKind>(&self, caller: &Caller, name: &str) -> Result<K> {
        if !name.starts_with(&format!("{}/", K::COLLECTION)) {
            // `Expected tagKeys/{tag_key_id}.`
            return Err(Error::invalid(format!(
                "Invalid resource name: '{name}'. Expected {}/{{{}_id}}.",
                K::COLLECTION,
                K::NOUN.replace(' ', "_")
            )));
        }
        self.tag(caller, name, &permission::<K>("get"))
    }

    /// `tagKeys/namespaced?name=ORG_ID/short`, `tagValues/namespaced?name=ORG_ID/key/value`
    pub fn get_namespaced_tag<K: TagKind>(&self, caller: &Caller, name: &str) -> Result<K> {
        if name.split('/').count() != K::NAMESPACED_PARTS {
            return Err(Error::invalid(format!(
                "Invalid namespaced name '{name}': expected {}.",
                K::NAMESPACED_FORM
            )));
        }
        self.tag(caller, name, &permission::<K>("get"))
    }

    pub fn list_tags<K: TagKind>(&self, caller: &Caller, parent: &str) -> Result<Vec<K>> {
        let parent = K::parent_for(self, caller, parent, &permission::<K>("list"))?;
        Ok(K::all(&self.read())
            .values()
            .filter(|x| x.parent() == parent.name)
            .cloned()
            .collect())
    }

    /// `patch`: only `description` is mutable.
    pub fn update_tag<K: TagKind>(
        &self,
        caller: &Caller,
        name: &str,
        mut patch: K,
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
        let patch = patch.fields();
        check_description(patch.description)?;
        let item: K = self.tag(caller, name, &permission::<K>("update"))?;
        self.write(|st| {
            let mut item = K::all(st).get(item.name()).cloned().unwrap_or(item);
            let f = item.fields();
            if !patch.etag.is_empty() && patch.etag != f.etag {
                return Err(etag_mismatch(K::NOUN));
            }
            if mask.is_empty() || mask.iter().any(|f| f == "description") {
                *f.description = patch.description.clone();
            }
            *f.update_time = Some(crate::base::time::now());
            *f.etag = crate::base::ids::etag("T", "");
            let op = operation(&format!("{}u", K::OP), &K::UpdateMetadata::default(), &item)?;
            commit(
                K::change(item.name().to_string(), Some(item)),
                op,
                validate_only,
            )
        })
    }

    pub fn delete_tag<K: TagKind>(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        validate_only: bool,
    ) -> Result<Operation> {
        let perm = permission::<K>("delete");
        let item: K = self.tag(caller, name, &perm)?;
        self.write(|st| {
            let Some(mut item) = K::all(st).get(item.name()).cloned() else {
                return Err(Error::permission_denied(
                    &perm,
                    name,
                    crate::base::hierarchy::SERVICE,
                ));
            };
            if !etag.is_empty() && etag != item.fields().etag {
                return Err(etag_mismatch(K::NOUN));
            }
            if let Some(why) = item.in_use(st) {
                return Err(Error::failed_precondition(format!(
                    "{} {} ({}) {why}",
                    K::TYPE_NAME,
                    item.name(),
                    item.namespaced_name()
                )));
            }
            let op = operation(&format!("{}d", K::OP), &K::DeleteMetadata::default(), &item)?;
            commit(K::change(item.name().to_string(), None), op, validate_only)
        })
    }

    /// An existing key's or value's name, for the IAM methods (which authorize on their own).
    fn tag_name<K: TagKind>(&self, name: &str, permission: &str) -> Result<String> {
        if !numbered(name, K::COLLECTION) {
            return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
        }
        if K::all(&self.read()).contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(Error::permission_denied(
                permission,
                name,
                crate::base::hierarchy::SERVICE,
            ))
        }
    }

    pub fn tag_get_iam_policy<K: TagKind>(
        &self,
        caller: &Caller,
        name: &str,
        version: i32,
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = permission::<K>("getIamPolicy");
        let name = self.tag_name::<K>(name, &perm)?;
        self.get_iam_policy(caller, &tag_target::<K>(&name), &perm, version)
    }

    pub fn tag_set_iam_policy<K: TagKind>(
        &self,
        caller: &Caller,
        name: &str,
        policy: google_cloud_iam_v1::model::Policy,
        mask: &[String],
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = permission::<K>("setIamPolicy");
        let name = self.tag_name::<K>(name, &perm)?;
        self.set_iam_policy(caller, &tag_target::<K>(&name), &perm, policy, mask, None)
    }

    pub fn tag_test_iam_permissions<K: TagKind>(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let name = self.tag_name::<K>(name, &permission::<K>("get"))?;
        self.test_iam_permissions(caller, &tag_target::<K>(&name), permissions)
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
        let node = self.read().resolve(name).ok_or_else(|| {
            Error::permission_denied(permission, full, crate::base::hierarchy::SERVICE)
        })?;
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
        let value =
            self.tag::<TagValue>(caller, &given, "resourcemanager.tagValueBindings.create")?;
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
            commit(Change::TagBinding(name, Some(b)), op, validate_only)
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
            self.tag::<TagValue>(caller, &value, perm)?;
            return Err(Error::not_found(format!(
                "Tag binding '{name}' was not found."
            )));
        };
        self.tag::<TagValue>(caller, &value, perm)?;
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
            commit(Change::TagBinding(binding.name.clone(), None), op, false)
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
