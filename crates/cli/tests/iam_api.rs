//! IAM as Google decides it, over the REST API of the real binary: inheritance down the
//! hierarchy, groups, domains, conditions, etag concurrency, durability, authentication.

mod common;

use common::world::{FOLDER_ADMIN, ORG_ADMIN, Org, POLICY_ADMIN, folder, project};
use common::{Api, Server};
use serde_json::{Value, json};

/// Projects under nested folders and directly under the organization, and groups in groups.
fn world_yaml() -> String {
    let eng = folder("eng", "200000000001")
        .folder(folder("team-a", "200000000002").project(project("a-prod", "300000000001")));
    let ops = folder("ops", "200000000003").project(project("ops-prod", "300000000002"));
    Org::new()
        .admin(ORG_ADMIN)
        .admin(FOLDER_ADMIN)
        .admin(POLICY_ADMIN)
        .folder(eng)
        .folder(ops)
        .project(project("demo-project", "300000000003"))
        .after(
            "groups:
  - email: outer@example.com
    members: [group:middle@example.com]
  - email: middle@example.com
    members: [group:inner@example.com]
  - email: inner@example.com
    members: [user:carol@example.com]
",
        )
        .yaml()
}

fn world() -> (Server, Api) {
    let server = Server::start_with_world(&world_yaml());
    let api = server.api();
    (server, api)
}

/// Add one binding to a resource's policy through get → modify → set, as gcloud does.
fn grant(api: &Api, resource: &str, role: &str, member: &str, condition: Option<Value>) {
    let admin = api.token("admin@example.com");
    let (s, mut policy) = api.post(
        &admin,
        &format!("/v3/{resource}:getIamPolicy"),
        json!({"options": {"requestedPolicyVersion": 3}}),
    );
    assert_eq!(s, 200, "{policy}");
    let mut binding = json!({"role": role, "members": [member]});
    if let Some(c) = condition {
        binding["condition"] = c;
        policy["version"] = json!(3);
    }
    policy["bindings"]
        .as_array_mut()
        .map(|b| b.push(binding.clone()))
        .unwrap_or_else(|| {
            policy["bindings"] = json!([binding]);
        });
    let (s, body) = api.post(
        &admin,
        &format!("/v3/{resource}:setIamPolicy"),
        json!({"policy": policy}),
    );
    assert_eq!(s, 200, "{body}");
}

fn can_get(api: &Api, user: &str, project: &str) -> bool {
    let t = api.token(user);
    let (s, body) = api.get(&t, &format!("/v3/projects/{project}"));
    assert!(s == 200 || s == 403, "{s} {body}");
    s == 200
}

#[test]
fn a_grant_on_the_organization_reaches_every_project_below() {
    let (_s, api) = world();
    assert!(!can_get(&api, "bob@example.com", "a-prod"));
    grant(
        &api,
        "organizations/100000000001",
        "roles/browser",
        "user:bob@example.com",
        None,
    );
    assert!(
        can_get(&api, "bob@example.com", "a-prod"),
        "two folders down"
    );
    assert!(can_get(&api, "bob@example.com", "demo-project"));
}

#[test]
fn a_grant_on_a_folder_reaches_only_what_is_below_it() {
    let (_s, api) = world();
    grant(
        &api,
        "folders/200000000001",
        "roles/browser",
        "user:dave@example.com",
        None,
    );
    assert!(can_get(&api, "dave@example.com", "a-prod"));
    assert!(
        !can_get(&api, "dave@example.com", "ops-prod"),
        "sibling folder"
    );
    assert!(
        !can_get(&api, "dave@example.com", "demo-project"),
        "directly under the org"
    );
}

#[test]
fn membership_through_groups_nested_two_deep_counts() {
    let (_s, api) = world();
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "group:outer@example.com",
        None,
    );
    assert!(
        can_get(&api, "carol@example.com", "demo-project"),
        "carol ∈ inner ∈ middle ∈ outer"
    );
    assert!(!can_get(&api, "erin@example.com", "demo-project"));
}

#[test]
fn a_domain_member_covers_every_account_of_that_domain() {
    let (_s, api) = world();
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "domain:contractors.example",
        None,
    );
    assert!(can_get(&api, "frank@contractors.example", "demo-project"));
    assert!(!can_get(&api, "frank@other.example", "demo-project"));
}

#[test]
fn conditions_on_request_time_grant_only_while_true() {
    let (_s, api) = world();
    let open = json!({"title": "until 2100", "expression": "request.time < timestamp('2100-01-01T00:00:00Z')"});
    let closed = json!({"title": "expired", "expression": "request.time < timestamp('2000-01-01T00:00:00Z')"});
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "user:gina@example.com",
        Some(open),
    );
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "user:henry@example.com",
        Some(closed),
    );
    assert!(can_get(&api, "gina@example.com", "demo-project"));
    assert!(!can_get(&api, "henry@example.com", "demo-project"));

    // Read at version 1, the conditional bindings come back without conditions, renamed.
    let admin = api.token("admin@example.com");
    let (_, v1) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    assert_eq!(v1["version"], 1);
    let roles = common::strs(&v1["bindings"], "role");
    assert!(
        roles
            .iter()
            .any(|r| r.starts_with("roles/browser_withcond_")),
        "{roles:?}"
    );
    let (_, v3) = api.post(
        &admin,
        "/v3/projects/demo-project:getIamPolicy",
        json!({"options": {"requestedPolicyVersion": 3}}),
    );
    assert_eq!(v3["version"], 3);
    assert!(
        v3["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["condition"]["title"] == "until 2100")
    );
}

#[test]
fn a_stale_etag_is_refused_with_409_and_changes_nothing() {
    let (_s, api) = world();
    let admin = api.token("admin@example.com");
    let (_, first) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    let mut a = first.clone();
    a["bindings"] = json!([{"role": "roles/viewer", "members": ["user:ann@example.com"]}]);
    let (s, after_a) = api.post(
        &admin,
        "/v3/projects/demo-project:setIamPolicy",
        json!({"policy": a}),
    );
    assert_eq!(s, 200, "{after_a}");
    assert_ne!(
        after_a["etag"], first["etag"],
        "every write changes the etag"
    );

    let mut b = first.clone();
    b["bindings"] = json!([{"role": "roles/viewer", "members": ["user:ben@example.com"]}]);
    let (s, err) = api.post(
        &admin,
        "/v3/projects/demo-project:setIamPolicy",
        json!({"policy": b}),
    );
    assert_eq!(s, 409, "{err}");
    assert_eq!(err["error"]["status"], "ABORTED");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("There were concurrent policy changes.")
    );
    let (_, now) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    assert_eq!(now, after_a, "the refused write left no trace");
}

#[test]
fn a_user_without_set_iam_policy_cannot_grant() {
    let (_s, api) = world();
    grant(
        &api,
        "projects/demo-project",
        "roles/viewer",
        "user:alice@example.com",
        None,
    );
    let alice = api.token("alice@example.com");
    let (s, policy) = api.post(&alice, "/v3/projects/demo-project:getIamPolicy", json!({}));
    assert_eq!(s, 200, "viewer may read the policy: {policy}");
    let mut p = policy.clone();
    p["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/owner", "members": ["user:alice@example.com"]}));
    let (s, err) = api.post(
        &alice,
        "/v3/projects/demo-project:setIamPolicy",
        json!({"policy": p}),
    );
    assert_eq!(s, 403, "{err}");
    assert_eq!(
        err["error"]["message"],
        "Permission 'resourcemanager.projects.setIamPolicy' denied on resource 'projects/demo-project' (or it may not exist)."
    );
    assert_eq!(
        err["error"]["details"][0]["reason"],
        "IAM_PERMISSION_DENIED"
    );
    let (_, after) = api.post(&alice, "/v3/projects/demo-project:getIamPolicy", json!({}));
    assert_eq!(after, policy);
}

#[test]
fn test_iam_permissions_answers_the_allowed_subset() {
    let (_s, api) = world();
    grant(
        &api,
        "folders/200000000001",
        "roles/browser",
        "user:ivy@example.com",
        None,
    );
    let ivy = api.token("ivy@example.com");
    let asked =
        json!({"permissions": ["resourcemanager.projects.get", "resourcemanager.projects.delete"]});
    let (s, body) = api.post(&ivy, "/v3/projects/a-prod:testIamPermissions", asked);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["permissions"], json!(["resourcemanager.projects.get"]));
}

#[test]
fn calls_without_a_valid_token_are_unauthenticated() {
    let (_s, api) = world();
    for token in [None, Some("ya29.not-a-token")] {
        let (s, err) = api.get_with(token, "/v3/projects/demo-project");
        assert_eq!(s, 401, "{err}");
        assert_eq!(err["error"]["status"], "UNAUTHENTICATED");
    }
}

#[test]
fn policies_and_tokens_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), &world_yaml());
    let api = server.api();
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "user:kim@example.com",
        None,
    );
    let kim = api.token("kim@example.com");
    drop(server);

    let server = Server::start_in(data.path(), &world_yaml());
    let api = server.api();
    let (s, body) = api.get(&kim, "/v3/projects/demo-project");
    assert_eq!(
        s, 200,
        "the token issued before the restart still works: {body}"
    );
    assert_eq!(body["projectId"], "demo-project");
    let (_, org) = api.get(
        &api.token("admin@example.com"),
        "/v3/organizations/100000000001",
    );
    assert_eq!(
        org["displayName"], "example.com",
        "the world was not seeded twice"
    );
}

#[test]
fn org_policy_is_evaluated_down_the_hierarchy() {
    let (_s, api) = world();
    let admin = api.token("admin@example.com");
    let c = "iam.disableCrossProjectServiceAccountUsage";
    let effective = |parent: &str| -> bool {
        let (s, p) = api.get(
            &admin,
            &format!("/v2/{parent}/policies/{c}:getEffectivePolicy"),
        );
        assert_eq!(s, 200, "{p}");
        p["spec"]["rules"][0]["enforce"].as_bool().unwrap()
    };
    assert!(effective("projects/a-prod"), "enforced by default");

    // Off on one project: there and only there.
    let (s, body) = api.post(
        &admin,
        "/v2/projects/a-prod/policies",
        json!({
            "name": format!("projects/a-prod/policies/{c}"),
            "spec": {"rules": [{"enforce": false}]}
        }),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["name"],
        format!("projects/300000000001/policies/{c}"),
        "answered with the number"
    );
    assert!(!effective("projects/a-prod"));
    assert!(effective("projects/ops-prod"));
    assert!(effective("organizations/100000000001"));

    // Off at the organization, back on at folder eng: the nearest policy wins.
    let (s, _) = api.post(&admin, "/v2/organizations/100000000001/policies", json!({
        "name": format!("organizations/100000000001/policies/{c}"), "spec": {"rules": [{"enforce": false}]}
    }));
    assert_eq!(s, 200);
    let (s, _) = api.post(&admin, "/v2/folders/200000000001/policies", json!({
        "name": format!("folders/200000000001/policies/{c}"), "spec": {"rules": [{"enforce": true}]}
    }));
    assert_eq!(s, 200);
    assert!(
        !effective("projects/ops-prod"),
        "under the organization only"
    );
    assert!(effective("folders/200000000002"), "below eng");
    assert!(
        !effective("projects/a-prod"),
        "its own policy is nearer than eng's"
    );
}

#[test]
fn bad_input_is_refused_with_400_and_nothing_written() {
    let (_s, api) = world();
    let admin = api.token("admin@example.com");
    let (_, before) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"policy\": {".to_string()),
        ("wrong type", json!({"policy": {"bindings": "roles/viewer"}}).to_string()),
        ("bad member", json!({"policy": {"bindings": [{"role": "roles/viewer", "members": ["usr:x@example.com"]}]}}).to_string()),
        ("unknown role", json!({"policy": {"bindings": [{"role": "roles/nope", "members": ["user:x@example.com"]}]}}).to_string()),
        ("too many members", json!({"policy": {"bindings": [{"role": "roles/viewer",
            "members": (0..1501).map(|i| format!("user:u{i}@example.com")).collect::<Vec<_>>()}]}}).to_string()),
        ("public member on a project", json!({"policy": {"bindings": [{"role": "roles/viewer", "members": ["allUsers"]}]}}).to_string()),
        ("body over the limit", format!("{{\"policy\": {{\"etag\": \"{}\"}}}}", "A".repeat(11 * 1024 * 1024))),
    ];
    for (what, body) in cases {
        let (s, err) = api.post_raw(&admin, "/v3/projects/demo-project:setIamPolicy", body);
        assert_eq!(s, 400, "{what}: {err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT", "{what}");
        assert!(
            !err["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
    let (_, after) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    assert_eq!(before, after);
}

#[test]
fn enums_are_integers_only_when_the_client_asks() {
    let (_s, api) = world();
    let admin = api.token("admin@example.com");
    let (_, named) = api.get(&admin, "/v3/projects/demo-project");
    assert_eq!(named["state"], "ACTIVE");
    let (_, ints) = api.get(
        &admin,
        "/v3/projects/demo-project?%24alt=json%3Benum-encoding%3Dint",
    );
    assert_eq!(ints["state"], 1);
}

fn troubleshoot(api: &Api, principal: &str, resource: &str, permission: &str) -> Value {
    let admin = api.token("admin@example.com");
    let (s, body) = api.post(
        &admin,
        "/v3/iam:troubleshoot",
        json!({"accessTuple": {
        "principal": principal, "fullResourceName": resource, "permission": permission}}),
    );
    assert_eq!(s, 200, "{body}");
    body
}

#[test]
fn the_troubleshooter_explains_a_grant_through_a_nested_group_at_a_folder() {
    let (_s, api) = world();
    grant(
        &api,
        "folders/200000000001",
        "roles/browser",
        "group:outer@example.com",
        None,
    );
    let t = troubleshoot(
        &api,
        "carol@example.com",
        "//cloudresourcemanager.googleapis.com/projects/a-prod",
        "resourcemanager.projects.get",
    );
    assert_eq!(t["overallAccessState"], "CAN_ACCESS");
    let policies = t["allowPolicyExplanation"]["explainedPolicies"]
        .as_array()
        .unwrap();
    let folder = policies
        .iter()
        .find(|p| {
            p["fullResourceName"] == "//cloudresourcemanager.googleapis.com/folders/200000000001"
        })
        .expect("the folder's policy is explained");
    assert_eq!(folder["allowAccessState"], "ALLOW_ACCESS_STATE_GRANTED");
    let b = &folder["bindingExplanations"][0];
    assert_eq!(b["role"], "roles/browser");
    assert_eq!(b["rolePermission"], "ROLE_PERMISSION_INCLUDED");
    assert_eq!(
        b["memberships"]["group:outer@example.com"]["membership"],
        "MEMBERSHIP_MATCHED"
    );
    // The ancestry is walked from the project up to the organization.
    assert_eq!(
        policies.len(),
        4,
        "project, team-a, eng, organization: {policies:?}"
    );
}

#[test]
fn the_troubleshooter_names_what_is_missing() {
    let (_s, api) = world();
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "user:lee@example.com",
        None,
    );
    grant(
        &api,
        "projects/demo-project",
        "roles/browser",
        "user:zed@example.com",
        None,
    );
    let closed = json!({"title": "expired", "expression": "request.time < timestamp('2000-01-01T00:00:00Z')"});
    grant(
        &api,
        "projects/demo-project",
        "roles/iam.securityReviewer",
        "user:lee@example.com",
        Some(closed),
    );
    let t = troubleshoot(
        &api,
        "lee@example.com",
        "//cloudresourcemanager.googleapis.com/projects/demo-project",
        "iam.serviceAccounts.list",
    );
    assert_eq!(t["overallAccessState"], "CANNOT_ACCESS");
    let project = &t["allowPolicyExplanation"]["explainedPolicies"][0];
    let by_role = |r: &str| {
        project["bindingExplanations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["role"] == r)
            .cloned()
            .unwrap()
    };
    let browser = by_role("roles/browser");
    assert_eq!(
        browser["rolePermission"], "ROLE_PERMISSION_NOT_INCLUDED",
        "the role lee holds lacks it"
    );
    assert_eq!(
        browser["combinedMembership"]["membership"],
        "MEMBERSHIP_MATCHED"
    );
    assert_eq!(
        browser["memberships"]["user:lee@example.com"]["membership"],
        "MEMBERSHIP_MATCHED"
    );
    assert_eq!(
        browser["memberships"]["user:zed@example.com"]["membership"], "MEMBERSHIP_NOT_MATCHED",
        "every member of the binding is listed"
    );
    // A service account named under a project that is not its own is no resource at all.
    let admin = api.token("admin@example.com");
    let (s, _) = api.post(&admin, "/v3/iam:troubleshoot", json!({"accessTuple": {
        "principal": "lee@example.com",
        "fullResourceName": "//iam.googleapis.com/projects/ops-prod/serviceAccounts/300000000003-compute@developer.gserviceaccount.com",
        "permission": "iam.serviceAccounts.get"}}));
    assert_eq!(s, 400);
    let reviewer = by_role("roles/iam.securityReviewer");
    assert_eq!(reviewer["rolePermission"], "ROLE_PERMISSION_INCLUDED");
    assert_eq!(
        reviewer["conditionExplanation"]["value"], false,
        "the condition is what fails"
    );
    assert_eq!(
        reviewer["allowAccessState"],
        "ALLOW_ACCESS_STATE_NOT_GRANTED"
    );
}
