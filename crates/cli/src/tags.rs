//! `runpool resource-manager tags keys|values|bindings ...`: gcloud's tag commands over
//! Resource Manager v3 (`/v3/tagKeys`, `/v3/tagValues`, `/v3/tagBindings`, `/v3/effectiveTags`).
//!
//! Keys and values are named either by id (`tagKeys/123`, `tagValues/456`) or namespaced
//! (`ORG_ID/env`, `ORG_ID/env/dev`; a project-parented key by `PROJECT_ID/env`), as gcloud
//! accepts them; a namespaced name is resolved through `…/namespaced?name=` first.

use crate::api::Api;
use crate::iam_policy::{self, BindingArgs, ResourceKind};
use crate::output::Format;
use crate::{Ctx, table};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

const FULL_NAME_PREFIX: &str = "//cloudresourcemanager.googleapis.com/";

#[derive(Subcommand, Debug)]
pub enum TagsCmd {
    /// Tag keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Tag values.
    #[command(subcommand)]
    Values(ValuesCmd),
    /// Tag bindings: tag values attached to organizations, folders and projects.
    #[command(subcommand)]
    Bindings(BindingsCmd),
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a tag key under an organization or project.
    Create {
        short_name: String,
        /// `organizations/ID` or `projects/ID`.
        #[arg(long)]
        parent: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a tag key (`tagKeys/ID` or `ORG_ID/SHORT_NAME`).
    Describe { key: String },
    /// List the tag keys of an organization or project.
    List {
        #[arg(long)]
        parent: String,
    },
    /// Change a tag key's description.
    Update {
        key: String,
        #[arg(long)]
        description: String,
    },
    /// Delete a tag key (it must have no values).
    Delete { key: String },
    /// Show the tag key's allow policy.
    GetIamPolicy { key: String },
    /// Grant a role to a principal on the tag key.
    AddIamPolicyBinding {
        key: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the tag key.
    RemoveIamPolicyBinding {
        key: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ValuesCmd {
    /// Create a tag value under a tag key.
    Create {
        short_name: String,
        /// The tag key: `tagKeys/ID` or `ORG_ID/KEY_SHORT_NAME`.
        #[arg(long)]
        parent: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a tag value (`tagValues/ID` or `ORG_ID/KEY/VALUE`).
    Describe { value: String },
    /// List the values of a tag key.
    List {
        #[arg(long)]
        parent: String,
    },
    /// Change a tag value's description.
    Update {
        value: String,
        #[arg(long)]
        description: String,
    },
    /// Delete a tag value (it must not be bound anywhere).
    Delete { value: String },
    /// Show the tag value's allow policy.
    GetIamPolicy { value: String },
    /// Grant a role to a principal on the tag value (e.g. roles/resourcemanager.tagUser).
    AddIamPolicyBinding {
        value: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the tag value.
    RemoveIamPolicyBinding {
        value: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BindingsCmd {
    /// Attach a tag value to a resource.
    Create {
        /// `tagValues/ID` or `ORG_ID/KEY/VALUE`.
        #[arg(long)]
        tag_value: String,
        /// Full resource name, e.g. //cloudresourcemanager.googleapis.com/projects/NUMBER.
        #[arg(long)]
        parent: String,
        /// Accepted for gcloud parity (organizations, folders and projects are global).
        #[arg(long)]
        location: Option<String>,
    },
    /// Detach a tag value from a resource.
    Delete {
        #[arg(long)]
        tag_value: String,
        #[arg(long)]
        parent: String,
        #[arg(long)]
        location: Option<String>,
    },
    /// List the tag values attached to a resource (with --effective: also those inherited).
    List {
        #[arg(long)]
        parent: String,
        /// List effective tags: those attached and those inherited from ancestors.
        #[arg(long)]
        effective: bool,
        #[arg(long)]
        location: Option<String>,
    },
}

/// `projects/x` → `//cloudresourcemanager.googleapis.com/projects/x`; a full name as is.
fn full_name(parent: &str) -> String {
    if parent.starts_with("//") {
        parent.to_string()
    } else {
        format!("{FULL_NAME_PREFIX}{parent}")
    }
}

/// `tagKeys/ID` for a key given by id or namespaced name.
async fn key_id(api: &Api, key: &str) -> Result<String> {
    if key.starts_with("tagKeys/") {
        return Ok(key.to_string());
    }
    let k = api
        .get_q("/v3/tagKeys/namespaced", &[("name", key.to_string())])
        .await?;
    Ok(k["name"].as_str().unwrap_or_default().to_string())
}

/// `tagValues/ID` for a value given by id or namespaced name.
async fn value_id(api: &Api, value: &str) -> Result<String> {
    if value.starts_with("tagValues/") {
        return Ok(value.to_string());
    }
    let v = api
        .get_q("/v3/tagValues/namespaced", &[("name", value.to_string())])
        .await?;
    Ok(v["name"].as_str().unwrap_or_default().to_string())
}

fn with_description(mut body: Value, description: &Option<String>) -> Value {
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    body
}

pub async fn run(ctx: &Ctx, cmd: &TagsCmd) -> Result<()> {
    match cmd {
        TagsCmd::Keys(c) => keys(ctx, c).await,
        TagsCmd::Values(c) => values(ctx, c).await,
        TagsCmd::Bindings(c) => bindings(ctx, c).await,
    }
}

async fn keys(ctx: &Ctx, cmd: &KeysCmd) -> Result<()> {
    use KeysCmd::*;
    const KIND: ResourceKind = ResourceKind::TagKey;
    let api = ctx.api().await?;
    match cmd {
        Create {
            short_name,
            parent,
            description,
        } => {
            let body = with_description(
                json!({"shortName": short_name, "parent": parent}),
                description,
            );
            let op = api.post("/v3/tagKeys", &body).await?;
            let key = api.wait(op).await?;
            eprintln!(
                "Created tag key [{}] ({}).",
                key["namespacedName"].as_str().unwrap_or(""),
                key["name"].as_str().unwrap_or("")
            );
            ctx.print_one(&key, Format::Yaml);
        }
        Describe { key } => {
            let name = key_id(&api, key).await?;
            ctx.print_one(&api.get(&format!("/v3/{name}")).await?, Format::Yaml);
        }
        List { parent } => {
            let items = api
                .list_all("/v3/tagKeys", &[("parent", parent.clone())], "tagKeys")
                .await?;
            ctx.print_list(items, table("table(name, shortName, description)"));
        }
        Update { key, description } => {
            let name = key_id(&api, key).await?;
            let op = api
                .call(
                    reqwest::Method::PATCH,
                    &format!("/v3/{name}"),
                    &[("updateMask", "description".to_string())],
                    Some(&json!({"description": description})),
                )
                .await?;
            let k = api.wait(op).await?;
            eprintln!("Updated tag key [{name}].");
            ctx.print_one(&k, Format::Yaml);
        }
        Delete { key } => {
            let name = key_id(&api, key).await?;
            api.wait(api.delete(&format!("/v3/{name}")).await?).await?;
            eprintln!("Deleted tag key [{name}].");
        }
        GetIamPolicy { key } => {
            iam_policy::get_iam_policy(ctx, KIND, &key_id(&api, key).await?).await?
        }
        AddIamPolicyBinding { key, binding } => {
            let id = key_id(&api, key).await?;
            iam_policy::modify_binding(ctx, KIND, &id, binding, None).await?
        }
        RemoveIamPolicyBinding { key, binding, all } => {
            let id = key_id(&api, key).await?;
            iam_policy::modify_binding(ctx, KIND, &id, binding, Some(*all)).await?
        }
    }
    Ok(())
}

async fn values(ctx: &Ctx, cmd: &ValuesCmd) -> Result<()> {
    use ValuesCmd::*;
    const KIND: ResourceKind = ResourceKind::TagValue;
    let api = ctx.api().await?;
    match cmd {
        Create {
            short_name,
            parent,
            description,
        } => {
            let parent = key_id(&api, parent).await?;
            let body = with_description(
                json!({"shortName": short_name, "parent": parent}),
                description,
            );
            let op = api.post("/v3/tagValues", &body).await?;
            let value = api.wait(op).await?;
            eprintln!(
                "Created tag value [{}] ({}).",
                value["namespacedName"].as_str().unwrap_or(""),
                value["name"].as_str().unwrap_or("")
            );
            ctx.print_one(&value, Format::Yaml);
        }
        Describe { value } => {
            let name = value_id(&api, value).await?;
            ctx.print_one(&api.get(&format!("/v3/{name}")).await?, Format::Yaml);
        }
        List { parent } => {
            let parent = key_id(&api, parent).await?;
            let items = api
                .list_all("/v3/tagValues", &[("parent", parent)], "tagValues")
                .await?;
            ctx.print_list(items, table("table(name, shortName, description)"));
        }
        Update { value, description } => {
            let name = value_id(&api, value).await?;
            let op = api
                .call(
                    reqwest::Method::PATCH,
                    &format!("/v3/{name}"),
                    &[("updateMask", "description".to_string())],
                    Some(&json!({"description": description})),
                )
                .await?;
            let v = api.wait(op).await?;
            eprintln!("Updated tag value [{name}].");
            ctx.print_one(&v, Format::Yaml);
        }
        Delete { value } => {
            let name = value_id(&api, value).await?;
            api.wait(api.delete(&format!("/v3/{name}")).await?).await?;
            eprintln!("Deleted tag value [{name}].");
        }
        GetIamPolicy { value } => {
            iam_policy::get_iam_policy(ctx, KIND, &value_id(&api, value).await?).await?
        }
        AddIamPolicyBinding { value, binding } => {
            let id = value_id(&api, value).await?;
            iam_policy::modify_binding(ctx, KIND, &id, binding, None).await?
        }
        RemoveIamPolicyBinding {
            value,
            binding,
            all,
        } => {
            let id = value_id(&api, value).await?;
            iam_policy::modify_binding(ctx, KIND, &id, binding, Some(*all)).await?
        }
    }
    Ok(())
}

/// `tagBindings/{parent, percent-encoded}/tagValues/ID`
fn binding_path(parent_full: &str, value: &str) -> String {
    format!(
        "/v3/tagBindings/{}/{value}",
        parent_full.replace('%', "%25").replace('/', "%2F")
    )
}

async fn bindings(ctx: &Ctx, cmd: &BindingsCmd) -> Result<()> {
    use BindingsCmd::*;
    let api = ctx.api().await?;
    match cmd {
        Create {
            tag_value, parent, ..
        } => {
            let mut body = json!({"parent": full_name(parent)});
            if tag_value.starts_with("tagValues/") {
                body["tagValue"] = json!(tag_value);
            } else {
                body["tagValueNamespacedName"] = json!(tag_value);
            }
            let op = api.post("/v3/tagBindings", &body).await?;
            let b = api.wait(op).await?;
            eprintln!(
                "Attached tag value [{}] to [{}].",
                b["tagValueNamespacedName"]
                    .as_str()
                    .or(b["tagValue"].as_str())
                    .unwrap_or(""),
                b["parent"].as_str().unwrap_or("")
            );
            ctx.print_one(&b, Format::Yaml);
        }
        Delete {
            tag_value, parent, ..
        } => {
            let value = value_id(&api, tag_value).await?;
            let parent = full_name(parent);
            api.wait(api.delete(&binding_path(&parent, &value)).await?)
                .await?;
            eprintln!("Detached tag value [{tag_value}] from [{parent}].");
        }
        List {
            parent, effective, ..
        } => {
            let q = [("parent", full_name(parent))];
            if *effective {
                let items = api
                    .list_all("/v3/effectiveTags", &q, "effectiveTags")
                    .await?;
                ctx.print_list(
                    items,
                    table("table(namespacedTagKey, namespacedTagValue, tagValue, inherited)"),
                );
            } else {
                let items = api.list_all("/v3/tagBindings", &q, "tagBindings").await?;
                ctx.print_list(
                    items,
                    table("table(tagValue, tagValueNamespacedName, parent)"),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_become_full_resource_names() {
        assert_eq!(
            full_name("projects/123"),
            "//cloudresourcemanager.googleapis.com/projects/123"
        );
        assert_eq!(
            full_name("//cloudresourcemanager.googleapis.com/folders/1"),
            "//cloudresourcemanager.googleapis.com/folders/1"
        );
    }

    #[test]
    fn binding_paths_encode_the_parent() {
        assert_eq!(
            binding_path(
                "//cloudresourcemanager.googleapis.com/projects/1",
                "tagValues/2"
            ),
            "/v3/tagBindings/%2F%2Fcloudresourcemanager.googleapis.com%2Fprojects%2F1/tagValues/2"
        );
    }
}
