//! `runpool resource-manager org-policies ...`: gcloud's legacy (v1-shaped) commands, carried
//! over Org Policy v2, which is what the server speaks. Boolean enforcement is written as a v2
//! policy whose spec has the single rule `{"enforce": true|false}`.
//!
//! `runpool org-policies ...` is gcloud's newer group, which speaks v2 policies directly:
//! `set-policy FILE` takes a v2 policy (`name`, `spec.rules` with `condition`s over tags).
//! The legacy `set-policy FILE` takes a v1 policy (`constraint`, `booleanPolicy`,
//! `listPolicy`, `restoreDefault`) and, as a Runpool convenience, a v2 one too.

use crate::{Ctx, table};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use runpool_client::api::{Api, has_status};
use runpool_client::files::read_policy_file;
use runpool_client::output::Format;
use serde_json::{Value, json};
use std::path::PathBuf;

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

// What describe and delete name in both groups: a constraint's policy at a resource. (A
// plain comment: a doc comment here would become those commands' help text.)
#[derive(Args, Debug)]
pub struct PolicyAt {
    constraint: String,
    #[command(flatten)]
    target: Target,
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
        #[command(flatten)]
        at: PolicyAt,
        /// Show the effective policy, merged down the hierarchy.
        #[arg(long)]
        effective: bool,
    },
    /// Remove the policy set at the resource.
    Delete(PolicyAt),
    /// List the policies set at the resource.
    List {
        #[command(flatten)]
        target: Target,
        /// Also list constraints with no policy set here.
        #[arg(long)]
        show_unset: bool,
    },
    /// Set a policy from a JSON or YAML file (a v1 policy: `constraint`, `booleanPolicy`,
    /// `listPolicy` or `restoreDefault`; or a v2 policy with `name` and `spec`).
    SetPolicy {
        policy_file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

/// `runpool org-policies ...` (gcloud's Org Policy v2 group).
#[derive(Subcommand, Debug)]
pub enum OrgPoliciesV2Cmd {
    /// Create or replace a policy from a JSON or YAML file holding a v2 policy
    /// (`name: projects/P/policies/CONSTRAINT`, `spec: {rules: [...]}`); rules may carry
    /// conditions over tags, e.g. `condition: {expression: "resource.matchTag('ORG/env', 'dev')"}`.
    SetPolicy { policy_file: PathBuf },
    /// Show the policy set at the resource (or, with --effective, the one in force there).
    Describe {
        #[command(flatten)]
        at: PolicyAt,
        /// Show the effective policy, merged down the hierarchy, conditions evaluated.
        #[arg(long)]
        effective: bool,
    },
    /// Remove the policy set at the resource.
    Delete(PolicyAt),
    /// List the policies set at the resource.
    List {
        #[command(flatten)]
        target: Target,
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

/// Whether a file holds a v2 policy (rather than a v1 one).
fn is_v2(p: &Value) -> bool {
    p.get("spec").is_some()
        || p.get("dryRunSpec").is_some()
        || p["name"].as_str().is_some_and(|n| n.contains("/policies/"))
}

/// A v1 policy (`constraint`, `booleanPolicy`, `listPolicy`, `restoreDefault`) as the v2
/// policy that means the same, named under `parent`.
pub fn v1_to_v2(parent: &str, v1: &Value) -> Result<Value> {
    let Some(constraint) = v1["constraint"].as_str() else {
        bail!("The policy file names no constraint (`constraint: constraints/...`).");
    };
    let mut spec = json!({});
    if v1.get("restoreDefault").is_some() {
        spec["reset"] = json!(true);
    } else if let Some(b) = v1.get("booleanPolicy") {
        spec["rules"] = json!([{"enforce": b["enforced"].as_bool().unwrap_or(false)}]);
    } else if let Some(l) = v1.get("listPolicy") {
        let rule = match l["allValues"].as_str() {
            Some("ALLOW") => json!({"allowAll": true}),
            Some("DENY") => json!({"denyAll": true}),
            _ => {
                let mut values = json!({});
                for (v1k, v2k) in [
                    ("allowedValues", "allowedValues"),
                    ("deniedValues", "deniedValues"),
                ] {
                    if let Some(a) = l.get(v1k) {
                        values[v2k] = a.clone();
                    }
                }
                json!({"values": values})
            }
        };
        spec["rules"] = json!([rule]);
        if l["inheritFromParent"].as_bool() == Some(true) {
            spec["inheritFromParent"] = json!(true);
        }
    } else {
        bail!("The policy file sets none of booleanPolicy, listPolicy or restoreDefault.");
    }
    let mut p = json!({
        "name": format!("{parent}/policies/{}", constraint_id(constraint)),
        "spec": spec,
    });
    if let Some(e) = v1["etag"].as_str() {
        p["etag"] = json!(e);
    }
    Ok(p)
}

/// `PATCH` the policy (the server creates it when missing, as gcloud's set-policy expects)
/// and print the result.
async fn set_v2_policy(ctx: &Ctx, policy: &Value) -> Result<()> {
    let Some(name) = policy["name"].as_str().filter(|n| n.contains("/policies/")) else {
        bail!(
            "The policy file must name the policy: `name: projects/PROJECT/policies/CONSTRAINT`."
        );
    };
    let api = ctx.api().await?;
    let result = api.patch(&format!("/v2/{name}"), policy).await?;
    ctx.print_one(&result, Format::Yaml);
    Ok(())
}

async fn describe(ctx: &Ctx, at: &PolicyAt, effective: bool) -> Result<()> {
    let PolicyAt { constraint, target } = at;
    let parent = parent(ctx, target)?;
    let api = ctx.api().await?;
    let id = constraint_id(constraint);
    let policy = if effective {
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
    Ok(())
}

async fn delete(ctx: &Ctx, at: &PolicyAt) -> Result<()> {
    let parent = parent(ctx, &at.target)?;
    let api = ctx.api().await?;
    let name = format!("{parent}/policies/{}", constraint_id(&at.constraint));
    api.delete(&format!("/v2/{name}")).await?;
    eprintln!("Deleted [{name}].");
    Ok(())
}

/// `runpool org-policies ...`
pub async fn run_v2(ctx: &Ctx, cmd: &OrgPoliciesV2Cmd) -> Result<()> {
    match cmd {
        OrgPoliciesV2Cmd::SetPolicy { policy_file } => {
            let p = read_policy_file(policy_file)?;
            if !is_v2(&p) {
                bail!(
                    "Policy file {} does not hold a v2 policy (`name` and `spec`); for a v1 policy use `runpool resource-manager org-policies set-policy`.",
                    policy_file.display()
                );
            }
            set_v2_policy(ctx, &p).await
        }
        OrgPoliciesV2Cmd::Describe { at, effective } => describe(ctx, at, *effective).await,
        OrgPoliciesV2Cmd::Delete(at) => delete(ctx, at).await,
        OrgPoliciesV2Cmd::List { target } => {
            let parent = parent(ctx, target)?;
            let api = ctx.api().await?;
            let policies = api
                .list_all(&format!("/v2/{parent}/policies"), &[], "policies")
                .await?;
            ctx.print_list(
                policies,
                table("table(name.segment():label=CONSTRAINT, spec.rules.len():label=RULES, etag)"),
            );
            Ok(())
        }
    }
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
        Describe { at, effective } => describe(ctx, at, *effective).await?,
        Delete(at) => delete(ctx, at).await?,
        SetPolicy {
            policy_file,
            target,
        } => {
            let p = read_policy_file(policy_file)?;
            let v2 = if is_v2(&p) {
                p
            } else {
                v1_to_v2(&parent(ctx, target)?, &p)?
            };
            set_v2_policy(ctx, &v2).await?
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
    fn v1_policies_become_v2() {
        let b = json!({"constraint": "constraints/iam.x", "booleanPolicy": {"enforced": true}});
        assert_eq!(
            v1_to_v2("projects/p", &b).unwrap(),
            json!({"name": "projects/p/policies/iam.x", "spec": {"rules": [{"enforce": true}]}})
        );
        let r = json!({"constraint": "iam.x", "restoreDefault": {}, "etag": "E"});
        assert_eq!(
            v1_to_v2("folders/1", &r).unwrap(),
            json!({"name": "folders/1/policies/iam.x", "spec": {"reset": true}, "etag": "E"})
        );
        let l = json!({"constraint": "iam.l", "listPolicy": {"allowedValues": ["a"], "inheritFromParent": true}});
        assert_eq!(
            v1_to_v2("projects/p", &l).unwrap()["spec"],
            json!({"rules": [{"values": {"allowedValues": ["a"]}}], "inheritFromParent": true})
        );
        assert!(v1_to_v2("projects/p", &json!({"booleanPolicy": {}})).is_err());
        assert!(is_v2(
            &json!({"name": "projects/p/policies/iam.x", "spec": {}})
        ));
        assert!(!is_v2(&b));
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
