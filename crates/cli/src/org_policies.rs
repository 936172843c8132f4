//! `runpool resource-manager org-policies ...`: gcloud's legacy (v1-shaped) commands, carried
//! over Org Policy v2, which is what the server speaks. Boolean enforcement is written as a v2
//! policy whose spec has the single rule `{"enforce": true|false}`.

use crate::api::{Api, has_status};
use crate::output::Format;
use crate::{Ctx, table};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// `--folder` / `--organization`; `--project` is the global flag (falling back to
/// `core/project` when neither of these is given).
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Folder ID.
    #[arg(long, value_name = "FOLDER_ID")]
    folder: Option<String>,
    /// Organization ID.
    #[arg(long, value_name = "ORGANIZATION_ID")]
    organization: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum OrgPoliciesCmd {
    /// Turn on enforcement of a boolean constraint at the resource.
    EnableEnforce {
        constraint: String,
        #[command(flatten)]
        target: Target,
    },
    /// Turn off enforcement of a boolean constraint at the resource.
    DisableEnforce {
        constraint: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show the policy set at the resource (or, with --effective, the one in force there).
    Describe {
        constraint: String,
        #[command(flatten)]
        target: Target,
        /// Show the effective policy, merged down the hierarchy.
        #[arg(long)]
        effective: bool,
    },
    /// Remove the policy set at the resource.
    Delete {
        constraint: String,
        #[command(flatten)]
        target: Target,
    },
    /// List the policies set at the resource.
    List {
        #[command(flatten)]
        target: Target,
        /// Also list constraints with no policy set here.
        #[arg(long)]
        show_unset: bool,
    },
}

/// `projects/P`, `folders/F` or `organizations/O`: exactly one of the three flags, else the
/// configured project (gcloud's legacy group requires a flag; falling back is friendlier and
/// matches the newer `gcloud org-policies`).
fn parent(ctx: &Ctx, t: &Target) -> Result<String> {
    let given = [
        ctx.globals
            .project
            .as_ref()
            .map(|p| format!("projects/{p}")),
        t.folder
            .as_ref()
            .map(|f| format!("folders/{}", f.trim_start_matches("folders/"))),
        t.organization
            .as_ref()
            .map(|o| format!("organizations/{}", o.trim_start_matches("organizations/"))),
    ];
    let mut set = given.into_iter().flatten();
    match (set.next(), set.next()) {
        (Some(_), Some(_)) => {
            bail!("At most one of --project, --folder or --organization may be specified.")
        }
        (Some(p), None) => Ok(p),
        (None, _) => Ok(format!("projects/{}", ctx.project()?)),
    }
}

/// `constraints/iam.x` or `iam.x` → `iam.x` (the policy name's last segment).
pub fn constraint_id(c: &str) -> &str {
    c.strip_prefix("constraints/").unwrap_or(c)
}

/// The v2 policy that sets a boolean constraint's enforcement. `existing` is the policy already
/// there, whose name (the server's, with the project number) and etag the update must carry.
pub fn boolean_policy(
    parent: &str,
    constraint: &str,
    enforce: bool,
    existing: Option<&Value>,
) -> Value {
    let mut p = json!({
        "name": format!("{parent}/policies/{}", constraint_id(constraint)),
        "spec": {"rules": [{"enforce": enforce}]},
    });
    if let Some(old) = existing {
        if let Some(n) = old["name"].as_str() {
            p["name"] = json!(n);
        }
        if let Some(e) = old["etag"].as_str() {
            p["etag"] = json!(e);
        }
        if let Some(e) = old["spec"]["etag"].as_str() {
            p["spec"]["etag"] = json!(e);
        }
    }
    p
}

async fn get_policy(api: &Api, parent: &str, constraint: &str) -> Result<Option<Value>> {
    match api
        .get(&format!(
            "/v2/{parent}/policies/{}",
            constraint_id(constraint)
        ))
        .await
    {
        Ok(p) => Ok(Some(p)),
        Err(e) if has_status(&e, "NOT_FOUND") => Ok(None),
        Err(e) => Err(e),
    }
}

async fn set_enforce(ctx: &Ctx, constraint: &str, target: &Target, enforce: bool) -> Result<()> {
    let parent = parent(ctx, target)?;
    let api = ctx.api().await?;
    let existing = get_policy(&api, &parent, constraint).await?;
    let body = boolean_policy(&parent, constraint, enforce, existing.as_ref());
    let result = match existing {
        None => api.post(&format!("/v2/{parent}/policies"), &body).await?,
        Some(_) => {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            api.patch(&format!("/v2/{name}"), &body).await?
        }
    };
    ctx.print_one(&result, Format::Yaml);
    Ok(())
}

/// A v2 policy as a row of gcloud's legacy list table.
fn list_row(p: &Value) -> Value {
    let rules = p["spec"]["rules"].as_array().cloned().unwrap_or_default();
    let is_bool = rules.iter().any(|r| r.get("enforce").is_some());
    let is_list = rules.iter().any(|r| {
        r.get("values").is_some() || r.get("allowAll").is_some() || r.get("denyAll").is_some()
    });
    let set = |b: bool| if b { "SET" } else { "-" };
    let name = p["name"].as_str().unwrap_or("");
    json!({
        "constraint": format!("constraints/{}", name.rsplit('/').next().unwrap_or("")),
        "listPolicy": set(is_list),
        "booleanPolicy": set(is_bool),
        "etag": p["etag"].as_str().unwrap_or(""),
    })
}

pub async fn run(ctx: &Ctx, cmd: &OrgPoliciesCmd) -> Result<()> {
    use OrgPoliciesCmd::*;
    match cmd {
        EnableEnforce { constraint, target } => set_enforce(ctx, constraint, target, true).await?,
        DisableEnforce { constraint, target } => {
            set_enforce(ctx, constraint, target, false).await?
        }
        Describe {
            constraint,
            target,
            effective,
        } => {
            let parent = parent(ctx, target)?;
            let api = ctx.api().await?;
            let id = constraint_id(constraint);
            let policy = if *effective {
                api.get(&format!("/v2/{parent}/policies/{id}:getEffectivePolicy"))
                    .await?
            } else {
                // v1's getOrgPolicy answered an empty policy when none was set, and the legacy
                // gcloud command printed that; keep doing so rather than failing.
                get_policy(&api, &parent, constraint)
                    .await?
                    .unwrap_or_else(|| json!({"name": format!("{parent}/policies/{id}")}))
            };
            ctx.print_one(&policy, Format::Yaml);
        }
        Delete { constraint, target } => {
            let parent = parent(ctx, target)?;
            let api = ctx.api().await?;
            let name = format!("{parent}/policies/{}", constraint_id(constraint));
            api.delete(&format!("/v2/{name}")).await?;
            eprintln!("Deleted [{name}].");
        }
        List { target, show_unset } => {
            let parent = parent(ctx, target)?;
            let api = ctx.api().await?;
            let mut policies = api
                .list_all(&format!("/v2/{parent}/policies"), &[], "policies")
                .await?;
            if *show_unset {
                let constraints = api
                    .list_all(&format!("/v2/{parent}/constraints"), &[], "constraints")
                    .await?;
                for c in constraints {
                    let id = c["name"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("");
                    let present = policies.iter().any(|p| {
                        p["name"]
                            .as_str()
                            .is_some_and(|n| n.ends_with(&format!("/{id}")))
                    });
                    if !present {
                        policies.push(json!({"name": format!("{parent}/policies/{id}")}));
                    }
                }
            }
            if ctx.globals.format.is_some() {
                ctx.print_list(policies, Format::Yaml);
            } else {
                let rows = policies.iter().map(list_row).collect();
                ctx.print_list(
                    rows,
                    table("table(constraint, listPolicy:label=LIST_POLICY, booleanPolicy:label=BOOLEAN_POLICY, etag)"),
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
    fn constraint_accepts_both_forms() {
        assert_eq!(constraint_id("constraints/iam.x"), "iam.x");
        assert_eq!(constraint_id("iam.x"), "iam.x");
    }

    #[test]
    fn new_boolean_policy_has_one_rule() {
        let p = boolean_policy("projects/demo", "constraints/iam.x", false, None);
        assert_eq!(
            p,
            json!({"name":"projects/demo/policies/iam.x","spec":{"rules":[{"enforce":false}]}})
        );
    }

    #[test]
    fn update_carries_server_name_and_etags() {
        let old = json!({"name":"projects/123/policies/iam.x","etag":"E1",
                         "spec":{"etag":"S1","rules":[{"enforce":false}]}});
        let p = boolean_policy("projects/demo", "iam.x", true, Some(&old));
        assert_eq!(
            p,
            json!({"name":"projects/123/policies/iam.x","etag":"E1",
                   "spec":{"etag":"S1","rules":[{"enforce":true}]}})
        );
    }

    #[test]
    fn list_row_marks_kinds() {
        let r = list_row(&json!({"name":"projects/1/policies/iam.x","etag":"E",
                                  "spec":{"rules":[{"enforce":true}]}}));
        assert_eq!(
            r,
            json!({"constraint":"constraints/iam.x","listPolicy":"-","booleanPolicy":"SET","etag":"E"})
        );
    }
}
