//! The services behind Runpool's Google APIs, and the durable store.
//!
//! Every identity rule is enforced here, once, whatever the entry point: the HTTP handlers,
//! the CLI and (later) the Terraform path and the console all call these methods with an
//! authenticated [`Caller`]. A method resolves the names it was given, asks the [`authz`]
//! snapshot for each permission it needs, and commits its changes in one store transaction.
//!
//! Invariants:
//! - state is changed only through [`Control::write`]: changes are committed to the store
//!   first, then applied in memory and to the authorization snapshot, so a failed commit
//!   leaves nothing half-written;
//! - the authorization snapshot is immutable and swapped atomically; a check never touches
//!   the disk.

pub mod base;
pub mod iam;
pub mod intelligence;
pub mod resourcemanager;
pub mod run;
pub mod serviceusage;
pub mod world;

/// Each service's part in a new project, in the order its grants appear in the project's
/// first allow policy: the Cloud Run service agent, then the default compute account. Wired
/// here, at the root, so that Resource Manager creates projects without knowing the services.
pub(crate) const PROJECT_PROVISIONERS: &[base::hierarchy::Provisioner] = &[
    run::provision_project,
    iam::serviceaccounts::provision_project,
    serviceusage::provision_project,
];

use arc_swap::ArcSwap;
pub use base::error::{self, Code, Error, Result};
use base::state::{Change, State};
use base::store::Backend;
use iam::denypolicies;
use intelligence::audit;
use runpool_authz as authz;
use std::sync::{Arc, Mutex, RwLock};

/// Who is calling: the authenticated principal of a request.
#[derive(Clone)]
pub struct Caller {
    /// `user:alice@example.com` or `serviceAccount:…`
    pub member: String,
    pub email: String,
    principal: authz::Principal,
    /// The worker pool whose instance holds the caller's token, if any.
    pub workload: Option<String>,
    /// Where this request's decisions are gathered for the audit log.
    trace: Option<Arc<audit::Trace>>,
}

impl Caller {
    /// Gather this caller's decisions into `trace` (the request's audit record).
    pub fn traced(mut self, trace: Arc<audit::Trace>) -> Caller {
        trace.set_principal(&self.email);
        if let Some(w) = &self.workload {
            trace.set_workload(w);
        }
        self.trace = Some(trace);
        self
    }
}

/// What a permission is checked on.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The canonical name the hierarchy knows, e.g. `projects/123456789012`.
    pub name: &'a str,
    /// The name as the caller gave it, for messages.
    pub shown: &'a str,
    /// `cloudresourcemanager.googleapis.com/Project`, for `resource.type` in conditions.
    pub resource_type: &'a str,
    /// `cloudresourcemanager.googleapis.com`: `resource.service` and the ErrorInfo domain.
    pub service: &'a str,
}

pub struct Control {
    state: RwLock<State>,
    /// Held for the whole of a mutation, so mutations are serialised.
    store: Mutex<Store>,
    /// Other servers write the store too (PostgreSQL), so reads catch up first.
    shared: bool,
    snapshot: ArcSwap<authz::Snapshot>,
    admin_credential: std::sync::OnceLock<String>,
    endpoint: std::sync::OnceLock<String>,
    logs: std::sync::OnceLock<runpool_artifacts::logs::LogStore>,
    images: std::sync::OnceLock<runpool_artifacts::images::ImageStore>,
    enforcement: std::sync::OnceLock<audit::Enforcement>,
    audit: std::sync::OnceLock<audit::AuditLog>,
    /// Bumped after every committed mutation, for whoever reconciles against the state
    /// (the runtime).
    changes: tokio::sync::watch::Sender<u64>,
    /// Self-signed JWTs already verified: token hash → (member, expiry, key id).
    jwt_cache: Mutex<std::collections::HashMap<String, (String, i64, String)>>,
}

/// A state with no world in it yet.
fn is_empty(st: &State) -> bool {
    st.organizations.is_empty() && st.projects.is_empty() && st.folders.is_empty()
}

/// The state the stored rows hold.
fn state_of(rows: &[base::store::Row]) -> Result<State> {
    let mut state = State::default();
    for row in rows {
        state.apply(Change::from_row(row)?);
    }
    Ok(state)
}

/// The backend and the version of it the memory holds.
struct Store {
    backend: Box<dyn Backend>,
    seen: u64,
}

impl Control {
    /// Load the state from a store (replaying every row) and build the authorization index.
    pub fn open(mut backend: Box<dyn Backend>) -> Result<Control> {
        let loaded = backend.load()?;
        let state = state_of(&loaded.rows)?;
        let snapshot = build_snapshot(&state);
        Ok(Control {
            state: RwLock::new(state),
            shared: backend.shared(),
            store: Mutex::new(Store {
                backend,
                seen: loaded.version,
            }),
            snapshot: ArcSwap::from_pointee(snapshot),
            admin_credential: std::sync::OnceLock::new(),
            endpoint: std::sync::OnceLock::new(),
            jwt_cache: Mutex::new(Default::default()),
            changes: tokio::sync::watch::Sender::new(0),
            logs: std::sync::OnceLock::new(),
            images: std::sync::OnceLock::new(),
            enforcement: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
        })
    }

    /// Whether nothing was ever written (a fresh data dir).
    pub fn is_empty(&self) -> bool {
        is_empty(&self.read())
    }

    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Arc<authz::Snapshot> {
        self.snapshot.load_full()
    }

    /// Run a mutation: `f` reads the state and returns the changes to make (or an error, in
    /// which case nothing is written). The store is locked first and what other servers
    /// committed meanwhile applied, so `f` decides on the newest state; the changes are
    /// committed in one transaction, then applied.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&State) -> Result<(Vec<Change>, T)>) -> Result<T> {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let seen = store.seen;
        let others = store.backend.begin(seen)?;
        if let Err(e) = self.apply_logged(&mut store, others) {
            store.backend.abort();
            return Err(e);
        }
        let (changes, out) = match f(&self.read()) {
            Ok((changes, out)) if !changes.is_empty() => (changes, out),
            decided => {
                store.backend.abort();
                return decided.map(|(_, out)| out);
            }
        };
        let writes: Vec<_> = changes.iter().map(Change::write).collect();
        store.seen = store.backend.commit(&writes)?;
        self.apply(changes);
        Ok(out)
    }

    /// Catch up with what other servers committed (a store only this process writes has
    /// nothing to catch up with): called when the store announces a commit, and before a
    /// token is judged (so before every authenticated request is answered), so a write
    /// acknowledged by any server is read by every one.
    pub fn catch_up(&self) -> Result<()> {
        if !self.shared {
            return Ok(());
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let seen = store.seen;
        let others = store.backend.since(seen)?;
        self.apply_logged(&mut store, others)
    }

    /// The runtime's lease over a shared store (see `Backend::lease`); `None` where this
    /// server always runs the instances.
    pub fn runtime_lease(&self) -> Result<Option<tokio::sync::watch::Receiver<bool>>> {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .backend
            .lease()
    }

    /// Whether other servers write the store too.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared
    }

    /// A channel that hears of every commit of another server (see [`Control::catch_up`]),
    /// for a store that others write.
    pub fn commits_elsewhere(&self) -> Result<Option<std::sync::mpsc::Receiver<u64>>> {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .backend
            .subscribe()
    }

    /// Apply other servers' batches, in order, to the memory `store` stands for.
    fn apply_logged(&self, store: &mut Store, logged: Vec<base::store::Logged>) -> Result<()> {
        for batch in logged {
            if batch.version <= store.seen {
                continue;
            }
            if batch.version > store.seen + 1 {
                // The log no longer holds every batch this server missed (it keeps the newest
                // few thousand): the rows are read again instead.
                return self.reload(store);
            }
            let changes = batch
                .rows
                .iter()
                .map(|(kind, key, value)| Change::from_stored(kind, key, value.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            self.apply(changes);
            store.seen = batch.version;
        }
        Ok(())
    }

    /// Replace the memory with what the store holds now.
    fn reload(&self, store: &mut Store) -> Result<()> {
        let loaded = store.backend.load()?;
        let state = state_of(&loaded.rows)?;
        let snapshot = build_snapshot(&state);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = state;
        self.snapshot.store(Arc::new(snapshot));
        store.seen = loaded.version;
        tracing::info!(
            version = store.seen,
            "read the state again: the log no longer held what this server missed"
        );
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Apply committed changes to the state and the authorization snapshot.
    fn apply(&self, changes: Vec<Change>) {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut snap = (*self.snapshot.load_full()).clone();
        let roles_changed = changes.iter().any(|c| matches!(c, Change::CustomRole(_)));
        let deny_changed = changes.iter().any(denypolicies::affects_deny);
        let tags_changed = changes.iter().any(resourcemanager::tags::affects_tags);
        for c in changes {
            snap = update_snapshot(snap, &c);
            st.apply(c.clone());
            match &c {
                Change::ServiceAccount(a) => snap = update_snapshot_sa(snap, &st, a),
                Change::WorkerPool(name, w) => {
                    snap = update_snapshot_pool(snap, &st, name, w.is_some())
                }
                _ => {}
            }
        }
        if roles_changed {
            // Policies were indexed against the old catalog: rebuild so role ids line up.
            snap = build_snapshot(&st);
        } else {
            if deny_changed {
                snap = snap.with_deny_rules(denypolicies::compile(&st));
            }
            if tags_changed && (!st.tag_bindings.is_empty() || snap.has_tags()) {
                // What conditions' tag functions see follows tags and the hierarchy.
                snap = snap.with_tags(effective_tags(&st));
            }
        }
        self.snapshot.store(Arc::new(snap));
        drop(st);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Where instance logs are kept (set by `serve`, inside the data dir).
    pub fn set_log_store(&self, logs: runpool_artifacts::logs::LogStore) {
        let _ = self.logs.set(logs);
    }

    pub fn log_store(&self) -> Option<&runpool_artifacts::logs::LogStore> {
        self.logs.get()
    }

    /// Where imported container images are kept (set by `serve`, inside the data dir).
    pub fn set_image_store(&self, images: runpool_artifacts::images::ImageStore) {
        let _ = self.images.set(images);
    }

    pub fn image_store(&self) -> Option<&runpool_artifacts::images::ImageStore> {
        self.images.get()
    }

    /// A receiver that sees a new value after every committed mutation.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The caller for a member string (`user:…`, `serviceAccount:…`).
    pub fn caller(&self, member: &str) -> Caller {
        let email = member
            .split_once(':')
            .map(|(_, e)| e)
            .unwrap_or(member)
            .to_string();
        Caller {
            member: member.to_string(),
            email,
            principal: self.snapshot.load().principal(member),
            workload: None,
            trace: None,
        }
    }

    fn context(target: &Target) -> authz::RequestContext {
        authz::RequestContext {
            request_time: chrono::Utc::now(),
            resource_type: target.resource_type.to_string(),
            resource_service: target.service.to_string(),
        }
    }

    /// Whether the caller holds `permission` on the target (through any ancestor).
    /// Under `soft` or `off` enforcement a denial is let through; `soft` marks it in the
    /// audit record.
    pub fn allowed(&self, caller: &Caller, permission: &str, target: &Target) -> bool {
        let granted = self.snapshot.load().check(
            &caller.principal,
            permission,
            target.name,
            &Self::context(target),
        );
        let mode = self.enforcement();
        if let Some(trace) = &caller.trace {
            trace.push(audit::Decision {
                resource: target.shown.to_string(),
                canonical: target.name.to_string(),
                resource_type: target.resource_type.to_string(),
                service: target.service.to_string(),
                permission: permission.to_string(),
                granted: granted || mode == audit::Enforcement::Off,
                soft: !granted && mode == audit::Enforcement::Soft,
            });
        }
        granted || mode != audit::Enforcement::Strict
    }

    pub fn enforcement(&self) -> audit::Enforcement {
        self.enforcement.get().copied().unwrap_or_default()
    }

    pub fn set_enforcement(&self, mode: audit::Enforcement) {
        let _ = self.enforcement.set(mode);
    }

    /// Where audit records go (set by `serve`).
    pub fn set_audit_log(&self, log: audit::AuditLog) {
        let _ = self.audit.set(log);
    }

    pub fn audit_log(&self) -> Option<&audit::AuditLog> {
        self.audit.get()
    }

    /// Resolve a hierarchy node (`projects/ID`, `folders/N`, `organizations/N`) and check
    /// `permission` on it as the API of `service` does (the service names the denial).
    pub(crate) fn service_node(
        &self,
        caller: &Caller,
        name: &str,
        permission: &str,
        service: &str,
    ) -> Result<base::hierarchy::Node> {
        let node = self.node(name, permission)?;
        let target = Target {
            service,
            ..node.target()
        };
        self.authorize(caller, permission, &target)?;
        Ok(node)
    }

    /// `Ok` if the caller holds `permission` on the target, else Google's denial.
    pub fn authorize(&self, caller: &Caller, permission: &str, target: &Target) -> Result<()> {
        if self.allowed(caller, permission, target) {
            Ok(())
        } else {
            Err(Error::permission_denied(
                permission,
                target.shown,
                target.service,
            ))
        }
    }

    /// The subset of `permissions` the caller holds on the target.
    pub fn permitted(
        &self,
        caller: &Caller,
        permissions: &[String],
        target: &Target,
    ) -> Vec<String> {
        self.snapshot.load().test_permissions(
            &caller.principal,
            target.name,
            permissions,
            &Self::context(target),
        )
    }
}

fn custom_catalog(state: &State) -> Arc<authz::Catalog> {
    let base = authz::Catalog::predefined();
    if state.custom_roles.is_empty() {
        return base;
    }
    let custom = state
        .custom_roles
        .values()
        .map(|r| authz::Role {
            name: r.name.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            stage: format!("{:?}", r.stage),
            permissions: {
                let mut p = r.included_permissions.clone();
                p.sort();
                p
            },
            deleted: r.deleted,
        })
        .collect();
    Arc::new(authz::Catalog::with_custom_roles(&base, custom))
}

fn build_snapshot(state: &State) -> authz::Snapshot {
    let mut snap = authz::Snapshot::builder(custom_catalog(state)).build();
    for o in state.organizations.values() {
        snap = update_snapshot(snap, &Change::Organization(o.clone()));
    }
    for f in state.folders.values() {
        snap = update_snapshot(snap, &Change::Folder(f.clone()));
    }
    for p in state.projects.values() {
        snap = update_snapshot(snap, &Change::Project(p.clone()));
    }
    for (n, k) in &state.tag_keys {
        snap = update_snapshot(snap, &Change::TagKey(n.clone(), Some(k.clone())));
    }
    for (n, v) in &state.tag_values {
        snap = update_snapshot(snap, &Change::TagValue(n.clone(), Some(v.clone())));
    }
    for a in state.service_accounts.values() {
        snap = update_snapshot_sa(snap, state, a);
    }
    for name in state.worker_pools.keys() {
        snap = update_snapshot_pool(snap, state, name, true);
    }
    for (g, m) in &state.groups {
        snap = snap.with_group(g, m);
    }
    for (r, p) in &state.iam_policies {
        snap = snap.with_policy(r, &base::allow::to_authz(p));
    }
    if !state.deny_policies.is_empty() {
        snap = snap.with_deny_rules(denypolicies::compile(state));
    }
    if !state.tag_bindings.is_empty() {
        snap = snap.with_tags(effective_tags(state));
    }
    snap
}

/// The effective tags of every organization, folder and project that has any.
fn effective_tags(state: &State) -> Vec<(String, Vec<authz::Tag>)> {
    state
        .organizations
        .keys()
        .chain(state.folders.keys())
        .chain(state.projects.keys())
        .map(|n| (n.clone(), state.resource_tags(n)))
        .filter(|(_, t)| !t.is_empty())
        .collect()
}

fn update_snapshot(snap: authz::Snapshot, change: &Change) -> authz::Snapshot {
    let parent = |p: &str| (!p.is_empty()).then(|| p.to_string());
    match change {
        Change::Organization(o) => snap.with_resource(&o.name, None),
        Change::Folder(f) => snap.with_resource(&f.name, parent(&f.parent).as_deref()),
        Change::Project(p) => snap.with_resource(&p.name, parent(&p.parent).as_deref()),
        Change::IamPolicy(r, p) => snap.with_policy(r, &base::allow::to_authz(p)),
        Change::Group(g, m) => snap.with_group(g, m),
        // Tag values sit below their key, keys below their organization or project.
        Change::TagKey(n, Some(k)) => snap.with_resource(n, Some(&k.parent)),
        Change::TagValue(n, Some(v)) => snap.with_resource(n, Some(&v.parent)),
        Change::TagKey(n, None) | Change::TagValue(n, None) => snap.without_resource(n),
        _ => snap,
    }
}

/// Service accounts hang below their project in the hierarchy (so grants on the project
/// reach them); a deleted one is taken out.
fn update_snapshot_sa(
    snap: authz::Snapshot,
    state: &State,
    a: &base::state::StoredAccount,
) -> authz::Snapshot {
    let Some(number) = state.project_number(&a.account.project_id) else {
        return snap;
    };
    let name = a.resource(number);
    if a.deleted_at.is_some() {
        snap.without_resource(&name)
    } else {
        snap.with_resource(&name, Some(&format!("projects/{number}")))
    }
}

/// Worker pools hang below their project (they carry their own allow policy too).
fn update_snapshot_pool(
    snap: authz::Snapshot,
    state: &State,
    name: &str,
    present: bool,
) -> authz::Snapshot {
    let Some(resource) = run::workerpools::pool_resource(state, name) else {
        return snap;
    };
    if present {
        let project = resource
            .split("/locations/")
            .next()
            .unwrap_or_default()
            .to_string();
        snap.with_resource(&resource, Some(&project))
    } else {
        snap.without_resource(&resource)
    }
}
