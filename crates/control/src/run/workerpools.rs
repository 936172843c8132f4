//! Cloud Run Admin API v2 worker pools: the pool, its revisions, its allow policy, and the
//! long-running operations its mutations return. Every create and update goes through
//! [`Control::check_identity`].

use crate::base::error::{Code, Error, Result};
use crate::base::hierarchy::Node;
use crate::base::state::{Change, State};
use crate::base::time::now;
use crate::{Caller, Control, Target};
use google_cloud_longrunning::model::{Operation, operation};
use google_cloud_run_v2::model::{
    Condition, InstanceSplit, InstanceSplitAllocationType, InstanceSplitStatus, Revision,
    WorkerPool, condition,
};
use google_cloud_wkt::Any;
use serde_json::Value;

pub const SERVICE: &str = "run.googleapis.com";
pub const RESOURCE_TYPE: &str = "run.googleapis.com/WorkerPool";
/// Google's limit on containers per worker pool.
pub const MAX_CONTAINERS: usize = 10;

/// The regions Cloud Run runs in.
pub const REGIONS: &[&str] = &[
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "asia-southeast3",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
];

/// Environment variables Cloud Run sets itself, which a container may not set.
const RESERVED_ENV: &[&str] = &[
    "PORT",
    "K_SERVICE",
    "K_REVISION",
    "K_CONFIGURATION",
    "CLOUD_RUN_JOB",
    "CLOUD_RUN_EXECUTION",
    "CLOUD_RUN_TASK_INDEX",
    "CLOUD_RUN_TASK_ATTEMPT",
    "CLOUD_RUN_TASK_COUNT",
    "CLOUD_RUN_WORKER_POOL",
    "CLOUD_RUN_REVISION",
];

/// Annotation and label prefixes reserved to Google on new resources.
const RESERVED: &[&str] = &[
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
];

/// A pool location named by a caller: `projects/P/locations/L`, resolved.
#[derive(Debug, Clone)]
pub struct Location {
    pub project: Node,
    pub project_id: String,
    pub project_number: String,
    pub region: String,
}

impl Location {
    /// `projects/PROJECT_ID/locations/REGION`, as pool names are answered.
    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project_id, self.region)
    }
    fn project_target(&self) -> Target<'_> {
        Target {
            service: SERVICE,
            ..self.project.target()
        }
    }
}

/// One deploy of a pool: where, over what, and as whom.
struct Deploy<'a> {
    loc: &'a Location,
    id: &'a str,
    /// The pool as it stands, for an update.
    previous: Option<&'a WorkerPool>,
    force_new_revision: bool,
    /// The service account the identity rules resolved.
    identity: String,
}

/// `projects/NUMBER/locations/L/workerPools/ID`: the name IAM and the hierarchy know a pool by.
pub fn pool_resource(st: &State, name: &str) -> Option<String> {
    let rest = name.strip_prefix("projects/")?;
    let (project, rest) = rest.split_once('/')?;
    let number = st.project_number(project)?;
    Some(format!("projects/{number}/{rest}"))
}

/// A worker pool id: a letter first, lowercase letters, digits and hyphens, no hyphen last,
/// fewer than 50 characters.
pub fn valid_pool_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() < 50
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..3)
        .map(|_| (b'a' + r.random_range(0..26)) as char)
        .collect()
}

fn ready(message: &str) -> Condition {
    let mut c = Condition::new();
    c.r#type = "Ready".to_string();
    c.state = condition::State::ConditionSucceeded;
    c.message = message.to_string();
    c.last_transition_time = Some(now());
    c
}

fn any<M: google_cloud_wkt::message::Message + serde::Serialize>(m: &M) -> Result<Any> {
    Any::from_msg(m).map_err(|e| Error::internal(e.to_string()))
}

/// A finished operation for a pool: Cloud Run puts the pool in both `metadata` and
/// `response`.
fn pool_operation(parent: &str, pool: &WorkerPool) -> Result<Operation> {
    let mut op = Operation::new();
    op.name = format!("{parent}/operations/{}", crate::base::ids::uuid4());
    op.metadata = Some(any(pool)?);
    op.done = true;
    op.result = Some(operation::Result::Response(Box::new(any(pool)?)));
    Ok(op)
}

/// The JSON field path of a mask entry in camelCase (`template.service_account` →
/// `template.serviceAccount`).
fn camel(path: &str) -> Vec<String> {
    path.split('.')
        .map(|seg| {
            let mut out = String::new();
            let mut up = false;
            for ch in seg.chars() {
                if ch == '_' {
                    up = true;
                } else if up {
                    out.extend(ch.to_uppercase());
                    up = false;
                } else {
                    out.push(ch);
                }
            }
            out
        })
        .collect()
}

/// Copy the field at `path` from `from` to `to` (removing it where `from` lacks it).
fn copy_path(to: &mut Value, from: &Value, path: &[String]) {
    let (Some(first), rest) = (path.first(), &path[1..]) else {
        return;
    };
    let src = from.get(first);
    let Some(dst) = to.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        match src {
            Some(v) => {
                dst.insert(first.clone(), v.clone());
            }
            None => {
                dst.remove(first);
            }
        }
        return;
    }
    let child = dst
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Default::default()));
    copy_path(child, src.unwrap_or(&Value::Null), rest);
}

/// Output-only fields of a v2 WorkerPool: a client may not set them (Cloud Run ignores them
/// on input), and a client doing read-modify-write must not send them back.
pub const OUTPUT_ONLY: &[&str] = &[
    "uid",
    "generation",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "creator",
    "lastModifier",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "instanceSplitStatuses",
    "threatDetectionEnabled",
    "satisfiesPzs",
    "reconciling",
];

fn to_value(p: &WorkerPool) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

fn from_value(v: Value) -> Result<WorkerPool> {
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("Invalid worker pool: {e}")))
}

fn check_metadata(what: &str, keys: impl Iterator<Item = String>) -> Result<()> {
    for k in keys {
        let prefix = k.split('/').next().unwrap_or_default();
        if k.contains('/')
            && RESERVED
                .iter()
                .any(|r| prefix == *r || prefix.ends_with(&format!(".{r}")))
        {
            return Err(Error::invalid(format!(
                "The {what} '{k}' is not allowed: the '{prefix}' namespace is reserved."
            )));
        }
    }
    Ok(())
}

/// The most instances a worker pool may ask for: Cloud Run's limit on the instances of one
/// revision (its maximum-instances setting goes up to 1,000 without a quota increase). Google
/// documents no separate bound for `manualInstanceCount`; the supervisor must never be asked
/// for more than this.
pub const MAX_INSTANCES: i32 = 1000;

/// The revision (short name) an instance split sends instances to: its own, or for a
/// `LATEST` split (or one naming none) the pool's latest ready revision `latest`.
pub(crate) fn split_revision<'a>(s: &'a InstanceSplit, latest: &'a str) -> &'a str {
    if s.r#type == InstanceSplitAllocationType::Latest || s.revision.is_empty() {
        latest
    } else {
        &s.revision
    }
}

/// Validate what a client asks a pool to be.
fn validate(pool: &WorkerPool) -> Result<()> {
    let t = pool
        .template
        .as_ref()
        .ok_or_else(|| Error::invalid("template: the revision template is required."))?;
    if t.containers.is_empty() {
        return Err(Error::invalid(
            "template.containers: at least one container is required.",
        ));
    }
    if t.containers.len() > MAX_CONTAINERS {
        return Err(Error::invalid(format!(
            "Worker pools may include at most {MAX_CONTAINERS} containers."
        )));
    }
    for (i, c) in t.containers.iter().enumerate() {
        if c.image.trim().is_empty() {
            return Err(Error::invalid(format!(
                "template.containers[{i}].image: an image is required."
            )));
        }
        let reserved: Vec<&str> = c
            .env
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| RESERVED_ENV.contains(n))
            .collect();
        if !reserved.is_empty() {
            return Err(Error::invalid(format!(
                "The following reserved env names were provided: {}. These values are automatically set by the system.",
                reserved.join(", ")
            )));
        }
    }
    if pool.description.chars().count() > 512 {
        return Err(Error::invalid("description: at most 512 characters."));
    }
    check_metadata("label", pool.labels.keys().cloned())?;
    check_metadata("annotation", pool.annotations.keys().cloned())?;
    check_metadata("label", t.labels.keys().cloned())?;
    check_metadata("annotation", t.annotations.keys().cloned())?;
    if !t.revision.is_empty()
        && !t.revision.starts_with(&format!(
            "{}-",
            pool.name.rsplit('/').next().unwrap_or_default()
        ))
    {
        return Err(Error::invalid(format!(
            "template.revision: the revision name must start with the worker pool name followed by '-'; got '{}'.",
            t.revision
        )));
    }
    if let Some(n) = pool.scaling.as_ref().and_then(|s| s.manual_instance_count)
        && !(0..=MAX_INSTANCES).contains(&n)
    {
        return Err(Error::invalid(format!(
            "Invalid value at 'worker_pool.scaling.manual_instance_count': {n}. The instance count must be between 0 and {MAX_INSTANCES}."
        )));
    }
    let split_total: i32 = pool.instance_splits.iter().map(|s| s.percent).sum();
    if !pool.instance_splits.is_empty() && split_total != 100 {
        return Err(Error::invalid(format!(
            "instance_splits: the percents must add up to 100, not {split_total}."
        )));
    }
    Ok(())
}

/// Whether two templates describe the same revision (a scaling-only change does not).
fn same_template(a: &WorkerPool, b: &WorkerPool) -> bool {
    let strip = |p: &WorkerPool| {
        let mut t = serde_json::to_value(&p.template).unwrap_or(Value::Null);
        if let Some(o) = t.as_object_mut() {
            o.remove("revision");
        }
        t
    };
    strip(a) == strip(b)
}

impl Control {
    /// Resolve `projects/P/locations/L`, checking the region is one Cloud Run has.
    pub fn location(&self, parent: &str, permission: &str) -> Result<Location> {
        let bad = || {
            Error::invalid(format!(
                "Invalid parent '{parent}': expected projects/PROJECT/locations/REGION."
            ))
        };
        let rest = parent.strip_prefix("projects/").ok_or_else(bad)?;
        let (project, region) = rest.split_once("/locations/").ok_or_else(bad)?;
        if project.is_empty() || region.contains('/') {
            return Err(bad());
        }
        if !REGIONS.contains(&region) {
            return Err(Error::invalid(format!(
                "Location '{region}' is not a valid Cloud Run region."
            )));
        }
        let node = self.node(&format!("projects/{project}"), permission)?;
        let st = self.read();
        let p = &st.projects[&node.name];
        Ok(Location {
            project_id: p.project_id.clone(),
            project_number: node.name.trim_start_matches("projects/").to_string(),
            project: node,
            region: region.to_string(),
        })
    }

    /// Split and resolve `projects/P/locations/L/workerPools/ID`.
    fn pool_name(&self, name: &str, permission: &str) -> Result<(Location, String)> {
        let (parent, id) = name
            .rsplit_once("/workerPools/")
            .ok_or_else(|| Error::invalid(format!("Invalid worker pool name '{name}'.")))?;
        if !valid_pool_id(id) {
            return Err(Error::invalid(format!(
                "Invalid worker pool id '{id}': it must begin with a letter, contain only lowercase letters, digits and hyphens, not end with a hyphen, and be fewer than 50 characters."
            )));
        }
        Ok((self.location(parent, permission)?, id.to_string()))
    }

    fn not_found(loc: &Location, id: &str) -> Error {
        Error::not_found(format!(
            "Resource '{id}' of kind 'WORKER_POOL' in region '{}' in project '{}' does not exist.",
            loc.region, loc.project_id
        ))
    }

    /// Authorize `permission` on a pool: on the pool itself when it exists (its own policy
    /// counts), else on its project.
    fn authorize_pool(
        &self,
        caller: &Caller,
        loc: &Location,
        id: &str,
        permission: &str,
    ) -> Result<()> {
        let key = format!("{}/workerPools/{id}", loc.parent());
        let resource = format!(
            "projects/{}/locations/{}/workerPools/{id}",
            loc.project_number, loc.region
        );
        let exists = self.read().worker_pools.contains_key(&key);
        let shown = format!(
            "projects/{}/locations/{}/workerPools/{id}",
            loc.project.shown.trim_start_matches("projects/"),
            loc.region
        );
        let target = if exists {
            Target {
                name: &resource,
                shown: &shown,
                resource_type: RESOURCE_TYPE,
                service: SERVICE,
            }
        } else {
            Target {
                shown: &shown,
                ..loc.project_target()
            }
        };
        self.authorize(caller, permission, &target)
    }

    /// The pool as it will be stored after a deploy: output fields set as Cloud Run sets them,
    /// a new revision when the template changed (or `force_new_revision`).
    fn realize(
        &self,
        caller: &Caller,
        d: &Deploy,
        mut pool: WorkerPool,
    ) -> Result<(WorkerPool, Option<Revision>)> {
        let Deploy {
            loc,
            id,
            previous,
            force_new_revision,
            ref identity,
        } = *d;
        let identity = identity.clone();
        let name = format!("{}/workerPools/{id}", loc.parent());
        pool.name = name.clone();
        let t = now();
        if let Some(tpl) = pool.template.as_mut() {
            tpl.service_account = identity;
        }
        let generation = previous.map(|p| p.generation + 1).unwrap_or(1);
        let new_revision = match previous {
            None => true,
            Some(prev) => force_new_revision || !same_template(prev, &pool),
        };
        pool.uid = previous
            .map(|p| p.uid.clone())
            .unwrap_or_else(crate::base::ids::uuid4);
        pool.generation = generation;
        pool.create_time = previous.and_then(|p| p.create_time).or(Some(t));
        pool.update_time = Some(t);
        pool.delete_time = None;
        pool.creator = previous
            .map(|p| p.creator.clone())
            .unwrap_or_else(|| caller.email.clone());
        pool.last_modifier = caller.email.clone();
        pool.observed_generation = generation;
        pool.reconciling = false;
        pool.etag = crate::base::ids::etag("\"", "\"");
        if pool.launch_stage == google_cloud_api::model::LaunchStage::Unspecified {
            pool.launch_stage = google_cloud_api::model::LaunchStage::Ga;
        }
        let mut revision = None;
        if new_revision {
            let tpl = pool.template.clone().unwrap_or_default();
            let rev_id = if tpl.revision.is_empty()
                || previous.is_some_and(|p| {
                    p.latest_created_revision
                        .ends_with(&format!("/{}", tpl.revision))
                }) {
                format!("{id}-{generation:05}-{}", random_suffix())
            } else {
                tpl.revision.clone()
            };
            let rev_name = format!("{name}/revisions/{rev_id}");
            if self.read().revisions.contains_key(&rev_name) {
                return Err(Error::already_exists(format!(
                    "Revision named '{rev_id}' already exists."
                )));
            }
            let mut r = Revision::new();
            r.name = rev_name.clone();
            r.uid = crate::base::ids::uuid4();
            r.generation = 1;
            r.labels = tpl.labels.clone();
            r.annotations = tpl.annotations.clone();
            r.create_time = Some(t);
            r.update_time = Some(t);
            r.launch_stage = pool.launch_stage.clone();
            r.vpc_access = tpl.vpc_access.clone();
            r.service_account = tpl.service_account.clone();
            r.containers = tpl.containers.clone();
            r.volumes = tpl.volumes.clone();
            r.encryption_key = tpl.encryption_key.clone();
            r.node_selector = tpl.node_selector.clone();
            r.conditions = vec![ready("")];
            r.observed_generation = 1;
            r.creator = caller.email.clone();
            r.etag = crate::base::ids::etag("\"", "\"");
            // The Rust model has no `workerPool` field (it is shared with services); keep
            // Cloud Run's field on the wire through the model's unknown-field passthrough.
            let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
            v["workerPool"] = Value::String(name.clone());
            r = serde_json::from_value(v).map_err(|e| Error::internal(e.to_string()))?;
            pool.latest_created_revision = rev_name.clone();
            pool.latest_ready_revision = rev_name;
            revision = Some(r);
        } else if let Some(prev) = previous {
            pool.latest_created_revision = prev.latest_created_revision.clone();
            pool.latest_ready_revision = prev.latest_ready_revision.clone();
        }
        if let Some(tpl) = pool.template.as_mut() {
            tpl.revision = String::new();
        }
        if pool.instance_splits.is_empty() {
            let mut s = InstanceSplit::new();
            s.r#type = InstanceSplitAllocationType::Latest;
            s.percent = 100;
            pool.instance_splits = vec![s];
        }
        pool.instance_split_statuses = pool
            .instance_splits
            .iter()
            .map(|s| {
                let mut st = InstanceSplitStatus::new();
                st.r#type = InstanceSplitAllocationType::Revision;
                st.revision = if s.r#type == InstanceSplitAllocationType::Latest {
                    pool.latest_ready_revision
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                } else {
                    s.revision.clone()
                };
                st.percent = s.percent;
                st
            })
            .collect();
        pool.terminal_condition = Some(ready(""));
        pool.conditions = vec![];
        Ok((pool, revision))
    }

    /// `workerPools.create`.
    pub fn create_worker_pool(
        &self,
        caller: &Caller,
        parent: &str,
        id: &str,
        pool: WorkerPool,
        validate_only: bool,
    ) -> Result<Operation> {
        let perm = "run.workerpools.create";
        if id.is_empty() {
            return Err(Error::invalid("worker_pool_id is required."));
        }
        let (loc, id) = self.pool_name(&format!("{parent}/workerPools/{id}"), perm)?;
        self.authorize_pool(caller, &loc, &id, perm)?;
        let mut pool = pool;
        pool.name = format!("{}/workerPools/{id}", loc.parent());
        validate(&pool)?;
        if self.read().worker_pools.contains_key(&pool.name) {
            return Err(Error::already_exists(format!(
                "Resource '{id}' already exists."
            )));
        }
        let requested = pool
            .template
            .as_ref()
            .map(|t| t.service_account.clone())
            .unwrap_or_default();
        let identity =
            self.check_identity(caller, &loc.project_number, &requested, validate_only)?;
        let d = Deploy {
            loc: &loc,
            id: &id,
            previous: None,
            force_new_revision: true,
            identity,
        };
        self.commit_pool(caller, d, pool, validate_only)
    }

    /// Store a realized pool (unless `validate_only`) and answer with its operation.
    fn commit_pool(
        &self,
        caller: &Caller,
        d: Deploy,
        pool: WorkerPool,
        validate_only: bool,
    ) -> Result<Operation> {
        let (loc, previous) = (d.loc, d.previous);
        let (pool, revision) = self.realize(caller, &d, pool)?;
        let op = pool_operation(&loc.parent(), &pool)?;
        if validate_only {
            return Ok(op);
        }
        let name = pool.name.clone();
        let expected = previous.map(|p| p.etag.clone());
        self.write(|st| {
            // Another deploy may have landed since we read the pool.
            if st.worker_pools.get(&name).map(|p| p.etag.clone()) != expected {
                return Err(Error::new(
                    Code::Aborted,
                    format!("Worker pool {name} changed concurrently; retry."),
                ));
            }
            let mut changes = vec![Change::WorkerPool(name.clone(), Some(pool.clone()))];
            if let Some(r) = revision {
                changes.push(Change::Revision(r.name.clone(), Some(r)));
            }
            changes.push(Change::Operation(op.clone()));
            Ok((changes, op.clone()))
        })
    }

    pub fn get_worker_pool(&self, caller: &Caller, name: &str) -> Result<WorkerPool> {
        let perm = "run.workerpools.get";
        let (loc, id) = self.pool_name(name, perm)?;
        self.authorize_pool(caller, &loc, &id, perm)?;
        self.read()
            .worker_pools
            .get(&format!("{}/workerPools/{id}", loc.parent()))
            .cloned()
            .ok_or_else(|| Self::not_found(&loc, &id))
    }

    /// Pools of a location, newest first.
    /// `workerPools.list`, newest first: the `(start, size)` window asked for (all without
    /// one), and how many there are in all. Only the window is copied out of the state.
    pub fn list_worker_pools(
        &self,
        caller: &Caller,
        parent: &str,
        window: Option<(usize, usize)>,
    ) -> Result<(Vec<WorkerPool>, usize)> {
        let perm = "run.workerpools.list";
        let loc = self.location(parent, perm)?;
        self.authorize(caller, perm, &loc.project_target())?;
        let prefix = format!("{}/workerPools/", loc.parent());
        let st = self.read();
        let mut pools: Vec<&WorkerPool> = st
            .worker_pools
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, p)| p)
            .collect();
        pools.sort_by(|a, b| {
            let t = |p: &WorkerPool| {
                p.create_time
                    .map(|t| (t.seconds(), t.nanos()))
                    .unwrap_or_default()
            };
            t(b).cmp(&t(a))
        });
        let total = pools.len();
        let (start, size) = window.unwrap_or((0, usize::MAX));
        Ok((
            pools.into_iter().skip(start).take(size).cloned().collect(),
            total,
        ))
    }

    /// `workerPools.patch`: `update_mask` paths (camelCase or snake_case) or, without one,
    /// every writable field; `allow_missing` creates (and then needs `create`).
    #[allow(clippy::too_many_arguments)]
    pub fn update_worker_pool(
        &self,
        caller: &Caller,
        patch: WorkerPool,
        mask: &[String],
        allow_missing: bool,
        force_new_revision: bool,
        validate_only: bool,
    ) -> Result<Operation> {
        let name = patch.name.clone();
        let (loc, id) = self.pool_name(&name, "run.workerpools.update")?;
        let key = format!("{}/workerPools/{id}", loc.parent());
        let current = self.read().worker_pools.get(&key).cloned();
        let Some(current) = current else {
            if !allow_missing {
                self.authorize_pool(caller, &loc, &id, "run.workerpools.update")?;
                return Err(Self::not_found(&loc, &id));
            }
            return self.create_worker_pool(caller, &loc.parent(), &id, patch, validate_only);
        };
        self.authorize_pool(caller, &loc, &id, "run.workerpools.update")?;
        if !patch.etag.is_empty() && patch.etag != current.etag {
            return Err(Error::new(
                Code::Aborted,
                format!(
                    "The etag '{}' does not match the current etag of worker pool {key}.",
                    patch.etag
                ),
            ));
        }
        let mut merged = to_value(&current);
        let incoming = to_value(&patch);
        if mask.is_empty() || mask.iter().any(|m| m == "*") {
            // Replace every writable field with what was sent.
            let keep: Vec<(String, Value)> = merged
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| OUTPUT_ONLY.contains(&k.as_str()) || *k == "name")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            merged = incoming.clone();
            for (k, v) in keep {
                merged[k] = v;
            }
        } else {
            for path in mask {
                let p = camel(path);
                if p.first()
                    .is_some_and(|f| OUTPUT_ONLY.contains(&f.as_str()) || f == "name")
                {
                    return Err(Error::invalid(format!(
                        "update_mask: field '{path}' cannot be updated."
                    )));
                }
                copy_path(&mut merged, &incoming, &p);
            }
        }
        let mut pool = from_value(merged)?;
        pool.name = key.clone();
        validate(&pool)?;
        let requested = pool
            .template
            .as_ref()
            .map(|t| t.service_account.clone())
            .unwrap_or_default();
        let identity =
            self.check_identity(caller, &loc.project_number, &requested, validate_only)?;
        // Instances routed to an older revision run as that revision's account: whoever
        // moves instances onto it must be able to act as that account too. (Google documents
        // actAs for the account a deploy attaches and is silent on splits; the safe side is
        // to ask it of every revision that gains instances.)
        for account in self.accounts_gaining_instances(&key, &current, &pool) {
            self.check_identity(caller, &loc.project_number, &account, validate_only)?;
        }
        let d = Deploy {
            loc: &loc,
            id: &id,
            previous: Some(&current),
            force_new_revision,
            identity,
        };
        self.commit_pool(caller, d, pool, validate_only)
    }

    /// The service accounts of the existing revisions to which `next` gives more instances
    /// than `current` does (a larger share of the instances, or the same share of more).
    fn accounts_gaining_instances(
        &self,
        key: &str,
        current: &WorkerPool,
        next: &WorkerPool,
    ) -> Vec<String> {
        let latest = current
            .latest_ready_revision
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let share = |splits: &[InstanceSplit], rev: &str| -> i32 {
            splits
                .iter()
                .filter(|s| split_revision(s, &latest) == rev)
                .map(|s| s.percent)
                .sum()
        };
        // How many instances a pool asks for, as the supervisor reads it.
        let count = |p: &WorkerPool| -> i32 {
            p.scaling
                .as_ref()
                .and_then(|s| s.manual_instance_count)
                .unwrap_or(1)
                .clamp(0, MAX_INSTANCES)
        };
        let st = self.read();
        let mut out: Vec<String> = next
            .instance_splits
            .iter()
            .filter(|s| s.r#type != InstanceSplitAllocationType::Latest && !s.revision.is_empty())
            .filter(|s| {
                share(&next.instance_splits, &s.revision) * count(next)
                    > share(&current.instance_splits, &s.revision) * count(current)
            })
            .filter_map(|s| st.revisions.get(&format!("{key}/revisions/{}", s.revision)))
            .map(|r| r.service_account.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// `workerPools.delete`: the pool and its revisions go; the answer carries the pool with
    /// its `deleteTime`.
    pub fn delete_worker_pool(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        validate_only: bool,
    ) -> Result<Operation> {
        let perm = "run.workerpools.delete";
        let (loc, id) = self.pool_name(name, perm)?;
        self.authorize_pool(caller, &loc, &id, perm)?;
        let key = format!("{}/workerPools/{id}", loc.parent());
        let mut pool = self
            .read()
            .worker_pools
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(&loc, &id))?;
        if !etag.is_empty() && etag != pool.etag {
            return Err(Error::new(
                Code::Aborted,
                format!("The etag '{etag}' does not match the current etag of worker pool {key}."),
            ));
        }
        pool.delete_time = Some(now());
        let op = pool_operation(&loc.parent(), &pool)?;
        if validate_only {
            return Ok(op);
        }
        self.write(|st| {
            let prefix = format!("{key}/revisions/");
            let mut changes: Vec<Change> = st
                .revisions
                .keys()
                .filter(|r| r.starts_with(&prefix))
                .map(|r| Change::Revision(r.clone(), None))
                .collect();
            changes.push(Change::WorkerPool(key.clone(), None));
            changes.push(Change::Operation(op.clone()));
            Ok((changes, op.clone()))
        })
    }

    fn pool_target_names(
        &self,
        caller: &Caller,
        name: &str,
        permission: &str,
    ) -> Result<(String, String)> {
        let (loc, id) = self.pool_name(name, permission)?;
        let key = format!("{}/workerPools/{id}", loc.parent());
        if !self.read().worker_pools.contains_key(&key) {
            self.authorize(caller, permission, &loc.project_target())?;
            return Err(Self::not_found(&loc, &id));
        }
        Ok((
            format!(
                "projects/{}/locations/{}/workerPools/{id}",
                loc.project_number, loc.region
            ),
            name.to_string(),
        ))
    }

    pub fn pool_get_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        version: i32,
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "run.workerpools.getIamPolicy";
        let (resource, shown) = self.pool_target_names(caller, name, perm)?;
        let t = Target {
            name: &resource,
            shown: &shown,
            resource_type: RESOURCE_TYPE,
            service: SERVICE,
        };
        self.get_iam_policy(caller, &t, perm, version)
    }

    pub fn pool_set_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        policy: google_cloud_iam_v1::model::Policy,
        mask: &[String],
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let perm = "run.workerpools.setIamPolicy";
        let (resource, shown) = self.pool_target_names(caller, name, perm)?;
        let t = Target {
            name: &resource,
            shown: &shown,
            resource_type: RESOURCE_TYPE,
            service: SERVICE,
        };
        self.set_iam_policy(caller, &t, perm, policy, mask, None)
    }

    /// No permission is needed to ask (as the proto says); the answer is the allowed subset.
    pub fn pool_test_iam_permissions(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let (loc, id) = self.pool_name(name, "run.workerpools.get")?;
        let resource = format!(
            "projects/{}/locations/{}/workerPools/{id}",
            loc.project_number, loc.region
        );
        let t = Target {
            name: &resource,
            shown: name,
            resource_type: RESOURCE_TYPE,
            service: SERVICE,
        };
        self.test_iam_permissions(caller, &t, permissions)
    }

    /// The regions of a project holding a pool named `id` that the caller may get.
    pub fn regions_of_pool(&self, caller: &Caller, project: &str, id: &str) -> Result<Vec<String>> {
        let node = self.node(&format!("projects/{project}"), "run.workerpools.get")?;
        let project_id = self.read().projects[&node.name].project_id.clone();
        let suffix = format!("/workerPools/{id}");
        let prefix = format!("projects/{project_id}/locations/");
        let regions: Vec<String> = self
            .read()
            .worker_pools
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
            .map(|k| k[prefix.len()..k.len() - suffix.len()].to_string())
            .collect();
        if regions.is_empty() {
            self.authorize(
                caller,
                "run.workerpools.get",
                &Target {
                    service: SERVICE,
                    ..node.target()
                },
            )?;
        }
        Ok(regions)
    }

    /// The project id of a project id or number.
    pub fn project_id_of(&self, project: &str) -> Option<String> {
        let st = self.read();
        let node = st.resolve(&format!("projects/{project}"))?;
        Some(st.projects[&node.name].project_id.clone())
    }

    /// The project number behind a pool name (`projects/PROJECT_ID/…`).
    pub fn project_number_of(&self, name: &str) -> Option<String> {
        let project = name.strip_prefix("projects/")?.split('/').next()?;
        self.read()
            .resolve(&format!("projects/{project}"))
            .map(|n| n.name.trim_start_matches("projects/").to_string())
    }

    /// Whether two project references (ids or numbers) name the same project.
    pub fn same_project(&self, a: &str, b: &str) -> bool {
        let st = self.read();
        let r = |p: &str| st.resolve(&format!("projects/{p}")).map(|n| n.name);
        r(a).is_some() && r(a) == r(b)
    }

    /// Revisions of a pool, newest first.
    pub fn list_revisions(&self, caller: &Caller, pool: &str) -> Result<Vec<Revision>> {
        let perm = "run.revisions.list";
        let (loc, id) = self.pool_name(pool, perm)?;
        self.authorize(caller, perm, &loc.project_target())?;
        let prefix = format!("{}/workerPools/{id}/revisions/", loc.parent());
        let mut revs: Vec<Revision> = self
            .read()
            .revisions
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| r.clone())
            .collect();
        revs.sort_by(|a, b| {
            let t = |r: &Revision| {
                r.create_time
                    .map(|t| (t.seconds(), t.nanos()))
                    .unwrap_or_default()
            };
            t(b).cmp(&t(a))
        });
        Ok(revs)
    }

    fn revision_key(&self, caller: &Caller, name: &str, perm: &str) -> Result<(String, String)> {
        let (pool, rev) = name
            .rsplit_once("/revisions/")
            .ok_or_else(|| Error::invalid(format!("Invalid revision name '{name}'.")))?;
        let (loc, id) = self.pool_name(pool, perm)?;
        self.authorize(caller, perm, &loc.project_target())?;
        let pool_key = format!("{}/workerPools/{id}", loc.parent());
        Ok((pool_key.clone(), format!("{pool_key}/revisions/{rev}")))
    }

    pub fn get_revision(&self, caller: &Caller, name: &str) -> Result<Revision> {
        let (_, key) = self.revision_key(caller, name, "run.revisions.get")?;
        self.read()
            .revisions
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Revision {name} does not exist.")))
    }

    /// Delete a revision that no instance split points at.
    pub fn delete_revision(&self, caller: &Caller, name: &str) -> Result<Operation> {
        let (pool_key, key) = self.revision_key(caller, name, "run.revisions.delete")?;
        self.write(|st| {
            let r = st.revisions.get(&key).cloned().ok_or_else(|| Error::not_found(format!("Revision {name} does not exist.")))?;
            let rev_id = key.rsplit('/').next().unwrap_or_default();
            if let Some(p) = st.worker_pools.get(&pool_key)
                && (p.latest_created_revision == key || p.instance_splits.iter().any(|s| s.revision == rev_id))
            {
                return Err(Error::failed_precondition(format!(
                    "Revision {rev_id} is serving or is the latest revision of its worker pool and cannot be deleted."
                )));
            }
            let mut op = Operation::new();
            op.name = format!("{}/operations/{}", pool_key.split("/workerPools/").next().unwrap_or_default(), crate::base::ids::uuid4());
            op.metadata = Some(any(&r)?);
            op.done = true;
            op.result = Some(operation::Result::Response(Box::new(any(&r)?)));
            Ok((vec![Change::Revision(key.clone(), None), Change::Operation(op.clone())], op))
        })
    }

    /// Operations of a location (Cloud Run's `operations.get`/`list`).
    pub fn get_run_operation(&self, caller: &Caller, name: &str) -> Result<Operation> {
        let (parent, _) = name
            .rsplit_once("/operations/")
            .ok_or_else(|| Error::invalid(format!("Invalid operation name '{name}'.")))?;
        let perm = "run.operations.get";
        let loc = self.location(parent, perm)?;
        self.authorize(caller, perm, &loc.project_target())?;
        let canonical = format!(
            "{}/operations/{}",
            loc.parent(),
            name.rsplit('/').next().unwrap_or_default()
        );
        self.read()
            .operations
            .get(&canonical)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Operation {name} not found.")))
    }

    pub fn list_run_operations(&self, caller: &Caller, parent: &str) -> Result<Vec<Operation>> {
        let perm = "run.operations.list";
        let loc = self.location(parent, perm)?;
        self.authorize(caller, perm, &loc.project_target())?;
        let prefix = format!("{}/operations/", loc.parent());
        Ok(self
            .read()
            .operations
            .values()
            .filter(|o| o.name.starts_with(&prefix))
            .cloned()
            .collect())
    }

    pub fn delete_run_operation(&self, caller: &Caller, name: &str) -> Result<()> {
        let op = self.get_run_operation(caller, name)?;
        let (parent, _) = name.rsplit_once("/operations/").unwrap_or_default();
        let loc = self.location(parent, "run.operations.delete")?;
        self.authorize(caller, "run.operations.delete", &loc.project_target())?;
        self.write(|_| Ok((vec![Change::OperationDeleted(op.name.clone())], ())))
    }
}
