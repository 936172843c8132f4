//! Credentials: minting a simulated user's token with the server's admin credential, storing
//! it per account (mode 0600), refreshing it, and the `auth` commands.

use crate::api::{ApiError, connect_error, http_client};
use crate::config::Config;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Duration, Utc};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// google-auth refreshes this long before expiry (its `REFRESH_THRESHOLD`), so a token handed
/// out is good for a while yet; gcloud behaves the same.
pub const REFRESH_THRESHOLD_SECS: i64 = 225;

/// One account's stored credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub access_token: String,
    pub expiry: DateTime<Utc>,
    pub refresh_token: Option<String>,
    pub endpoint: String,
}

impl Credential {
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        self.expiry - now < Duration::seconds(REFRESH_THRESHOLD_SECS)
    }
}

fn credentials_dir() -> PathBuf {
    runpool_control::local::config_dir().join("credentials")
}

fn credential_path(account: &str) -> PathBuf {
    // Account names are emails; keep anything path-like out of the file name.
    let safe: String = account
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    credentials_dir().join(format!("{safe}.json"))
}

pub fn load(account: &str) -> Option<Credential> {
    let text = std::fs::read_to_string(credential_path(account)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn store(account: &str, cred: &Credential) -> Result<()> {
    let dir = credentials_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict(&dir, 0o700)?;
    write_private(&credential_path(account), &serde_json::to_vec_pretty(cred)?)
}

/// Write a file readable by its owner only. The file is created 0600 before any secret is in
/// it, so there is no window where another user could read it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    restrict(path, 0o600)?;
    f.write_all(bytes)?;
    Ok(())
}

fn restrict(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Accounts with a stored credential, sorted.
pub fn accounts() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(credentials_dir()) else {
        return vec![];
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

/// Where the admin credential comes from: the flag, `$RUNPOOL_ADMIN_CREDENTIAL` (a file
/// path), or the record a local server left for the configured endpoint's port.
pub fn find_admin_credential(flag: Option<&Path>, endpoint: &str) -> Result<String> {
    let from_env = std::env::var_os("RUNPOOL_ADMIN_CREDENTIAL")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = match flag.map(Path::to_path_buf).or(from_env) {
        Some(p) => p,
        None => {
            let port = reqwest::Url::parse(endpoint)
                .ok()
                .and_then(|u| u.port_or_known_default());
            let record = port.and_then(runpool_control::local::read_server_record);
            match record {
                Some(r) => r.admin_credential_file,
                None => bail!(
                    "No admin credential found for the Runpool server at [{endpoint}]: run \
                     `runpool serve` on this machine, or pass --admin-credential FILE (or set \
                     RUNPOOL_ADMIN_CREDENTIAL to its path)."
                ),
            }
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the admin credential {}", path.display()))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        bail!("The admin credential file {} is empty.", path.display());
    }
    Ok(text)
}

fn credential_from_token_response(
    v: &Value,
    endpoint: &str,
    old_refresh: Option<String>,
) -> Result<Credential> {
    let access_token = v["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("The token response from [{endpoint}] has no access_token."))?;
    let expires_in = v["expires_in"].as_i64().unwrap_or(3600);
    Ok(Credential {
        access_token: access_token.into(),
        expiry: Utc::now() + Duration::seconds(expires_in),
        refresh_token: v["refresh_token"]
            .as_str()
            .map(str::to_string)
            .or(old_refresh),
        endpoint: endpoint.into(),
    })
}

async fn read_json(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(ApiError::from_body(status.as_u16(), &text).into());
    }
    Ok(serde_json::from_str(&text)?)
}

/// `POST /runpool/v1/tokens` with the admin credential.
pub async fn mint(endpoint: &str, admin: &str, principal: &str) -> Result<Credential> {
    let resp = http_client()
        .post(format!("{endpoint}/runpool/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({ "principal": principal }))
        .send()
        .await
        .map_err(|e| connect_error(endpoint, e))?;
    credential_from_token_response(&read_json(resp).await?, endpoint, None)
}

/// `POST /token` with the refresh-token grant.
pub async fn refresh(cred: &Credential) -> Result<Credential> {
    let Some(rt) = &cred.refresh_token else {
        bail!("The stored credential has no refresh token.");
    };
    let resp = http_client()
        .post(format!("{}/token", cred.endpoint))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt.as_str()),
            ("client_id", "runpool"),
            ("client_secret", "runpool"),
        ])
        .send()
        .await
        .map_err(|e| connect_error(&cred.endpoint, e))?;
    credential_from_token_response(
        &read_json(resp).await?,
        &cred.endpoint,
        cred.refresh_token.clone(),
    )
}

/// A valid access token for `account` at `endpoint`, refreshed and re-stored when due.
pub async fn access_token(account: &str, endpoint: &str) -> Result<String> {
    let relogin =
        format!("Please run:\n\n  $ runpool auth login {account}\n\nto obtain new credentials.");
    let Some(cred) = load(account) else {
        bail!("There are no credentials for account [{account}]. {relogin}");
    };
    if cred.endpoint.trim_end_matches('/') != endpoint {
        // A token is only meaningful to the server that issued it.
        bail!(
            "The credentials for [{account}] were issued by [{}], not by the configured endpoint \
             [{endpoint}]. {relogin}",
            cred.endpoint
        );
    }
    if !cred.needs_refresh(Utc::now()) {
        return Ok(cred.access_token);
    }
    let fresh = refresh(&cred).await.map_err(|e| {
        anyhow!("There was a problem refreshing your current auth tokens: {e}\n{relogin}")
    })?;
    store(account, &fresh)?;
    Ok(fresh.access_token)
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
    /// List credentialed accounts.
    List,
    /// Print an access token for the active (or given) account.
    PrintAccessToken { account: Option<String> },
    /// Remove stored credentials (all with --all).
    Revoke {
        accounts: Vec<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(cmd: &AuthCmd, global_account: Option<&str>) -> Result<()> {
    let mut cfg = Config::load()?;
    let endpoint = cfg.endpoint();
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
                cfg.set(&crate::config::Prop::parse("core/account")?, account);
                cfg.save()?;
            }
            eprintln!("\nYou are now logged in as [{account}].");
            if let Some(p) = cfg.project() {
                eprintln!(
                    "Your current project is [{p}].  You can change this setting by running:\n  $ runpool config set project PROJECT_ID"
                );
            }
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
            crate::output::emit(&auth_list_table(&accts, active.as_deref()));
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
            crate::output::emit(&format!("{}\n", access_token(&account, &endpoint).await?));
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
                    cfg.unset(&crate::config::Prop::parse("core/account")?);
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

pub fn no_active_account() -> anyhow::Error {
    anyhow!(
        "You do not currently have an active account selected.\nPlease run:\n\n  $ runpool auth login ACCOUNT\n\nto obtain new credentials."
    )
}

/// gcloud's `auth list` table: a centred title, then `ACTIVE  ACCOUNT` with `*` on the active one.
pub fn auth_list_table(accounts: &[String], active: Option<&str>) -> String {
    let mut rows = vec![vec!["ACTIVE".to_string(), "ACCOUNT".to_string()]];
    for a in accounts {
        let mark = if Some(a.as_str()) == active { "*" } else { "" };
        rows.push(vec![mark.into(), a.clone()]);
    }
    let body = crate::output::table(&rows);
    let width = body.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let title = "Credentialed Accounts";
    let pad = width.saturating_sub(title.len()) / 2;
    format!("{}{title}\n{body}", " ".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(expiry: DateTime<Utc>) -> Credential {
        Credential {
            access_token: "a".into(),
            expiry,
            refresh_token: Some("r".into()),
            endpoint: "http://x".into(),
        }
    }

    #[test]
    fn refreshes_within_threshold_of_expiry() {
        let now = Utc::now();
        assert!(!cred(now + Duration::seconds(3600)).needs_refresh(now));
        assert!(!cred(now + Duration::seconds(226)).needs_refresh(now));
        assert!(cred(now + Duration::seconds(224)).needs_refresh(now));
        assert!(cred(now - Duration::seconds(1)).needs_refresh(now));
    }

    #[test]
    fn token_response_keeps_old_refresh_token() {
        let v = json!({"access_token":"t","expires_in":60,"token_type":"Bearer"});
        let c = credential_from_token_response(&v, "http://e", Some("old".into())).unwrap();
        assert_eq!(c.refresh_token.as_deref(), Some("old"));
        assert!(c.expiry > Utc::now());
        assert!(credential_from_token_response(&json!({}), "http://e", None).is_err());
    }

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
