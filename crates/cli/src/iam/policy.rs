//! `get-iam-policy`, `set-iam-policy`, `add-iam-policy-binding` and `remove-iam-policy-binding`,
//! written once and shared by projects, folders, organizations, service accounts and tags.

use crate::Ctx;
use anyhow::Result;
use clap::Args;
use runpool_client::api::has_status;
use runpool_client::iam::*;
use runpool_client::output::Format;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BindingArgs {
    /// The principal, e.g. user:alice@example.com.
    #[arg(long)]
    pub member: String,
    /// The role, e.g. roles/viewer.
    #[arg(long)]
    pub role: String,
    /// `expression=EXPR,title=TITLE[,description=DESC]`, or `None`.
    #[arg(long, value_parser = parse_cond_arg, conflicts_with = "condition_from_file")]
    pub condition: Option<CondArg>,
    /// YAML or JSON file with the condition's expression, title and description.
    #[arg(long, value_name = "FILE")]
    pub condition_from_file: Option<PathBuf>,
}

impl BindingArgs {
    fn cond(&self) -> Result<CondArg> {
        Ok(match (&self.condition, &self.condition_from_file) {
            (Some(c), _) => c.clone(),
            (None, Some(f)) => CondArg::Some(condition_from_file(f)?),
            (None, None) => CondArg::Unspecified,
        })
    }
}

fn print_policy(ctx: &Ctx, policy: &Value) {
    ctx.print_one(policy, Format::Yaml);
}

pub async fn get_iam_policy(ctx: &Ctx, kind: ResourceKind, id: &str) -> Result<()> {
    let api = ctx.api().await?;
    let policy = get_policy(&api, kind, &kind.name(id)).await?;
    // get-iam-policy is a list command in gcloud (it takes --flatten/--filter), but it prints
    // the single policy document by default.
    ctx.print_one(&policy, Format::Yaml);
    Ok(())
}

pub async fn set_iam_policy(ctx: &Ctx, kind: ResourceKind, id: &str, file: &PathBuf) -> Result<()> {
    let policy = runpool_client::files::read_policy_file(file)?;
    let api = ctx.api().await?;
    let result = set_policy(&api, kind, &kind.name(id), &policy).await?;
    eprintln!("Updated IAM policy for {} [{id}].", kind.noun());
    print_policy(ctx, &result);
    Ok(())
}

/// Read–modify–write with the etag, retried on ABORTED (a concurrent change), like gcloud.
pub async fn modify_binding(
    ctx: &Ctx,
    kind: ResourceKind,
    id: &str,
    args: &BindingArgs,
    remove: Option<bool>,
) -> Result<()> {
    check_member(&args.member)?;
    let cond = args.cond()?;
    let api = ctx.api().await?;
    let name = kind.name(id);
    let mut attempt = 0;
    let result = loop {
        let mut policy = get_policy(&api, kind, &name).await?;
        match remove {
            None => add_binding(&mut policy, &args.member, &args.role, &cond)?,
            Some(all) => remove_binding(&mut policy, &args.member, &args.role, &cond, all)?,
        }
        match set_policy(&api, kind, &name, &policy).await {
            Err(e) if has_status(&e, "ABORTED") && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            other => break other?,
        }
    };
    eprintln!("Updated IAM policy for {} [{id}].", kind.noun());
    print_policy(ctx, &result);
    Ok(())
}
