//! Cloud Run Admin API v2 paths and reads every worker pool command shares.

use crate::api::{Api, has_status};
use anyhow::Result;
use serde_json::Value;

/// The label the v1 API and `gcloud` put the region in.
pub const LOCATION_LABEL: &str = "cloud.googleapis.com/location";
/// The `client` Cloud Run records on revisions this tool deploys.
pub const CLIENT: &str = "runpool";

pub fn v2_path(project: &str, region: &str, id: &str) -> String {
    format!("/v2/projects/{project}/locations/{region}/workerPools/{id}")
}

/// The pool at a v2 path, or `None` when it does not exist.
pub async fn get_pool(api: &Api, path: &str) -> Result<Option<Value>> {
    match api.get(path).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if has_status(&e, "NOT_FOUND") => Ok(None),
        Err(e) => Err(e),
    }
}
