//! `run worker-pools …`: deploy, update, describe, replace, list, delete, the IAM policy
//! commands and `revisions list|describe`, shaped as gcloud's.
//!
//! Transport follows gcloud's split: deploy, update, list of revisions, delete and the IAM
//! commands speak Cloud Run Admin API v2 (`/v2/projects/P/locations/R/workerPools/…`);
//! describe, replace and list speak the v1 (Knative) API
//! (`/apis/run.googleapis.com/v1/namespaces/P/workerpools/…`), so `describe --format export`
//! writes the YAML `replace` reads.
//!
//! Choices where gcloud's behaviour could not be copied one to one (written down here, as
//! DESIGN.md asks):
//! - gcloud reaches v1 through a regional host (`REGION-run.googleapis.com`); Runpool has one
//!   host, so the region travels in the `cloud.googleapis.com/location` label (replace adds it
//!   from `--region`/`run/region` when the file lacks it), and describe checks the label of
//!   what it got against the region asked for.
//! - Status lines (progress, `Worker pool [X] revision [R] has been deployed.`) go to stderr,
//!   as gcloud's `pretty_print.Success` does; stdout carries only `--format` output.
//! - `client` is `runpool` and `clientVersion` this binary's version (gcloud sends `gcloud`).
//! - `list` reads the v1 list (it spans every region) and filters on `--region`/`run/region`
//!   when one is set.

use crate::Ctx;
use crate::iam::policy::BindingArgs;
use crate::run::RegionArg;
use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use runpool_client::api::{Api, has_status};
use runpool_client::iam::{CondArg, Condition};
use runpool_client::iam::{add_binding, remove_binding};
use runpool_client::output::{self, Format};
use runpool_client::run::{CLIENT, LOCATION_LABEL, get_pool, v2_path};
use runpool_control::run::workerpools::OUTPUT_ONLY;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;

const LAUNCH_STAGE: &str = "run.googleapis.com/launch-stage";

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Manage Cloud Run worker pools.
    #[command(subcommand)]
    WorkerPools(WorkerPoolsCmd),
}

#[derive(Args, Debug, Default)]
pub struct ContainerFlags {
    /// Container image to deploy, e.g. us-docker.pkg.dev/cloudrun/container/worker-pool.
    #[arg(long)]
    pub image: Option<String>,
    /// Entrypoint of the container (comma-separated list).
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub command: Option<Vec<String>>,
    /// Arguments passed to the command (comma-separated list).
    #[arg(long, value_delimiter = ',', num_args = 1, allow_hyphen_values = true)]
    pub args: Option<Vec<String>>,
    /// KEY=VALUE pairs that replace the container's environment.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub set_env_vars: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The worker pool's ID.
    pub worker_pool: String,
    #[command(flatten)]
    pub container: ContainerFlags,
    /// Email of the service account the revision runs as (its service identity).
    #[arg(long)]
    pub service_account: Option<String>,
    /// Fixed number of instances (manual scaling).
    #[arg(long)]
    pub instances: Option<i32>,
    /// KEY=VALUE pairs that replace the worker pool's labels.
    #[arg(long, alias = "update-labels", value_name = "KEY=VALUE,...")]
    pub labels: Option<String>,
    /// Return at once, without waiting for the operation.
    #[arg(long = "async")]
    pub async_: bool,
    #[command(flatten)]
    pub region: RegionArg,
}

#[derive(Subcommand, Debug)]
pub enum WorkerPoolsCmd {
    /// Create or update a worker pool from a container image.
    Deploy {
        #[command(flatten)]
        d: DeployArgs,
        /// Validate the request (every identity rule included) without deploying.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change some settings of a worker pool.
    Update(DeployArgs),
    /// Show a worker pool (v1 object; `--format export` for `replace`).
    Describe {
        worker_pool: String,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Create or replace a worker pool from a YAML or JSON v1 definition.
    Replace {
        file: PathBuf,
        #[command(flatten)]
        region: RegionArg,
    },
    /// List worker pools.
    List {
        #[command(flatten)]
        region: RegionArg,
    },
    /// Delete a worker pool.
    Delete {
        worker_pool: String,
        #[arg(long = "async")]
        async_: bool,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Print a worker pool's IAM policy.
    GetIamPolicy {
        worker_pool: String,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Replace a worker pool's IAM policy with a JSON or YAML file.
    SetIamPolicy {
        worker_pool: String,
        policy_file: PathBuf,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Add a binding to a worker pool's IAM policy.
    AddIamPolicyBinding {
        worker_pool: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Remove a binding from a worker pool's IAM policy.
    RemoveIamPolicyBinding {
        worker_pool: String,
        #[command(flatten)]
        binding: BindingArgs,
        /// Remove the principal from the role's bindings whatever their condition.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Revisions of a worker pool.
    #[command(subcommand)]
    Revisions(RevisionsCmd),
    /// Read or tail a worker pool's logs (Cloud Logging).
    #[command(subcommand)]
    Logs(crate::run::logs::PoolLogsCmd),
}

#[derive(Subcommand, Debug)]
pub enum RevisionsCmd {
    /// List a worker pool's revisions.
    List {
        #[arg(long)]
        worker_pool: String,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Show one revision.
    Describe {
        revision: String,
        /// The revision's worker pool (default: the revision name without its
        /// `-NNNNN-xxx` suffix).
        #[arg(long)]
        worker_pool: Option<String>,
        #[command(flatten)]
        region: RegionArg,
    },
}

pub async fn run(ctx: &Ctx, cmd: &RunCmd) -> Result<()> {
    let RunCmd::WorkerPools(cmd) = cmd;
    match cmd {
        WorkerPoolsCmd::Logs(c) => crate::run::logs::run_pool_logs(ctx, c).await,
        WorkerPoolsCmd::Deploy { d, dry_run } => deploy(ctx, d, *dry_run).await,
        WorkerPoolsCmd::Update(d) => update(ctx, d).await,
        WorkerPoolsCmd::Describe {
            worker_pool,
            region,
        } => describe(ctx, worker_pool, region).await,
        WorkerPoolsCmd::Replace { file, region } => replace(ctx, file, region).await,
        WorkerPoolsCmd::List { region } => list(ctx, region).await,
        WorkerPoolsCmd::Delete {
            worker_pool,
            async_,
            region,
        } => delete(ctx, worker_pool, *async_, region).await,
        WorkerPoolsCmd::GetIamPolicy {
            worker_pool,
            region,
        } => {
            let (api, path) = pool_api(ctx, worker_pool, region).await?;
            let policy = api.get(&format!("{path}:getIamPolicy")).await?;
            ctx.print_one(&policy, Format::Yaml);
            Ok(())
        }
        WorkerPoolsCmd::SetIamPolicy {
            worker_pool,
            policy_file,
            region,
        } => set_iam_policy(ctx, worker_pool, policy_file, region).await,
        WorkerPoolsCmd::AddIamPolicyBinding {
            worker_pool,
            binding,
            region,
        } => modify_binding(ctx, worker_pool, binding, None, region).await,
        WorkerPoolsCmd::RemoveIamPolicyBinding {
            worker_pool,
            binding,
            all,
            region,
        } => modify_binding(ctx, worker_pool, binding, Some(*all), region).await,
        WorkerPoolsCmd::Revisions(RevisionsCmd::List {
            worker_pool,
            region,
        }) => list_revisions(ctx, worker_pool, region).await,
        WorkerPoolsCmd::Revisions(RevisionsCmd::Describe {
            revision,
            worker_pool,
            region,
        }) => {
            let pool = match worker_pool {
                Some(p) => p.clone(),
                None => pool_of_revision(revision)?,
            };
            let (api, path) = pool_api(ctx, &pool, region).await?;
            let rev = api
                .get(&format!("{path}/revisions/{revision}"))
                .await
                .map_err(|e| {
                    if has_status(&e, "NOT_FOUND") {
                        anyhow!("Cannot find revision [{revision}]")
                    } else {
                        e
                    }
                })?;
            ctx.print_one(&rev, Format::Yaml);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by `terraform`).

/// The release track the command was given (`alpha`/`beta`), re-read from the command line
/// (`main` strips it before clap sees the arguments).
pub fn release_track() -> Option<String> {
    let mut args: Vec<String> = std::env::args().collect();
    crate::strip_release_track(&mut args)
}

/// Whether `--format export` was asked for. `output::Format` reads `export` as plain YAML, so
/// the distinction is taken from the command line itself.
fn format_is_export() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--format=export"
            || (a == "--format" && args.get(i + 1).is_some_and(|v| v == "export"))
    })
}

/// `--region`, else the `run/region` property, else gcloud's error.
pub fn region(ctx: &Ctx, flag: &RegionArg) -> Result<String> {
    optional_region(ctx, flag)?.ok_or_else(|| {
        anyhow!(
            "Missing required argument [--region]: You must specify a region. Either use the \
             `--region` flag or set the run/region property."
        )
    })
}

fn optional_region(ctx: &Ctx, flag: &RegionArg) -> Result<Option<String>> {
    if let Some(r) = &flag.region {
        return Ok(Some(r.clone()));
    }
    Ok(ctx
        .config
        .get(&runpool_client::config::Prop::parse("run/region")?))
}

fn v1_collection(project: &str) -> String {
    format!("/apis/run.googleapis.com/v1/namespaces/{project}/workerpools")
}

async fn pool_api(ctx: &Ctx, id: &str, region_flag: &RegionArg) -> Result<(Api, String)> {
    let project = ctx.project()?;
    let region = region(ctx, region_flag)?;
    Ok((ctx.api().await?, v2_path(&project, &region, id)))
}

fn strip_output_only(pool: &mut Value) {
    if let Some(o) = pool.as_object_mut() {
        for k in OUTPUT_ONLY {
            o.remove(*k);
        }
    }
    if let Some(t) = pool["template"].as_object_mut() {
        t.remove("revision");
    }
}

/// `A=1,B=2` → ordered pairs.
fn key_values(spec: &str, flag: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    anyhow!("Bad syntax for dict arg [{flag}]: [{p}]. Expected KEY=VALUE.")
                })
        })
        .collect()
}

fn rev_id(full: &str) -> &str {
    full.rsplit('/').next().unwrap_or(full)
}

/// `wp-00002-abc` → `wp`.
fn pool_of_revision(rev: &str) -> Result<String> {
    let parts: Vec<&str> = rev.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [_, n, pool] if n.len() == 5 && n.chars().all(|c| c.is_ascii_digit()) => {
            Ok(pool.to_string())
        }
        _ => bail!("Cannot tell the worker pool of revision [{rev}]; name it with --worker-pool."),
    }
}

// ---------------------------------------------------------------------------------------------
// deploy / update

/// Apply the flags to a v2 pool body; returns the update-mask paths that changed.
fn apply_flags(pool: &mut Value, d: &DeployArgs) -> Result<Vec<&'static str>> {
    let mut mask = vec![];
    let c = &d.container;
    if c.image.is_some() || c.command.is_some() || c.args.is_some() || c.set_env_vars.is_some() {
        if !pool["template"]["containers"].is_array()
            || pool["template"]["containers"]
                .as_array()
                .is_some_and(|a| a.is_empty())
        {
            pool["template"]["containers"] = json!([{}]);
        }
        let first = &mut pool["template"]["containers"][0];
        if let Some(image) = &c.image {
            first["image"] = json!(image);
        }
        if let Some(cmd) = &c.command {
            first["command"] = json!(cmd);
        }
        if let Some(args) = &c.args {
            first["args"] = json!(args);
        }
        if let Some(env) = &c.set_env_vars {
            let env: Vec<Value> = key_values(env, "--set-env-vars")?
                .into_iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            first["env"] = json!(env);
        }
        mask.push("template.containers");
    }
    if let Some(sa) = &d.service_account {
        pool["template"]["serviceAccount"] = json!(sa);
        mask.push("template.serviceAccount");
    }
    if let Some(n) = d.instances {
        if n < 0 {
            bail!("Invalid value for [--instances]: must be a non-negative integer.");
        }
        // gcloud's WorkerPoolInstancesChange: manual mode with this count, min/max cleared.
        pool["scaling"] = json!({"scalingMode": "MANUAL", "manualInstanceCount": n});
        mask.push("scaling");
    }
    if let Some(labels) = &d.labels {
        let map: Map<String, Value> = key_values(labels, "--labels")?
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        pool["labels"] = Value::Object(map);
        mask.push("labels");
    }
    Ok(mask)
}

/// What every write sets: the client, and the launch stage of the release track.
fn stamp(pool: &mut Value, mask: &mut Vec<&'static str>) {
    pool["client"] = json!(CLIENT);
    pool["clientVersion"] = json!(env!("CARGO_PKG_VERSION"));
    mask.extend(["client", "clientVersion"]);
    if let Some(track) = release_track() {
        pool["launchStage"] = json!(track.to_uppercase());
        mask.push("launchStage");
    }
}

async fn deploy(ctx: &Ctx, d: &DeployArgs, dry_run: bool) -> Result<()> {
    let project = ctx.project()?;
    let region = region(ctx, &d.region)?;
    let api = ctx.api().await?;
    let id = &d.worker_pool;
    let path = v2_path(&project, &region, id);
    // gcloud's ReleaseWorkerPool: read the pool, apply the flags to it, then
    // UpdateWorkerPool(allow_missing=True, force_new_revision=True).
    let existing = get_pool(&api, &path).await?;
    let mut pool = existing.clone().unwrap_or_else(|| json!({"template": {}}));
    strip_output_only(&mut pool);
    if existing.is_none() && d.container.image.is_none() {
        bail!(
            "Requires a container image to deploy (e.g. \
             `us-docker.pkg.dev/cloudrun/container/worker-pool:latest`) if no build source is \
             provided."
        );
    }
    apply_flags(&mut pool, d)?;
    stamp(&mut pool, &mut vec![]);
    pool["name"] = json!(path.trim_start_matches("/v2/"));
    let mut query = vec![
        ("allowMissing", "true".to_string()),
        ("forceNewRevision", "true".to_string()),
    ];
    if dry_run {
        query.push(("validateOnly", "true".to_string()));
    }
    eprintln!(
        "Deploying container to Cloud Run worker pool [{id}] in project [{project}] region \
         [{region}]"
    );
    eprintln!(
        "{}",
        if existing.is_some() {
            "Deploying..."
        } else {
            "Deploying new worker pool..."
        }
    );
    let op = api
        .call(Method::PATCH, &path, &query, Some(&pool))
        .await
        .inspect_err(|_| eprintln!("Deployment failed"))?;
    if dry_run {
        api.wait_silently(op).await?;
        eprintln!(
            "Dry run: the deployment of worker pool [{id}] passed validation. Nothing was deployed."
        );
        return Ok(());
    }
    if d.async_ {
        eprintln!("Worker pool [{id}] is being deployed asynchronously.");
        return Ok(());
    }
    let result = api
        .wait_silently(op)
        .await
        .inspect_err(|_| eprintln!("Deployment failed"))?;
    eprintln!("  Creating Revision...done");
    eprintln!("Done.");
    let rev = rev_id(result["latestCreatedRevision"].as_str().unwrap_or_default());
    eprintln!("Worker pool [{id}] revision [{rev}] has been deployed.");
    ctx.print_if_asked(&result);
    Ok(())
}

async fn update(ctx: &Ctx, d: &DeployArgs) -> Result<()> {
    let project = ctx.project()?;
    let region = region(ctx, &d.region)?;
    let api = ctx.api().await?;
    let id = &d.worker_pool;
    let path = v2_path(&project, &region, id);
    let Some(existing) = get_pool(&api, &path).await? else {
        bail!("Cannot find worker pool [{id}]");
    };
    let mut pool = existing.clone();
    strip_output_only(&mut pool);
    let mut mask = apply_flags(&mut pool, d)?;
    if mask.is_empty() {
        bail!(
            "No configuration change requested. Did you mean to include the flags \
             `--update-env-vars`, `--memory`, `--concurrency`, `--timeout`, `--connectivity`, \
             `--image`?"
        );
    }
    stamp(&mut pool, &mut mask);
    // Send only what the mask names (plus the etag read above, for optimistic concurrency).
    let mut body = json!({"name": path.trim_start_matches("/v2/"), "etag": pool["etag"]});
    for m in &mask {
        let parts: Vec<&str> = m.split('.').collect();
        let mut src = &pool;
        for p in &parts {
            src = &src[*p];
        }
        let mut dst = &mut body;
        for p in &parts {
            dst = &mut dst[*p];
        }
        *dst = src.clone();
    }
    eprintln!("Updating...");
    let op = api
        .call(
            Method::PATCH,
            &path,
            &[("updateMask", mask.join(","))],
            Some(&body),
        )
        .await
        .inspect_err(|_| eprintln!("Update failed"))?;
    if d.async_ {
        eprintln!("Worker pool [{id}] is updating asynchronously.");
        return Ok(());
    }
    let result = api
        .wait_silently(op)
        .await
        .inspect_err(|_| eprintln!("Update failed"))?;
    let new_rev = result["latestCreatedRevision"] != existing["latestCreatedRevision"];
    if new_rev {
        eprintln!("  Creating Revision...done");
    }
    eprintln!("Done.");
    let rev = rev_id(result["latestCreatedRevision"].as_str().unwrap_or_default());
    let verb = if new_rev { "deployed" } else { "updated" };
    eprintln!("Worker pool [{id}] revision [{rev}] has been {verb}.");
    ctx.print_if_asked(&result);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// describe / replace / list / delete (v1 and v2)

/// What gcloud's ExportPrinter drops from a v1 object.
pub fn export_strip(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        for k in [
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "selfLink",
            "uid",
        ] {
            m.remove(k);
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            for k in [
                "serving.knative.dev/creator",
                "serving.knative.dev/lastModifier",
                "run.googleapis.com/client-name",
                "run.googleapis.com/client-version",
                "run.googleapis.com/creatorEmail",
                "run.googleapis.com/lastModifierEmail",
                "run.googleapis.com/operation-id",
            ] {
                a.remove(k);
            }
        }
    }
}

async fn describe(ctx: &Ctx, id: &str, region_flag: &RegionArg) -> Result<()> {
    let project = ctx.project()?;
    let region = optional_region(ctx, region_flag)?;
    let api = ctx.api().await?;
    let missing = || anyhow!("Cannot find worker pool [{id}]");
    let mut pool = match api.get(&format!("{}/{id}", v1_collection(&project))).await {
        Ok(p) => p,
        Err(e) if has_status(&e, "NOT_FOUND") => return Err(missing()),
        Err(e) => return Err(e),
    };
    if let Some(r) = &region
        && pool["metadata"]["labels"][LOCATION_LABEL].as_str() != Some(r.as_str())
    {
        return Err(missing());
    }
    if format_is_export() {
        export_strip(&mut pool);
        crate::emit(&output::render_one(&Format::Yaml, &pool));
        return Ok(());
    }
    if ctx.globals.format.is_some() || ctx.globals.flatten.is_some() {
        ctx.print_one(&pool, Format::Yaml);
        return Ok(());
    }
    print!("{}", describe_text(&pool));
    Ok(())
}

/// A pool's `Ready` condition, and gcloud's marker for it: ✔ ready, ✖ failed, … otherwise.
fn readiness(pool: &Value) -> (Option<&Value>, &'static str) {
    let ready = pool["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let marker = match ready.map(|c| c["status"].as_str().unwrap_or_default()) {
        Some("True") => "✔",
        Some("False") => "✖",
        _ => "…",
    };
    (ready, marker)
}

/// gcloud's human description of a (v1) worker pool: its ready marker, name and region, the
/// instance split, scaling, how many instances run now, and the latest revision's template;
/// the `Ready` condition's message when it is not ready. The running count is what the
/// runtime reported on that condition (absent until it has).
fn describe_text(pool: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let meta = &pool["metadata"];
    let ann = &meta["annotations"];
    let (ready, marker) = readiness(pool);
    let message = ready.map(|c| s(&c["message"])).unwrap_or_default();
    let mut out = format!(
        "{marker} WorkerPool {} in region {}\n \n",
        s(&meta["name"]),
        s(&meta["labels"][LOCATION_LABEL])
    );
    let latest = s(&pool["status"]["latestReadyRevisionName"]);
    let splits = pool["spec"]["instanceSplits"].as_array().cloned();
    if let Some(splits) = splits.filter(|v| !v.is_empty()) {
        out += "Instance Split:\n";
        for sp in splits {
            let pct = sp["percent"].as_i64().unwrap_or(0);
            if sp["latestRevision"] == true {
                out += &format!("  {pct:>3}% LATEST (currently {latest})\n");
            } else {
                out += &format!("  {pct:>3}% {}\n", s(&sp["revisionName"]));
            }
        }
        out += " \n";
    }
    let scaling = match ann["run.googleapis.com/scalingMode"].as_str() {
        Some("manual") | None => format!(
            "Manual (Instances: {})",
            ann["run.googleapis.com/manualInstanceCount"]
                .as_str()
                .unwrap_or("1")
        ),
        Some(_) => match ann["run.googleapis.com/maxScale"].as_str() {
            Some(max) => format!(
                "Auto (Min: {}, Max: {max})",
                ann["run.googleapis.com/minScale"].as_str().unwrap_or("0")
            ),
            None => format!(
                "Auto (Min: {})",
                ann["run.googleapis.com/minScale"].as_str().unwrap_or("0")
            ),
        },
    };
    out += &format!("Scaling:   {scaling}\n");
    if let Some(n) = runpool_control::run::instances::running_count(&message) {
        out += &format!("Instances: {n} running\n");
    }
    out += " \n";
    let when = ready
        .map(|c| s(&c["lastTransitionTime"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "?".into());
    let by = ann["serving.knative.dev/lastModifier"]
        .as_str()
        .filter(|b| !b.is_empty())
        .unwrap_or("?");
    out += &format!("Last updated on {when} by {by}:\n");
    out += &format!(
        "  Revision {}\n",
        s(&pool["status"]["latestCreatedRevisionName"])
    );
    let spec = &pool["spec"]["template"]["spec"];
    for c in spec["containers"].as_array().into_iter().flatten() {
        let name = c["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("None");
        out += &format!("  Container {name}\n");
        out += &format!("    Image:           {}\n", s(&c["image"]));
        let words = |v: &Value| {
            v.as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        for (label, field) in [("Command", "command"), ("Args", "args")] {
            let w = words(&c[field]);
            if !w.is_empty() {
                out += &format!("    {label}:{:pad$}{w}\n", "", pad = 16 - label.len());
            }
        }
        let env: Vec<String> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}={}", s(&e["name"]), s(&e["value"])))
            .collect();
        if !env.is_empty() {
            out += &format!("    Env vars:        {}\n", env.join(", "));
        }
    }
    out += &format!("  Service account:   {}\n", s(&spec["serviceAccountName"]));
    if marker != "✔" && !message.is_empty() {
        out += &format!("\n{message}\n");
    }
    out
}

/// The project's number, when the caller may read the project.
async fn project_number(api: &Api, project: &str) -> Option<String> {
    let p = api.get(&format!("/v3/projects/{project}")).await.ok()?;
    p["name"]
        .as_str()
        .and_then(|n| n.strip_prefix("projects/"))
        .map(str::to_string)
}

async fn replace(ctx: &Ctx, file: &PathBuf, region_flag: &RegionArg) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("Unable to read file [{}]", file.display()))?;
    let mut obj: Value = runpool_control::base::yaml::from_str(&text).map_err(|e| {
        anyhow!(
            "Failed to parse YAML or JSON from [{}]: {e}",
            file.display()
        )
    })?;
    if !obj.is_object() {
        bail!(
            "The file [{}] must hold a worker pool object.",
            file.display()
        );
    }
    // gcloud: drop `status`, insist on `spec.template`, default `spec.template.metadata`.
    obj.as_object_mut().map(|o| o.remove("status"));
    if !obj["spec"]["template"].is_object() {
        bail!("spec.template is required but missing. Please check the content in your yaml file.");
    }
    if !obj["spec"]["template"]["metadata"].is_object() {
        obj["spec"]["template"]["metadata"] = json!({});
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            anyhow!(
                "metadata.name is required but missing. Please check the content in your yaml file."
            )
        })?
        .to_string();
    let project = ctx.project()?;
    let api = ctx.api().await?;
    match &obj["metadata"]["namespace"] {
        Value::Null => obj["metadata"]["namespace"] = json!(project),
        Value::String(ns) if *ns == project => {}
        ns => {
            // Only a number that is this project's (and quoted: a YAML integer is refused).
            let number = project_number(&api, &project).await;
            let ok = match (ns, &number) {
                (Value::String(n), Some(num)) => n == num,
                // The number cannot be read: let the server judge the namespace.
                (Value::String(_), None) => true,
                _ => false,
            };
            if !ok {
                bail!(
                    "Namespace must be project ID [{project}] or quoted number [{}] for Cloud \
                     Run (fully managed).",
                    number.unwrap_or_else(|| "PROJECT_NUMBER".into())
                );
            }
        }
    }
    let region = match obj["metadata"]["labels"][LOCATION_LABEL].as_str() {
        Some(r) => r.to_string(),
        None => {
            let r = region(ctx, region_flag)?;
            obj["metadata"]["labels"][LOCATION_LABEL] = json!(r);
            r
        }
    };
    if let Some(track) = release_track() {
        obj["metadata"]["annotations"][LAUNCH_STAGE] = json!(track.to_uppercase());
    }
    eprintln!(
        "Applying new configuration to Cloud Run worker pool [{name}] in project [{project}] \
         region [{region}]"
    );
    let coll = v1_collection(&project);
    let exists = match api.get(&format!("{coll}/{name}")).await {
        Ok(_) => true,
        Err(e) if has_status(&e, "NOT_FOUND") => false,
        Err(e) => return Err(e),
    };
    let result = if exists {
        api.call(Method::PUT, &format!("{coll}/{name}"), &[], Some(&obj))
            .await
    } else {
        api.post(&coll, &obj).await
    }
    .inspect_err(|_| eprintln!("Deployment failed"))?;
    eprintln!("Done.");
    eprintln!("New configuration has been applied to worker pool [{name}].");
    ctx.print_if_asked(&result);
    Ok(())
}

async fn list(ctx: &Ctx, region_flag: &RegionArg) -> Result<()> {
    let project = ctx.project()?;
    let region = optional_region(ctx, region_flag)?;
    let api = ctx.api().await?;
    let mut items = vec![];
    let mut cont = String::new();
    loop {
        let mut q = vec![];
        if !cont.is_empty() {
            q.push(("continue", cont.clone()));
        }
        let page = api.get_q(&v1_collection(&project), &q).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() && c != cont => cont = c.to_string(),
            _ => break,
        }
    }
    let items: Vec<Value> = items
        .into_iter()
        .filter(|p| {
            region
                .as_deref()
                .is_none_or(|r| p["metadata"]["labels"][LOCATION_LABEL].as_str() == Some(r))
        })
        .collect();
    if items.is_empty() && ctx.globals.format.is_none() {
        eprintln!("Listed 0 items.");
        return Ok(());
    }
    if ctx.globals.format.is_some() {
        ctx.print_list(items, Format::Yaml);
        return Ok(());
    }
    // gcloud's columns, with its ready marker.
    let rows: Vec<Value> = items
        .iter()
        .map(|p| {
            let (ready, marker) = readiness(p);
            json!({
                "ready": marker,
                "name": p["metadata"]["name"],
                "region": p["metadata"]["labels"][LOCATION_LABEL],
                "by": p["metadata"]["annotations"]["serving.knative.dev/lastModifier"],
                "at": ready.map(|c| c["lastTransitionTime"].clone()).unwrap_or(Value::Null),
            })
        })
        .collect();
    ctx.print_list(
        rows,
        crate::table(
            r#"table(ready:label="",name:label=WORKER_POOL,region:label=REGION,by:label="LAST DEPLOYED BY",at:label="LAST DEPLOYED AT")"#,
        ),
    );
    Ok(())
}

async fn delete(ctx: &Ctx, id: &str, async_: bool, region_flag: &RegionArg) -> Result<()> {
    let (api, path) = pool_api(ctx, id, region_flag).await?;
    let op = api.delete(&path).await.map_err(|e| {
        if has_status(&e, "NOT_FOUND") {
            anyhow!("Cannot find worker pool [{id}]")
        } else {
            e
        }
    })?;
    if async_ {
        eprintln!("Worker pool [{id}] is being deleted.");
        return Ok(());
    }
    api.wait_silently(op).await?;
    eprintln!("Deleted worker pool [{id}].");
    Ok(())
}

async fn list_revisions(ctx: &Ctx, pool: &str, region_flag: &RegionArg) -> Result<()> {
    let (api, path) = pool_api(ctx, pool, region_flag).await?;
    let current = get_pool(&api, &path)
        .await?
        .ok_or_else(|| anyhow!("Cannot find worker pool [{pool}]"))?;
    let revs = api
        .list_all(&format!("{path}/revisions"), &[], "revisions")
        .await?;
    if ctx.globals.format.is_some() {
        ctx.print_list(revs, Format::Yaml);
        return Ok(());
    }
    let active: Vec<String> = current["instanceSplitStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["percent"].as_i64().unwrap_or(0) > 0)
        .filter_map(|s| s["revision"].as_str().map(|r| rev_id(r).to_string()))
        .collect();
    let rows: Vec<Value> = revs
        .iter()
        .map(|r| {
            let id = rev_id(r["name"].as_str().unwrap_or_default()).to_string();
            json!({
                "ready": "✔",
                "name": id,
                "active": if active.contains(&id) { "yes" } else { "" },
                "pool": pool,
                "created": r["createTime"],
                "creator": r["creator"],
            })
        })
        .collect();
    if rows.is_empty() {
        eprintln!("Listed 0 items.");
        return Ok(());
    }
    ctx.print_list(
        rows,
        crate::table(
            r#"table(ready:label="",name:label=REVISION,active:label=ACTIVE,pool:label="WORKER POOL",created:label=DEPLOYED,creator:label="DEPLOYED BY")"#,
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// IAM policy (Cloud Run reads a pool's policy with GET)

async fn set_iam_policy(ctx: &Ctx, id: &str, file: &PathBuf, region: &RegionArg) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow!("Unable to read policy file {}: {e}", file.display()))?;
    let policy: Value = runpool_control::base::yaml::from_str(&text).map_err(|e| {
        anyhow!(
            "Policy file {} is not valid JSON or YAML: {e}",
            file.display()
        )
    })?;
    if !policy.is_object() {
        bail!("Policy file {} must hold a policy object.", file.display());
    }
    let (api, path) = pool_api(ctx, id, region).await?;
    let result = api
        .post(&format!("{path}:setIamPolicy"), &json!({"policy": policy}))
        .await?;
    eprintln!("Updated IAM policy for worker pool [{id}].");
    ctx.print_one(&result, Format::Yaml);
    Ok(())
}

fn binding_condition(b: &BindingArgs) -> Result<CondArg> {
    if let Some(c) = &b.condition {
        return Ok(c.clone());
    }
    let Some(file) = &b.condition_from_file else {
        return Ok(CondArg::Unspecified);
    };
    let v: Value = runpool_control::base::yaml::from_str(&std::fs::read_to_string(file)?)
        .map_err(anyhow::Error::msg)?;
    let get = |k: &str| v[k].as_str().map(str::to_string);
    match (get("expression"), get("title")) {
        (Some(expression), Some(title)) => Ok(CondArg::Some(Condition {
            expression,
            title,
            description: get("description"),
        })),
        _ => bail!(
            "The condition file {} must have `expression` and `title`.",
            file.display()
        ),
    }
}

async fn modify_binding(
    ctx: &Ctx,
    id: &str,
    b: &BindingArgs,
    remove: Option<bool>,
    region: &RegionArg,
) -> Result<()> {
    let member = &b.member;
    if !(member == "allUsers" || member == "allAuthenticatedUsers" || member.contains(':')) {
        bail!(
            "Invalid value for [--member]: [{member}] must be `allUsers`, `allAuthenticatedUsers` \
             or TYPE:ID, e.g. user:alice@example.com."
        );
    }
    let cond = binding_condition(b)?;
    let (api, path) = pool_api(ctx, id, region).await?;
    let mut attempt = 0;
    let result = loop {
        let mut policy = api.get(&format!("{path}:getIamPolicy")).await?;
        match remove {
            None => add_binding(&mut policy, member, &b.role, &cond)?,
            Some(all) => remove_binding(&mut policy, member, &b.role, &cond, all)?,
        }
        match api
            .post(&format!("{path}:setIamPolicy"), &json!({"policy": policy}))
            .await
        {
            Err(e) if has_status(&e, "ABORTED") && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            other => break other?,
        }
    };
    eprintln!("Updated IAM policy for worker pool [{id}].");
    ctx.print_one(&result, Format::Yaml);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_strips_what_gclouds_export_printer_strips() {
        let mut v = json!({
            "apiVersion": "run.googleapis.com/v1", "kind": "WorkerPool",
            "metadata": {"name": "wp", "namespace": "123", "uid": "u", "generation": 2,
                "resourceVersion": "e", "selfLink": "/x", "creationTimestamp": "t",
                "labels": {"cloud.googleapis.com/location": "us-central1"},
                "annotations": {"serving.knative.dev/creator": "a", "run.googleapis.com/launch-stage": "BETA",
                    "run.googleapis.com/client-name": "runpool"}},
            "spec": {"template": {"spec": {"serviceAccountName": "sa"}}},
            "status": {"observedGeneration": 2}
        });
        export_strip(&mut v);
        assert_eq!(
            v,
            json!({
                "apiVersion": "run.googleapis.com/v1", "kind": "WorkerPool",
                "metadata": {"name": "wp", "namespace": "123",
                    "labels": {"cloud.googleapis.com/location": "us-central1"},
                    "annotations": {"run.googleapis.com/launch-stage": "BETA"}},
                "spec": {"template": {"spec": {"serviceAccountName": "sa"}}}
            })
        );
    }

    #[test]
    fn revision_names_give_their_pool() {
        assert_eq!(pool_of_revision("my-wp-00012-x7k").unwrap(), "my-wp");
        assert!(pool_of_revision("nonsense").is_err());
    }
}
