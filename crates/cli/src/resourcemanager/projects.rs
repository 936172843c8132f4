//! `runpool projects ...` over Resource Manager v3.

use crate::iam::policy::{self, BindingArgs};
use crate::{Ctx, table};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use runpool_client::iam::ResourceKind;
use runpool_client::output::Format;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// `--folder` / `--organization`, at most one: where a project or folder lives.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub struct ParentArgs {
    /// ID of the parent folder.
    #[arg(long, value_name = "FOLDER_ID")]
    pub folder: Option<String>,
    /// ID of the parent organization.
    #[arg(long, value_name = "ORGANIZATION_ID")]
    pub organization: Option<String>,
}

impl ParentArgs {
    /// `folders/N` or `organizations/N`, if either flag was given.
    pub fn parent(&self) -> Option<String> {
        if let Some(f) = &self.folder {
            return Some(ResourceKind::Folder.name(f));
        }
        self.organization
            .as_ref()
            .map(|o| ResourceKind::Organization.name(o))
    }
}

#[derive(Subcommand, Debug)]
pub enum ProjectsCmd {
    /// Create a project.
    Create {
        project_id: String,
        /// Display name (defaults to the project ID).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        parent: ParentArgs,
        /// Labels, KEY=VALUE[,KEY=VALUE...].
        #[arg(long, value_parser = parse_labels)]
        labels: Option<Map<String, Value>>,
        /// Make it the default project (`core/project`).
        #[arg(long)]
        set_as_default: bool,
    },
    /// Show a project.
    Describe { project_id: String },
    /// List the projects you can see.
    List,
    /// Delete a project (it can be undeleted for a while).
    Delete { project_id: String },
    /// Restore a deleted project.
    Undelete { project_id: String },
    /// Move a project under another folder or organization.
    Move {
        project_id: String,
        #[command(flatten)]
        parent: ParentArgs,
    },
    /// Show the project's allow policy.
    GetIamPolicy { project_id: String },
    /// Replace the project's allow policy with the one in a JSON or YAML file.
    SetIamPolicy {
        project_id: String,
        policy_file: PathBuf,
    },
    /// Grant a role to a principal on the project.
    AddIamPolicyBinding {
        project_id: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the project.
    RemoveIamPolicyBinding {
        project_id: String,
        #[command(flatten)]
        binding: BindingArgs,
        /// Remove the principal from every binding of the role, whatever its condition.
        #[arg(long)]
        all: bool,
    },
}

pub fn parse_labels(s: &str) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("Bad syntax for dict arg: [{pair}]"))?;
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

fn project_url(ctx: &Ctx, id: &str) -> String {
    format!("{}/v3/projects/{id}", ctx.endpoint())
}

pub async fn run(ctx: &Ctx, cmd: &ProjectsCmd) -> Result<()> {
    use ProjectsCmd::*;
    const KIND: ResourceKind = ResourceKind::Project;
    match cmd {
        Create {
            project_id,
            name,
            parent,
            labels,
            set_as_default,
        } => {
            let api = ctx.api().await?;
            let mut body = json!({"projectId": project_id,
                                  "displayName": name.clone().unwrap_or_else(|| project_id.clone())});
            if let Some(p) = parent.parent() {
                body["parent"] = json!(p);
            }
            if let Some(l) = labels {
                body["labels"] = Value::Object(l.clone());
            }
            let op = api.post("/v3/projects", &body).await?;
            eprintln!("Create in progress for [{}].", project_url(ctx, project_id));
            let project = api.wait(op).await?;
            if *set_as_default {
                let mut cfg = runpool_client::config::Config::load()?;
                let prop = runpool_client::config::Prop::parse("core/project")?;
                cfg.set(&prop, project_id);
                cfg.save()?;
                eprintln!("Updated property [{prop}] to [{project_id}].");
            }
            ctx.print_if_asked(&project);
        }
        Describe { project_id } => {
            let api = ctx.api().await?;
            let p = api.get(&format!("/v3/projects/{project_id}")).await?;
            ctx.print_one(&p, Format::Yaml);
        }
        List => {
            let api = ctx.api().await?;
            let mut items = api.list_all("/v3/projects:search", &[], "projects").await?;
            items.sort_by(|a, b| a["projectId"].as_str().cmp(&b["projectId"].as_str()));
            ctx.print_list(
                items,
                table("table(projectId, displayName:label=NAME, name.basename():label=PROJECT_NUMBER)"),
            );
        }
        Delete { project_id } => {
            let api = ctx.api().await?;
            let op = api.delete(&format!("/v3/projects/{project_id}")).await?;
            api.wait(op).await?;
            eprintln!(
                "Deleted [{}].\n\nYou can undo this operation for a limited period by running the command below.\n    $ runpool projects undelete {project_id}\n",
                project_url(ctx, project_id)
            );
        }
        Undelete { project_id } => {
            let api = ctx.api().await?;
            let op = api
                .post(&format!("/v3/projects/{project_id}:undelete"), &json!({}))
                .await?;
            api.wait(op).await?;
            eprintln!("Restored [{}].", project_url(ctx, project_id));
        }
        Move { project_id, parent } => {
            let Some(dest) = parent.parent() else {
                bail!("Exactly one of --folder or --organization must be specified.");
            };
            let api = ctx.api().await?;
            let op = api
                .post(
                    &format!("/v3/projects/{project_id}:move"),
                    &json!({"destinationParent": dest}),
                )
                .await?;
            let project = api.wait(op).await?;
            eprintln!("Moved [{}] to [{dest}].", project_url(ctx, project_id));
            ctx.print_if_asked(&project);
        }
        GetIamPolicy { project_id } => policy::get_iam_policy(ctx, KIND, project_id).await?,
        SetIamPolicy {
            project_id,
            policy_file,
        } => policy::set_iam_policy(ctx, KIND, project_id, policy_file).await?,
        AddIamPolicyBinding {
            project_id,
            binding,
        } => policy::modify_binding(ctx, KIND, project_id, binding, None).await?,
        RemoveIamPolicyBinding {
            project_id,
            binding,
            all,
        } => policy::modify_binding(ctx, KIND, project_id, binding, Some(*all)).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_a_map() {
        let m = parse_labels("env=dev,team=x").unwrap();
        assert_eq!(Value::Object(m), json!({"env":"dev","team":"x"}));
        assert!(parse_labels("novalue").is_err());
    }
}
