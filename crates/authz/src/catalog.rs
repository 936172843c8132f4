//! The role catalog: Google's predefined roles (decoded once from the table `build.rs` made) plus
//! the custom roles of projects and organizations.
//!
//! Every permission gets a dense [`PermId`]; every role a bitset over those ids, so "does role R
//! include permission P" is one shift and one mask on the hot path.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

/// Dense id of a permission in a [`Catalog`]; ids of predefined permissions are stable for the
/// life of the process (they are positions in the sorted build-time table).
pub type PermId = u32;

/// A role as `iam.roles.get` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// `roles/x`, `projects/P/roles/x` or `organizations/O/roles/x`.
    pub name: String,
    pub title: String,
    pub description: String,
    /// `GA`, `BETA`, `ALPHA`, `DEPRECATED`, or `DISABLED` (custom roles only).
    pub stage: String,
    /// Sorted, deduplicated.
    pub permissions: Vec<String>,
    /// Soft-deleted custom role: it still exists (so policies naming it stay valid, as in Google,
    /// where undelete restores the bindings) but grants nothing.
    pub deleted: bool,
}

/// Fixed-size bitset over permission ids.
#[derive(Clone, Debug, Default)]
pub(crate) struct PermSet(Box<[u64]>);

impl PermSet {
    pub(crate) fn with_len(bits: usize) -> Self {
        PermSet(vec![0u64; bits.div_ceil(64)].into_boxed_slice())
    }
    #[inline]
    pub(crate) fn contains(&self, id: PermId) -> bool {
        let i = id as usize;
        match self.0.get(i >> 6) {
            Some(w) => (w >> (i & 63)) & 1 == 1,
            None => false,
        }
    }
    pub(crate) fn insert(&mut self, id: PermId) {
        let i = id as usize;
        if i >> 6 >= self.0.len() {
            let mut v = self.0.to_vec();
            v.resize((i >> 6) + 1, 0);
            self.0 = v.into_boxed_slice();
        }
        self.0[i >> 6] |= 1 << (i & 63);
    }
    pub(crate) fn union_with(&mut self, other: &PermSet) {
        if other.0.len() > self.0.len() {
            let mut v = self.0.to_vec();
            v.resize(other.0.len(), 0);
            self.0 = v.into_boxed_slice();
        }
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }
    pub(crate) fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub(crate) fn is_subset(&self, of: &PermSet) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(i, w)| w & !of.0.get(i).copied().unwrap_or(0) == 0)
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = PermId> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            (0..64u32)
                .filter(move |b| (w >> b) & 1 == 1)
                .map(move |b| (wi as u32) * 64 + b)
        })
    }
}

/// Predefined role kept compact until someone asks for its `Role` view.
struct PredefinedRole {
    name: Cow<'static, str>,
    title: Cow<'static, str>,
    description: Cow<'static, str>,
    stage: Cow<'static, str>,
    perms: PermSet,
    /// Materialised on first `role()` call: building 165k permission `String`s up front would
    /// triple the start-up decode time for a view the hot path never uses.
    view: OnceLock<Role>,
}

/// The immutable predefined part, shared by every catalog of the process. Strings borrow from
/// the embedded table (`'static`) so decoding allocates almost nothing but the bitsets.
struct Predefined {
    perms: Vec<&'static str>,
    perm_ids: FxHashMap<&'static str, PermId>,
    roles: Vec<PredefinedRole>,
    role_idx: FxHashMap<&'static str, u32>,
}

struct CustomRole {
    role: Role,
    perms: PermSet,
}

/// Reference to a role that survives catalog changes: predefined roles by their stable index,
/// anything else by name (resolved against whatever catalog a snapshot holds at check time).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RoleRef {
    Predefined(u32),
    Other(Arc<str>),
}

/// All roles a resource hierarchy can name. `Send + Sync`; immutable once built.
pub struct Catalog {
    base: Arc<Predefined>,
    /// Permissions that only custom roles name (unknown to the predefined table); ids continue
    /// after the predefined ones.
    extra_perms: Vec<Box<str>>,
    extra_perm_ids: FxHashMap<Box<str>, PermId>,
    custom: FxHashMap<Box<str>, CustomRole>,
}

const COMPACT: &str = include_str!(concat!(env!("OUT_DIR"), "/roles.txt"));

fn unesc(s: &'static str) -> Cow<'static, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn decode(text: &'static str) -> Predefined {
    // The input is produced by our own build.rs; a malformed table is a build bug, so panicking
    // with a clear message is right.
    let mut lines = text.lines();
    let head = lines.next().expect("roles table: header");
    let n: usize = head
        .strip_prefix("P ")
        .and_then(|s| s.parse().ok())
        .expect("roles table: P count");
    let mut perms = Vec::with_capacity(n);
    let mut perm_ids = FxHashMap::with_capacity_and_hasher(n, Default::default());
    for i in 0..n {
        let p: &'static str = lines.next().expect("roles table: permission");
        perm_ids.insert(p, i as PermId);
        perms.push(p);
    }
    let rn: usize = lines
        .next()
        .and_then(|l| l.strip_prefix("R "))
        .and_then(|s| s.parse().ok())
        .expect("roles table: R count");
    let mut roles = Vec::with_capacity(rn);
    let mut role_idx = FxHashMap::with_capacity_and_hasher(rn, Default::default());
    for i in 0..rn {
        let line = lines.next().expect("roles table: role");
        let mut f = line.split('\t');
        let name = unesc(f.next().unwrap_or_default());
        let title = unesc(f.next().unwrap_or_default());
        let description = unesc(f.next().unwrap_or_default());
        let stage = unesc(f.next().unwrap_or_default());
        let mut set = PermSet::with_len(n);
        let ids = f.next().unwrap_or_default();
        if !ids.is_empty() {
            let mut cur = 0u32;
            for d in ids.split(',') {
                cur += u32::from_str_radix(d, 16).expect("roles table: id delta");
                set.insert(cur);
            }
        }
        // Role names never need unescaping; borrow the raw field for the index key.
        let key: &'static str = line.split('\t').next().unwrap_or_default();
        role_idx.insert(key, i as u32);
        roles.push(PredefinedRole {
            name,
            title,
            description,
            stage,
            perms: set,
            view: OnceLock::new(),
        });
    }
    Predefined {
        perms,
        perm_ids,
        roles,
        role_idx,
    }
}

fn predefined_part() -> &'static Arc<Predefined> {
    static P: OnceLock<Arc<Predefined>> = OnceLock::new();
    P.get_or_init(|| Arc::new(decode(COMPACT)))
}

/// Decodes the embedded table afresh (for timing it; the process otherwise decodes once).
#[doc(hidden)]
pub fn decode_predefined_for_bench() -> usize {
    decode(COMPACT).roles.len()
}

impl Catalog {
    /// The predefined roles only. Decoded once per process; later calls are an `Arc` clone.
    pub fn predefined() -> Arc<Catalog> {
        static C: OnceLock<Arc<Catalog>> = OnceLock::new();
        C.get_or_init(|| {
            Arc::new(Catalog {
                base: predefined_part().clone(),
                extra_perms: Vec::new(),
                extra_perm_ids: FxHashMap::default(),
                custom: FxHashMap::default(),
            })
        })
        .clone()
    }

    /// The predefined part of `base` plus exactly `custom` (any custom roles `base` had are
    /// replaced, so callers pass the full current set). Custom permissions are sorted and
    /// deduplicated; a permission the predefined table does not know gets a fresh id.
    pub fn with_custom_roles(base: &Catalog, custom: Vec<Role>) -> Catalog {
        let mut cat = Catalog {
            base: base.base.clone(),
            extra_perms: Vec::new(),
            extra_perm_ids: FxHashMap::default(),
            custom: FxHashMap::default(),
        };
        let n0 = cat.base.perms.len();
        for mut role in custom {
            role.permissions.sort();
            role.permissions.dedup();
            let mut set = PermSet::with_len(n0);
            for p in &role.permissions {
                let id = match cat.permission_id(p) {
                    Some(id) => id,
                    None => {
                        let id = (n0 + cat.extra_perms.len()) as PermId;
                        cat.extra_perms.push(p.as_str().into());
                        cat.extra_perm_ids.insert(p.as_str().into(), id);
                        id
                    }
                };
                set.insert(id);
            }
            cat.custom
                .insert(role.name.as_str().into(), CustomRole { role, perms: set });
        }
        cat
    }

    /// A role by full name, predefined or custom (deleted custom roles included).
    pub fn role(&self, name: &str) -> Option<&Role> {
        if let Some(&i) = self.base.role_idx.get(name) {
            return Some(self.predefined_view(i));
        }
        self.custom.get(name).map(|c| &c.role)
    }

    fn predefined_view(&self, i: u32) -> &Role {
        let r = &self.base.roles[i as usize];
        r.view.get_or_init(|| Role {
            name: r.name.to_string(),
            title: r.title.to_string(),
            description: r.description.to_string(),
            stage: r.stage.to_string(),
            permissions: r
                .perms
                .iter()
                .map(|id| self.base.perms[id as usize].to_string())
                .collect(),
            deleted: false,
        })
    }

    /// Every predefined role, sorted by name.
    pub fn predefined_roles(&self) -> impl Iterator<Item = &Role> {
        (0..self.base.roles.len() as u32).map(move |i| self.predefined_view(i))
    }

    /// Every custom role (deleted ones included), sorted by name.
    pub fn custom_roles(&self) -> Vec<&Role> {
        let mut v: Vec<&Role> = self.custom.values().map(|c| &c.role).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of predefined roles.
    pub fn predefined_count(&self) -> usize {
        self.base.roles.len()
    }

    /// Number of distinct permission ids (predefined plus custom-only).
    pub fn permission_count(&self) -> usize {
        self.base.perms.len() + self.extra_perms.len()
    }

    pub fn permission_id(&self, p: &str) -> Option<PermId> {
        self.base
            .perm_ids
            .get(p)
            .or_else(|| self.extra_perm_ids.get(p))
            .copied()
    }

    /// The permission name of an id.
    pub fn permission_name(&self, id: PermId) -> Option<&str> {
        let i = id as usize;
        let n0 = self.base.perms.len();
        if i < n0 {
            Some(self.base.perms[i])
        } else {
            self.extra_perms.get(i - n0).map(|s| &**s)
        }
    }

    /// Named by some role of this catalog (predefined or custom).
    pub fn is_known_permission(&self, p: &str) -> bool {
        self.permission_id(p).is_some()
    }

    /// Whether `role` (existing, not deleted) includes `perm`.
    pub fn role_grants(&self, role: &str, perm: &str) -> bool {
        match (self.role_ref(role), self.permission_id(perm)) {
            (Some(r), Some(p)) => self.ref_grants(&r, p),
            _ => false,
        }
    }

    /// Whether the role exists (predefined, or custom even if deleted).
    pub fn has_role(&self, name: &str) -> bool {
        self.base.role_idx.contains_key(name) || self.custom.contains_key(name)
    }

    /// Every predefined role as (name, stage, permission set), for the role recommender.
    pub(crate) fn predefined_sets(&self) -> impl Iterator<Item = (&str, &str, &PermSet)> {
        self.base
            .roles
            .iter()
            .map(|r| (&*r.name, &*r.stage, &r.perms))
    }

    pub(crate) fn perm_space(&self) -> usize {
        self.base.perms.len() + self.extra_perms.len()
    }

    pub(crate) fn role_ref(&self, name: &str) -> Option<RoleRef> {
        if let Some(&i) = self.base.role_idx.get(name) {
            Some(RoleRef::Predefined(i))
        } else if self.custom.contains_key(name) {
            Some(RoleRef::Other(name.into()))
        } else {
            None
        }
    }

    /// Like `role_ref`, but an unknown name is kept by name so that creating the custom role
    /// later (a new catalog in the snapshot) brings the binding to life, as in Google.
    pub(crate) fn role_ref_or_name(&self, name: &str) -> RoleRef {
        match self.base.role_idx.get(name) {
            Some(&i) => RoleRef::Predefined(i),
            None => RoleRef::Other(name.into()),
        }
    }

    /// The permission set of a live role, if it is one.
    #[inline]
    pub(crate) fn ref_perms(&self, r: &RoleRef) -> Option<&PermSet> {
        match r {
            RoleRef::Predefined(i) => Some(&self.base.roles[*i as usize].perms),
            RoleRef::Other(n) => match self.custom.get(&**n) {
                Some(c) if !c.role.deleted && c.role.stage != "DISABLED" => Some(&c.perms),
                _ => None,
            },
        }
    }

    #[inline]
    pub(crate) fn ref_grants(&self, r: &RoleRef, p: PermId) -> bool {
        match r {
            // Fast path: no hashing for predefined roles.
            RoleRef::Predefined(i) => self.base.roles[*i as usize].perms.contains(p),
            RoleRef::Other(_) => self.ref_perms(r).is_some_and(|s| s.contains(p)),
        }
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("predefined_roles", &self.base.roles.len())
            .field("custom_roles", &self.custom.len())
            .field("permissions", &self.permission_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_catalog_matches_dataset() {
        let c = Catalog::predefined();
        assert_eq!(c.predefined_count(), 2461);
        assert_eq!(c.predefined_roles().count(), 2461);
        assert_eq!(c.role("roles/editor").unwrap().permissions.len(), 11979);
        assert_eq!(c.role("roles/owner").unwrap().permissions.len(), 13568);
        assert_eq!(c.role("roles/viewer").unwrap().permissions.len(), 6064);
        assert_eq!(c.permission_count(), 13790);
        assert!(c.role_grants("roles/run.admin", "run.workerpools.create"));
        assert!(!c.role_grants("roles/run.invoker", "run.workerpools.create"));
        assert!(c.role_grants("roles/iam.serviceAccountUser", "iam.serviceAccounts.actAs"));
        let r = c.role("roles/run.admin").unwrap();
        assert_eq!(r.stage, "GA");
        assert!(!r.title.is_empty());
        assert!(r.permissions.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(c.role("roles/nope").is_none());
        assert!(c.is_known_permission("run.workerpools.get"));
        assert!(!c.is_known_permission("run.workerpools.fly"));
        // ids round-trip
        let id = c.permission_id("run.workerpools.get").unwrap();
        assert_eq!(c.permission_name(id), Some("run.workerpools.get"));
    }

    #[test]
    fn decode_time_is_small() {
        // Printed, not asserted: timings on a shared 2-core machine are noise-prone.
        let t = std::time::Instant::now();
        let n = decode_predefined_for_bench();
        let el = t.elapsed();
        assert_eq!(n, 2461);
        println!(
            "decode of predefined role table: {el:?} ({} bytes)",
            COMPACT.len()
        );
    }

    #[test]
    fn custom_roles_share_base_and_extend_permissions() {
        let base = Catalog::predefined();
        let c = Catalog::with_custom_roles(
            &base,
            vec![
                Role {
                    name: "projects/p1/roles/deployer".into(),
                    title: "Deployer".into(),
                    description: String::new(),
                    stage: "GA".into(),
                    permissions: vec![
                        "run.workerpools.create".into(),
                        "custom.things.do".into(),
                        "run.workerpools.create".into(),
                    ],
                    deleted: false,
                },
                Role {
                    name: "organizations/9/roles/gone".into(),
                    title: String::new(),
                    description: String::new(),
                    stage: "GA".into(),
                    permissions: vec!["run.workerpools.get".into()],
                    deleted: true,
                },
            ],
        );
        assert!(Arc::ptr_eq(&c.base, &base.base));
        assert!(c.role_grants("projects/p1/roles/deployer", "run.workerpools.create"));
        assert!(c.role_grants("projects/p1/roles/deployer", "custom.things.do"));
        assert!(!c.role_grants("projects/p1/roles/deployer", "run.workerpools.get"));
        assert_eq!(
            c.role("projects/p1/roles/deployer")
                .unwrap()
                .permissions
                .len(),
            2
        );
        assert!(c.has_role("organizations/9/roles/gone"));
        assert!(!c.role_grants("organizations/9/roles/gone", "run.workerpools.get"));
        assert_eq!(c.permission_count(), 13791);
        assert!(!base.is_known_permission("custom.things.do"));
    }
}
