//! `auth login|activate-service-account|list|print-access-token|print-identity-token|revoke`.

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use runpool_client::auth::*;
use runpool_client::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `auth activate-service-account`: read and check the key file, obtain a first token (so a
/// bad or revoked key fails here, not on the next command), store both.
async fn activate_service_account(
    account: Option<&str>,
    key_file: &Path,
    endpoint: &str,
) -> Result<String> {
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| anyhow!("Unable to read file [{}]: {e}", key_file.display()))?;
    let file: Value = serde_json::from_str(&text).map_err(|_| {
        anyhow!(
            "Could not read json file {}: only JSON key files are supported.",
            key_file.display()
        )
    })?;
    let key = KeyFile::parse(&file, &format!("[{}]", key_file.display()))?;
    if let Some(a) = account
        && a != key.client_email
    {
        bail!(
            "The given account name does not match the account name in the key file.  This \
             argument can be omitted when using .json keys."
        );
    }
    let cred = service_account_credential(&file, endpoint).await?;
    store(&key.client_email, &cred)?;
    Ok(key.client_email)
}

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Log in as a simulated principal (minted with the server's admin credential).
    Login {
        /// The account to log in as, e.g. alice@example.com.
        account: String,
        /// File holding the server's admin credential.
        #[arg(long, value_name = "FILE")]
        admin_credential: Option<PathBuf>,
        /// Don't make this the active account.
        #[arg(long)]
        no_activate: bool,
    },
    /// Authorize access with a service account's key file; it becomes the active account.
    ActivateServiceAccount {
        /// The service account's email (optional: the key file names it).
        account: Option<String>,
        /// The JSON key file (`runpool iam service-accounts keys create` writes one).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// List credentialed accounts.
    List,
    /// Print an access token for the active (or given) account.
    PrintAccessToken { account: Option<String> },
    /// Print an identity token (a Google-signed JWT) for the active (or given) account.
    PrintIdentityToken {
        account: Option<String>,
        /// The token's `aud` claim (default: gcloud's client ID).
        #[arg(long)]
        audiences: Option<String>,
        /// Include the `email` and `email_verified` claims (impersonation only; a key's
        /// tokens always carry them).
        #[arg(long)]
        include_email: bool,
    },
    /// Remove stored credentials (all with --all).
    Revoke {
        accounts: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(cmd: &AuthCmd, globals: &crate::Globals) -> Result<()> {
    let global_account = globals.account.as_deref();
    let mut cfg = Config::load()?;
    let endpoint = cfg.endpoint();
    let impersonate = impersonation(globals.impersonate_service_account.as_deref(), &cfg);
    match cmd {
        AuthCmd::Login {
            account,
            admin_credential,
            no_activate,
        } => {
            let admin = find_admin_credential(admin_credential.as_deref(), &endpoint)?;
            let cred = mint(&endpoint, &admin, account).await?;
            store(account, &cred)?;
            if !no_activate {
                cfg.set(
                    &runpool_client::config::Prop::parse("core/account")?,
                    account,
                );
                cfg.save()?;
            }
            eprintln!("\nYou are now logged in as [{account}].");
            if let Some(p) = cfg.project() {
                eprintln!(
                    "Your current project is [{p}].  You can change this setting by running:\n  $ runpool config set project PROJECT_ID"
                );
            }
        }
        AuthCmd::ActivateServiceAccount { account, key_file } => {
            let email = activate_service_account(account.as_deref(), key_file, &endpoint).await?;
            cfg.set(
                &runpool_client::config::Prop::parse("core/account")?,
                &email,
            );
            cfg.save()?;
            eprintln!("Activated service account credentials for: [{email}]");
        }
        AuthCmd::List => {
            let accts = accounts();
            if accts.is_empty() {
                eprintln!(
                    "No credentialed accounts.\n\nTo login, run:\n  $ runpool auth login `ACCOUNT`\n"
                );
                return Ok(());
            }
            let active = global_account.map(str::to_string).or(cfg.account());
            crate::emit(&auth_list_table(&accts, active.as_deref()));
            eprintln!(
                "\nTo set the active account, run:\n    $ runpool config set account `ACCOUNT`\n"
            );
        }
        AuthCmd::PrintAccessToken { account } => {
            let account = account
                .clone()
                .or(global_account.map(str::to_string))
                .or(cfg.account())
                .ok_or_else(no_active_account)?;
            let mut token = access_token(&account, &endpoint).await?;
            if let Some(spec) = &impersonate {
                warn_impersonation(spec);
                token = impersonated_access_token(&endpoint, &token, spec).await?;
            }
            crate::emit(&format!("{token}\n"));
        }
        AuthCmd::PrintIdentityToken {
            account,
            audiences,
            include_email,
        } => {
            let account = account
                .clone()
                .or(global_account.map(str::to_string))
                .or(cfg.account())
                .ok_or_else(no_active_account)?;
            let audience = audiences.as_deref().unwrap_or(GCLOUD_CLIENT_ID);
            let token = if let Some(spec) = &impersonate {
                warn_impersonation(spec);
                let own = access_token(&account, &endpoint).await?;
                impersonated_id_token(&endpoint, &own, spec, audience, *include_email).await?
            } else {
                match load(&account).and_then(|c| c.key_file) {
                    Some(file) => {
                        KeyFile::parse(&file, "in the stored credential")?
                            .id_token(&endpoint, audience)
                            .await?
                    }
                    None if load(&account).is_none() => bail!(
                        "There are no credentials for account [{account}]. Please run:\n\n  $ \
                         runpool auth login {account}\n\nto obtain new credentials."
                    ),
                    // Runpool's simulated users have no Google-signed ID tokens (yet).
                    None => bail!(
                        "Identity tokens for the simulated user [{account}] are not supported \
                         yet. Use a service account: activate a key with `runpool auth \
                         activate-service-account --key-file=FILE`, or pass \
                         --impersonate-service-account=EMAIL."
                    ),
                }
            };
            crate::emit(&format!("{token}\n"));
        }
        AuthCmd::Revoke {
            accounts: list,
            all,
        } => {
            let targets = if *all {
                accounts()
            } else if list.is_empty() {
                vec![cfg.account().ok_or_else(no_active_account)?]
            } else {
                list.clone()
            };
            for a in &targets {
                let path = credential_path(a);
                if !path.exists() {
                    bail!("No credentials available to revoke for [{a}].");
                }
                std::fs::remove_file(path)?;
                if cfg.account().as_deref() == Some(a) {
                    cfg.unset(&runpool_client::config::Prop::parse("core/account")?);
                    cfg.save()?;
                }
            }
            eprintln!(
                "Revoked credentials:\n{}",
                targets
                    .iter()
                    .map(|a| format!(" - {a}\n"))
                    .collect::<String>()
            );
        }
    }
    Ok(())
}

/// gcloud's `auth list` table: a centred title, then `ACTIVE  ACCOUNT` with `*` on the active one.
pub fn auth_list_table(accounts: &[String], active: Option<&str>) -> String {
    let mut rows = vec![vec!["ACTIVE".to_string(), "ACCOUNT".to_string()]];
    for a in accounts {
        let mark = if Some(a.as_str()) == active { "*" } else { "" };
        rows.push(vec![mark.into(), a.clone()]);
    }
    let body = runpool_client::output::table(&rows);
    let width = body.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let title = "Credentialed Accounts";
    let pad = width.saturating_sub(title.len()) / 2;
    format!("{}{title}\n{body}", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_list_marks_active() {
        let t = auth_list_table(
            &["admin@example.com".into(), "alice@example.com".into()],
            Some("admin@example.com"),
        );
        assert_eq!(
            t,
            "  Credentialed Accounts\nACTIVE  ACCOUNT\n*       admin@example.com\n        alice@example.com\n"
        );
    }
}
