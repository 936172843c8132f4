//! Cloud Run Admin API v1 (Knative-shaped) worker pools: the same pools as v2, named by
//! namespace (the project, by id or number) and name. A pool's region comes from the regional
//! endpoint the call reached, else its `cloud.googleapis.com/location` label, else it is the
//! one region that holds a pool of that name. The v1 objects themselves are the wire's to
//! translate; this is what v1 means in terms of the v2 methods, which apply every rule.

use crate::base::error::{Error, Result};
use crate::run::workerpools::REGIONS;
use crate::{Caller, Control};
use google_cloud_longrunning::model::Operation;
use google_cloud_run_v2::model::WorkerPool;

/// Where a v1 call says a pool is: the path's namespace and name, and the region hints.
pub struct V1Name<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The region of the regional endpoint the call reached (`us-central1-run.googleapis.com`).
    pub host_region: Option<&'a str>,
}

impl V1Name<'_> {
    fn v2(&self, region: &str) -> String {
        format!(
            "projects/{}/locations/{region}/workerPools/{}",
            self.namespace, self.name
        )
    }
}

/// The pool an operation of the v2 methods carries.
fn pool_of(op: &Operation) -> Result<WorkerPool> {
    use google_cloud_longrunning::model::operation::Result as R;
    match &op.result {
        Some(R::Response(any)) => any
            .to_msg::<WorkerPool>()
            .map_err(|e| Error::internal(e.to_string())),
        _ => Err(Error::internal("operation without a worker pool")),
    }
}

impl Control {
    /// The region of a pool named in a v1 path: the regional host's, else the only region
    /// that holds a pool of that name.
    fn v1_region(&self, caller: &Caller, at: &V1Name) -> Result<String> {
        if let Some(r) = at.host_region {
            return Ok(r.to_string());
        }
        let found = self.regions_of_pool(caller, at.namespace, at.name)?;
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::not_found(format!(
                "Cannot find worker pool [{}] in namespace [{}].",
                at.name, at.namespace
            ))),
            _ => Err(Error::invalid(format!(
                "Worker pool [{}] exists in several regions ({}); use a regional endpoint.",
                at.name,
                found.join(", ")
            ))),
        }
    }

    /// `metadata.namespace`, when given, must name the path's project (by id or number).
    fn v1_check_namespace(&self, path: &str, given: Option<&str>) -> Result<()> {
        match given.filter(|n| !n.is_empty()) {
            Some(g) if g != path && !self.same_project(g, path) => Err(Error::invalid(format!(
                "Namespace [{g}] in the body does not match the namespace [{path}] of the request."
            ))),
            _ => Ok(()),
        }
    }

    pub fn v1_get_worker_pool(&self, caller: &Caller, at: &V1Name) -> Result<WorkerPool> {
        let region = self.v1_region(caller, at)?;
        self.get_worker_pool(caller, &at.v2(&region))
    }

    /// The namespace's pools: in the regional host's region, else in every region.
    pub fn v1_list_worker_pools(
        &self,
        caller: &Caller,
        namespace: &str,
        host_region: Option<&str>,
    ) -> Result<Vec<WorkerPool>> {
        let regions: Vec<&str> = match host_region {
            Some(r) => vec![r],
            None => REGIONS.to_vec(),
        };
        let mut out = vec![];
        for r in regions {
            let parent = format!("projects/{namespace}/locations/{r}");
            out.extend(self.list_worker_pools(caller, &parent, None)?.0);
        }
        Ok(out)
    }

    /// Create `pool` (already translated from v1) as `at`; `label_region` is its location
    /// label, `body_namespace` its `metadata.namespace`.
    pub fn v1_create_worker_pool(
        &self,
        caller: &Caller,
        at: &V1Name,
        body_namespace: Option<&str>,
        label_region: Option<&str>,
        pool: WorkerPool,
        dry_run: bool,
    ) -> Result<WorkerPool> {
        self.v1_check_namespace(at.namespace, body_namespace)?;
        let region = at.host_region.or(label_region).ok_or_else(|| {
            Error::invalid(format!(
                "The region of worker pool [{}] is unknown: set the label cloud.googleapis.com/location or use a regional endpoint.",
                at.name
            ))
        })?;
        let parent = format!("projects/{}/locations/{region}", at.namespace);
        let op = self.create_worker_pool(caller, &parent, at.name, pool, dry_run)?;
        pool_of(&op)
    }

    /// Replace the pool at `at` with `pool` (translated from v1; `body_name` its
    /// `metadata.name`, which must be the path's).
    #[allow(clippy::too_many_arguments)]
    pub fn v1_replace_worker_pool(
        &self,
        caller: &Caller,
        at: &V1Name,
        body_name: &str,
        body_namespace: Option<&str>,
        label_region: Option<&str>,
        mut pool: WorkerPool,
        dry_run: bool,
    ) -> Result<WorkerPool> {
        if body_name != at.name {
            return Err(Error::invalid(format!(
                "metadata.name [{body_name}] does not match the request path [{}].",
                at.name
            )));
        }
        self.v1_check_namespace(at.namespace, body_namespace)?;
        let region = match at.host_region.or(label_region) {
            Some(r) => r.to_string(),
            None => self.v1_region(caller, at)?,
        };
        pool.name = at.v2(&region);
        let op = self.update_worker_pool(caller, pool, &[], false, false, dry_run)?;
        pool_of(&op)
    }

    /// Delete the pool at `at`; the deleted pool is returned.
    pub fn v1_delete_worker_pool(
        &self,
        caller: &Caller,
        at: &V1Name,
        dry_run: bool,
    ) -> Result<WorkerPool> {
        let region = self.v1_region(caller, at)?;
        let op = self.delete_worker_pool(caller, &at.v2(&region), "", dry_run)?;
        pool_of(&op)
    }
}
