//! `runpool resource-manager tags keys|values|bindings ...`: gcloud's tag commands over
//! Resource Manager v3 (`/v3/tagKeys`, `/v3/tagValues`, `/v3/tagBindings`, `/v3/effectiveTags`).
//!
//! Keys and values are named either by id (`tagKeys/123`, `tagValues/456`) or namespaced
//! (`ORG_ID/env`, `ORG_ID/env/dev`; a project-parented key by `PROJECT_ID/env`), as gcloud
//! accepts them; a namespaced name is resolved through `…/namespaced?name=` first.

use crate::iam::policy::{self, BindingArgs};
use crate::{Ctx, table};
use anyhow::Result;
use clap::Subcommand;
use runpool_client::api::Api;
use runpool_client::iam::ResourceKind;
use runpool_client::output::Format;
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

/// What differs between `tags keys …` and `tags values …`; the commands themselves are one
/// implementation ([`item`]).
struct Kind {
    /// `tagKeys`: the collection, its path under `/v3/` and its list field.
    collection: &'static str,
    /// `tag key`, as messages call it.
    noun: &'static str,
    iam: ResourceKind,
    /// The kind a `--parent` names, resolved to its id first: a value's key. (A key's parent
    /// is an organization or project, passed on as given.)
    parent: Option<&'static Kind>,
}

const KEYS: Kind = Kind {
    collection: "tagKeys",
    noun: "tag key",
    iam: ResourceKind::TagKey,
    parent: None,
};

const VALUES: Kind = Kind {
    collection: "tagValues",
    noun: "tag value",
    iam: ResourceKind::TagValue,
    parent: Some(&KEYS),
};

impl Kind {
    /// `tagKeys/ID` (or `tagValues/ID`) for one given by id or namespaced name.
    async fn id(&self, api: &Api, name: &str) -> Result<String> {
        if name.starts_with(&format!("{}/", self.collection)) {
            return Ok(name.to_string());
        }
        let found = api
            .get_q(
                &format!("/v3/{}/namespaced", self.collection),
                &[("name", name.to_string())],
            )
            .await?;
        Ok(found["name"].as_str().unwrap_or_default().to_string())
    }

    /// The `parent` a create or list request carries.
    async fn parent(&self, api: &Api, parent: &str) -> Result<String> {
        match self.parent {
            Some(kind) => kind.id(api, parent).await,
            None => Ok(parent.to_string()),
        }
    }
}

/// A `tags keys` or `tags values` subcommand, with what it names.
enum Action<'a> {
    Create {
        short_name: &'a str,
        parent: &'a str,
        description: &'a Option<String>,
    },
    Describe(&'a str),
    List(&'a str),
    Update(&'a str, &'a str),
    Delete(&'a str),
    GetIamPolicy(&'a str),
    /// `remove`: `None` to add the binding, `Some(all)` to remove it.
    ModifyBinding(&'a str, &'a BindingArgs, Option<bool>),
}

/// [`KeysCmd`] and [`ValuesCmd`] have the same variants (their docs, and the name of the
/// item's field, differ), so one mapping to [`Action`] serves both.
macro_rules! action {
    ($cmd:expr, $item:ident) => {
        match $cmd {
            Self::Create {
                short_name,
                parent,
                description,
            } => Action::Create {
                short_name,
                parent,
                description,
            },
            Self::Describe { $item } => Action::Describe($item),
            Self::List { parent } => Action::List(parent),
            Self::Update { $item, description } => Action::Update($item, description),
            Self::Delete { $item } => Action::Delete($item),
            Self::GetIamPolicy { $item } => Action::GetIamPolicy($item),
            Self::AddIamPolicyBinding { $item, binding } => {
                Action::ModifyBinding($item, binding, None)
            }
            Self::RemoveIamPolicyBinding {
                $item,
                binding,
                all,
            } => Action::ModifyBinding($item, binding, Some(*all)),
        }
    };
}

impl KeysCmd {
    fn action(&self) -> Action<'_> {
        action!(self, key)
    }
}

impl ValuesCmd {
    fn action(&self) -> Action<'_> {
        action!(self, value)
    }
}

fn with_description(mut body: Value, description: &Option<String>) -> Value {
    if let Some(d) = description {
        body["description"] = json!(d);
    }
    body
}

pub async fn run(ctx: &Ctx, cmd: &TagsCmd) -> Result<()> {
    match cmd {
        TagsCmd::Keys(c) => item(ctx, &KEYS, c.action()).await,
        TagsCmd::Values(c) => item(ctx, &VALUES, c.action()).await,
        TagsCmd::Bindings(c) => bindings(ctx, c).await,
    }
}

/// A keys or values subcommand.
async fn item(ctx: &Ctx, kind: &Kind, action: Action<'_>) -> Result<()> {
    let api = ctx.api().await?;
    match action {
        Action::Create {
            short_name,
            parent,
            description,
        } => {
            let parent = kind.parent(&api, parent).await?;
            let body = with_description(
                json!({"shortName": short_name, "parent": parent}),
                description,
            );
            let op = api.post(&format!("/v3/{}", kind.collection), &body).await?;
            let made = api.wait(op).await?;
            eprintln!(
                "Created {} [{}] ({}).",
                kind.noun,
                made["namespacedName"].as_str().unwrap_or(""),
                made["name"].as_str().unwrap_or("")
            );
            ctx.print_one(&made, Format::Yaml);
        }
        Action::Describe(given) => {
            let name = kind.id(&api, given).await?;
            ctx.print_one(&api.get(&format!("/v3/{name}")).await?, Format::Yaml);
        }
        Action::List(parent) => {
            let parent = kind.parent(&api, parent).await?;
            let items = api
                .list_all(
                    &format!("/v3/{}", kind.collection),
                    &[("parent", parent)],
                    kind.collection,
                )
                .await?;
            ctx.print_list(items, table("table(name, shortName, description)"));
        }
        Action::Update(given, description) => {
            let name = kind.id(&api, given).await?;
            let op = api
                .call(
                    reqwest::Method::PATCH,
                    &format!("/v3/{name}"),
                    &[("updateMask", "description".to_string())],
                    Some(&json!({"description": description})),
                )
                .await?;
            let updated = api.wait(op).await?;
            eprintln!("Updated {} [{name}].", kind.noun);
            ctx.print_one(&updated, Format::Yaml);
        }
        Action::Delete(given) => {
            let name = kind.id(&api, given).await?;
            api.wait(api.delete(&format!("/v3/{name}")).await?).await?;
            eprintln!("Deleted {} [{name}].", kind.noun);
        }
        Action::GetIamPolicy(given) => {
            policy::get_iam_policy(ctx, kind.iam, &kind.id(&api, given).await?).await?
        }
        Action::ModifyBinding(given, binding, remove) => {
            let id = kind.id(&api, given).await?;
            policy::modify_binding(ctx, kind.iam, &id, binding, remove).await?
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
            let value = VALUES.id(&api, tag_value).await?;
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
