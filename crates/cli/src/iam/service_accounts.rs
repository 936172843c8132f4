//! `runpool iam service-accounts ...` (and `... keys ...`) over IAM v1.
//!
//! An account is named by email (or unique ID) as in gcloud. The project of the resource name
//! is taken from the email when it has one (`ID@PROJECT.iam.gserviceaccount.com`), so that a
//! caller who may list the project's accounts learns that a missing one is missing (404);
//! other emails and unique IDs go through `projects/-`, Google's wildcard.

use crate::iam::policy::{self, BindingArgs};
use crate::{Ctx, table};
use anyhow::{Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand, ValueEnum};
use runpool_client::iam::ResourceKind;
use runpool_client::iam::service_account_name;
use runpool_client::output::Format;
use serde_json::json;
use std::path::{Path, PathBuf};

fn path(account: &str) -> String {
    format!("/v1/{}", service_account_name(account))
}

#[derive(Args, Debug)]
pub struct IamAccount {
    /// The service account's email.
    #[arg(long, value_name = "EMAIL")]
    iam_account: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ManagedBy {
    User,
    System,
    Any,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyFileType {
    Json,
    P12,
}

#[derive(Subcommand, Debug)]
pub enum ServiceAccountsCmd {
    /// Create a service account in the project.
    Create {
        /// The account ID (6-30 characters): the part of the email before `@`.
        name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a service account.
    Describe { service_account: String },
    /// List the project's service accounts.
    List,
    /// Change a service account's display name or description.
    Update {
        service_account: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a service account (it can be undeleted for 30 days, by unique ID).
    Delete { service_account: String },
    /// Restore a deleted service account, given its unique ID.
    Undelete { account_id: String },
    /// Enable a disabled service account.
    Enable { service_account: String },
    /// Disable a service account: its tokens stop working at once.
    Disable { service_account: String },
    /// Show the service account's allow policy.
    GetIamPolicy { service_account: String },
    /// Replace the service account's allow policy with the one in a JSON or YAML file.
    SetIamPolicy {
        service_account: String,
        policy_file: PathBuf,
    },
    /// Grant a role to a principal on the service account.
    AddIamPolicyBinding {
        service_account: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Revoke a role from a principal on the service account.
    RemoveIamPolicyBinding {
        service_account: String,
        #[command(flatten)]
        binding: BindingArgs,
        /// Remove the principal from every binding of the role, whatever its condition.
        #[arg(long)]
        all: bool,
    },
    /// Manage the service account's keys.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a key and write its key file (mode 0600; `-` for stdout).
    Create {
        output_file: String,
        #[command(flatten)]
        account: IamAccount,
        #[arg(long, value_enum, default_value = "json")]
        key_file_type: KeyFileType,
    },
    /// List the account's keys.
    List {
        #[command(flatten)]
        account: IamAccount,
        #[arg(long, value_enum, default_value = "any")]
        managed_by: ManagedBy,
    },
    /// Delete a key: its tokens stop working at once.
    Delete {
        key_id: String,
        #[command(flatten)]
        account: IamAccount,
    },
    /// Disable a key.
    Disable {
        key_id: String,
        #[command(flatten)]
        account: IamAccount,
    },
    /// Enable a disabled key.
    Enable {
        key_id: String,
        #[command(flatten)]
        account: IamAccount,
    },
    /// Upload the public half (an X.509 PEM certificate) of a key you keep.
    Upload {
        public_key_file: PathBuf,
        #[command(flatten)]
        account: IamAccount,
    },
}

/// Write `bytes` to `file` readable by its owner only (`-`: stdout), as gcloud writes keys.
fn write_key_file(file: &str, bytes: &[u8]) -> Result<()> {
    if file == "-" {
        crate::emit(&String::from_utf8_lossy(bytes));
        return Ok(());
    }
    runpool_client::auth::write_private(Path::new(file), bytes)
}

/// The key ID at the end of `projects/P/serviceAccounts/E/keys/KEY`.
fn key_id(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

pub async fn run(ctx: &Ctx, cmd: &ServiceAccountsCmd) -> Result<()> {
    use ServiceAccountsCmd::*;
    const KIND: ResourceKind = ResourceKind::ServiceAccount;
    match cmd {
        Create {
            name,
            display_name,
            description,
        } => {
            let project = ctx.project()?;
            let mut sa = json!({});
            if let Some(d) = display_name {
                sa["displayName"] = json!(d);
            }
            if let Some(d) = description {
                sa["description"] = json!(d);
            }
            let api = ctx.api().await?;
            let created = api
                .post(
                    &format!("/v1/projects/{project}/serviceAccounts"),
                    &json!({"accountId": name, "serviceAccount": sa}),
                )
                .await?;
            eprintln!("Created service account [{name}].");
            ctx.print_if_asked(&created);
        }
        Describe { service_account } => {
            let api = ctx.api().await?;
            let sa = api.get(&path(service_account)).await?;
            ctx.print_one(&sa, Format::Yaml);
        }
        List => {
            let project = ctx.project()?;
            let api = ctx.api().await?;
            let items = api
                .list_all(
                    &format!("/v1/projects/{project}/serviceAccounts"),
                    &[],
                    "accounts",
                )
                .await?;
            // proto3 JSON leaves `disabled: false` out; gcloud's table shows False.
            let items = items
                .into_iter()
                .map(|mut a| {
                    if a.get("disabled").is_none() {
                        a["disabled"] = json!(false);
                    }
                    a
                })
                .collect();
            ctx.print_list(
                items,
                table("table(displayName:label='DISPLAY NAME', email, disabled)"),
            );
        }
        Update {
            service_account,
            display_name,
            description,
        } => {
            let mut sa = json!({});
            let mut mask = vec![];
            if let Some(d) = display_name {
                sa["displayName"] = json!(d);
                mask.push("displayName");
            }
            if let Some(d) = description {
                sa["description"] = json!(d);
                mask.push("description");
            }
            if mask.is_empty() {
                bail!(
                    "One of arguments [--display-name, --description] is required: Specify at \
                     least one field to update."
                );
            }
            let api = ctx.api().await?;
            let updated = api
                .patch(
                    &path(service_account),
                    &json!({"serviceAccount": sa, "updateMask": mask.join(",")}),
                )
                .await?;
            eprintln!("Updated service account [{service_account}].");
            ctx.print_one(&updated, Format::Yaml);
        }
        Delete { service_account } => {
            let api = ctx.api().await?;
            api.delete(&path(service_account)).await?;
            eprintln!("deleted service account [{service_account}]");
        }
        Undelete { account_id } => {
            if account_id.is_empty() || !account_id.chars().all(|c| c.is_ascii_digit()) {
                bail!(
                    "Invalid value for [account_id]: Account unique ID should be a number. \
                     Please double check your input and try again."
                );
            }
            let api = ctx.api().await?;
            let restored = api
                .post(
                    &format!("/v1/projects/-/serviceAccounts/{account_id}:undelete"),
                    &json!({}),
                )
                .await?;
            // gcloud's undelete prints the response (`restoredAccount: ...`) and nothing else.
            ctx.print_one(&restored, Format::Yaml);
        }
        Enable { service_account } | Disable { service_account } => {
            let enable = matches!(cmd, Enable { .. });
            let verb = if enable { "enable" } else { "disable" };
            let api = ctx.api().await?;
            api.post(&format!("{}:{verb}", path(service_account)), &json!({}))
                .await?;
            let done = if enable { "Enabled" } else { "Disabled" };
            eprintln!("{done} service account [{service_account}].");
        }
        GetIamPolicy { service_account } => {
            policy::get_iam_policy(ctx, KIND, service_account).await?
        }
        SetIamPolicy {
            service_account,
            policy_file,
        } => policy::set_iam_policy(ctx, KIND, service_account, policy_file).await?,
        AddIamPolicyBinding {
            service_account,
            binding,
        } => policy::modify_binding(ctx, KIND, service_account, binding, None).await?,
        RemoveIamPolicyBinding {
            service_account,
            binding,
            all,
        } => policy::modify_binding(ctx, KIND, service_account, binding, Some(*all)).await?,
        Keys(k) => run_keys(ctx, k).await?,
    }
    Ok(())
}

async fn run_keys(ctx: &Ctx, cmd: &KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Create {
            output_file,
            account,
            key_file_type,
        } => {
            if matches!(key_file_type, KeyFileType::P12) {
                bail!("P12 key files are not supported by Runpool; use --key-file-type=json.");
            }
            let email = &account.iam_account;
            let api = ctx.api().await?;
            let key = api
                .post(
                    &format!("{}/keys", path(email)),
                    &json!({"privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE"}),
                )
                .await?;
            let data = key["privateKeyData"]
                .as_str()
                .ok_or_else(|| anyhow!("The created key has no privateKeyData."))?;
            let bytes = B64
                .decode(data)
                .map_err(|e| anyhow!("The created key's privateKeyData is not base64: {e}"))?;
            write_key_file(output_file, &bytes)?;
            eprintln!(
                "created key [{}] of type [json] as [{output_file}] for [{email}]",
                key_id(key["name"].as_str().unwrap_or(""))
            );
        }
        KeysCmd::List {
            account,
            managed_by,
        } => {
            let query: Vec<(&str, String)> = match managed_by {
                ManagedBy::User => vec![("keyTypes", "USER_MANAGED".into())],
                ManagedBy::System => vec![("keyTypes", "SYSTEM_MANAGED".into())],
                ManagedBy::Any => vec![],
            };
            let api = ctx.api().await?;
            let v = api
                .get_q(&format!("{}/keys", path(&account.iam_account)), &query)
                .await?;
            let keys = v["keys"].as_array().cloned().unwrap_or_default();
            ctx.print_list(
                keys,
                table(
                    "table(name.basename():label=KEY_ID, validAfterTime:label=CREATED_AT, \
                     validBeforeTime:label=EXPIRES_AT, disabled:label=DISABLED)",
                ),
            );
        }
        KeysCmd::Delete { key_id, account } => {
            let email = &account.iam_account;
            let api = ctx.api().await?;
            api.delete(&format!("{}/keys/{key_id}", path(email)))
                .await?;
            eprintln!("deleted key [{key_id}] for service account [{email}]");
        }
        KeysCmd::Disable { key_id, account } | KeysCmd::Enable { key_id, account } => {
            let enable = matches!(cmd, KeysCmd::Enable { .. });
            let verb = if enable { "enable" } else { "disable" };
            let email = &account.iam_account;
            let api = ctx.api().await?;
            api.post(&format!("{}/keys/{key_id}:{verb}", path(email)), &json!({}))
                .await?;
            let done = if enable { "Enabled" } else { "Disabled" };
            eprintln!("{done} key [{key_id}] for service account [{email}].");
        }
        KeysCmd::Upload {
            public_key_file,
            account,
        } => {
            let text = std::fs::read_to_string(public_key_file).map_err(|e| {
                anyhow!(
                    "Invalid value for [public_key_file]: Unable to read file [{}]: {e}. Please \
                     double check your input and try again.",
                    public_key_file.display()
                )
            })?;
            let api = ctx.api().await?;
            let key = api
                .post(
                    &format!("{}/keys:upload", path(&account.iam_account)),
                    &json!({"publicKeyData": B64.encode(text.trim().as_bytes())}),
                )
                .await?;
            ctx.print_one(&key, Format::Yaml);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_take_the_project_from_the_email() {
        assert_eq!(
            service_account_name("sa@demo-project.iam.gserviceaccount.com"),
            "projects/demo-project/serviceAccounts/sa@demo-project.iam.gserviceaccount.com"
        );
        assert_eq!(
            service_account_name("123-compute@developer.gserviceaccount.com"),
            "projects/-/serviceAccounts/123-compute@developer.gserviceaccount.com"
        );
        assert_eq!(
            service_account_name("103185812403937829397"),
            "projects/-/serviceAccounts/103185812403937829397"
        );
        assert_eq!(
            service_account_name("projects/p/serviceAccounts/x"),
            "projects/p/serviceAccounts/x"
        );
        assert_eq!(key_id("projects/p/serviceAccounts/e/keys/abc"), "abc");
    }
}
