//! `policy-intelligence troubleshoot-policy iam RESOURCE --principal-email=E --permission=P`:
//! Policy Troubleshooter v3 (`POST /v3/iam:troubleshoot`), shaped as gcloud's.
//!
//! Choice written down (DESIGN.md asks): gcloud prints the raw `TroubleshootIamPolicyResponse`
//! as YAML by default; Runpool prints a readable summary instead (overall state, each explained
//! policy binding by binding, then a one-line conclusion saying what grants access or what is
//! missing). `--format json|yaml|…` prints the full response, as gcloud's does.

use crate::Ctx;
use anyhow::Result;
use clap::{Args, Subcommand};
use runpool_client::output::Format;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum PolicyIntelligenceCmd {
    /// Troubleshoot access policies.
    #[command(subcommand)]
    TroubleshootPolicy(TroubleshootPolicyCmd),
}

#[derive(Subcommand, Debug)]
pub enum TroubleshootPolicyCmd {
    /// Why a principal has, or lacks, a permission on a resource (IAM allow and deny policies).
    Iam(IamArgs),
}

#[derive(Args, Debug)]
pub struct IamArgs {
    /// Full resource name, e.g. //cloudresourcemanager.googleapis.com/projects/my-project.
    pub resource: String,
    /// Email of the principal whose access is checked.
    #[arg(long)]
    pub principal_email: String,
    /// The permission to check, e.g. resourcemanager.projects.get.
    #[arg(long)]
    pub permission: String,
}

pub async fn run(ctx: &Ctx, cmd: &PolicyIntelligenceCmd) -> Result<()> {
    let PolicyIntelligenceCmd::TroubleshootPolicy(TroubleshootPolicyCmd::Iam(a)) = cmd;
    let api = ctx.api().await?;
    let body = json!({"accessTuple": {
        "principal": a.principal_email,
        "fullResourceName": a.resource,
        "permission": a.permission,
    }});
    let resp = api.post("/v3/iam:troubleshoot", &body).await?;
    if ctx.globals.format.is_some() || ctx.globals.flatten.is_some() {
        ctx.print_one(&resp, Format::Yaml);
    } else {
        crate::emit(&summary(&resp, &a.principal_email, &a.permission));
    }
    Ok(())
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn bindings(p: &Value) -> impl Iterator<Item = &Value> {
    p["bindingExplanations"].as_array().into_iter().flatten()
}

fn policies(resp: &Value) -> impl Iterator<Item = &Value> {
    resp["allowPolicyExplanation"]["explainedPolicies"]
        .as_array()
        .into_iter()
        .flatten()
}

/// `true`, `false`, or `None` when the condition could not be evaluated.
fn condition_value(b: &Value) -> Option<bool> {
    b["conditionExplanation"]["value"].as_bool()
}

fn condition_name(b: &Value) -> String {
    let c = &b["condition"];
    match (s(c, "title"), s(c, "expression")) {
        ("", e) => format!("`{e}`"),
        (t, e) => format!("\"{t}\" (`{e}`)"),
    }
}

fn granted(state: &str) -> bool {
    state == "ALLOW_ACCESS_STATE_GRANTED"
}

/// The members of a binding that matched the principal (directly or through a group, domain,
/// allUsers …), as the response's `memberships` map names them.
fn matched_members(b: &Value) -> Vec<String> {
    let mut m: Vec<String> = b["memberships"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v["membership"] == "MEMBERSHIP_MATCHED")
        .map(|(k, _)| k.clone())
        .collect();
    m.sort();
    m
}

fn membership_matched(b: &Value) -> bool {
    b["combinedMembership"]["membership"] == "MEMBERSHIP_MATCHED"
}

fn role_included(b: &Value) -> bool {
    b["rolePermission"] == "ROLE_PERMISSION_INCLUDED"
}

/// (resource, deny policy name) of every deny policy whose rules deny the access.
fn denying_policies(resp: &Value) -> Vec<(String, String)> {
    resp["denyPolicyExplanation"]["explainedResources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r["explainedPolicies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["denyAccessState"] == "DENY_ACCESS_STATE_DENIED")
                .map(move |p| {
                    (
                        s(r, "fullResourceName").to_string(),
                        s(&p["policy"], "name").to_string(),
                    )
                })
        })
        .collect()
}

/// The readable summary: overall state, per-policy binding lines, a conclusion.
pub fn summary(resp: &Value, principal: &str, permission: &str) -> String {
    let overall = s(resp, "overallAccessState");
    let resource = s(&resp["accessTuple"], "fullResourceName");
    let mut out = String::new();
    let verdict = match overall {
        "CAN_ACCESS" => "GRANTED",
        "CANNOT_ACCESS" => "NOT GRANTED",
        _ => "UNKNOWN",
    };
    out += &format!("Access: {verdict} ({overall})\n");
    out += &format!("  principal:  {principal}\n  permission: {permission}\n");
    if !resource.is_empty() {
        out += &format!("  resource:   {resource}\n");
    }
    for p in policies(resp) {
        out += &format!(
            "\nAllow policy on {}: {}\n",
            s(p, "fullResourceName"),
            s(p, "allowAccessState").trim_start_matches("ALLOW_ACCESS_STATE_")
        );
        if p.get("policy").is_none() && p["bindingExplanations"].as_array().is_none() {
            out += "  (the caller may not read this policy, so it could not be explained)\n";
            continue;
        }
        let mut any = false;
        for b in bindings(p) {
            any = true;
            let role_text = if role_included(b) {
                "includes the permission"
            } else {
                "does not include the permission"
            };
            let member_text = if membership_matched(b) {
                let m = matched_members(b);
                if m.is_empty() {
                    "principal matched".to_string()
                } else {
                    format!("principal matched as {}", m.join(", "))
                }
            } else {
                "principal not a member".to_string()
            };
            let mut line = format!("  - {}: {role_text}; {member_text}", s(b, "role"));
            if b["condition"].is_object() {
                let outcome = match condition_value(b) {
                    Some(true) => "true".to_string(),
                    Some(false) => "false".to_string(),
                    None => {
                        let err = b["conditionExplanation"]["errors"][0]["message"]
                            .as_str()
                            .unwrap_or("could not be evaluated");
                        format!("error ({err})")
                    }
                };
                line += &format!("; condition {} is {outcome}", condition_name(b));
            }
            let state = if granted(s(b, "allowAccessState")) {
                "GRANTED"
            } else {
                "NOT_GRANTED"
            };
            out += &format!("{line} => {state}\n");
        }
        if !any {
            out += "  (no bindings)\n";
        }
    }
    if s(&resp["denyPolicyExplanation"], "denyAccessState") == "DENY_ACCESS_STATE_DENIED" {
        out += "\nDeny policies: DENIED\n";
        for (resource, policy) in denying_policies(resp) {
            out += &format!("  - {policy} (on {resource}) denies it\n");
        }
    }
    out += &format!("\n{}\n", conclusion(resp, principal, permission));
    out
}

/// One line: what grants the access, or what is missing.
pub fn conclusion(resp: &Value, principal: &str, permission: &str) -> String {
    let all: Vec<(&Value, &Value)> = policies(resp)
        .flat_map(|p| bindings(p).map(move |b| (p, b)))
        .collect();
    let on = |p: &Value| s(p, "fullResourceName").to_string();
    match s(resp, "overallAccessState") {
        "CAN_ACCESS" => {
            let by: Vec<String> = all
                .iter()
                .filter(|(_, b)| granted(s(b, "allowAccessState")))
                .map(|(p, b)| format!("{} on {}", s(b, "role"), on(p)))
                .collect();
            if by.is_empty() {
                format!("Conclusion: {principal} has {permission}.")
            } else {
                format!(
                    "Conclusion: {principal} has {permission}, granted by {}.",
                    by.join("; ")
                )
            }
        }
        "CANNOT_ACCESS" => {
            if s(&resp["denyPolicyExplanation"], "denyAccessState") == "DENY_ACCESS_STATE_DENIED"
                && all.iter().any(|(_, b)| granted(s(b, "allowAccessState")))
            {
                let names: Vec<String> =
                    denying_policies(resp).into_iter().map(|(_, p)| p).collect();
                return format!(
                    "Conclusion: {principal} lacks {permission}: an allow binding grants it, but \
                     deny policy {} denies it.",
                    names.join(", ")
                );
            }
            // The nearest miss first: role and member right, condition false.
            let cond: Vec<String> = all
                .iter()
                .filter(|(_, b)| role_included(b) && membership_matched(b))
                .filter(|(_, b)| b["condition"].is_object() && condition_value(b) != Some(true))
                .map(|(p, b)| {
                    let outcome = if condition_value(b) == Some(false) {
                        "false"
                    } else {
                        "not evaluable"
                    };
                    format!(
                        "{} on {} would grant it, but its condition {} is {outcome}",
                        s(b, "role"),
                        on(p),
                        condition_name(b)
                    )
                })
                .collect();
            if !cond.is_empty() {
                return format!(
                    "Conclusion: {principal} lacks {permission}: {}.",
                    cond.join("; ")
                );
            }
            let roles: Vec<String> = all
                .iter()
                .filter(|(_, b)| role_included(b))
                .map(|(p, b)| format!("{} on {}", s(b, "role"), on(p)))
                .collect();
            if !roles.is_empty() {
                return format!(
                    "Conclusion: {principal} lacks {permission}: it is not a member of any binding \
                     whose role includes the permission ({}).",
                    roles.join("; ")
                );
            }
            format!(
                "Conclusion: {principal} lacks {permission}: no binding grants the permission (no \
                 role bound on the resource or its ancestors includes it)."
            )
        }
        _ => {
            let hidden: Vec<String> = policies(resp)
                .filter(|p| s(p, "allowAccessState") == "ALLOW_ACCESS_STATE_UNKNOWN_INFO")
                .map(on)
                .collect();
            if hidden.is_empty() {
                format!("Conclusion: whether {principal} has {permission} could not be determined.")
            } else {
                format!(
                    "Conclusion: whether {principal} has {permission} could not be determined: the \
                     caller may not read the policies of {}.",
                    hidden.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, included: bool, matched: bool, cond: Option<bool>) -> Value {
        let mut b = json!({
            "role": role,
            "rolePermission": if included { "ROLE_PERMISSION_INCLUDED" } else { "ROLE_PERMISSION_NOT_INCLUDED" },
            "combinedMembership": {"membership": if matched { "MEMBERSHIP_MATCHED" } else { "MEMBERSHIP_NOT_MATCHED" }},
            "allowAccessState": if included && matched && cond != Some(false) { "ALLOW_ACCESS_STATE_GRANTED" } else { "ALLOW_ACCESS_STATE_NOT_GRANTED" },
        });
        if matched {
            b["memberships"] = json!({"user:a@x.com": {"membership": "MEMBERSHIP_MATCHED"}});
        }
        if let Some(v) = cond {
            b["condition"] = json!({"title": "old", "expression": "false"});
            b["conditionExplanation"] = json!({"value": v});
        }
        b
    }

    fn resp(overall: &str, bs: Vec<Value>) -> Value {
        json!({"overallAccessState": overall, "allowPolicyExplanation": {"explainedPolicies": [
            {"fullResourceName": "//cloudresourcemanager.googleapis.com/projects/p",
             "allowAccessState": "ALLOW_ACCESS_STATE_NOT_GRANTED", "policy": {}, "bindingExplanations": bs}]}})
    }

    #[test]
    fn conclusions_name_what_is_missing() {
        let r = resp(
            "CANNOT_ACCESS",
            vec![binding("roles/viewer", true, true, Some(false))],
        );
        let c = conclusion(&r, "a@x.com", "p.get");
        assert!(c.contains("condition \"old\" (`false`) is false"), "{c}");
        let r = resp(
            "CANNOT_ACCESS",
            vec![binding("roles/owner", true, false, None)],
        );
        assert!(conclusion(&r, "a@x.com", "p.get").contains("not a member"));
        let r = resp(
            "CANNOT_ACCESS",
            vec![binding("roles/browser", false, true, None)],
        );
        assert!(conclusion(&r, "a@x.com", "p.get").contains("no binding grants the permission"));
        let r = resp(
            "CAN_ACCESS",
            vec![binding("roles/browser", true, true, None)],
        );
        let c = conclusion(&r, "a@x.com", "p.get");
        assert!(c.contains("granted by roles/browser on //"), "{c}");
        let text = summary(&r, "a@x.com", "p.get");
        assert!(text.contains("principal matched as user:a@x.com"), "{text}");
    }
}
