//! The immutable evaluation index: resource hierarchy, allow policies, groups and the catalog,
//! arranged so that a check is a handful of hash lookups and bit tests.
//!
//! Layout, and why:
//! - Each resource node holds its parent's name and an `Arc<PolicyIndex>`. A `with_*` update
//!   clones the outer map of nodes (`Arc` clones only) and rebuilds just the one index it
//!   changes, so updates on a world of a million bindings stay cheap and readers of the old
//!   snapshot are never disturbed.
//! - A `PolicyIndex` maps member → grants. Members are keyed by a precomputed 64-bit hash of
//!   their canonical string (with the string kept for an exact comparison on a hash hit), so the
//!   hot path hashes no strings for principals: a [`Principal`] carries the hashes of everything
//!   it is (itself, its domain, its groups transitively, the public sets).
//! - Roles are referenced by their stable predefined index (a bitset test, no hashing) or, for
//!   custom roles, by name resolved against the snapshot's current catalog, so swapping the
//!   catalog (`with_catalog`) touches no policy index.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::catalog::{Catalog, PermId, PermSet, RoleRef};
use crate::condition::{Condition, ConditionContext, Tag};
use crate::deny::DenyRule;
use crate::member::Member;
use crate::policy::{Expr, Policy};

/// Walks stop after this many levels: a guard against a parent cycle made by a bad move.
/// Google's deepest chain (org, 10 folder levels, project, resource, sub-resource) is far below.
const MAX_DEPTH: usize = 64;

/// Canonical member string plus its precomputed hash.
#[derive(Clone, Debug)]
struct MemberKey {
    hash: u64,
    s: Arc<str>,
}

impl MemberKey {
    fn new(s: &str) -> Self {
        MemberKey {
            hash: FxBuildHasher.hash_one(s),
            s: s.into(),
        }
    }
}

impl Hash for MemberKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for MemberKey {
    #[inline]
    fn eq(&self, o: &Self) -> bool {
        self.hash == o.hash && (Arc::ptr_eq(&self.s, &o.s) || self.s == o.s)
    }
}
impl Eq for MemberKey {}

#[derive(Clone, Debug)]
struct Entry {
    role: RoleRef,
    cond: Option<Arc<Condition>>,
}

/// One resource's allow policy, indexed by member.
#[derive(Debug)]
struct PolicyIndex {
    policy: Policy,
    conds: Vec<Option<Arc<Condition>>>,
    by_member: FxHashMap<MemberKey, Vec<Entry>>,
}

impl PolicyIndex {
    fn build(policy: &Policy, catalog: &Catalog) -> Self {
        let mut by_member: FxHashMap<MemberKey, Vec<Entry>> = FxHashMap::default();
        let mut conds = Vec::with_capacity(policy.bindings.len());
        for b in &policy.bindings {
            // The policy is normalized, so compilation succeeds; should it not, the binding is
            // kept with a condition that never holds (fail closed), not silently unconditional.
            let cond = b.condition.as_ref().map(|e| {
                Arc::new(Condition::compile(&e.expression).unwrap_or_else(|_| {
                    Condition::compile("false").expect("literal false compiles")
                }))
            });
            let role = catalog.role_ref_or_name(&b.role);
            for m in &b.members {
                by_member.entry(MemberKey::new(m)).or_default().push(Entry {
                    role: role.clone(),
                    cond: cond.clone(),
                });
            }
            conds.push(cond);
        }
        by_member.shrink_to_fit();
        PolicyIndex {
            policy: policy.clone(),
            conds,
            by_member,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Node {
    parent: Option<Arc<str>>,
    policy: Option<Arc<PolicyIndex>>,
}

/// `group:EMAIL` → its direct members (canonical strings).
type Groups = FxHashMap<Arc<str>, Arc<[Arc<str>]>>;

#[derive(Clone, Debug)]
struct Inner {
    catalog: Arc<Catalog>,
    nodes: Arc<FxHashMap<Arc<str>, Node>>,
    groups: Arc<Groups>,
    /// member → the `group:EMAIL`s that directly contain it (reverse of `groups`).
    member_of: Arc<FxHashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Deny rules by the node their policy is attached to; empty in most worlds, and then
    /// the check pays one emptiness test for them.
    deny: Arc<FxHashMap<Arc<str>, Vec<DenyRule>>>,
    /// Effective tags of the organizations, folders and projects that have any, for the tag
    /// functions of conditions (a resource below a project has its project's).
    tags: Arc<FxHashMap<Arc<str>, Arc<[Tag]>>>,
}

/// `organizations/N`, `folders/N` or `projects/N`: a node deny conditions are evaluated at.
pub fn is_hierarchy_node(name: &str) -> bool {
    matches!(
        name.split_once('/'),
        Some(("organizations" | "folders" | "projects", id)) if !id.contains('/')
    )
}

fn canonical_or_raw(s: &str) -> String {
    Member::canonical(s).unwrap_or_else(|| s.to_string())
}

fn group_key(email: &str) -> String {
    let e = email.strip_prefix("group:").unwrap_or(email);
    format!("group:{}", e.to_lowercase())
}

impl Inner {
    fn set_resource(&mut self, name: &str, parent: Option<&str>) {
        let nodes = Arc::make_mut(&mut self.nodes);
        let parent = parent.map(Arc::<str>::from);
        match nodes.get_mut(name) {
            Some(n) => n.parent = parent,
            None => {
                nodes.insert(
                    name.into(),
                    Node {
                        parent,
                        policy: None,
                    },
                );
            }
        }
    }

    fn set_policy(&mut self, resource: &str, policy: &Policy) {
        let idx = if policy.bindings.is_empty() {
            None
        } else {
            Some(Arc::new(PolicyIndex::build(policy, &self.catalog)))
        };
        let nodes = Arc::make_mut(&mut self.nodes);
        match nodes.get_mut(resource) {
            Some(n) => n.policy = idx,
            None => {
                // A policy on a resource the hierarchy has not been told about: keep it on a
                // parentless node; a later `with_resource` attaches it.
                nodes.insert(
                    resource.into(),
                    Node {
                        parent: None,
                        policy: idx,
                    },
                );
            }
        }
    }

    fn set_group(&mut self, group_email: &str, members: &[String]) {
        let g: Arc<str> = group_key(group_email).into();
        let groups = Arc::make_mut(&mut self.groups);
        let member_of = Arc::make_mut(&mut self.member_of);
        if let Some(old) = groups.remove(&g) {
            for m in old.iter() {
                if let Some(v) = member_of.get_mut(m) {
                    v.retain(|x| *x != g);
                    if v.is_empty() {
                        member_of.remove(m);
                    }
                }
            }
        }
        let mut new: Vec<Arc<str>> = members
            .iter()
            .map(|m| Arc::<str>::from(canonical_or_raw(m)))
            .collect();
        new.sort();
        new.dedup();
        if new.is_empty() {
            return;
        }
        for m in &new {
            member_of.entry(m.clone()).or_default().push(g.clone());
        }
        groups.insert(g, new.into());
    }
}

/// How a principal comes to be one of its identities.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Via {
    Direct,
    Domain,
    Public,
    /// Member of this group through identity `parent` (index into `identities`).
    Group {
        parent: usize,
    },
}

#[derive(Clone, Debug)]
struct Identity {
    key: MemberKey,
    via: Via,
}

/// Everything a caller is, resolved once per request: itself, its domain, every group it is in
/// (transitively), `allAuthenticatedUsers`, `allUsers`.
#[derive(Clone, Debug)]
pub struct Principal {
    member: String,
    identities: Vec<Identity>,
}

impl Principal {
    /// The canonical member string this principal was made from.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Every member string that matches this principal in a binding.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.identities.iter().map(|i| &*i.key.s)
    }

    /// Whether a binding naming `member` (canonical) applies to this principal.
    pub fn is(&self, member: &str) -> bool {
        self.identities.iter().any(|i| &*i.key.s == member)
    }

    /// The chain from the principal to identity `i`, principal first.
    fn chain(&self, mut i: usize) -> Vec<String> {
        let mut out = vec![self.identities[i].key.s.to_string()];
        while let Via::Group { parent } = self.identities[i].via {
            i = parent;
            out.push(self.identities[i].key.s.to_string());
        }
        if self.identities[i].via != Via::Direct && self.identities[i].key.s.as_ref() != self.member
        {
            out.push(self.member.clone());
        }
        out.reverse();
        out
    }

    fn membership(&self, i: usize) -> Membership {
        match &self.identities[i].via {
            Via::Direct => Membership::Direct,
            Via::Public => Membership::Public,
            Via::Domain => Membership::ViaDomain(self.identities[i].key.s.to_string()),
            Via::Group { .. } => Membership::ViaGroups(self.chain(i)),
        }
    }
}

/// Attributes of the request that conditions may read; the resource name is the one checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    pub request_time: chrono::DateTime<chrono::Utc>,
    /// e.g. `run.googleapis.com/WorkerPool`.
    pub resource_type: String,
    /// e.g. `run.googleapis.com`.
    pub resource_service: String,
}

impl RequestContext {
    /// A context at `time` with no resource type or service.
    pub fn at(time: chrono::DateTime<chrono::Utc>) -> Self {
        RequestContext {
            request_time: time,
            resource_type: String::new(),
            resource_service: String::new(),
        }
    }

    fn condition_ctx<'a>(&'a self, resource: &'a str, tags: &'a [Tag]) -> ConditionContext<'a> {
        ConditionContext {
            request_time: self.request_time,
            resource_name: resource,
            resource_type: &self.resource_type,
            resource_service: &self.resource_service,
            tags,
        }
    }
}

/// How the principal is one of a binding's members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership {
    /// The binding names the principal itself.
    Direct,
    /// Through groups: the chain from the principal to the bound group, both ends included
    /// (`["user:a@x.com", "group:team@x.com", "group:eng@x.com"]`).
    ViaGroups(Vec<String>),
    /// Through `domain:D` (the bound member).
    ViaDomain(String),
    /// `allUsers` or `allAuthenticatedUsers`.
    Public,
}

/// Outcome of a binding's condition in an explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionOutcome {
    True,
    False,
    /// Evaluation failed; the binding does not grant (fail closed).
    Error(String),
}

/// A binding that grants the permission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The resource whose policy holds the binding (the checked one or an ancestor).
    pub resource: String,
    pub role: String,
    /// The bound member that matched.
    pub member: String,
    pub membership: Membership,
    pub condition: Option<Expr>,
}

/// One binding of an examined policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedBinding {
    pub role: String,
    /// False too when the role does not exist or is a deleted custom role.
    pub role_includes_permission: bool,
    /// Only the members that include the principal (listing every non-matching member of a
    /// 1,500-member policy would bury the answer).
    pub memberships: Vec<(String, Membership)>,
    pub condition: Option<(Expr, ConditionOutcome)>,
    /// Role includes the permission, a member matches, and the condition (if any) holds.
    pub grants: bool,
}

/// The policy of one resource on the ancestry path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedPolicy {
    pub resource: String,
    /// Empty when the resource has no policy.
    pub bindings: Vec<ExplainedBinding>,
}

/// Why a check came out as it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub granted: bool,
    pub permission: String,
    pub resource: String,
    /// Every binding that grants the permission, nearest resource first.
    pub grants: Vec<Grant>,
    /// Every resource on the ancestry path, the checked one first.
    pub examined: Vec<ExplainedPolicy>,
}

/// Immutable, cheaply clonable (`Arc`) evaluation index. `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Snapshot(Arc<Inner>);

/// Builds a snapshot in place (no per-step copying), for loading a whole store at start-up.
#[derive(Debug)]
pub struct SnapshotBuilder(Inner);

impl SnapshotBuilder {
    /// Adds or moves a resource node.
    pub fn resource(&mut self, name: &str, parent: Option<&str>) -> &mut Self {
        self.0.set_resource(name, parent);
        self
    }
    /// Sets (replaces) a resource's allow policy; the policy must already be normalized.
    pub fn policy(&mut self, resource: &str, policy: &Policy) -> &mut Self {
        self.0.set_policy(resource, policy);
        self
    }
    /// Sets (replaces) a group's direct members.
    pub fn group(&mut self, group_email: &str, members: &[String]) -> &mut Self {
        self.0.set_group(group_email, members);
        self
    }
    pub fn build(self) -> Snapshot {
        Snapshot(Arc::new(self.0))
    }
}

impl Snapshot {
    pub fn builder(catalog: Arc<Catalog>) -> SnapshotBuilder {
        SnapshotBuilder(Inner {
            catalog,
            nodes: Default::default(),
            groups: Default::default(),
            member_of: Default::default(),
            deny: Default::default(),
            tags: Default::default(),
        })
    }

    /// Whether any resource has tags.
    pub fn has_tags(&self) -> bool {
        !self.0.tags.is_empty()
    }

    /// Replaces the effective tags of the hierarchy: `(organization, folder or project, its
    /// effective tags)`.
    pub fn with_tags(&self, tags: Vec<(String, Vec<Tag>)>) -> Snapshot {
        self.update(|i| {
            i.tags = Arc::new(
                tags.into_iter()
                    .filter(|(_, t)| !t.is_empty())
                    .map(|(n, t)| (Arc::from(n.as_str()), Arc::from(t)))
                    .collect(),
            )
        })
    }

    /// The effective tags of an organization, folder or project.
    pub fn node_tags(&self, node: &str) -> &[Tag] {
        self.0.tags.get(node).map(|t| &t[..]).unwrap_or(&[])
    }

    /// The effective tags a condition sees at `resource`: those of its nearest organization,
    /// folder or project.
    fn tags_of(&self, resource: &str) -> &[Tag] {
        if self.0.tags.is_empty() {
            return &[];
        }
        let mut cur = resource;
        for _ in 0..MAX_DEPTH {
            if is_hierarchy_node(cur) {
                return self.0.tags.get(cur).map(|t| &t[..]).unwrap_or(&[]);
            }
            match self.0.nodes.get(cur).and_then(|n| n.parent.as_deref()) {
                Some(p) => cur = p,
                None => break,
            }
        }
        &[]
    }

    /// Whether any deny rule is in force.
    pub fn has_deny_rules(&self) -> bool {
        !self.0.deny.is_empty()
    }

    /// Replaces every deny rule: `(attachment node, its rules)`.
    pub fn with_deny_rules(&self, rules: Vec<(String, Vec<DenyRule>)>) -> Snapshot {
        self.update(|i| {
            i.deny = Arc::new(
                rules
                    .into_iter()
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(n, r)| (Arc::from(n.as_str()), r))
                    .collect(),
            )
        })
    }

    /// The deny rules that deny `permission` on `resource` to `p`, with the node each is
    /// attached to, nearest first: a rule applies where it is attached and below, when it
    /// names the principal and the permission and its condition holds at the resource's
    /// nearest organization, folder or project.
    pub fn denying_rules(
        &self,
        p: &Principal,
        permission: &str,
        resource: &str,
    ) -> Vec<(String, &DenyRule)> {
        if self.0.deny.is_empty() {
            return vec![];
        }
        let ancestry = self.ancestry(resource);
        let at = ancestry.iter().find(|n| is_hierarchy_node(n));
        let mut out = vec![];
        for node in &ancestry {
            for rule in self.0.deny.get(node.as_str()).into_iter().flatten() {
                // The condition last: it is the one test that reads tags.
                if rule.names_principal(|m| p.is(m))
                    && rule.names_permission(permission)
                    && (rule.condition.is_none()
                        || at.is_some_and(|a| rule.holds(self.node_tags(a))))
                {
                    out.push((node.clone(), rule));
                }
            }
        }
        out
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) -> Snapshot {
        let mut inner = (*self.0).clone();
        f(&mut inner);
        Snapshot(Arc::new(inner))
    }

    /// Adds a node or moves it under `parent` (its policy stays). Names are opaque strings
    /// (`organizations/1`, `folders/2`, `projects/123`, `projects/123/serviceAccounts/x@y`).
    pub fn with_resource(&self, name: &str, parent: Option<&str>) -> Snapshot {
        self.update(|i| i.set_resource(name, parent))
    }

    /// Removes a node and its policy. Its children keep naming it as parent, so they stop
    /// inheriting from above it, as resources under a deleted parent would.
    pub fn without_resource(&self, name: &str) -> Snapshot {
        self.update(|i| {
            Arc::make_mut(&mut i.nodes).remove(name);
        })
    }

    /// Replaces a resource's allow policy (already [`normalize`](crate::normalize)d). A resource
    /// not yet known becomes a parentless node.
    pub fn with_policy(&self, resource: &str, policy: &Policy) -> Snapshot {
        self.update(|i| i.set_policy(resource, policy))
    }

    /// Replaces a group's direct members (`user:`, `group:` for nesting, `serviceAccount:`,
    /// `domain:`). `group_email` may carry the `group:` prefix or not. No members removes it.
    pub fn with_group(&self, group_email: &str, members: &[String]) -> Snapshot {
        self.update(|i| i.set_group(group_email, members))
    }

    /// Swaps the catalog (custom roles changed). Policy indexes are kept: they reference custom
    /// roles by name, resolved at check time.
    pub fn with_catalog(&self, catalog: Arc<Catalog>) -> Snapshot {
        self.update(|i| i.catalog = catalog)
    }

    pub fn catalog(&self) -> &Catalog {
        &self.0.catalog
    }

    /// The catalog as a shareable `Arc` (for deriving a new catalog with custom roles).
    pub fn catalog_arc(&self) -> Arc<Catalog> {
        self.0.catalog.clone()
    }

    /// Whether the snapshot knows `resource` as a node.
    pub fn has_resource(&self, resource: &str) -> bool {
        self.0.nodes.contains_key(resource)
    }

    /// The stored (normalized) policy of a resource, if it has one.
    pub fn policy(&self, resource: &str) -> Option<&Policy> {
        self.0
            .nodes
            .get(resource)
            .and_then(|n| n.policy.as_deref())
            .map(|ix| &ix.policy)
    }

    /// Resolves a caller. `member` is a member string (`user:…`, `serviceAccount:…`); a user is
    /// also its `domain:` (the part after `@`). Service accounts are not domain members: Google
    /// documents `domain:` as the users of a Workspace / Cloud Identity domain. Groups are
    /// followed transitively (cycles are safe). Every principal except `allUsers` itself is
    /// also `allAuthenticatedUsers`, and every principal is `allUsers`.
    pub fn principal(&self, member: &str) -> Principal {
        let parsed = member.parse::<Member>().ok();
        let canonical = parsed
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| member.to_string());
        let mut ids: Vec<Identity> = Vec::new();
        let mut seen: FxHashSet<Arc<str>> = FxHashSet::default();
        let mut push = |ids: &mut Vec<Identity>, s: &str, via: Via| {
            if seen.insert(s.into()) {
                ids.push(Identity {
                    key: MemberKey::new(s),
                    via,
                });
            }
        };
        match &parsed {
            Some(Member::AllUsers) => {}
            Some(Member::User(e)) => {
                push(&mut ids, &canonical, Via::Direct);
                if let Some((_, d)) = e.rsplit_once('@') {
                    push(&mut ids, &format!("domain:{d}"), Via::Domain);
                }
                push(&mut ids, "allAuthenticatedUsers", Via::Public);
            }
            _ => {
                push(&mut ids, &canonical, Via::Direct);
                push(&mut ids, "allAuthenticatedUsers", Via::Public);
            }
        }
        push(&mut ids, "allUsers", Via::Public);
        // Breadth-first over "is a direct member of", so the recorded chain is a shortest one.
        let mut i = 0;
        while i < ids.len() {
            if let Some(gs) = self.0.member_of.get(&ids[i].key.s) {
                for g in gs {
                    push(&mut ids, g, Via::Group { parent: i });
                }
            }
            i += 1;
        }
        Principal {
            member: canonical,
            identities: ids,
        }
    }

    /// Whether `p` holds `permission` on `resource` (or any ancestor). Unknown permission or
    /// resource: false.
    pub fn check(
        &self,
        p: &Principal,
        permission: &str,
        resource: &str,
        ctx: &RequestContext,
    ) -> bool {
        match self.0.catalog.permission_id(permission) {
            Some(id) => self.check_id(p, id, resource, ctx),
            None => false,
        }
    }

    /// The hot path: no allocation unless a conditional binding must be evaluated.
    pub fn check_id(
        &self,
        p: &Principal,
        permission: PermId,
        resource: &str,
        ctx: &RequestContext,
    ) -> bool {
        let cat = &*self.0.catalog;
        // Deny first: a matching deny rule wins over any grant.
        if !self.0.deny.is_empty()
            && let Some(name) = cat.permission_name(permission)
            && !self.denying_rules(p, name, resource).is_empty()
        {
            return false;
        }
        let mut cur: &str = resource;
        for _ in 0..MAX_DEPTH {
            let Some(node) = self.0.nodes.get(cur) else {
                return false;
            };
            if let Some(ix) = &node.policy {
                for id in &p.identities {
                    let Some(entries) = ix.by_member.get(&id.key) else {
                        continue;
                    };
                    for e in entries {
                        if cat.ref_grants(&e.role, permission) {
                            match &e.cond {
                                None => return true,
                                Some(c)
                                    if c.eval(
                                        &ctx.condition_ctx(resource, self.tags_of(resource)),
                                    ) =>
                                {
                                    return true;
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
            match &node.parent {
                Some(parent) => cur = parent,
                None => return false,
            }
        }
        false
    }

    /// `testIamPermissions`: the allowed subset of `permissions`, in request order.
    pub fn test_permissions(
        &self,
        p: &Principal,
        resource: &str,
        permissions: &[String],
        ctx: &RequestContext,
    ) -> Vec<String> {
        permissions
            .iter()
            .filter(|perm| self.check(p, perm, resource, ctx))
            .cloned()
            .collect()
    }

    /// The resource and its known ancestors, resource first, root last. Empty if unknown.
    pub fn ancestry(&self, resource: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur: Option<&str> = Some(resource);
        while let Some(c) = cur {
            if out.len() >= MAX_DEPTH {
                break;
            }
            let Some(node) = self.0.nodes.get(c) else {
                break;
            };
            out.push(c.to_string());
            cur = node.parent.as_deref();
        }
        out
    }

    /// Number of distinct permissions `p` effectively holds on `resource`.
    pub fn granted_permissions(
        &self,
        p: &Principal,
        resource: &str,
        ctx: &RequestContext,
    ) -> usize {
        self.granted_set(p, resource, ctx).count()
    }

    /// The distinct permissions `p` effectively holds on `resource`, sorted.
    pub fn granted_permission_names(
        &self,
        p: &Principal,
        resource: &str,
        ctx: &RequestContext,
    ) -> Vec<String> {
        let cat = &*self.0.catalog;
        let mut v: Vec<String> = self
            .granted_set(p, resource, ctx)
            .iter()
            .filter_map(|id| cat.permission_name(id).map(str::to_string))
            .collect();
        v.sort();
        v
    }

    fn granted_set(&self, p: &Principal, resource: &str, ctx: &RequestContext) -> PermSet {
        let cat = &*self.0.catalog;
        let mut acc = PermSet::with_len(cat.permission_count());
        for name in self.ancestry(resource) {
            let Some(ix) = self
                .0
                .nodes
                .get(name.as_str())
                .and_then(|n| n.policy.as_ref())
            else {
                continue;
            };
            for id in &p.identities {
                for e in ix.by_member.get(&id.key).into_iter().flatten() {
                    let Some(set) = cat.ref_perms(&e.role) else {
                        continue;
                    };
                    if e.cond.as_ref().is_none_or(|c| {
                        c.eval(&ctx.condition_ctx(resource, self.tags_of(resource)))
                    }) {
                        acc.union_with(set);
                    }
                }
            }
        }
        acc
    }

    /// Troubleshooter view of one decision: every policy on the ancestry path, each binding's
    /// role/membership/condition verdict, and the bindings that grant.
    pub fn explain(
        &self,
        p: &Principal,
        permission: &str,
        resource: &str,
        ctx: &RequestContext,
    ) -> Explanation {
        let cat = &*self.0.catalog;
        let perm = cat.permission_id(permission);
        let by_member: FxHashMap<&str, usize> = p
            .identities
            .iter()
            .enumerate()
            .map(|(i, id)| (&*id.key.s, i))
            .collect();
        let mut grants = Vec::new();
        let mut examined = Vec::new();
        for name in self.ancestry(resource) {
            let mut bindings = Vec::new();
            if let Some(ix) = self
                .0
                .nodes
                .get(name.as_str())
                .and_then(|n| n.policy.as_ref())
            {
                for (bi, b) in ix.policy.bindings.iter().enumerate() {
                    let role = cat.role_ref_or_name(&b.role);
                    let includes = perm.is_some_and(|id| cat.ref_grants(&role, id));
                    let memberships: Vec<(String, Membership)> = b
                        .members
                        .iter()
                        .filter_map(|m| {
                            by_member
                                .get(m.as_str())
                                .map(|&i| (m.clone(), p.membership(i)))
                        })
                        .collect();
                    let condition = b.condition.as_ref().map(|e| {
                        let outcome = match ix.conds[bi].as_ref().map(|c| {
                            c.eval_detailed(&ctx.condition_ctx(resource, self.tags_of(resource)))
                        }) {
                            Some(Ok(true)) => ConditionOutcome::True,
                            Some(Ok(false)) | None => ConditionOutcome::False,
                            Some(Err(msg)) => ConditionOutcome::Error(msg),
                        };
                        (e.clone(), outcome)
                    });
                    let cond_ok = condition
                        .as_ref()
                        .is_none_or(|(_, o)| *o == ConditionOutcome::True);
                    let grants_it = includes && !memberships.is_empty() && cond_ok;
                    if grants_it {
                        for (m, ms) in &memberships {
                            grants.push(Grant {
                                resource: name.clone(),
                                role: b.role.clone(),
                                member: m.clone(),
                                membership: ms.clone(),
                                condition: b.condition.clone(),
                            });
                        }
                    }
                    bindings.push(ExplainedBinding {
                        role: b.role.clone(),
                        role_includes_permission: includes,
                        memberships,
                        condition,
                        grants: grants_it,
                    });
                }
            }
            examined.push(ExplainedPolicy {
                resource: name,
                bindings,
            });
        }
        Explanation {
            granted: !grants.is_empty(),
            permission: permission.to_string(),
            resource: resource.to_string(),
            grants,
            examined,
        }
    }

    /// Number of resource nodes (for diagnostics).
    pub fn resource_count(&self) -> usize {
        self.0.nodes.len()
    }
}

#[cfg(test)]
mod tests;
