//! `get-iam-policy`, `set-iam-policy`, `add-iam-policy-binding` and `remove-iam-policy-binding`,
//! written once and shared by projects, folders, organizations (Resource Manager v3) and service
//! accounts (IAM v1), which differ only in their resource path and the noun in messages.

use crate::api::Api;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The resources that carry an allow policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Project,
    Folder,
    Organization,
    /// An IAM service account, given by email or unique ID.
    ServiceAccount,
    /// A Resource Manager tag key (`tagKeys/ID`).
    TagKey,
    /// A Resource Manager tag value (`tagValues/ID`).
    TagValue,
}

impl ResourceKind {
    fn collection(self) -> &'static str {
        match self {
            ResourceKind::Project => "projects",
            ResourceKind::Folder => "folders",
            ResourceKind::Organization => "organizations",
            ResourceKind::ServiceAccount => "serviceAccounts",
            ResourceKind::TagKey => "tagKeys",
            ResourceKind::TagValue => "tagValues",
        }
    }
    /// The noun of gcloud's `Updated IAM policy for NOUN [ID].`
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::Project => "project",
            ResourceKind::Folder => "folder",
            ResourceKind::Organization => "organization",
            ResourceKind::ServiceAccount => "serviceAccount",
            ResourceKind::TagKey => "tagKey",
            ResourceKind::TagValue => "tagValue",
        }
    }
    /// `projects/ID`, accepting the ID either bare or already prefixed; a service account's
    /// `projects/P/serviceAccounts/EMAIL`.
    pub fn name(self, id: &str) -> String {
        if self == ResourceKind::ServiceAccount {
            return service_account_name(id);
        }
        let prefix = format!("{}/", self.collection());
        let id = id.strip_prefix(&prefix).unwrap_or(id);
        format!("{prefix}{id}")
    }
    /// The URL path of the resource: Resource Manager v3, or IAM v1 for service accounts.
    fn path(self, name: &str) -> String {
        match self {
            ResourceKind::ServiceAccount => format!("/v1/{name}"),
            _ => format!("/v3/{name}"),
        }
    }
}

/// An IAM condition (`google.type.Expr` as IAM uses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub expression: String,
    pub title: String,
    pub description: Option<String>,
}

impl Condition {
    fn to_json(&self) -> Value {
        let mut v = json!({"expression": self.expression, "title": self.title});
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }
    fn matches(&self, v: &Value) -> bool {
        v["expression"].as_str() == Some(self.expression.as_str())
            && v["title"].as_str().unwrap_or("") == self.title
            && v["description"].as_str() == self.description.as_deref()
    }
}

/// What `--condition` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondArg {
    /// The flag was not given.
    Unspecified,
    /// `--condition=None`: the binding without a condition.
    None,
    Some(Condition),
}

/// Parse `expression=EXPR,title=TITLE[,description=DESC]` or `None`, like gcloud's ArgDict
/// (so a comma inside the expression needs `--condition-from-file`).
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let mut expression = None;
    let mut title = None;
    let mut description = None;
    for part in s.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!(
                "Bad syntax for dict arg: [{part}]. Expected `expression=EXPR,title=TITLE[,description=DESC]` or `None`."
            ));
        };
        let slot = match k.trim() {
            "expression" => &mut expression,
            "title" => &mut title,
            "description" => &mut description,
            other => {
                return Err(format!(
                    "valid keys are [description, expression, title]; received: {other}"
                ));
            }
        };
        *slot = Some(v.to_string());
    }
    let Some(expression) = expression else {
        return Err("Key [expression] required in dict arg but not provided".into());
    };
    let Some(title) = title else {
        return Err("Key [title] required in dict arg but not provided".into());
    };
    Ok(Condition {
        expression,
        title,
        description,
    })
}

/// A condition read from `--condition-from-file` (YAML or JSON with the same three keys).
pub fn condition_from_file(path: &PathBuf) -> Result<Condition> {
    let text = std::fs::read_to_string(path)?;
    let v: Value = runpool_control::base::yaml::from_str(&text).map_err(anyhow::Error::msg)?;
    let get = |k: &str| v[k].as_str().map(str::to_string);
    match (get("expression"), get("title")) {
        (Some(expression), Some(title)) => Ok(Condition {
            expression,
            title,
            description: get("description"),
        }),
        _ => bail!(
            "The condition file {} must have `expression` and `title`.",
            path.display()
        ),
    }
}

/// `--condition`: `None`, or a condition as [`parse_condition`] reads it.
pub fn parse_cond_arg(s: &str) -> Result<CondArg, String> {
    if s == "None" {
        Ok(CondArg::None)
    } else {
        parse_condition(s).map(CondArg::Some)
    }
}

fn has_conditions(policy: &Value) -> bool {
    bindings(policy)
        .iter()
        .any(|b| b.get("condition").is_some_and(|c| !c.is_null()))
}

fn bindings(policy: &Value) -> Vec<Value> {
    policy["bindings"].as_array().cloned().unwrap_or_default()
}

fn binding_condition_matches(b: &Value, cond: Option<&Condition>) -> bool {
    match (b.get("condition").filter(|c| !c.is_null()), cond) {
        (None, None) => true,
        (Some(c), Some(want)) => want.matches(c),
        _ => false,
    }
}

/// Add `member` to the binding for `role` with exactly this condition (creating it if needed).
/// Sets version 3, as gcloud does, so conditional bindings survive the write.
pub fn add_binding(policy: &mut Value, member: &str, role: &str, cond: &CondArg) -> Result<()> {
    let cond = match cond {
        CondArg::Some(c) => Some(c),
        CondArg::None => None,
        CondArg::Unspecified if has_conditions(policy) => bail!(
            "Adding a binding without specifying a condition to a policy containing conditions is \
             prohibited in non-interactive mode. Run the command again with `--condition=None`"
        ),
        CondArg::Unspecified => None,
    };
    let mut list = bindings(policy);
    match list
        .iter_mut()
        .find(|b| b["role"].as_str() == Some(role) && binding_condition_matches(b, cond))
    {
        Some(b) => {
            let members = b["members"].as_array_mut();
            match members {
                Some(m) => {
                    if !m.iter().any(|x| x.as_str() == Some(member)) {
                        m.push(json!(member));
                    }
                }
                None => b["members"] = json!([member]),
            }
        }
        None => {
            let mut b = json!({"role": role, "members": [member]});
            if let Some(c) = cond {
                b["condition"] = c.to_json();
            }
            list.push(b);
        }
    }
    policy["bindings"] = Value::Array(list);
    policy["version"] = json!(3);
    Ok(())
}

/// Remove `member` from `role`'s binding with this condition (or from all of `role`'s bindings
/// with `all`), dropping bindings left without members. Errors when nothing matched, as gcloud.
pub fn remove_binding(
    policy: &mut Value,
    member: &str,
    role: &str,
    cond: &CondArg,
    all: bool,
) -> Result<()> {
    let cond = match cond {
        _ if all => None,
        CondArg::Some(c) => Some(c),
        CondArg::None => None,
        CondArg::Unspecified
            if bindings(policy).iter().any(|b| {
                b["role"].as_str() == Some(role)
                    && b.get("condition").is_some_and(|c| !c.is_null())
                    && b["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some(member)))
            }) =>
        {
            bail!(
                "Removing a binding without specifying a condition from a policy containing \
                 conditions is prohibited in non-interactive mode. Run the command again with \
                 `--condition=None` to remove a binding without condition or run command with \
                 `--all` to remove all bindings of the specified principal and role."
            )
        }
        CondArg::Unspecified => None,
    };
    let mut removed = false;
    let mut list = bindings(policy);
    for b in list.iter_mut() {
        if b["role"].as_str() != Some(role) || !(all || binding_condition_matches(b, cond)) {
            continue;
        }
        if let Some(m) = b["members"].as_array_mut() {
            let before = m.len();
            m.retain(|x| x.as_str() != Some(member));
            removed |= m.len() != before;
        }
    }
    if !removed {
        bail!("Policy binding with the specified principal, role, and condition not found!");
    }
    list.retain(|b| b["members"].as_array().is_some_and(|m| !m.is_empty()));
    policy["bindings"] = Value::Array(list);
    policy["version"] = json!(3);
    Ok(())
}

/// Reject members without a type prefix before bothering the server.
pub fn check_member(member: &str) -> Result<()> {
    if member == "allUsers" || member == "allAuthenticatedUsers" || member.contains(':') {
        Ok(())
    } else {
        bail!(
            "Invalid value for [--member]: [{member}] must be `allUsers`, `allAuthenticatedUsers` \
             or TYPE:ID, e.g. user:alice@example.com, serviceAccount:sa@p.iam.gserviceaccount.com."
        )
    }
}

pub async fn get_policy(api: &Api, kind: ResourceKind, name: &str) -> Result<Value> {
    api.post(
        &format!("{}:getIamPolicy", kind.path(name)),
        &json!({"options": {"requestedPolicyVersion": 3}}),
    )
    .await
}

pub async fn set_policy(
    api: &Api,
    kind: ResourceKind,
    name: &str,
    policy: &Value,
) -> Result<Value> {
    let mut mask = vec!["bindings", "etag"];
    if policy.get("auditConfigs").is_some() {
        mask.push("auditConfigs");
    }
    api.post(
        &format!("{}:setIamPolicy", kind.path(name)),
        &json!({"policy": policy, "updateMask": mask.join(",")}),
    )
    .await
}

/// `projects/P/serviceAccounts/ACCOUNT` for an email, unique ID or full name.
pub fn service_account_name(account: &str) -> String {
    if account.starts_with("projects/") {
        return account.to_string();
    }
    let project = account
        .split_once('@')
        .and_then(|(_, domain)| domain.strip_suffix(".iam.gserviceaccount.com"))
        .filter(|p| !p.is_empty() && !p.contains('.'))
        .unwrap_or("-");
    format!("projects/{project}/serviceAccounts/{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(e: &str, t: &str) -> Condition {
        Condition {
            expression: e.into(),
            title: t.into(),
            description: None,
        }
    }

    #[test]
    fn parses_condition_flag() {
        assert_eq!(
            parse_condition(
                "expression=request.time < timestamp('2030-01-01T00:00:00Z'),title=t,description=d"
            )
            .unwrap(),
            Condition {
                expression: "request.time < timestamp('2030-01-01T00:00:00Z')".into(),
                title: "t".into(),
                description: Some("d".into())
            }
        );
        assert_eq!(parse_cond_arg("None").unwrap(), CondArg::None);
        assert!(
            parse_condition("title=t")
                .unwrap_err()
                .contains("[expression]")
        );
        assert!(
            parse_condition("expression=x")
                .unwrap_err()
                .contains("[title]")
        );
        assert!(parse_condition("expression=x,title=t,foo=1").is_err());
        assert!(parse_condition("garbage").is_err());
    }

    #[test]
    fn add_merges_into_existing_binding_and_dedupes() {
        let mut p = json!({"etag":"E","bindings":[{"role":"roles/viewer","members":["user:a@x"]}]});
        add_binding(&mut p, "user:b@x", "roles/viewer", &CondArg::Unspecified).unwrap();
        add_binding(&mut p, "user:b@x", "roles/viewer", &CondArg::Unspecified).unwrap();
        assert_eq!(
            p,
            json!({"etag":"E","version":3,"bindings":[{"role":"roles/viewer","members":["user:a@x","user:b@x"]}]})
        );
    }

    #[test]
    fn add_to_empty_policy_creates_binding() {
        let mut p = json!({"etag":"ACAB"});
        add_binding(&mut p, "user:a@x", "roles/owner", &CondArg::None).unwrap();
        assert_eq!(
            p["bindings"],
            json!([{"role":"roles/owner","members":["user:a@x"]}])
        );
    }

    #[test]
    fn conditional_bindings_are_separate() {
        let mut p = json!({"bindings":[{"role":"roles/viewer","members":["user:a@x"]}]});
        let c = CondArg::Some(cond("true", "always"));
        add_binding(&mut p, "user:a@x", "roles/viewer", &c).unwrap();
        assert_eq!(p["bindings"].as_array().unwrap().len(), 2);
        assert_eq!(
            p["bindings"][1]["condition"],
            json!({"expression":"true","title":"always"})
        );
        // Now the policy has conditions: an unqualified add/remove must be refused.
        assert!(add_binding(&mut p, "user:b@x", "roles/viewer", &CondArg::Unspecified).is_err());
        assert!(
            remove_binding(
                &mut p,
                "user:a@x",
                "roles/viewer",
                &CondArg::Unspecified,
                false
            )
            .is_err()
        );
        remove_binding(&mut p, "user:a@x", "roles/viewer", &CondArg::None, false).unwrap();
        assert_eq!(p["bindings"].as_array().unwrap().len(), 1);
        assert!(p["bindings"][0]["condition"].is_object());
    }

    #[test]
    fn remove_drops_empty_bindings_and_reports_missing() {
        let mut p = json!({"bindings":[{"role":"roles/viewer","members":["user:a@x"]},
                                       {"role":"roles/viewer","members":["user:a@x"],"condition":{"expression":"true","title":"t"}}]});
        remove_binding(
            &mut p,
            "user:a@x",
            "roles/viewer",
            &CondArg::Unspecified,
            true,
        )
        .unwrap();
        assert_eq!(p["bindings"], json!([]));
        let err =
            remove_binding(&mut p, "user:a@x", "roles/viewer", &CondArg::None, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Policy binding with the specified principal, role, and condition not found!"
        );
    }

    #[test]
    fn resource_names_accept_prefixed_ids() {
        assert_eq!(ResourceKind::Project.name("demo"), "projects/demo");
        assert_eq!(ResourceKind::Folder.name("folders/12"), "folders/12");
        assert_eq!(ResourceKind::Organization.name("34"), "organizations/34");
        assert!(check_member("alice@example.com").is_err());
        assert!(check_member("allUsers").is_ok());
    }
}
