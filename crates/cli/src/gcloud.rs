//! `runpool gcloud init`: a gcloud configuration that sends Google's own `gcloud` to Runpool.
//!
//! gcloud reaches Google's host names through an HTTP proxy (`proxy/*`, for REST and gRPC
//! alike) and trusts the CA `core/custom_ca_certs_file` names, so the configuration is just
//! those properties pointed at the server's own port and its CA bundle, plus the project and
//! the Cloud Run region. The file is written in gcloud's configuration dir (`CLOUDSDK_CONFIG`,
//! else `~/.config/gcloud`) as gcloud writes it, so no other configuration is touched.
//!
//! Credentials go through gcloud itself, since gcloud keeps them in a store of its own: every
//! account this CLI holds for the server is handed over, a simulated user by its refresh token
//! (`gcloud auth activate-refresh-token`, which Runpool's token endpoint trades on every
//! refresh), a service account by its key file. So `gcloud config set account ACCOUNT`
//! switches between them as `runpool auth login` does.

use crate::Ctx;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use runpool_client::config::{Config, Prop};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Subcommand, Debug)]
pub enum GcloudCmd {
    /// Create or update a gcloud configuration (default `runpool`) that sends the real gcloud
    /// to this server by Google's host names, give gcloud this CLI's accounts, and activate it
    /// (`gcloud config configurations activate default` goes back to Google).
    Init {
        /// The gcloud configuration to create or update.
        #[arg(long, default_value = "runpool")]
        configuration: String,
    },
}

/// The region a configuration gets when this CLI has none: Cloud Run's first.
const DEFAULT_REGION: &str = "us-central1";

/// gcloud's configuration dir, as gcloud finds it.
fn config_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CLOUDSDK_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
    Ok(PathBuf::from(home).join(".config").join("gcloud"))
}

fn prop(section: &str, name: &str) -> Prop {
    Prop {
        section: section.into(),
        name: name.into(),
    }
}

/// Environment variables that gcloud reads before any configuration's properties
/// (`CLOUDSDK_SECTION_NAME`, `CLOUDSDK_ACTIVE_CONFIG_NAME`): set in this shell, they would
/// send gcloud elsewhere whatever the configuration says.
fn overriding_vars() -> Vec<String> {
    const NOT_PROPERTIES: &[&str] = &[
        "CLOUDSDK_CONFIG",
        "CLOUDSDK_PYTHON",
        "CLOUDSDK_PYTHON_ARGS",
        "CLOUDSDK_PYTHON_SITEPACKAGES",
        "CLOUDSDK_ROOT_DIR",
    ];
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CLOUDSDK_") && !NOT_PROPERTIES.contains(&k.as_str()))
        .collect();
    vars.sort();
    vars
}

/// Run `gcloud ARGS` on `configuration`, with the property overrides of this shell's
/// environment left out, and fail with what gcloud said.
fn gcloud(configuration: &str, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("gcloud");
    cmd.args(args)
        .arg(format!("--configuration={configuration}"))
        .arg("--quiet")
        .stdin(Stdio::null());
    for k in overriding_vars() {
        cmd.env_remove(k);
    }
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "gcloud is not on PATH: install the Google Cloud CLI \
                 (https://cloud.google.com/sdk/docs/install), then run this again."
            )
        } else {
            anyhow!("running gcloud: {e}")
        }
    })?;
    if !out.status.success() {
        bail!(
            "gcloud {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Read, change and write one configuration file, as gcloud lays it out.
fn edit(file: &Path, change: impl FnOnce(&mut Config)) -> Result<()> {
    let mut cfg = match std::fs::read_to_string(file) {
        Ok(text) => Config::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    change(&mut cfg);
    std::fs::write(file, cfg.render()).with_context(|| format!("writing {}", file.display()))
}

pub async fn run(ctx: &Ctx, cmd: &GcloudCmd) -> Result<()> {
    let GcloudCmd::Init { configuration } = cmd;
    if configuration.is_empty()
        || !configuration
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !configuration.starts_with(|c: char| c.is_ascii_lowercase())
    {
        // gcloud's own rule for configuration names.
        bail!(
            "Invalid name [{configuration}] for a configuration.  Except for special cases \
             (NONE), configuration names start with a lower case letter and contain only lower \
             case letters a-z, digits 0-9, and hyphens '-'."
        );
    }
    let endpoint = ctx.endpoint();
    let url = reqwest::Url::parse(&endpoint)
        .with_context(|| format!("the endpoint [{endpoint}] is not a URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("the endpoint [{endpoint}] names no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow!("the endpoint [{endpoint}] names no port"))?;
    let bundle = crate::env::write_bundle(&endpoint).await?;

    let dir = config_dir()?.join("configurations");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // gcloud makes `default` on first use; make it too, so that activating it goes back.
    let default = dir.join("config_default");
    if !default.exists() {
        std::fs::write(&default, "").with_context(|| format!("writing {}", default.display()))?;
    }
    let file = dir.join(format!("config_{configuration}"));
    let created = !file.exists();
    let project = ctx.globals.project.clone().or(ctx.config.project());
    let region = ctx
        .config
        .get(&prop("run", "region"))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    edit(&file, |cfg| {
        cfg.set(&prop("proxy", "type"), "http");
        cfg.set(&prop("proxy", "address"), &host);
        cfg.set(&prop("proxy", "port"), &port.to_string());
        cfg.set(
            &prop("core", "custom_ca_certs_file"),
            &bundle.display().to_string(),
        );
        if let Some(p) = &project {
            cfg.set(&prop("core", "project"), p);
        }
        cfg.set(&prop("run", "region"), &region);
    })?;

    // Hand gcloud this server's accounts (its refreshes now go through the proxy above).
    let mut given = vec![];
    for account in runpool_client::auth::accounts() {
        let Some(cred) = runpool_client::auth::load(&account) else {
            continue;
        };
        if cred.endpoint.trim_end_matches('/') != endpoint {
            continue;
        }
        if let Some(key) = &cred.key_file {
            let key_file = crate::env::env_dir()?.join(format!("{account}.key.json"));
            runpool_client::auth::write_private(&key_file, key.to_string().as_bytes())?;
            let key_flag = format!("--key-file={}", key_file.display());
            gcloud(
                configuration,
                &["auth", "activate-service-account", &account, &key_flag],
            )?;
        } else if let Some(refresh) = &cred.refresh_token {
            gcloud(
                configuration,
                &["auth", "activate-refresh-token", &account, refresh],
            )?;
        } else {
            continue;
        }
        given.push(account);
    }
    // Activating an account makes it the configuration's; the active one is this CLI's.
    let active = ctx.account().ok().filter(|a| given.contains(a));
    edit(&file, |cfg| match &active {
        Some(a) => cfg.set(&prop("core", "account"), a),
        None => cfg.unset(&prop("core", "account")),
    })?;
    std::fs::write(config_dir()?.join("active_config"), configuration)
        .context("activating the configuration")?;

    let mut text = format!(
        "{} gcloud configuration [{configuration}] ({}) and activated it: gcloud now reaches \
         Runpool at {endpoint} by Google's host names (proxy {host}:{port}, CA bundle {}).\n",
        if created { "Created" } else { "Updated" },
        file.display(),
        bundle.display(),
    );
    if given.is_empty() {
        text += "No accounts to give gcloud: run `runpool auth login ACCOUNT`, then this again.\n";
    } else {
        text += &format!("Accounts given to gcloud: {}.\n", given.join(", "));
        match &active {
            Some(a) => text += &format!("Active account: [{a}].\n"),
            None => text += "No active account: gcloud config set account ACCOUNT\n",
        }
    }
    text += "To go back to Google: gcloud config configurations activate default\n";
    eprint!("{text}");
    let vars = overriding_vars();
    if !vars.is_empty() {
        eprintln!(
            "WARNING: {} set in this shell {} gcloud's configuration properties; unset {} for \
             gcloud to reach Runpool as configured.",
            vars.join(", "),
            if vars.len() == 1 {
                "overrides"
            } else {
                "override"
            },
            if vars.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}
