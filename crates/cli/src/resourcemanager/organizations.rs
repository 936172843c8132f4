//! `runpool organizations ...` over Resource Manager v3.

use crate::iam::policy::{self, BindingArgs};
use crate::{Ctx, table};
use anyhow::{Result, bail};
use clap::Subcommand;
use runpool_client::iam::ResourceKind;
use runpool_client::output::Format;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum OrganizationsCmd {
    /// List the organizations you can see.
    List,
    /// Show an organization, by ID (`123`, `organizations/123`) or domain (`example.com`).
    Describe { id: String },
    /// Show the organization's allow policy.
    GetIamPolicy { id: String },
    /// Replace the organization's allow policy with the one in a JSON or YAML file.
    SetIamPolicy { id: String, policy_file: PathBuf },
    /// Grant a role to a principal on the organization.
    AddIamPolicyBinding {
        id: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the organization.
    RemoveIamPolicyBinding {
        id: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[arg(long)]
        all: bool,
    },
}

fn is_id(s: &str) -> bool {
    let s = s.strip_prefix("organizations/").unwrap_or(s);
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

pub async fn run(ctx: &Ctx, cmd: &OrganizationsCmd) -> Result<()> {
    use OrganizationsCmd::*;
    const KIND: ResourceKind = ResourceKind::Organization;
    match cmd {
        List => {
            let api = ctx.api().await?;
            let items = api
                .list_all("/v3/organizations:search", &[], "organizations")
                .await?;
            ctx.print_list(
                items,
                table("table(displayName, name.segment():label=ID, directoryCustomerId)"),
            );
        }
        Describe { id } => {
            let api = ctx.api().await?;
            let org = if is_id(id) {
                api.get(&format!("/v3/{}", KIND.name(id))).await?
            } else {
                // gcloud also accepts the organization's domain here.
                let found = api
                    .list_all(
                        "/v3/organizations:search",
                        &[("query", format!("domain:{id}"))],
                        "organizations",
                    )
                    .await?;
                match found.into_iter().next() {
                    Some(o) => o,
                    None => bail!("No organization found for domain [{id}]."),
                }
            };
            ctx.print_one(&org, Format::Yaml);
        }
        GetIamPolicy { id } => policy::get_iam_policy(ctx, KIND, id).await?,
        SetIamPolicy { id, policy_file } => {
            policy::set_iam_policy(ctx, KIND, id, policy_file).await?
        }
        AddIamPolicyBinding { id, binding } => {
            policy::modify_binding(ctx, KIND, id, binding, None).await?
        }
        RemoveIamPolicyBinding { id, binding, all } => {
            policy::modify_binding(ctx, KIND, id, binding, Some(*all)).await?
        }
    }
    Ok(())
}
