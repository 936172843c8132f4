//! `runpool ca` and `runpool env`: what sends a shell's programs to Runpool by Google's own
//! host names, with no change to their code.
//!
//! `env` prints `export` lines: `HTTPS_PROXY` (the server's own port is its proxy; loopback and
//! the metadata server in `NO_PROXY`), one CA bundle (this machine's roots plus Runpool's CA,
//! written to the config dir) for OpenSSL, curl, Python `requests`, gRPC and Node: the
//! variables a worker pool instance gets too (`runpool_runtime::proxy_env`), and
//! `GOOGLE_APPLICATION_CREDENTIALS`: an authorized-user file for the current account whose
//! refresh token Runpool's token endpoint (`oauth2.googleapis.com`, through the proxy) trades,
//! or a service account's key file.

use crate::Ctx;
use anyhow::{Context, Result, anyhow};
use runpool_client::api::{connect_error, http_client};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The server's CA: `{path, pem, bundle}`.
async fn ca(endpoint: &str) -> Result<Value> {
    let resp = http_client()
        .get(format!("{endpoint}/runpool/v1/ca"))
        .send()
        .await
        .map_err(|e| connect_error(endpoint, e))?;
    resp.json()
        .await
        .map_err(|e| anyhow!("The server at [{endpoint}] has no CA to give: {e}"))
}

/// `runpool ca`: the CA's path on the server's machine, then its PEM.
pub async fn run_ca(ctx: &Ctx) -> Result<()> {
    let v = ca(&ctx.endpoint()).await?;
    crate::emit(&format!(
        "{}\n{}",
        v["path"].as_str().unwrap_or_default(),
        v["pem"].as_str().unwrap_or_default()
    ));
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The config dir's `env/`, where `env` and `gcloud init` keep what they hand out.
pub fn env_dir() -> Result<PathBuf> {
    let dir = runpool_control::base::local::config_dir().join("env");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Write the server's CA bundle (this machine's roots plus Runpool's CA) to `env/ca-bundle.pem`
/// and return its path.
pub async fn write_bundle(endpoint: &str) -> Result<PathBuf> {
    let v = ca(endpoint).await?;
    let file = env_dir()?.join("ca-bundle.pem");
    std::fs::write(&file, v["bundle"].as_str().unwrap_or_default())
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// `runpool env`
pub async fn run_env(ctx: &Ctx) -> Result<()> {
    let endpoint = ctx.endpoint();
    let bundle_file = write_bundle(&endpoint).await?;
    let dir = env_dir()?;
    let path = |p: &PathBuf| shell_quote(&p.display().to_string());
    let mut lines: Vec<String> =
        runpool_runtime::proxy_env(&endpoint, &bundle_file.display().to_string())
            .into_iter()
            .map(|(k, v)| format!("export {k}={}", shell_quote(&v)))
            .collect();
    match ctx.account().ok().and_then(|a| Some((runpool_client::auth::load(&a)?, a))) {
        Some((cred, account)) => {
            let file = dir.join(format!("{account}.json"));
            let adc = match (&cred.key_file, &cred.refresh_token) {
                (Some(key), _) => key.clone(),
                (None, Some(refresh)) => json!({
                    "type": "authorized_user",
                    "client_id": runpool_client::auth::GCLOUD_CLIENT_ID,
                    "client_secret": "runpool",
                    "refresh_token": refresh,
                }),
                (None, None) => Value::Null,
            };
            if adc.is_null() {
                lines.push(format!(
                    "# {account} has no refresh token or key file: GOOGLE_APPLICATION_CREDENTIALS is left alone"
                ));
            } else {
                runpool_client::auth::write_private(&file, adc.to_string().as_bytes())?;
                lines.push(format!(
                    "export GOOGLE_APPLICATION_CREDENTIALS={}",
                    path(&file)
                ));
            }
        }
        None => lines.push(
            "# no active account (runpool auth login ACCOUNT): GOOGLE_APPLICATION_CREDENTIALS is left alone"
                .to_string(),
        ),
    }
    crate::emit(&(lines.join("\n") + "\n"));
    Ok(())
}
