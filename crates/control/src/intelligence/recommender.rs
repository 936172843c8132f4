//! The recommender (`recommender.googleapis.com/v1`), computed from what the audit log saw.
//!
//! Google's recommenders look at 90 days of traffic; Runpool has the traffic of a test run and
//! answers at once from the audit log's usage table (one row per principal, permission,
//! resource and worker pool, so the cost does not grow with the number of entries):
//!
//! - `google.iam.policy.Recommender`, per binding of an allow policy: `REMOVE_ROLE` when none
//!   of the role's permissions was used in the window, `REPLACE_ROLE` with the smallest set of
//!   predefined roles that covers the used ones and grants nothing the old role did not
//!   ([`runpool_authz::cover`]); each with its `google.iam.policy.Insight` naming the
//!   exercised permissions.
//! - `google.run.service.IdentityRecommender` (Cloud Run's identity recommender, served for
//!   worker pools): a pool that runs as the default compute account or as an account other
//!   pools share gets a dedicated account with the minimal roles covering what its own
//!   instances exercised (or were let through in `soft` mode), its deployers allowed to act as
//!   it, and the pool switched to it; with the commands that do it.
//!
//! A recommendation's id and etag derive from its content, so the same situation gives the
//! same name on every list. Marking one (claimed, succeeded, failed, dismissed) stores it,
//! which freezes its content as Google does; stored ones stay listed after the situation that
//! produced them is gone.

use crate::base::error::{Code, Error, Result};
use crate::base::hierarchy::Node;
use crate::base::state::{Change, State};
use crate::iam::serviceaccounts::default_compute_email;
use crate::intelligence::audit::Usage;
use crate::intelligence::troubleshoot::member_of;
use crate::{Caller, Control};
use google_cloud_recommender_v1::model::{
    Impact, Insight, InsightStateInfo, Operation, OperationGroup, Recommendation,
    RecommendationContent, RecommendationStateInfo, SecurityProjection, impact, insight,
    insight_state_info, operation, recommendation, recommendation_state_info,
};
use runpool_authz as authz;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

pub const IAM_RECOMMENDER: &str = "google.iam.policy.Recommender";
pub const IAM_INSIGHT: &str = "google.iam.policy.Insight";
pub const RUN_IDENTITY_RECOMMENDER: &str = "google.run.service.IdentityRecommender";
const SERVICE: &str = "recommender.googleapis.com";
/// Cloud Run permissions that make a principal a pool's deployer.
const DEPLOY_PERMISSIONS: &[&str] = &["run.workerpools.create", "run.workerpools.update"];

/// The recommenders Runpool serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recommender {
    Iam,
    RunIdentity,
}

impl Recommender {
    fn parse(id: &str) -> Result<Recommender> {
        match id {
            IAM_RECOMMENDER => Ok(Recommender::Iam),
            RUN_IDENTITY_RECOMMENDER => Ok(Recommender::RunIdentity),
            other => Err(Error::invalid(format!(
                "Recommender '{other}' is not supported (Runpool serves {IAM_RECOMMENDER} and {RUN_IDENTITY_RECOMMENDER})."
            ))),
        }
    }

    fn id(self) -> &'static str {
        match self {
            Recommender::Iam => IAM_RECOMMENDER,
            Recommender::RunIdentity => RUN_IDENTITY_RECOMMENDER,
        }
    }

    /// `recommender.iamPolicyRecommendations.list`, …
    fn permission(self, verb: &str) -> String {
        match self {
            Recommender::Iam => format!("recommender.iamPolicyRecommendations.{verb}"),
            Recommender::RunIdentity => {
                format!("recommender.runServiceIdentityRecommendations.{verb}")
            }
        }
    }

    fn check_location(self, location: &str) -> Result<()> {
        let ok = match self {
            Recommender::Iam => location == "global",
            Recommender::RunIdentity => crate::run::workerpools::REGIONS.contains(&location),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "Location '{location}' is not supported by recommender {}.",
                self.id()
            )))
        }
    }
}

/// `projects/P/locations/L/{collection}/ID`, split into the node (`projects/P`), the location
/// and the id.
fn split_parent<'a>(parent: &'a str, collection: &str) -> Result<(String, &'a str, &'a str)> {
    let parts: Vec<&str> = parent.split('/').collect();
    match parts.as_slice() {
        [
            kind @ ("projects" | "folders" | "organizations"),
            id,
            "locations",
            loc,
            c,
            rid,
        ] if *c == collection && !id.is_empty() => Ok((format!("{kind}/{id}"), loc, rid)),
        _ => Err(Error::invalid(format!("Invalid parent: '{parent}'."))),
    }
}

/// `…/recommendations/ID` → (parent, id).
fn split_name<'a>(name: &'a str, collection: &str) -> Result<(&'a str, &'a str)> {
    name.rsplit_once(&format!("/{collection}/"))
        .filter(|(_, id)| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| Error::invalid(format!("Invalid resource name: '{name}'.")))
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// A stable UUID-shaped id from the parts that make a recommendation what it is.
fn stable_id(parts: &[&str]) -> String {
    let h = hex::encode(&digest(parts)[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A fingerprint of the content: the same content gives the same etag on every computation
/// (maps are hashed with their keys sorted, whatever order they were built in).
fn etag_of(v: &impl serde::Serialize) -> String {
    fn canonical(v: Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<_> = m.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (k, v) in entries {
                    out.push_str(&json!(k).to_string());
                    out.push(':');
                    canonical(v, out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for i in items {
                    canonical(i, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut body = String::new();
    canonical(serde_json::to_value(v).unwrap_or_default(), &mut body);
    format!("\"{}\"", hex::encode(&digest(&[&body])[..8]))
}

use crate::base::time::now;
use crate::intelligence::audit::OBSERVATION_DAYS;

fn as_struct(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Default::default(),
    }
}

/// Members the IAM recommender speaks about: users, groups and service accounts, but not
/// Google's own service agents, nor public or domain-wide grants.
fn recommendable(member: &str) -> bool {
    match member.split_once(':') {
        Some(("user" | "group", _)) => true,
        Some(("serviceAccount", email)) => crate::iam::serviceaccounts::is_simulated_account(email),
        _ => false,
    }
}

/// An IAM policy edit as Google's IAM recommendations spell it.
fn policy_op(
    action: &str,
    resource_type: &str,
    resource: &str,
    member: &str,
    role: &str,
) -> Operation {
    let mut op = Operation::new();
    op.action = action.to_string();
    op.resource_type = resource_type.to_string();
    op.resource = resource.to_string();
    let mut filters = HashMap::from([
        ("/iamPolicy/bindings/*/role".to_string(), json!(role)),
        (
            "/iamPolicy/bindings/*/condition/expression".to_string(),
            json!(""),
        ),
    ]);
    if action == "add" {
        op.path = "/iamPolicy/bindings/*/members/-".to_string();
        op.path_value = Some(operation::PathValue::Value(Box::new(json!(member))));
    } else {
        op.path = "/iamPolicy/bindings/*/members/*".to_string();
        filters.insert("/iamPolicy/bindings/*/members/*".to_string(), json!(member));
    }
    op.path_filters = filters;
    op
}

fn security_impact(revoked: usize) -> Impact {
    let mut p = SecurityProjection::new();
    p.details = Some(as_struct(json!({"revokedIamPermissionsCount": revoked})));
    let mut i = Impact::new();
    i.category = impact::Category::Security;
    i.projection = Some(impact::Projection::SecurityProjection(Box::new(p)));
    i
}

/// Fill in the parts every recommendation shares, and its content-derived etag.
fn finish(mut r: Recommendation, targets: Vec<String>) -> Recommendation {
    r.target_resources = targets;
    let mut state = RecommendationStateInfo::new();
    state.state = recommendation_state_info::State::Active;
    r.state_info = Some(state);
    r.etag = etag_of(&(&r.description, &r.content, &r.recommender_subtype));
    r.last_refresh_time = Some(now());
    r
}

/// What one list computes: the recommendations and the insights behind them.
#[derive(Default)]
struct Computed {
    recommendations: Vec<Recommendation>,
    insights: Vec<Insight>,
}

/// Where a node lives on the wire, for operations and target resources.
fn node_resource(st: &State, node: &Node) -> (String, &'static str) {
    let shown = match st.projects.get(&node.name) {
        Some(p) => format!("projects/{}", p.project_id),
        None => node.name.clone(),
    };
    (
        format!("//cloudresourcemanager.googleapis.com/{shown}"),
        node.kind.resource_type(),
    )
}

fn iam_recommendations(
    st: &State,
    snap: &authz::Snapshot,
    node: &Node,
    parent: &str,
    usage: &[Usage],
) -> Computed {
    let mut out = Computed::default();
    let Some(policy) = st.iam_policies.get(&node.name) else {
        return out;
    };
    let cat = snap.catalog();
    let (resource, resource_type) = node_resource(st, node);
    let target = format!("//cloudresourcemanager.googleapis.com/{}", node.name);
    // Which used resources lie under this node, and who each caller is, asked once.
    let mut under: HashMap<&str, bool> = HashMap::new();
    for u in usage {
        under.entry(&u.resource).or_insert_with(|| {
            // Something since deleted (or never created) is placed by its project.
            let mut ancestry = snap.ancestry(&u.resource);
            if ancestry.is_empty() {
                let project: Vec<&str> = u.resource.splitn(3, '/').take(2).collect();
                ancestry = snap.ancestry(&project.join("/"));
            }
            ancestry.contains(&node.name)
        });
    }
    // Each granted use, filed under every member string its caller answers to (itself, its
    // groups, its domain), so a binding's member finds its uses without a scan.
    let mut identities: HashMap<&str, Vec<String>> = HashMap::new();
    let mut by_member: HashMap<String, Vec<&Usage>> = HashMap::new();
    for u in usage
        .iter()
        .filter(|u| u.granted && under[u.resource.as_str()])
    {
        let ids = identities.entry(&u.principal).or_insert_with(|| {
            snap.principal(&member_of(&u.principal))
                .identities()
                .map(str::to_string)
                .collect()
        });
        for id in ids.iter() {
            by_member.entry(id.clone()).or_default().push(u);
        }
    }
    // Many bindings share a role and a set of used permissions: search each cover once.
    let mut covers: HashMap<(String, Vec<String>), Option<authz::cover::Cover>> = HashMap::new();
    for b in &policy.bindings {
        // Like Google's, the recommender leaves conditional bindings alone.
        if b.condition.is_some() {
            continue;
        }
        let Some(role) = cat.role(&b.role) else {
            continue;
        };
        let total = role.permissions.len();
        for m in b.members.iter().filter(|m| recommendable(m)) {
            let exercised: BTreeSet<&str> = by_member
                .get(m.as_str())
                .into_iter()
                .flatten()
                .filter(|u| cat.role_grants(&b.role, &u.permission))
                .map(|u| u.permission.as_str())
                .collect();
            let insight_id = stable_id(&[IAM_INSIGHT, &node.name, m, &b.role]);
            let insight_name = format!(
                "{parent}/locations/global/insightTypes/{IAM_INSIGHT}/insights/{insight_id}"
            );
            let proposal = if exercised.is_empty() {
                Some(("REMOVE_ROLE", vec![], total))
            } else {
                let needed: Vec<String> = exercised.iter().map(|p| p.to_string()).collect();
                covers
                    .entry((b.role.clone(), needed))
                    .or_insert_with_key(|(role, needed)| {
                        authz::cover::minimal_roles_within(cat, needed, role)
                    })
                    .clone()
                    .filter(|c| c.permissions < total && c.roles != [b.role.clone()])
                    .map(|c| ("REPLACE_ROLE", c.roles, total - c.permissions))
            };
            let mut rec_name = None;
            if let Some((subtype, added, revoked)) = proposal {
                let mut ops: Vec<Operation> = added
                    .iter()
                    .map(|r| policy_op("add", resource_type, &resource, m, r))
                    .collect();
                ops.push(policy_op("remove", resource_type, &resource, m, &b.role));
                let mut group = OperationGroup::new();
                group.operations = ops;
                let mut content = RecommendationContent::new();
                content.operation_groups = vec![group];
                content.overview = Some(as_struct(json!({
                    "resource": resource,
                    "member": m,
                    "removedRole": b.role,
                    "addedRoles": added,
                    "minimumObservationPeriodInDays": OBSERVATION_DAYS.to_string(),
                })));
                let mut r = Recommendation::new();
                let id = stable_id(&[
                    IAM_RECOMMENDER,
                    &node.name,
                    m,
                    &b.role,
                    subtype,
                    &added.join(","),
                ]);
                r.name = format!(
                    "{parent}/locations/global/recommenders/{IAM_RECOMMENDER}/recommendations/{id}"
                );
                r.description = if subtype == "REMOVE_ROLE" {
                    "This role has not been used during the observation window.".to_string()
                } else {
                    "Replace the current role with a smaller role to cover the permissions needed."
                        .to_string()
                };
                r.recommender_subtype = subtype.to_string();
                r.primary_impact = Some(security_impact(revoked));
                // Basic roles are the broadest grants there are: Google ranks those higher.
                r.priority = if matches!(b.role.as_str(), "roles/owner" | "roles/editor") {
                    recommendation::Priority::P2
                } else {
                    recommendation::Priority::P4
                };
                r.content = Some(content);
                let mut link = recommendation::InsightReference::new();
                link.insight = insight_name.clone();
                r.associated_insights = vec![link];
                let r = finish(r, vec![target.clone()]);
                rec_name = Some(r.name.clone());
                out.recommendations.push(r);
            }
            let mut i = Insight::new();
            i.name = insight_name;
            i.description = format!(
                "{} of the {total} permissions in this role binding were used in the past {OBSERVATION_DAYS} days.",
                exercised.len()
            );
            i.target_resources = vec![target.clone()];
            i.insight_subtype = "PERMISSIONS_USAGE".to_string();
            i.content = Some(as_struct(json!({
                "role": b.role,
                "member": m,
                "condition": null,
                "exercisedPermissions": exercised.iter().map(|p| json!({"permission": p})).collect::<Vec<_>>(),
                "inferredPermissions": [],
                "currentTotalPermissionsCount": total.to_string(),
            })));
            i.observation_period =
                google_cloud_wkt::Duration::new(OBSERVATION_DAYS * 86_400, 0).ok();
            let mut state = InsightStateInfo::new();
            state.state = insight_state_info::State::Active;
            i.state_info = Some(state);
            i.category = insight::Category::Security;
            i.severity = insight::Severity::Low;
            i.associated_recommendations = rec_name
                .into_iter()
                .map(|n| {
                    let mut r = insight::RecommendationReference::new();
                    r.recommendation = n;
                    r
                })
                .collect();
            i.etag = etag_of(&i.content);
            i.last_refresh_time = Some(now());
            out.insights.push(i);
        }
    }
    out
}

/// A service account id made from a pool id: 6 to 30 characters, a letter first, no hyphen
/// last.
fn account_id_for(pool_id: &str) -> String {
    let mut id: String = pool_id.chars().take(30).collect();
    while id.ends_with('-') {
        id.pop();
    }
    if id.len() < 6 {
        id = format!("{id}-pool");
    }
    id
}

fn run_identity_recommendations(
    st: &State,
    snap: &authz::Snapshot,
    node: &Node,
    parent: &str,
    location: &str,
    usage: &[Usage],
) -> Computed {
    let mut out = Computed::default();
    let Some(project) = st.projects.get(&node.name) else {
        return out;
    };
    let number = node.name.trim_start_matches("projects/");
    let pid = &project.project_id;
    let identity_of = |p: &google_cloud_run_v2::model::WorkerPool| {
        p.template
            .as_ref()
            .map(|t| t.service_account.clone())
            .unwrap_or_default()
    };
    let mut sharing: HashMap<String, usize> = HashMap::new();
    for p in st.worker_pools.values() {
        *sharing.entry(identity_of(p)).or_default() += 1;
    }
    let prefix = format!("projects/{pid}/locations/{location}/workerPools/");
    let cat = snap.catalog();
    let ctx = authz::RequestContext::at(chrono::Utc::now());
    for (name, pool) in st.worker_pools.range(prefix.clone()..) {
        let Some(pool_id) = name.strip_prefix(&prefix) else {
            break;
        };
        let email = identity_of(pool);
        let default = email == default_compute_email(number);
        let shared = sharing.get(&email).copied().unwrap_or(0) > 1;
        if !default && !shared {
            continue;
        }
        let canonical = format!("projects/{number}/locations/{location}/workerPools/{pool_id}");
        let exercised: Vec<String> = usage
            .iter()
            .filter(|u| u.principal == email && u.workload == canonical && (u.granted || u.soft))
            .map(|u| u.permission.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let Some(cover) = (if exercised.is_empty() {
            Some(authz::cover::Cover {
                roles: vec![],
                permissions: 0,
                exact: true,
            })
        } else {
            authz::cover::minimal_roles(cat, &exercised)
        }) else {
            tracing::info!(pool = %name, "no predefined roles cover what the pool used; no recommendation");
            continue;
        };
        let mut deployers: Vec<String> = usage
            .iter()
            .filter(|u| u.granted && u.resource == canonical)
            .filter(|u| DEPLOY_PERMISSIONS.contains(&u.permission.as_str()))
            .map(|u| member_of(&u.principal))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        deployers.retain(|d| d != &format!("serviceAccount:{email}"));
        let account_id = account_id_for(pool_id);
        let new_email = format!("{account_id}@{pid}.iam.gserviceaccount.com");
        let current = snap.granted_permissions(
            &snap.principal(&format!("serviceAccount:{email}")),
            &node.name,
            &ctx,
        );
        let project_resource = format!("//cloudresourcemanager.googleapis.com/projects/{pid}");
        let account_resource =
            format!("//iam.googleapis.com/projects/{pid}/serviceAccounts/{new_email}");
        let pool_resource = format!("//run.googleapis.com/{name}");
        let mut ops = vec![];
        let mut commands = vec![];
        if !st.sa_emails.contains_key(&new_email) {
            let mut op = Operation::new();
            op.action = "add".to_string();
            op.resource_type = "iam.googleapis.com/ServiceAccount".to_string();
            op.resource = account_resource.clone();
            op.path = "/".to_string();
            op.path_value = Some(operation::PathValue::Value(Box::new(json!({
                "accountId": account_id,
                "displayName": format!("Worker pool {pool_id}"),
            }))));
            ops.push(op);
            commands.push(format!(
                "runpool iam service-accounts create {account_id} --project={pid} --display-name=\"Worker pool {pool_id}\""
            ));
        }
        let new_member = format!("serviceAccount:{new_email}");
        for role in &cover.roles {
            ops.push(policy_op(
                "add",
                "cloudresourcemanager.googleapis.com/Project",
                &project_resource,
                &new_member,
                role,
            ));
            commands.push(format!(
                "runpool projects add-iam-policy-binding {pid} --member={new_member} --role={role}"
            ));
        }
        for d in &deployers {
            ops.push(policy_op(
                "add",
                "iam.googleapis.com/ServiceAccount",
                &account_resource,
                d,
                "roles/iam.serviceAccountUser",
            ));
            commands.push(format!(
                "runpool iam service-accounts add-iam-policy-binding {new_email} --member={d} --role=roles/iam.serviceAccountUser"
            ));
        }
        let mut switch = Operation::new();
        switch.action = "replace".to_string();
        switch.resource_type = "run.googleapis.com/WorkerPool".to_string();
        switch.resource = pool_resource.clone();
        switch.path = "/template/serviceAccount".to_string();
        switch.path_value = Some(operation::PathValue::Value(Box::new(json!(new_email))));
        ops.push(switch);
        commands.push(format!(
            "runpool beta run worker-pools update {pool_id} --region={location} --project={pid} --service-account={new_email}"
        ));
        let mut group = OperationGroup::new();
        group.operations = ops;
        let mut content = RecommendationContent::new();
        content.operation_groups = vec![group];
        content.overview = Some(as_struct(json!({
            "workerPool": pool_resource,
            "currentServiceAccount": email,
            "reason": if default { "DEFAULT_SERVICE_ACCOUNT" } else { "SHARED_SERVICE_ACCOUNT" },
            "recommendedServiceAccount": new_email,
            "exercisedPermissions": exercised,
            "addedRoles": cover.roles,
            "deployers": deployers,
            "currentPermissionsCount": current,
            "recommendedPermissionsCount": cover.permissions,
            "commands": commands,
            "minimumObservationPeriodInDays": OBSERVATION_DAYS.to_string(),
        })));
        let mut r = Recommendation::new();
        let id = stable_id(&[
            RUN_IDENTITY_RECOMMENDER,
            name,
            &email,
            &cover.roles.join(","),
            &deployers.join(","),
        ]);
        r.name = format!(
            "{parent}/locations/{location}/recommenders/{RUN_IDENTITY_RECOMMENDER}/recommendations/{id}"
        );
        r.description = if default {
            format!(
                "Worker pool {pool_id} runs as the default compute service account, which holds {current} permissions. Give it a dedicated service account with only the roles its instances used."
            )
        } else {
            format!(
                "Worker pool {pool_id} shares service account {email} with other worker pools. Give it a dedicated service account with only the roles its instances used."
            )
        };
        r.recommender_subtype = "CREATE_DEDICATED_SERVICE_ACCOUNT".to_string();
        r.primary_impact = Some(security_impact(current.saturating_sub(cover.permissions)));
        r.priority = recommendation::Priority::P2;
        r.content = Some(content);
        out.recommendations.push(finish(r, vec![pool_resource]));
    }
    out
}

/// A recommendation's state as its enum name, for messages.
fn state_name(s: &recommendation_state_info::State) -> &str {
    s.name().unwrap_or("STATE_UNSPECIFIED")
}

/// The state a `mark*` verb moves a recommendation to.
pub fn mark_target(verb: &str) -> Option<recommendation_state_info::State> {
    use recommendation_state_info::State as S;
    Some(match verb {
        "markClaimed" => S::Claimed,
        "markSucceeded" => S::Succeeded,
        "markFailed" => S::Failed,
        "markDismissed" => S::Dismissed,
        _ => return None,
    })
}

/// A parsed list filter: `field = value` terms, `OR` binding tighter than `AND` (AIP-160).
struct Filter(Vec<Vec<(String, String)>>);

impl Filter {
    fn parse(s: &str) -> Result<Filter> {
        let mut all = vec![];
        for conj in split_words(s, "AND") {
            let mut any = vec![];
            for term in split_words(&conj, "OR") {
                let term = term.trim().trim_start_matches('(').trim_end_matches(')');
                let (f, v) = term
                    .split_once('=')
                    .ok_or_else(|| Error::invalid(format!("Invalid filter: '{s}'.")))?;
                any.push((f.trim().to_string(), v.trim().trim_matches('"').to_string()));
            }
            all.push(any);
        }
        Ok(Filter(all))
    }

    fn matches(&self, v: &Value) -> bool {
        self.0.iter().all(|any| {
            any.iter().any(|(f, want)| {
                let mut cur = v;
                for part in f.split('.') {
                    cur = &cur[part];
                }
                match cur {
                    Value::String(s) => s == want,
                    Value::Array(items) => items.iter().any(|i| i.as_str() == Some(want)),
                    other => want.parse::<Value>().is_ok_and(|w| w == *other),
                }
            })
        })
    }
}

fn split_words(s: &str, word: &str) -> Vec<String> {
    let sep = format!(" {word} ");
    s.split(sep.as_str())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Enum names a filter compares against: the wire names, not the numbers models carry.
fn filter_view(r: &Recommendation) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(s) = &r.state_info {
        v["stateInfo"]["state"] = json!(state_name(&s.state));
    }
    v["priority"] = json!(r.priority.name().unwrap_or("PRIORITY_UNSPECIFIED"));
    v
}

/// [`filter_view`] for insights: `stateInfo.state`, `severity` and `category` by name, as
/// Google's filters write them (`stateInfo.state = ACTIVE`, `severity = HIGH`).
fn insight_filter_view(i: &Insight) -> Value {
    let mut v = serde_json::to_value(i).unwrap_or_default();
    if let Some(s) = &i.state_info {
        v["stateInfo"]["state"] = json!(s.state.name().unwrap_or("STATE_UNSPECIFIED"));
    }
    v["severity"] = json!(i.severity.name().unwrap_or("SEVERITY_UNSPECIFIED"));
    v["category"] = json!(i.category.name().unwrap_or("CATEGORY_UNSPECIFIED"));
    v
}

impl Control {
    /// A recommender parent (`projects/P/locations/L/recommenders/R`) resolved: its node, on
    /// which `recommender.…Recommendations.VERB` is checked, its location and recommender.
    fn recommender_at(
        &self,
        caller: &Caller,
        parent: &str,
        verb: &str,
    ) -> Result<(Node, String, Recommender)> {
        let (node_name, location, rid) = split_parent(parent, "recommenders")?;
        let which = Recommender::parse(rid)?;
        which.check_location(location)?;
        let node = self.service_node(caller, &node_name, &which.permission(verb), SERVICE)?;
        Ok((node, location.to_string(), which))
    }

    /// An insight type parent (`projects/P/locations/global/insightTypes/T`) resolved: its
    /// node, on which `recommender.iamPolicyInsights.VERB` is checked, and its location.
    fn insight_type_at(&self, caller: &Caller, parent: &str, verb: &str) -> Result<(Node, String)> {
        let (node_name, location, type_id) = split_parent(parent, "insightTypes")?;
        if type_id != IAM_INSIGHT {
            return Err(Error::invalid(format!(
                "Insight type '{type_id}' is not supported (Runpool serves {IAM_INSIGHT})."
            )));
        }
        Recommender::Iam.check_location(location)?;
        let permission = format!("recommender.iamPolicyInsights.{verb}");
        let node = self.service_node(caller, &node_name, &permission, SERVICE)?;
        Ok((node, location.to_string()))
    }

    fn compute(&self, node: &Node, location: &str, which: Recommender) -> Result<Computed> {
        let usage = match self.audit_log() {
            Some(log) => {
                log.usage(chrono::Utc::now() - chrono::Duration::days(OBSERVATION_DAYS))?
            }
            None => vec![],
        };
        let st = self.read();
        let snap = self.snapshot();
        // Names carry the project number, as Google's do.
        let parent = node.name.as_str();
        Ok(match which {
            Recommender::Iam => iam_recommendations(&st, &snap, node, parent, &usage),
            Recommender::RunIdentity => {
                run_identity_recommendations(&st, &snap, node, parent, location, &usage)
            }
        })
    }

    /// Every recommendation of a recommender under `node`: the computed ones (or their
    /// stored, frozen versions once marked), then the stored ones no longer computed.
    fn current_recommendations(
        &self,
        node: &Node,
        location: &str,
        which: Recommender,
    ) -> Result<Vec<Recommendation>> {
        let computed = self.compute(node, location, which)?.recommendations;
        let prefix = format!(
            "{}/locations/{location}/recommenders/{}/recommendations/",
            node.name,
            which.id()
        );
        let st = self.read();
        let mut seen = BTreeSet::new();
        let mut out: Vec<Recommendation> = computed
            .into_iter()
            .map(|r| {
                seen.insert(r.name.clone());
                st.recommendations.get(&r.name).cloned().unwrap_or(r)
            })
            .collect();
        out.extend(
            st.recommendations
                .range(prefix.clone()..)
                .take_while(|(n, _)| n.starts_with(&prefix))
                .filter(|(n, _)| !seen.contains(*n))
                .map(|(_, r)| r.clone()),
        );
        Ok(out)
    }

    /// `recommendations.list`: `recommender.…Recommendations.list` on the parent.
    pub fn list_recommendations(
        &self,
        caller: &Caller,
        parent: &str,
        filter: &str,
    ) -> Result<Vec<Recommendation>> {
        let (node, location, which) = self.recommender_at(caller, parent, "list")?;
        let filter = Filter::parse(filter)?;
        Ok(self
            .current_recommendations(&node, &location, which)?
            .into_iter()
            .filter(|r| filter.matches(&filter_view(r)))
            .collect())
    }

    /// `recommendations.get`.
    pub fn get_recommendation(&self, caller: &Caller, name: &str) -> Result<Recommendation> {
        let (parent, _) = split_name(name, "recommendations")?;
        let (node, location, which) = self.recommender_at(caller, parent, "get")?;
        let canonical = name.replacen(&node.shown, &node.name, 1);
        self.current_recommendations(&node, &location, which)?
            .into_iter()
            .find(|r| r.name == canonical)
            .ok_or_else(|| Error::not_found(format!("Recommendation {name} not found.")))
    }

    /// `markClaimed` / `markSucceeded` / `markFailed` / `markDismissed`: the etag must be
    /// the current one; dismissing applies to active recommendations only, the others to any
    /// but dismissed ones. The marked recommendation is stored, its content frozen.
    pub fn mark_recommendation(
        &self,
        caller: &Caller,
        name: &str,
        to: recommendation_state_info::State,
        etag: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Recommendation> {
        use recommendation_state_info::State as S;
        let (parent, _) = split_name(name, "recommendations")?;
        self.recommender_at(caller, parent, "update")?;
        let mut r = self.get_recommendation(caller, name)?;
        if etag.is_empty() {
            return Err(Error::invalid("etag is required."));
        }
        if etag != r.etag {
            return Err(Error::new(
                Code::Aborted,
                "The etag provided does not match the recommendation's current etag; get it again and retry.",
            ));
        }
        let from = r
            .state_info
            .as_ref()
            .map(|s| s.state.clone())
            .unwrap_or(S::Active);
        let allowed = match to {
            S::Dismissed => from == S::Active,
            _ => from != S::Dismissed,
        };
        if !allowed {
            return Err(Error::failed_precondition(format!(
                "A recommendation in state {} cannot be marked {}.",
                state_name(&from),
                state_name(&to)
            )));
        }
        let mut info = RecommendationStateInfo::new();
        info.state = to;
        info.state_metadata = metadata;
        r.state_info = Some(info);
        r.etag = etag_of(&(&r.etag, &r.state_info));
        r.last_refresh_time = Some(now());
        let stored = r.clone();
        self.write(|_| {
            Ok((
                vec![Change::Recommendation(stored.name.clone(), stored)],
                (),
            ))
        })?;
        Ok(r)
    }

    /// `insights.list` for `google.iam.policy.Insight`: one per binding looked at.
    pub fn list_insights(
        &self,
        caller: &Caller,
        parent: &str,
        filter: &str,
    ) -> Result<Vec<Insight>> {
        let (node, location) = self.insight_type_at(caller, parent, "list")?;
        let filter = Filter::parse(filter)?;
        Ok(self
            .compute(&node, &location, Recommender::Iam)?
            .insights
            .into_iter()
            .filter(|i| filter.matches(&insight_filter_view(i)))
            .collect())
    }

    /// `insights.get`.
    pub fn get_insight(&self, caller: &Caller, name: &str) -> Result<Insight> {
        let (parent, _) = split_name(name, "insights")?;
        let (node, location) = self.insight_type_at(caller, parent, "get")?;
        let canonical = name.replacen(&node.shown, &node.name, 1);
        self.compute(&node, &location, Recommender::Iam)?
            .insights
            .into_iter()
            .find(|i| i.name == canonical)
            .ok_or_else(|| Error::not_found(format!("Insight {name} not found.")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_as_google_writes_them() {
        let v = json!({"stateInfo": {"state": "ACTIVE"}, "recommenderSubtype": "REMOVE_ROLE", "priority": "P4"});
        let ok = |f: &str| Filter::parse(f).unwrap().matches(&v);
        assert!(ok(""));
        assert!(ok("stateInfo.state = ACTIVE"));
        assert!(ok(
            "stateInfo.state = ACTIVE AND recommenderSubtype = REMOVE_ROLE"
        ));
        assert!(ok("stateInfo.state = CLAIMED OR stateInfo.state = ACTIVE"));
        assert!(!ok("stateInfo.state = CLAIMED"));
        assert!(!ok("stateInfo.state = ACTIVE AND priority = P1"));
        assert!(Filter::parse("nonsense").is_err());
    }

    #[test]
    fn insight_filters_compare_enum_names() {
        let mut i = Insight::new();
        let mut state = InsightStateInfo::new();
        state.state = insight_state_info::State::Active;
        i.state_info = Some(state);
        i.severity = insight::Severity::Low;
        i.category = insight::Category::Security;
        let v = insight_filter_view(&i);
        let ok = |f: &str| Filter::parse(f).unwrap().matches(&v);
        assert!(ok("stateInfo.state = ACTIVE"));
        assert!(ok("severity = LOW AND category = SECURITY"));
        assert!(!ok("stateInfo.state = DISMISSED"));
    }

    #[test]
    fn names_split_into_their_parts() {
        let (node, loc, rid) = split_parent(
            "projects/demo/locations/global/recommenders/google.iam.policy.Recommender",
            "recommenders",
        )
        .unwrap();
        assert_eq!(
            (node.as_str(), loc, rid),
            ("projects/demo", "global", IAM_RECOMMENDER)
        );
        assert!(split_parent("projects/demo/locations/global", "recommenders").is_err());
        assert!(split_name("a/b/recommendations/", "recommendations").is_err());
        assert_eq!(account_id_for("w"), "w-pool");
        assert_eq!(
            account_id_for("a-very-long-worker-pool-name-indeed-yes"),
            "a-very-long-worker-pool-name-i"
        );
        assert_eq!(stable_id(&["a"]), stable_id(&["a"]));
        assert_ne!(stable_id(&["a", "b"]), stable_id(&["ab"]));
    }
}
