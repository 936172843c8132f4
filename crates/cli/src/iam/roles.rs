//! `runpool iam roles ...` over IAM v1.
//!
//! As in gcloud, `--project` here means "a custom role of this project" and only counts when
//! given on the command line: `core/project` never turns `roles/viewer` into a custom role.

use crate::Ctx;
use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use runpool_client::output::Format;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct Owner {
    /// The organization of a custom role.
    #[arg(long, value_name = "ORGANIZATION_ID")]
    organization: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    Alpha,
    Beta,
    Ga,
    Deprecated,
    Disabled,
    Eap,
}

impl Stage {
    fn wire(self) -> &'static str {
        match self {
            Stage::Alpha => "ALPHA",
            Stage::Beta => "BETA",
            Stage::Ga => "GA",
            Stage::Deprecated => "DEPRECATED",
            Stage::Disabled => "DISABLED",
            Stage::Eap => "EAP",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum RolesCmd {
    /// Show a predefined (`roles/viewer`) or custom role.
    Describe {
        role: String,
        #[command(flatten)]
        owner: Owner,
    },
    /// List predefined roles, or a project's or organization's custom roles.
    List {
        #[command(flatten)]
        owner: Owner,
        /// Include deleted custom roles.
        #[arg(long)]
        show_deleted: bool,
    },
    /// Create a custom role in a project or organization.
    Create {
        role_id: String,
        #[command(flatten)]
        owner: Owner,
        #[arg(long, conflicts_with = "file")]
        title: Option<String>,
        #[arg(long, conflicts_with = "file")]
        description: Option<String>,
        /// Comma-separated permissions, e.g. `run.workerpools.get,run.workerpools.list`.
        #[arg(long, value_delimiter = ',', conflicts_with = "file")]
        permissions: Vec<String>,
        #[arg(long, value_enum, ignore_case = true, conflicts_with = "file")]
        stage: Option<Stage>,
        /// YAML or JSON file holding the role (title, description, stage, includedPermissions).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Delete a custom role (it can be undeleted for a while).
    Delete {
        role: String,
        #[command(flatten)]
        owner: Owner,
    },
    /// Restore a deleted custom role.
    Undelete {
        role: String,
        #[command(flatten)]
        owner: Owner,
    },
}

/// `projects/P` or `organizations/O` for custom roles; `None` for predefined ones.
fn owner_parent(ctx: &Ctx, owner: &Owner) -> Result<Option<String>> {
    match (&ctx.globals.project, &owner.organization) {
        (Some(_), Some(_)) => bail!("At most one of --project or --organization may be specified."),
        (Some(p), None) => Ok(Some(format!("projects/{p}"))),
        (None, Some(o)) => Ok(Some(format!(
            "organizations/{}",
            o.trim_start_matches("organizations/")
        ))),
        (None, None) => Ok(None),
    }
}

/// The full role name: kept as is when already qualified, else under the owner, else `roles/`.
pub fn role_name(role: &str, parent: Option<&str>) -> String {
    if role.starts_with("roles/")
        || role.starts_with("projects/")
        || role.starts_with("organizations/")
    {
        return role.to_string();
    }
    match parent {
        Some(p) => format!("{p}/roles/{role}"),
        None => format!("roles/{role}"),
    }
}

fn custom_parent(ctx: &Ctx, owner: &Owner) -> Result<String> {
    match owner_parent(ctx, owner)? {
        Some(p) => Ok(p),
        None => bail!("Exactly one of --project or --organization must be specified."),
    }
}

fn role_from_file(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path)?;
    let v: Value = runpool_control::base::yaml::from_str(&text).map_err(anyhow::Error::msg)?;
    if !v.is_object() {
        bail!("The role file {} must hold a role object.", path.display());
    }
    Ok(v)
}

pub async fn run(ctx: &Ctx, cmd: &RolesCmd) -> Result<()> {
    use RolesCmd::*;
    match cmd {
        Describe { role, owner } => {
            let parent = owner_parent(ctx, owner)?;
            let api = ctx.api().await?;
            let r = api
                .get(&format!("/v1/{}", role_name(role, parent.as_deref())))
                .await?;
            ctx.print_one(&r, Format::Yaml);
        }
        List {
            owner,
            show_deleted,
        } => {
            let parent = owner_parent(ctx, owner)?;
            let api = ctx.api().await?;
            let path = match &parent {
                Some(p) => format!("/v1/{p}/roles"),
                None => "/v1/roles".to_string(),
            };
            let mut q = vec![];
            if *show_deleted {
                q.push(("showDeleted", "true".to_string()));
            }
            let items = api.list_all(&path, &q, "roles").await?;
            ctx.print_list(items, Format::Yaml);
        }
        Create {
            role_id,
            owner,
            title,
            description,
            permissions,
            stage,
            file,
        } => {
            let parent = custom_parent(ctx, owner)?;
            let role = match file {
                Some(f) => role_from_file(f)?,
                None => {
                    let mut r = json!({"title": title.clone().unwrap_or_else(|| role_id.clone())});
                    if let Some(d) = description {
                        r["description"] = json!(d);
                    }
                    if !permissions.is_empty() {
                        r["includedPermissions"] = json!(permissions);
                    }
                    if let Some(s) = stage {
                        r["stage"] = json!(s.wire());
                    }
                    r
                }
            };
            let api = ctx.api().await?;
            let created = api
                .post(
                    &format!("/v1/{parent}/roles"),
                    &json!({"roleId": role_id, "role": role}),
                )
                .await?;
            eprintln!("Created role [{role_id}].");
            ctx.print_one(&created, Format::Yaml);
        }
        Delete { role, owner } => {
            let parent = custom_parent(ctx, owner)?;
            let api = ctx.api().await?;
            let r = api
                .delete(&format!("/v1/{}", role_name(role, Some(&parent))))
                .await?;
            eprintln!("Deleted role [{role}].");
            ctx.print_one(&r, Format::Yaml);
        }
        Undelete { role, owner } => {
            let parent = custom_parent(ctx, owner)?;
            let api = ctx.api().await?;
            let r = api
                .post(
                    &format!("/v1/{}:undelete", role_name(role, Some(&parent))),
                    &json!({}),
                )
                .await?;
            eprintln!("Restored role [{role}].");
            ctx.print_one(&r, Format::Yaml);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_resolve_like_gcloud() {
        assert_eq!(
            role_name("roles/viewer", Some("projects/p")),
            "roles/viewer"
        );
        assert_eq!(role_name("viewer", None), "roles/viewer");
        assert_eq!(
            role_name("myRole", Some("projects/p")),
            "projects/p/roles/myRole"
        );
        assert_eq!(
            role_name("organizations/1/roles/r", None),
            "organizations/1/roles/r"
        );
    }
}
