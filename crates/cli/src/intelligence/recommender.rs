//! `recommender recommendations list|describe|mark-claimed|mark-succeeded|mark-failed|
//! mark-dismissed|apply` and `recommender insights list|describe`, shaped as gcloud's, over
//! Recommender v1.
//!
//! `apply` is Runpool's own: it claims the recommendation, carries out its operations through
//! the same public APIs any client would call (so the caller's own permissions apply), then
//! marks it succeeded, or failed with the error.

use crate::{Ctx, table};
use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use runpool_client::api::{Api, has_status};
use runpool_client::iam::{
    CondArg, ResourceKind, add_binding, get_policy, remove_binding, set_policy,
};
use runpool_client::output::Format;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum RecommenderCmd {
    /// Manage recommendations.
    #[command(subcommand)]
    Recommendations(RecommendationsCmd),
    /// Manage insights.
    #[command(subcommand)]
    Insights(InsightsCmd),
}

/// Where a recommender lives: `--project` (global flag), `--folder` or `--organization`, and
/// `--location`.
#[derive(Args, Debug, Clone)]
pub struct Scope {
    /// The folder whose recommendations to use, instead of the project.
    #[arg(long)]
    folder: Option<String>,
    /// The organization whose recommendations to use, instead of the project.
    #[arg(long)]
    organization: Option<String>,
    /// Location: `global` for IAM, a region for Cloud Run.
    #[arg(long, default_value = "global")]
    location: String,
}

#[derive(Args, Debug, Clone)]
pub struct RecArgs {
    #[command(flatten)]
    scope: Scope,
    /// Recommender, e.g. google.iam.policy.Recommender or google.run.service.IdentityRecommender.
    #[arg(long)]
    recommender: String,
}

#[derive(Args, Debug, Clone)]
pub struct MarkArgs {
    /// The recommendation id (or its full name).
    recommendation: String,
    /// Etag of the recommendation.
    #[arg(long)]
    etag: String,
    /// State metadata, as KEY=VALUE pairs separated by commas.
    #[arg(long, value_name = "KEY=VALUE,...")]
    state_metadata: Option<String>,
    #[command(flatten)]
    rec: RecArgs,
}

#[derive(Subcommand, Debug)]
pub enum RecommendationsCmd {
    /// List recommendations.
    List(RecArgs),
    /// Describe a recommendation.
    Describe {
        recommendation: String,
        #[command(flatten)]
        rec: RecArgs,
    },
    /// Mark a recommendation's state as CLAIMED.
    MarkClaimed(MarkArgs),
    /// Mark a recommendation's state as SUCCEEDED.
    MarkSucceeded(MarkArgs),
    /// Mark a recommendation's state as FAILED.
    MarkFailed(MarkArgs),
    /// Mark a recommendation's state as DISMISSED.
    MarkDismissed(MarkArgs),
    /// Apply a recommendation through the normal APIs, then mark it succeeded.
    Apply {
        recommendation: String,
        #[command(flatten)]
        rec: RecArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum InsightsCmd {
    /// List insights.
    List {
        #[command(flatten)]
        scope: Scope,
        /// Insight type, e.g. google.iam.policy.Insight.
        #[arg(long)]
        insight_type: String,
    },
    /// Describe an insight.
    Describe {
        insight: String,
        #[command(flatten)]
        scope: Scope,
        #[arg(long)]
        insight_type: String,
    },
}

fn parent(ctx: &Ctx, scope: &Scope) -> Result<String> {
    let node = match (&scope.organization, &scope.folder) {
        (Some(o), _) => format!("organizations/{}", o.trim_start_matches("organizations/")),
        (None, Some(f)) => format!("folders/{}", f.trim_start_matches("folders/")),
        (None, None) => format!("projects/{}", ctx.project()?),
    };
    Ok(format!("{node}/locations/{}", scope.location))
}

fn recommender_parent(ctx: &Ctx, a: &RecArgs) -> Result<String> {
    Ok(format!(
        "{}/recommenders/{}",
        parent(ctx, &a.scope)?,
        a.recommender
    ))
}

/// A recommendation named by id or in full.
fn recommendation_name(ctx: &Ctx, a: &RecArgs, id: &str) -> Result<String> {
    if id.contains('/') {
        return Ok(id.to_string());
    }
    Ok(format!(
        "{}/recommendations/{id}",
        recommender_parent(ctx, a)?
    ))
}

fn parse_metadata(spec: Option<&str>) -> Result<Value> {
    let mut m = serde_json::Map::new();
    for pair in spec
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            anyhow!("Invalid value for [--state-metadata]: [{pair}] is not KEY=VALUE.")
        })?;
        m.insert(k.to_string(), json!(v));
    }
    Ok(Value::Object(m))
}

pub async fn run(ctx: &Ctx, cmd: &RecommenderCmd) -> Result<()> {
    match cmd {
        RecommenderCmd::Recommendations(c) => recommendations(ctx, c).await,
        RecommenderCmd::Insights(c) => insights(ctx, c).await,
    }
}

async fn recommendations(ctx: &Ctx, cmd: &RecommendationsCmd) -> Result<()> {
    let api = ctx.api().await?;
    match cmd {
        RecommendationsCmd::List(a) => {
            let path = format!("/v1/{}/recommendations", recommender_parent(ctx, a)?);
            let items = api.list_all(&path, &[], "recommendations").await?;
            ctx.print_list(
                items,
                table(
                    "table(name.basename():label=RECOMMENDATION_ID, primaryImpact.category:label=PRIMARY_IMPACT_CATEGORY, stateInfo.state:label=RECOMMENDATION_STATE, lastRefreshTime:label=LAST_REFRESH_TIME, priority:label=PRIORITY, recommenderSubtype:label=RECOMMENDER_SUBTYPE, description:label=DESCRIPTION)",
                ),
            );
        }
        RecommendationsCmd::Describe {
            recommendation,
            rec,
        } => {
            let name = recommendation_name(ctx, rec, recommendation)?;
            ctx.print_one(&api.get(&format!("/v1/{name}")).await?, Format::Yaml);
        }
        RecommendationsCmd::MarkClaimed(m) => mark(ctx, &api, m, "markClaimed").await?,
        RecommendationsCmd::MarkSucceeded(m) => mark(ctx, &api, m, "markSucceeded").await?,
        RecommendationsCmd::MarkFailed(m) => mark(ctx, &api, m, "markFailed").await?,
        RecommendationsCmd::MarkDismissed(m) => mark(ctx, &api, m, "markDismissed").await?,
        RecommendationsCmd::Apply {
            recommendation,
            rec,
        } => apply(ctx, &api, &recommendation_name(ctx, rec, recommendation)?).await?,
    }
    Ok(())
}

async fn mark(ctx: &Ctx, api: &Api, m: &MarkArgs, verb: &str) -> Result<()> {
    let name = recommendation_name(ctx, &m.rec, &m.recommendation)?;
    let mut body = json!({"etag": m.etag});
    if verb != "markDismissed" {
        body["stateMetadata"] = parse_metadata(m.state_metadata.as_deref())?;
    } else if m.state_metadata.is_some() {
        bail!("--state-metadata is not accepted by mark-dismissed.");
    }
    let r = api.post(&format!("/v1/{name}:{verb}"), &body).await?;
    ctx.print_one(&r, Format::Yaml);
    Ok(())
}

/// `//service.googleapis.com/REST` → `REST`.
fn strip_service(resource: &str) -> Result<&str> {
    resource
        .strip_prefix("//")
        .and_then(|r| r.split_once('/'))
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("Unsupported resource in recommendation: {resource}"))
}

/// Carry out one operation of a recommendation; returns what was done, for the log.
async fn apply_operation(api: &Api, op: &Value) -> Result<String> {
    let s = |k: &str| op[k].as_str().unwrap_or_default();
    let filter = |k: &str| {
        op["pathFilters"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let resource = strip_service(s("resource"))?;
    match (s("action"), s("resourceType"), s("path")) {
        ("add", "iam.googleapis.com/ServiceAccount", "/") => {
            let (project, email) = resource
                .strip_prefix("projects/")
                .and_then(|r| r.split_once("/serviceAccounts/"))
                .ok_or_else(|| anyhow!("Unsupported service account name: {resource}"))?;
            let body = json!({
                "accountId": op["value"]["accountId"],
                "serviceAccount": {"displayName": op["value"]["displayName"]},
            });
            match api
                .post(&format!("/v1/projects/{project}/serviceAccounts"), &body)
                .await
            {
                Err(e) if has_status(&e, "ALREADY_EXISTS") => {}
                other => {
                    other?;
                }
            }
            Ok(format!("Created service account [{email}]."))
        }
        (action @ ("add" | "remove"), kind, path) if path.starts_with("/iamPolicy/bindings/") => {
            let kind = match kind {
                "cloudresourcemanager.googleapis.com/Project" => ResourceKind::Project,
                "cloudresourcemanager.googleapis.com/Folder" => ResourceKind::Folder,
                "cloudresourcemanager.googleapis.com/Organization" => ResourceKind::Organization,
                "iam.googleapis.com/ServiceAccount" => ResourceKind::ServiceAccount,
                other => bail!("Unsupported resource type in recommendation: {other}"),
            };
            let role = filter("/iamPolicy/bindings/*/role");
            let mut policy = get_policy(api, kind, resource).await?;
            let member = if action == "add" {
                let m = s("value").to_string();
                add_binding(&mut policy, &m, &role, &CondArg::None)?;
                m
            } else {
                let m = filter("/iamPolicy/bindings/*/members/*");
                remove_binding(&mut policy, &m, &role, &CondArg::None, false)?;
                m
            };
            set_policy(api, kind, resource, &policy).await?;
            let verb = if action == "add" {
                "Granted"
            } else {
                "Revoked"
            };
            Ok(format!("{verb} {role} for {member} on [{resource}]."))
        }
        ("replace", "run.googleapis.com/WorkerPool", "/template/serviceAccount") => {
            let path = format!("/v2/{resource}");
            let pool = api.get(&path).await?;
            let body = json!({
                "name": resource,
                "etag": pool["etag"],
                "template": {"serviceAccount": op["value"]},
            });
            let op = api
                .call(
                    Method::PATCH,
                    &path,
                    &[("updateMask", "template.serviceAccount".to_string())],
                    Some(&body),
                )
                .await?;
            api.wait_silently(op).await?;
            Ok(format!(
                "Worker pool [{resource}] now runs as [{}].",
                body["template"]["serviceAccount"]
                    .as_str()
                    .unwrap_or_default()
            ))
        }
        (action, kind, path) => {
            bail!("Runpool cannot apply a '{action}' of '{path}' on {kind}; apply it by hand.")
        }
    }
}

async fn apply(ctx: &Ctx, api: &Api, name: &str) -> Result<()> {
    let r = api.get(&format!("/v1/{name}")).await?;
    let claimed = api
        .post(
            &format!("/v1/{name}:markClaimed"),
            &json!({"etag": r["etag"], "stateMetadata": {"appliedBy": "runpool recommender recommendations apply"}}),
        )
        .await?;
    let ops: Vec<Value> = r["content"]["operationGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["operations"].as_array().cloned().unwrap_or_default())
        .collect();
    for op in &ops {
        match apply_operation(api, op).await {
            Ok(done) => eprintln!("{done}"),
            Err(e) => {
                let _ = api
                    .post(
                        &format!("/v1/{name}:markFailed"),
                        &json!({"etag": claimed["etag"], "stateMetadata": {"error": format!("{e:#}")}}),
                    )
                    .await;
                return Err(e.context(format!(
                    "Applying recommendation [{name}] failed; it is marked FAILED"
                )));
            }
        }
    }
    let done = api
        .post(
            &format!("/v1/{name}:markSucceeded"),
            &json!({"etag": claimed["etag"], "stateMetadata": {"appliedBy": "runpool recommender recommendations apply"}}),
        )
        .await?;
    eprintln!("Applied recommendation [{name}].");
    ctx.print_if_asked(&done);
    Ok(())
}

async fn insights(ctx: &Ctx, cmd: &InsightsCmd) -> Result<()> {
    let api = ctx.api().await?;
    match cmd {
        InsightsCmd::List {
            scope,
            insight_type,
        } => {
            let path = format!(
                "/v1/{}/insightTypes/{insight_type}/insights",
                parent(ctx, scope)?
            );
            let items = api.list_all(&path, &[], "insights").await?;
            ctx.print_list(
                items,
                table(
                    "table(name.basename():label=INSIGHT_ID, category:label=CATEGORY, stateInfo.state:label=INSIGHT_STATE, lastRefreshTime:label=LAST_REFRESH_TIME, severity:label=SEVERITY, insightSubtype:label=INSIGHT_SUBTYPE, description:label=DESCRIPTION)",
                ),
            );
        }
        InsightsCmd::Describe {
            insight,
            scope,
            insight_type,
        } => {
            let name = if insight.contains('/') {
                insight.clone()
            } else {
                format!(
                    "{}/insightTypes/{insight_type}/insights/{insight}",
                    parent(ctx, scope)?
                )
            };
            ctx.print_one(&api.get(&format!("/v1/{name}")).await?, Format::Yaml);
        }
    }
    Ok(())
}
