//! IAM deny rules (IAM v2 deny policies), matched purely: which principals and permissions a
//! rule names, in Google's v2 spellings, against a [`Principal`] and a v1 permission name.
//!
//! "IAM always checks relevant deny policies before checking relevant allow policies": a
//! rule that matches denies whatever any role grants. A rule matches a principal named in
//! `deniedPrincipals` (directly, through a group, `public:all`) unless it is also named in
//! `exceptionPrincipals`, for a permission in `deniedPermissions` not in
//! `exceptionPermissions`, where its `denialCondition` (a [`TagCondition`]) holds over the
//! resource's effective tags.

use crate::condition::Tag;
use crate::condition::tags::TagCondition;
use std::sync::Arc;

/// A deny rule with its principals as member strings and its permissions as v1 patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct DenyRule {
    /// The deny policy the rule belongs to (`policies/…/denypolicies/ID`).
    pub policy: String,
    pub denied_principals: Vec<String>,
    pub exception_principals: Vec<String>,
    /// v1 permission patterns (`resourcemanager.projects.delete`, `run.workerpools.*`).
    pub denied_permissions: Vec<String>,
    pub exception_permissions: Vec<String>,
    /// The `denialCondition`, if any. `None`: the rule holds everywhere below its
    /// attachment point.
    pub condition: Option<DenyCondition>,
}

/// A rule's `denialCondition`, parsed once when the rule is indexed and evaluated at check
/// time over the effective tags the snapshot holds (so a tag change recompiles nothing).
#[derive(Debug, Clone)]
pub struct DenyCondition {
    expression: String,
    /// `None`: the stored expression no longer parses (conditions are checked when written);
    /// it then holds everywhere, as deny conditions fail closed.
    parsed: Option<Arc<TagCondition>>,
}

impl DenyCondition {
    pub fn new(expression: String) -> DenyCondition {
        let parsed = TagCondition::parse(&expression).ok().map(Arc::new);
        DenyCondition { expression, parsed }
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether the condition holds for a resource with these effective tags.
    pub fn holds(&self, tags: &[Tag]) -> bool {
        self.parsed.as_ref().is_none_or(|c| c.eval(tags))
    }
}

impl PartialEq for DenyCondition {
    fn eq(&self, other: &DenyCondition) -> bool {
        self.expression == other.expression
    }
}

/// A v2 principal identifier as the member string allow policies use:
/// `principal://goog/subject/EMAIL` → `user:EMAIL`,
/// `principalSet://goog/group/EMAIL` → `group:EMAIL`,
/// `principal://iam.googleapis.com/projects/-/serviceAccounts/EMAIL` → `serviceAccount:EMAIL`,
/// `principalSet://goog/public:all` → `allUsers` (every principal is one of those).
pub fn member_of_principal(v2: &str) -> Result<String, String> {
    if v2 == "principalSet://goog/public:all" {
        return Ok("allUsers".to_string());
    }
    let email = |rest: &str| -> Result<String, String> {
        if rest.contains('@') && !rest.contains('/') {
            Ok(rest.to_ascii_lowercase())
        } else {
            Err(format!("Invalid principal identifier '{v2}'."))
        }
    };
    if let Some(rest) = v2.strip_prefix("principal://goog/subject/") {
        return Ok(format!("user:{}", email(rest)?));
    }
    if let Some(rest) = v2.strip_prefix("principalSet://goog/group/") {
        return Ok(format!("group:{}", email(rest)?));
    }
    if let Some(rest) =
        v2.strip_prefix("principal://iam.googleapis.com/projects/-/serviceAccounts/")
    {
        return Ok(format!("serviceAccount:{}", email(rest)?));
    }
    Err(format!(
        "Unsupported principal identifier '{v2}': Runpool knows principal://goog/subject/EMAIL, \
         principalSet://goog/group/EMAIL, \
         principal://iam.googleapis.com/projects/-/serviceAccounts/EMAIL and \
         principalSet://goog/public:all."
    ))
}

/// A v2 permission (`cloudresourcemanager.googleapis.com/projects.delete`,
/// `run.googleapis.com/workerpools.*`) as a v1 pattern (`resourcemanager.projects.delete`).
pub fn v1_permission(v2: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "Invalid permission '{v2}': deny rules name permissions as SERVICE_FQDN/RESOURCE.VERB, \
             e.g. cloudresourcemanager.googleapis.com/projects.delete."
        )
    };
    let (service, rest) = v2.split_once('/').ok_or_else(bad)?;
    let prefix = service.strip_suffix(".googleapis.com").ok_or_else(bad)?;
    // Resource Manager's permissions are `resourcemanager.*`, its host `cloudresourcemanager`.
    let prefix = if prefix == "cloudresourcemanager" {
        "resourcemanager"
    } else {
        prefix
    };
    if prefix.is_empty() || !rest.contains('.') || rest.starts_with('.') || rest.ends_with('.') {
        return Err(bad());
    }
    Ok(format!("{prefix}.{rest}"))
}

/// Whether a v1 permission matches a pattern whose `*` segments stand for any one segment
/// (a last `*`, for whatever follows).
pub fn permission_matches(pattern: &str, permission: &str) -> bool {
    let mut p = pattern.split('.');
    let mut q = permission.split('.');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some("*"), Some(_)) if pattern.ends_with(".*") && p.clone().next().is_none() => {
                return true;
            }
            (Some(a), Some(b)) if a == "*" || a == b => {}
            _ => return false,
        }
    }
}

impl DenyRule {
    /// Whether the rule is about a principal (before its condition), given which member
    /// strings name it (`Principal::is`).
    pub fn names_principal(&self, is: impl Fn(&str) -> bool) -> bool {
        self.denied_principals.iter().any(|m| is(m))
            && !self.exception_principals.iter().any(|m| is(m))
    }

    /// Whether the rule's condition holds at a hierarchy node with these effective tags.
    pub fn holds(&self, tags: &[Tag]) -> bool {
        self.condition.as_ref().is_none_or(|c| c.holds(tags))
    }

    /// Whether the rule denies this permission (before its condition).
    pub fn names_permission(&self, permission: &str) -> bool {
        self.denied_permissions
            .iter()
            .any(|d| permission_matches(d, permission))
            && !self
                .exception_permissions
                .iter()
                .any(|e| permission_matches(e, permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_names_read_as_v1_names() {
        assert_eq!(
            v1_permission("cloudresourcemanager.googleapis.com/projects.delete").unwrap(),
            "resourcemanager.projects.delete"
        );
        assert_eq!(
            v1_permission("iam.googleapis.com/serviceAccounts.actAs").unwrap(),
            "iam.serviceAccounts.actAs"
        );
        assert!(v1_permission("resourcemanager.projects.delete").is_err());
        assert!(v1_permission("run.googleapis.com/workerpools").is_err());
        assert_eq!(
            member_of_principal("principal://goog/subject/Alice@example.com").unwrap(),
            "user:alice@example.com"
        );
        assert_eq!(
            member_of_principal("principalSet://goog/group/devs@example.com").unwrap(),
            "group:devs@example.com"
        );
        assert_eq!(
            member_of_principal(
                "principal://iam.googleapis.com/projects/-/serviceAccounts/w@p.iam.gserviceaccount.com"
            )
            .unwrap(),
            "serviceAccount:w@p.iam.gserviceaccount.com"
        );
        assert_eq!(
            member_of_principal("principalSet://goog/public:all").unwrap(),
            "allUsers"
        );
        assert!(member_of_principal("user:alice@example.com").is_err());
    }

    #[test]
    fn wildcards_stand_for_segments() {
        let m = permission_matches;
        assert!(m("run.workerpools.*", "run.workerpools.create"));
        assert!(m("run.*.create", "run.workerpools.create"));
        assert!(!m("run.*.create", "run.workerpools.delete"));
        assert!(!m(
            "run.workerpools.create",
            "run.workerpools.createTagBinding"
        ));
        assert!(!m("run.workerpools.*", "run.jobs.create"));
        assert!(m("run.*", "run.workerpools.create"));
    }
}
