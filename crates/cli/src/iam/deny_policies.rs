//! `iam policies create|get|list|update|delete --attachment-point=… --kind=denypolicies`:
//! IAM v2 deny policies, shaped as gcloud's.

use crate::Ctx;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use runpool_client::files::read_policy_file;
use runpool_client::output::Format;
use serde_json::json;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct Where {
    /// The resource the policy is attached to, e.g.
    /// cloudresourcemanager.googleapis.com/projects/my-project.
    #[arg(long)]
    attachment_point: String,
    /// The policy kind.
    #[arg(long, default_value = "denypolicies")]
    kind: String,
}

#[derive(Subcommand, Debug)]
pub enum PoliciesCmd {
    /// Create a deny policy from a JSON or YAML file.
    Create {
        policy_id: String,
        #[command(flatten)]
        at: Where,
        #[arg(long)]
        policy_file: PathBuf,
    },
    /// Show a deny policy.
    Get {
        policy_id: String,
        #[command(flatten)]
        at: Where,
    },
    /// List the deny policies attached to a resource.
    List {
        #[command(flatten)]
        at: Where,
    },
    /// Replace a deny policy with the one in a file (its etag, if any, must be current).
    Update {
        policy_id: String,
        #[command(flatten)]
        at: Where,
        #[arg(long)]
        policy_file: PathBuf,
        /// The etag the policy must have; defaults to the file's.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Delete a deny policy.
    Delete {
        policy_id: String,
        #[command(flatten)]
        at: Where,
        #[arg(long)]
        etag: Option<String>,
    },
}

/// `/v2/policies/{URL-encoded attachment point}/{kind}`.
fn collection(at: &Where) -> Result<String> {
    if at.kind != "denypolicies" {
        bail!("Invalid value for [--kind]: Runpool serves denypolicies.");
    }
    let point = at.attachment_point.trim_start_matches("//");
    Ok(format!(
        "/v2/policies/{}/{}",
        point.replace('/', "%2F"),
        at.kind
    ))
}

pub async fn run(ctx: &Ctx, cmd: &PoliciesCmd) -> Result<()> {
    let api = ctx.api().await?;
    match cmd {
        PoliciesCmd::Create {
            policy_id,
            at,
            policy_file,
        } => {
            let body = read_policy_file(policy_file)?;
            let op = api
                .post(&format!("{}?policyId={policy_id}", collection(at)?), &body)
                .await?;
            eprintln!("Created policy [{policy_id}].");
            ctx.print_if_asked(&runpool_client::api::operation_result(op)?);
        }
        PoliciesCmd::Get { policy_id, at } => {
            let p = api.get(&format!("{}/{policy_id}", collection(at)?)).await?;
            ctx.print_one(&p, Format::Yaml);
        }
        PoliciesCmd::List { at } => {
            let items = api.list_all(&collection(at)?, &[], "policies").await?;
            ctx.print_list(items, Format::Yaml);
        }
        PoliciesCmd::Update {
            policy_id,
            at,
            policy_file,
            etag,
        } => {
            let mut body = read_policy_file(policy_file)?;
            if let Some(e) = etag {
                body["etag"] = json!(e);
            }
            let op = api
                .call(
                    Method::PUT,
                    &format!("{}/{policy_id}", collection(at)?),
                    &[],
                    Some(&body),
                )
                .await?;
            eprintln!("Updated policy [{policy_id}].");
            ctx.print_if_asked(&runpool_client::api::operation_result(op)?);
        }
        PoliciesCmd::Delete {
            policy_id,
            at,
            etag,
        } => {
            let query: Vec<(&str, String)> = etag.iter().map(|e| ("etag", e.clone())).collect();
            api.call(
                Method::DELETE,
                &format!("{}/{policy_id}", collection(at)?),
                &query,
                None,
            )
            .await?;
            eprintln!("Deleted policy [{policy_id}].");
        }
    }
    Ok(())
}
