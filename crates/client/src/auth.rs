//! Credentials: minting a simulated user's token with the server's admin credential, storing
//! it per account (mode 0600), refreshing it, and the `auth` commands.
//!
//! A service account's credential is its key file (`auth activate-service-account`), stored
//! inside the credential; its access tokens come from the OAuth JWT-bearer grant, signed with
//! the key, as gcloud and google-auth obtain them. Impersonation (`--impersonate-service-account`
//! or `auth/impersonate_service_account`) trades the active account's token for the target's
//! through IAM Credentials `generateAccessToken` / `generateIdToken`.

use crate::api::{ApiError, connect_error, http_client};
use crate::config::Config;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Duration, Utc};
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
    /// A service account's key file (Google's JSON layout), when this is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<Value>,
}

impl Credential {
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        self.expiry - now < Duration::seconds(REFRESH_THRESHOLD_SECS)
    }
}

fn credentials_dir() -> PathBuf {
    runpool_control::base::local::config_dir().join("credentials")
}

pub fn credential_path(account: &str) -> PathBuf {
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
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
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
            let record = port.and_then(runpool_control::base::local::read_server_record);
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
        key_file: None,
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
    if let Some(file) = &cred.key_file {
        if cred.endpoint.trim_end_matches('/') == endpoint && !cred.needs_refresh(Utc::now()) {
            return Ok(cred.access_token);
        }
        // A key is good on any server that knows it: a new token is one grant away.
        let fresh = service_account_credential(file, endpoint)
            .await
            .map_err(|e| {
                anyhow!(
                    "There was a problem refreshing your current auth tokens: {e}\nPlease run:\n\n  \
                     $ runpool auth activate-service-account --key-file=KEY_FILE\n\nto obtain new \
                     credentials."
                )
            })?;
        store(account, &fresh)?;
        return Ok(fresh.access_token);
    }
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

/// The scopes this client asks for, as gcloud does for its own calls.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const TOKEN_SCOPES: &str =
    "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email";
/// Google's token endpoint: the audience google-auth signs assertions for.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// gcloud's own OAuth client ID: the audience of `print-identity-token` without `--audiences`.
pub const GCLOUD_CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";

/// The fields of a Google service-account key file this client needs.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyFile {
    pub client_email: String,
    pub private_key: String,
    pub private_key_id: String,
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl KeyFile {
    /// Parse and check a key file's JSON (`what` names it in errors).
    pub fn parse(v: &Value, what: &str) -> Result<KeyFile> {
        if v["type"].as_str() != Some("service_account") {
            bail!(
                "The key file {what} is not a service account key file: its \"type\" must be \
                 \"service_account\"."
            );
        }
        serde_json::from_value(v.clone()).map_err(|e| {
            anyhow!(
                "The key file {what} is missing a field a service account key needs \
                 (client_email, private_key, private_key_id): {e}"
            )
        })
    }

    /// Where to run the JWT-bearer grant and the audience to sign for: the key file's
    /// `token_uri` when it is on the configured server (what `keys create` writes), else the
    /// configured server's `/token` with Google's own token URI as audience (a key file from
    /// elsewhere names `https://oauth2.googleapis.com/token`, which this server accepts).
    fn token_target(&self, endpoint: &str) -> (String, String) {
        match &self.token_uri {
            Some(uri) if uri.starts_with(&format!("{endpoint}/")) => (uri.clone(), uri.clone()),
            _ => (format!("{endpoint}/token"), GOOGLE_TOKEN_URI.to_string()),
        }
    }

    /// An RS256 assertion signed with the key (header `kid` = `private_key_id`), valid an hour.
    pub fn assertion(&self, aud: &str, extra: (&str, &str)) -> Result<String> {
        use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
        let now = Utc::now().timestamp();
        let mut claims =
            json!({"iss": self.client_email, "aud": aud, "iat": now, "exp": now + 3600});
        claims[extra.0] = json!(extra.1);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.private_key_id.clone());
        let key = EncodingKey::from_rsa_pem(self.private_key.as_bytes())
            .map_err(|e| anyhow!("The private key in the key file is not a valid RSA key: {e}"))?;
        Ok(encode(&header, &claims, &key)?)
    }

    /// The OAuth JWT-bearer grant with one extra claim (`scope` or `target_audience`).
    async fn grant(&self, endpoint: &str, extra: (&str, &str)) -> Result<Value> {
        let (url, aud) = self.token_target(endpoint);
        let assertion = self.assertion(&aud, extra)?;
        let resp = http_client()
            .post(&url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| connect_error(endpoint, e))?;
        read_json(resp).await
    }

    /// An ID token for `audience`, with the `email` claim (what Google's grant returns).
    pub async fn id_token(&self, endpoint: &str, audience: &str) -> Result<String> {
        let v = self.grant(endpoint, ("target_audience", audience)).await?;
        v["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("The token response from [{endpoint}] has no id_token."))
    }
}

/// A fresh credential for a service account key file: the key file plus an access token.
pub async fn service_account_credential(file: &Value, endpoint: &str) -> Result<Credential> {
    let key = KeyFile::parse(file, "in the stored credential")?;
    let v = key.grant(endpoint, ("scope", TOKEN_SCOPES)).await?;
    let mut cred = credential_from_token_response(&v, endpoint, None)?;
    cred.key_file = Some(file.clone());
    Ok(cred)
}

/// `--impersonate-service-account=A,B,C`: the target (last) and its delegates (the others, as
/// IAM Credentials names them).
pub fn impersonation_chain(spec: &str) -> Result<(String, Vec<String>)> {
    let mut chain: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let Some(target) = chain.pop() else {
        bail!("Invalid value for [--impersonate-service-account]: [{spec}] names no account.");
    };
    let delegates = chain
        .into_iter()
        .map(|d| format!("projects/-/serviceAccounts/{d}"))
        .collect();
    Ok((target.to_string(), delegates))
}

/// gcloud's warning, once per command however many clients it builds.
pub fn warn_impersonation(spec: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "WARNING: This command is using service account impersonation. All API calls will be \
             executed as [{}].",
            spec.rsplit(',').next().unwrap_or(spec).trim()
        );
    });
}

/// Wrap a failed IAM Credentials call in gcloud's explanation, keeping the server's answer.
fn impersonation_error(target: &str, e: anyhow::Error) -> anyhow::Error {
    if crate::api::has_status(&e, "UNAUTHENTICATED") {
        return e;
    }
    anyhow!(
        "Failed to impersonate [{target}]. Make sure the account that's trying to impersonate it \
         has access to the service account itself and the \"roles/iam.serviceAccountTokenCreator\" \
         role.\n{e:#}"
    )
}

/// `generateAccessToken` for the chain, called with `token` (the active account's).
pub async fn impersonated_access_token(endpoint: &str, token: &str, spec: &str) -> Result<String> {
    let (target, delegates) = impersonation_chain(spec)?;
    let api = crate::api::Api::new(endpoint.to_string(), token.to_string());
    let v = api
        .post(
            &format!("/v1/projects/-/serviceAccounts/{target}:generateAccessToken"),
            &json!({"scope": [CLOUD_PLATFORM], "delegates": delegates, "lifetime": "3600s"}),
        )
        .await
        .map_err(|e| impersonation_error(&target, e))?;
    v["accessToken"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("The generateAccessToken response has no accessToken."))
}

/// `generateIdToken` for the chain, called with `token` (the active account's).
pub async fn impersonated_id_token(
    endpoint: &str,
    token: &str,
    spec: &str,
    audience: &str,
    include_email: bool,
) -> Result<String> {
    let (target, delegates) = impersonation_chain(spec)?;
    let api = crate::api::Api::new(endpoint.to_string(), token.to_string());
    let v = api
        .post(
            &format!("/v1/projects/-/serviceAccounts/{target}:generateIdToken"),
            &json!({"audience": audience, "includeEmail": include_email, "delegates": delegates}),
        )
        .await
        .map_err(|e| impersonation_error(&target, e))?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("The generateIdToken response has no token."))
}

/// The impersonation chain in force: the flag, else `auth/impersonate_service_account`.
pub fn impersonation(flag: Option<&str>, cfg: &Config) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| cfg.get(&crate::config::Prop::parse("auth/impersonate_service_account").ok()?))
        .filter(|s| !s.trim().is_empty())
}

pub fn no_active_account() -> anyhow::Error {
    anyhow!(
        "You do not currently have an active account selected.\nPlease run:\n\n  $ runpool auth login ACCOUNT\n\nto obtain new credentials."
    )
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
            key_file: None,
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
    fn impersonation_chain_ends_with_the_target() {
        assert_eq!(
            impersonation_chain("a@p.iam.gserviceaccount.com").unwrap(),
            ("a@p.iam.gserviceaccount.com".to_string(), vec![])
        );
        let (target, delegates) = impersonation_chain("a@x, b@x ,c@x").unwrap();
        assert_eq!(target, "c@x");
        assert_eq!(
            delegates,
            [
                "projects/-/serviceAccounts/a@x",
                "projects/-/serviceAccounts/b@x"
            ]
        );
        assert!(impersonation_chain(" , ").is_err());
    }

    fn key_file(token_uri: Option<&str>) -> KeyFile {
        KeyFile {
            client_email: "sa@p.iam.gserviceaccount.com".into(),
            private_key: String::new(),
            private_key_id: "k".into(),
            token_uri: token_uri.map(str::to_string),
        }
    }

    #[test]
    fn grants_go_to_the_configured_server() {
        let e = "http://127.0.0.1:9";
        let local = key_file(Some("http://127.0.0.1:9/token"));
        assert_eq!(
            local.token_target(e),
            (
                "http://127.0.0.1:9/token".into(),
                "http://127.0.0.1:9/token".into()
            )
        );
        // Google's token URI (or another server's) is not where this server's grants happen.
        for other in [
            Some("https://oauth2.googleapis.com/token"),
            Some("http://127.0.0.1:99/token"),
            None,
        ] {
            assert_eq!(
                key_file(other).token_target(e),
                ("http://127.0.0.1:9/token".into(), GOOGLE_TOKEN_URI.into())
            );
        }
    }

    #[test]
    fn key_files_must_be_service_account_keys() {
        assert!(KeyFile::parse(&json!({"type": "authorized_user"}), "f").is_err());
        assert!(KeyFile::parse(&json!({"type": "service_account"}), "f").is_err());
        let k = KeyFile::parse(
            &json!({"type": "service_account", "client_email": "e", "private_key": "p",
                    "private_key_id": "i", "project_id": "x"}),
            "f",
        )
        .unwrap();
        assert_eq!(k.client_email, "e");
        assert!(
            k.assertion("aud", ("scope", "s")).is_err(),
            "not an RSA key"
        );
    }
}
