//! `runpool resource-manager folders ...` over Resource Manager v3.

use crate::iam::policy::{self, BindingArgs};
use crate::resourcemanager::projects::ParentArgs;
use crate::{Ctx, table};
use anyhow::{Result, bail};
use clap::Subcommand;
use runpool_client::iam::ResourceKind;
use runpool_client::output::Format;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum FoldersCmd {
    /// Create a folder under a folder or organization.
    Create {
        #[arg(long)]
        display_name: String,
        #[command(flatten)]
        parent: ParentArgs,
    },
    /// Show a folder.
    Describe { folder_id: String },
    /// List the folders directly under a folder or organization.
    List {
        #[command(flatten)]
        parent: ParentArgs,
    },
    /// Delete a folder (it can be undeleted for a while).
    Delete { folder_id: String },
    /// Restore a deleted folder.
    Undelete { folder_id: String },
    /// Move a folder under another folder or organization.
    Move {
        folder_id: String,
        #[command(flatten)]
        parent: ParentArgs,
    },
    /// Show the folder's allow policy.
    GetIamPolicy { folder_id: String },
    /// Replace the folder's allow policy with the one in a JSON or YAML file.
    SetIamPolicy {
        folder_id: String,
        policy_file: PathBuf,
    },
    /// Grant a role to a principal on the folder.
    AddIamPolicyBinding {
        folder_id: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the folder.
    RemoveIamPolicyBinding {
        folder_id: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[arg(long)]
        all: bool,
    },
}

fn required_parent(p: &ParentArgs) -> Result<String> {
    match p.parent() {
        Some(p) => Ok(p),
        None => bail!("Exactly one of --folder or --organization must be specified."),
    }
}

pub async fn run(ctx: &Ctx, cmd: &FoldersCmd) -> Result<()> {
    use FoldersCmd::*;
    const KIND: ResourceKind = ResourceKind::Folder;
    match cmd {
        Create {
            display_name,
            parent,
        } => {
            let parent = required_parent(parent)?;
            let api = ctx.api().await?;
            let op = api
                .post(
                    "/v3/folders",
                    &json!({"displayName": display_name, "parent": parent}),
                )
                .await?;
            let folder = api.wait(op).await?;
            eprintln!("Created [{}].", folder["name"].as_str().unwrap_or(""));
            ctx.print_if_asked(&folder);
        }
        Describe { folder_id } => {
            let api = ctx.api().await?;
            let f = api.get(&format!("/v3/{}", KIND.name(folder_id))).await?;
            ctx.print_one(&f, Format::Yaml);
        }
        List { parent } => {
            let parent = required_parent(parent)?;
            let api = ctx.api().await?;
            let items = api
                .list_all("/v3/folders", &[("parent", parent)], "folders")
                .await?;
            ctx.print_list(
                items,
                table("table(displayName, parent:label=PARENT_NAME, name.segment():label=ID)"),
            );
        }
        Delete { folder_id } => {
            let api = ctx.api().await?;
            let name = KIND.name(folder_id);
            let op = api.delete(&format!("/v3/{name}")).await?;
            api.wait(op).await?;
            eprintln!("Deleted [{name}].");
        }
        Undelete { folder_id } => {
            let api = ctx.api().await?;
            let name = KIND.name(folder_id);
            let op = api
                .post(&format!("/v3/{name}:undelete"), &json!({}))
                .await?;
            let f = api.wait(op).await?;
            eprintln!("Restored [{name}].");
            ctx.print_if_asked(&f);
        }
        Move { folder_id, parent } => {
            let dest = required_parent(parent)?;
            let api = ctx.api().await?;
            let name = KIND.name(folder_id);
            let op = api
                .post(
                    &format!("/v3/{name}:move"),
                    &json!({"destinationParent": dest}),
                )
                .await?;
            let f = api.wait(op).await?;
            eprintln!("Moved [{name}] to [{dest}].");
            ctx.print_if_asked(&f);
        }
        GetIamPolicy { folder_id } => policy::get_iam_policy(ctx, KIND, folder_id).await?,
        SetIamPolicy {
            folder_id,
            policy_file,
        } => policy::set_iam_policy(ctx, KIND, folder_id, policy_file).await?,
        AddIamPolicyBinding { folder_id, binding } => {
            policy::modify_binding(ctx, KIND, folder_id, binding, None).await?
        }
        RemoveIamPolicyBinding {
            folder_id,
            binding,
            all,
        } => policy::modify_binding(ctx, KIND, folder_id, binding, Some(*all)).await?,
    }
    Ok(())
}
