//! Files users hand the client.

use anyhow::{Result, bail};
use serde_json::Value;
use std::path::PathBuf;

/// Read a policy file, for every `set-policy`/`set-iam-policy` command (org policies, IAM allow
/// and deny policies). YAML is a superset of JSON, so one parser reads both formats gcloud accepts.
pub fn read_policy_file(file: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("Unable to read policy file {}: {e}", file.display()))?;
    let v: Value = runpool_control::base::yaml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "Policy file {} is not valid JSON or YAML: {e}",
            file.display()
        )
    })?;
    if !v.is_object() {
        bail!("Policy file {} must hold a policy object.", file.display());
    }
    Ok(v)
}
