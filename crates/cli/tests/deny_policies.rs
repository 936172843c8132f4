//! IAM v2 deny policies against the real binary: a deny rule wins over any grant, for the
//! principals it names (directly or through a group) but not its exceptions, for the
//! permissions it names (wildcards included), where its tag condition holds; rules are
//! checked when written; managing them takes `iam.denypolicies.*`, which owners lack. And the
//! same tags in allow bindings' conditions (`resource.matchTag`), as IAM Conditions use them.

mod common;

use common::{Api, Server};
use serde_json::{Value, json};

const WORLD: &str = r#"
organizations:
  - domain: example.com
    id: "100000000001"
    iam:
      - role: roles/owner
        members: [user:admin@example.com]
      - role: roles/iam.denyAdmin
        members: [user:admin@example.com]
      - role: roles/resourcemanager.organizationAdmin
        members: [user:admin@example.com]
    tagKeys:
      - shortName: env
        values: [{shortName: prod}, {shortName: dev}]
    projects:
      - projectId: prod-project
        number: "300000000001"
        tags: [env/prod]
        iam:
          - role: roles/editor
            members: [user:alice@example.com, user:bob@example.com]
          - role: roles/owner
            members: [user:carol@example.com]
      - projectId: dev-project
        number: "300000000002"
        tags: [env/dev]
        iam:
          - role: roles/editor
            members: [user:alice@example.com]
groups:
  - email: devs@example.com
    members: [user:alice@example.com]
"#;

const PROJECT_POLICIES: &str =
    "/v2/policies/cloudresourcemanager.googleapis.com%2Fprojects%2Fprod-project/denypolicies";
const ORG_POLICIES: &str =
    "/v2/policies/cloudresourcemanager.googleapis.com%2Forganizations%2F100000000001/denypolicies";

fn rule(principals: &[&str], exceptions: &[&str], permissions: &[&str]) -> Value {
    json!({"denyRule": {
        "deniedPrincipals": principals,
        "exceptionPrincipals": exceptions,
        "deniedPermissions": permissions,
    }})
}

fn create_sa(api: &Api, token: &str, project: &str, id: &str) -> (u16, Value) {
    api.post(
        token,
        &format!("/v1/projects/{project}/serviceAccounts"),
        json!({"accountId": id}),
    )
}

#[test]
fn a_deny_rule_wins_over_grants_for_whom_and_what_it_names() {
    let server = Server::start_with_world(WORLD);
    let api = server.api();
    let admin = api.token("admin@example.com");
    let alice = api.token("alice@example.com");
    let bob = api.token("bob@example.com");
    assert_eq!(
        create_sa(&api, &alice, "prod-project", "before-deny").0,
        200
    );

    let (s, op) = api.post(
        &admin,
        &format!("{PROJECT_POLICIES}?policyId=no-new-accounts"),
        json!({"displayName": "No new accounts for devs", "rules": [
            rule(&["principalSet://goog/group/devs@example.com"], &[],
                 &["iam.googleapis.com/serviceAccounts.create"]),
        ]}),
    );
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["done"], true);
    let policy = &op["response"];
    assert_eq!(
        policy["name"],
        "policies/cloudresourcemanager.googleapis.com%2Fprojects%2F300000000001/denypolicies/no-new-accounts"
    );
    assert_eq!(policy["kind"], "DenyPolicy");

    // alice (in devs) is denied although editor grants it; bob is not in the group.
    let (s, e) = create_sa(&api, &alice, "prod-project", "after-deny");
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("iam.serviceAccounts.create"),
        "{e}"
    );
    assert_eq!(create_sa(&api, &bob, "prod-project", "bob-account").0, 200);
    // testIamPermissions answers as the check does.
    let (s, t) = api.post(
        &alice,
        "/v3/projects/prod-project:testIamPermissions",
        json!({"permissions": ["iam.serviceAccounts.create", "iam.serviceAccounts.list"]}),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["permissions"], json!(["iam.serviceAccounts.list"]));
    // The troubleshooter: editor grants it, the deny rule wins.
    let explain = |who: &str| {
        let (s, t) = api.post(
            &admin,
            "/v3/iam:troubleshoot",
            json!({"accessTuple": {"principal": who,
                "fullResourceName": "//cloudresourcemanager.googleapis.com/projects/prod-project",
                "permission": "iam.serviceAccounts.create"}}),
        );
        assert_eq!(s, 200, "{t}");
        t
    };
    let t = explain("alice@example.com");
    assert_eq!(t["overallAccessState"], "CANNOT_ACCESS", "{t:#}");
    assert_eq!(
        t["allowPolicyExplanation"]["allowAccessState"],
        "ALLOW_ACCESS_STATE_GRANTED"
    );
    let d = &t["denyPolicyExplanation"];
    assert_eq!(d["denyAccessState"], "DENY_ACCESS_STATE_DENIED", "{d:#}");
    let why = &d["explainedResources"][0]["explainedPolicies"][0]["ruleExplanations"][0];
    assert_eq!(
        why["combinedDeniedPrincipal"]["membership"],
        "MEMBERSHIP_MATCHED"
    );
    assert_eq!(
        why["combinedDeniedPermission"]["permissionMatchingState"],
        "PERMISSION_PATTERN_MATCHED"
    );
    // Named as the allow side names the project's policy.
    assert_eq!(
        d["explainedResources"][0]["fullResourceName"],
        t["allowPolicyExplanation"]["explainedPolicies"][0]["fullResourceName"]
    );
    server.login_admin();
    let out = server.ok(&[
        "policy-intelligence",
        "troubleshoot-policy",
        "iam",
        "//cloudresourcemanager.googleapis.com/projects/prod-project",
        "--principal-email=alice@example.com",
        "--permission=iam.serviceAccounts.create",
    ]);
    assert!(out.stdout.contains("Deny policies: DENIED"), "{out:?}");
    assert!(
        out.stdout
            .contains("denypolicies/no-new-accounts denies it."),
        "{out:?}"
    );
    let t = explain("bob@example.com");
    assert_eq!(t["overallAccessState"], "CAN_ACCESS", "{t:#}");
    assert_eq!(
        t["denyPolicyExplanation"]["denyAccessState"],
        "DENY_ACCESS_STATE_NOT_DENIED"
    );
    // The policy is attached to prod-project only: dev-project is untouched.
    assert_eq!(create_sa(&api, &alice, "dev-project", "in-dev").0, 200);

    // An exception for alice lifts it; the stale etag is refused first.
    let name = policy["name"].as_str().unwrap();
    let path = format!("/v2/{name}");
    let mut updated = policy.clone();
    updated["rules"] = json!([rule(
        &["principalSet://goog/group/devs@example.com"],
        &["principal://goog/subject/alice@example.com"],
        &["iam.googleapis.com/serviceAccounts.create"],
    )]);
    updated["etag"] = json!("W/\"stale\"");
    let (s, e) = api.send_json(reqwest::Method::PUT, &admin, &path, updated.clone());
    assert_eq!(s, 409, "{e}");
    updated["etag"] = policy["etag"].clone();
    let (s, op) = api.send_json(reqwest::Method::PUT, &admin, &path, updated);
    assert_eq!(s, 200, "{op}");
    assert_eq!(create_sa(&api, &alice, "prod-project", "excepted").0, 200);

    // Lists name the policies, without their rules.
    let (s, list) = api.get(&admin, PROJECT_POLICIES);
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["policies"].as_array().unwrap().len(), 1);
    assert!(list["policies"][0].get("rules").is_none(), "{list}");

    // Deleting it restores the grant.
    let (s, _) = api.delete(&admin, &path);
    assert_eq!(s, 200);
    let (s, e) = api.get(&admin, &path);
    assert_eq!(s, 404, "{e}");
}

#[test]
fn wildcards_and_tag_conditions_decide_where_a_rule_applies() {
    let server = Server::start_with_world(WORLD);
    let api = server.api();
    let admin = api.token("admin@example.com");
    let alice = api.token("alice@example.com");
    // At the organization, for every service account permission, only where env=prod.
    let (s, op) = api.post(
        &admin,
        &format!("{ORG_POLICIES}?policyId=prod-lockdown"),
        json!({"rules": [{"denyRule": {
            "deniedPrincipals": ["principal://goog/subject/alice@example.com"],
            "deniedPermissions": ["iam.googleapis.com/serviceAccounts.*"],
            "denialCondition": {"expression": "resource.matchTag('100000000001/env', 'prod')"},
        }}]}),
    );
    assert_eq!(s, 200, "{op}");
    let (s, e) = create_sa(&api, &alice, "prod-project", "in-prod");
    assert_eq!(s, 403, "{e}");
    let (s, _) = api.get(&alice, "/v1/projects/prod-project/serviceAccounts");
    assert_eq!(s, 403);
    assert_eq!(create_sa(&api, &alice, "dev-project", "in-dev").0, 200);
    // The admin is not named: untouched.
    assert_eq!(create_sa(&api, &admin, "prod-project", "admins").0, 200);
}

#[test]
fn rules_are_checked_when_written_and_managing_them_takes_deny_admin() {
    let server = Server::start_with_world(WORLD);
    let api = server.api();
    let admin = api.token("admin@example.com");
    let bad = [
        (
            rule(
                &["user:alice@example.com"],
                &[],
                &["iam.googleapis.com/serviceAccounts.create"],
            ),
            "principal",
        ),
        (
            rule(
                &["principal://goog/subject/alice@example.com"],
                &[],
                &["iam.serviceAccounts.create"],
            ),
            "SERVICE_FQDN/RESOURCE.VERB",
        ),
        (
            rule(
                &["principal://goog/subject/alice@example.com"],
                &[],
                &["iam.googleapis.com/serviceAccounts.fly"],
            ),
            "not a known permission",
        ),
        (
            json!({"denyRule": {
                "deniedPrincipals": ["principal://goog/subject/alice@example.com"],
                "deniedPermissions": ["iam.googleapis.com/serviceAccounts.create"],
                "denialCondition": {"expression": "request.time < timestamp('2030-01-01T00:00:00Z')"},
            }}),
            "resource tags",
        ),
    ];
    for (i, (r, says)) in bad.iter().enumerate() {
        let (s, e) = api.post(
            &admin,
            &format!("{PROJECT_POLICIES}?policyId=bad-{i}"),
            json!({"rules": [r]}),
        );
        assert_eq!(s, 400, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    let (s, list) = api.get(&admin, PROJECT_POLICIES);
    assert_eq!(s, 200);
    assert!(
        list["policies"].as_array().is_none_or(Vec::is_empty),
        "{list}"
    );

    // carol owns prod-project, yet owners cannot manage deny policies (as on Google).
    let carol = api.token("carol@example.com");
    let (s, e) = api.post(
        &carol,
        &format!("{PROJECT_POLICIES}?policyId=mine"),
        json!({"rules": [rule(&["principal://goog/subject/bob@example.com"], &[], &["iam.googleapis.com/serviceAccounts.create"])]}),
    );
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("iam.denypolicies.create"),
        "{e}"
    );
}

#[test]
fn the_cli_manages_deny_policies_as_gcloud_does() {
    let server = Server::start_with_world(WORLD);
    server.login_admin();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deny.yaml");
    std::fs::write(
        &file,
        "displayName: no deletes\nrules:\n  - denyRule:\n      deniedPrincipals: ['principalSet://goog/public:all']\n      exceptionPrincipals: ['principal://goog/subject/admin@example.com']\n      deniedPermissions: ['cloudresourcemanager.googleapis.com/projects.delete']\n",
    )
    .unwrap();
    let at = "--attachment-point=cloudresourcemanager.googleapis.com/projects/prod-project";
    let out = server.ok(&[
        "iam",
        "policies",
        "create",
        "no-deletes",
        at,
        "--kind=denypolicies",
        &format!("--policy-file={}", file.display()),
    ]);
    assert!(
        out.stderr.contains("Created policy [no-deletes]."),
        "{out:?}"
    );
    let out = server.ok(&[
        "iam",
        "policies",
        "list",
        at,
        "--kind=denypolicies",
        "--format=value(name)",
    ]);
    assert!(out.stdout.contains("denypolicies/no-deletes"), "{out:?}");
    // carol owns the project but public:all now covers her: the delete is denied.
    let api = server.api();
    let carol = api.token("carol@example.com");
    let (s, e) = api.delete(&carol, "/v3/projects/prod-project");
    assert_eq!(s, 403, "{e}");
    server.ok(&[
        "iam",
        "policies",
        "delete",
        "no-deletes",
        at,
        "--kind=denypolicies",
    ]);
    let (s, e) = api.delete(&carol, "/v3/projects/prod-project");
    assert_eq!(s, 200, "{e}");
}

#[test]
fn allow_conditions_on_tags_grant_only_where_the_tag_is() {
    let server = Server::start_with_world(WORLD);
    let api = server.api();
    let admin = api.token("admin@example.com");
    let dana = api.token("dana@example.com");
    // One binding at the organization, for projects tagged env=dev only.
    let org = "/v3/organizations/100000000001";
    let (s, mut policy) = api.post(
        &admin,
        &format!("{org}:getIamPolicy"),
        json!({"options": {"requestedPolicyVersion": 3}}),
    );
    assert_eq!(s, 200, "{policy}");
    policy["version"] = json!(3);
    policy["bindings"].as_array_mut().unwrap().push(json!({
        "role": "roles/browser",
        "members": ["user:dana@example.com"],
        "condition": {"title": "dev only", "expression": "resource.matchTag('100000000001/env', 'dev')"},
    }));
    let (s, body) = api.post(
        &admin,
        &format!("{org}:setIamPolicy"),
        json!({"policy": policy}),
    );
    assert_eq!(s, 200, "{body}");
    let (s, _) = api.get(&dana, "/v3/projects/dev-project");
    assert_eq!(s, 200, "granted where the tag is");
    let (s, _) = api.get(&dana, "/v3/projects/prod-project");
    assert_eq!(s, 403, "not where it is not");
    // Rebinding prod-project's tag to dev grants there too, at once.
    let (s, list) = api.get(
        &admin,
        "/v3/tagBindings?parent=//cloudresourcemanager.googleapis.com/projects/300000000001",
    );
    assert_eq!(s, 200, "{list}");
    let binding = list["tagBindings"][0]["name"].as_str().unwrap().to_string();
    let (s, op) = api.delete(&admin, &format!("/v3/{binding}"));
    assert_eq!(s, 200, "{op}");
    let (s, dev) = api.get(&admin, "/v3/tagValues/namespaced?name=100000000001/env/dev");
    assert_eq!(s, 200, "{dev}");
    let (s, op) = api.post(
        &admin,
        "/v3/tagBindings",
        json!({"parent": "//cloudresourcemanager.googleapis.com/projects/300000000001",
               "tagValue": dev["name"]}),
    );
    assert_eq!(s, 200, "{op}");
    let (s, _) = api.get(&dana, "/v3/projects/prod-project");
    assert_eq!(s, 200);
}
