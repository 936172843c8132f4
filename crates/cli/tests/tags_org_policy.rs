//! Resource Manager v3 tags and org policy rules conditioned on them, against the real
//! binary: tag keys, values and bindings as Google serves them (LROs, namespaced names,
//! inheritance, IAM on the value and the resource), and conditional rules that apply to a
//! tagged project and not to its untagged sibling, down to a cross-project deploy.

mod common;

use common::Server;
use common::session::{Session, permission_denied, sa_base};
use common::world::{AGENT, ORG_ADMIN, Org, POLICY_ADMIN, POOLS, app_project, folder, project};
use serde_json::{Value, json};

const ORG: &str = common::world::ORG_ID;
const C: &str = "iam.disableCrossProjectServiceAccountUsage";

fn full(node: &str) -> String {
    format!("//cloudresourcemanager.googleapis.com/{node}")
}

struct World(Session);

common::session::deref_session!(World, 0);

/// Two identity projects (to tag one and not its sibling), one in a folder, and the project
/// pools run in.
fn world_yaml() -> String {
    Org::new()
        .admin(ORG_ADMIN)
        .admin(POLICY_ADMIN)
        .folder(
            folder("dev-folder", "200000000001").project(project("under-folder", "300000000004")),
        )
        .project(app_project().developer())
        .project(project("identity-dev", "300000000002"))
        .project(project("identity-prod", "300000000003"))
        .yaml()
}

fn world() -> World {
    World(Session::start(&world_yaml()))
}

impl World {
    /// POST a mutation that answers with a finished operation; its response.
    fn op(&self, token: &str, path: &str, body: Value) -> Value {
        let (s, op) = self.api.post(token, path, body);
        assert_eq!(s, 200, "POST {path}: {op}");
        assert_eq!(op["done"], true, "{op}");
        op["response"].clone()
    }

    /// The key `env` with values `dev` and `prod`: (key id, dev id, prod id).
    fn env_tags(&self) -> (String, String, String) {
        let key = self.op(
            &self.admin,
            "/v3/tagKeys",
            json!({"parent": format!("organizations/{ORG}"), "shortName": "env"}),
        );
        let key = key["name"].as_str().unwrap().to_string();
        let value = |short: &str| {
            let v = self.op(
                &self.admin,
                "/v3/tagValues",
                json!({"parent": key, "shortName": short}),
            );
            v["name"].as_str().unwrap().to_string()
        };
        let (dev, prod) = (value("dev"), value("prod"));
        (key, dev, prod)
    }

    /// identity-dev tagged env=dev, and `dev_rule()` set on the organization; that policy.
    fn tag_identity_dev_under_dev_rule(&self) -> Value {
        let (_, dev, _) = self.env_tags();
        self.bind("projects/identity-dev", &dev);
        let (s, p) = self.set_policy(&format!("organizations/{ORG}"), dev_rule());
        assert_eq!(s, 200, "{p}");
        p
    }

    fn bind(&self, node: &str, value: &str) -> Value {
        self.op(
            &self.admin,
            "/v3/tagBindings",
            json!({"parent": full(node), "tagValue": value}),
        )
    }

    fn set_policy(&self, node: &str, rules: Value) -> (u16, Value) {
        self.api.patch(
            &self.admin,
            &format!("/v2/{node}/policies/{C}"),
            json!({"name": format!("{node}/policies/{C}"), "spec": {"rules": rules}}),
        )
    }

    fn enforced(&self, node: &str) -> bool {
        let (s, p) = self.api.get(
            &self.admin,
            &format!("/v2/{node}/policies/{C}:getEffectivePolicy"),
        );
        assert_eq!(s, 200, "{p}");
        let rules = p["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "one merged rule: {p}");
        assert!(rules[0].get("condition").is_none(), "no condition: {p}");
        rules[0]["enforce"].as_bool().unwrap()
    }
}

fn dev_rule() -> Value {
    json!([
        {"enforce": true},
        {"enforce": false, "condition": {"expression": format!("resource.matchTag('{ORG}/env', 'dev')")}}
    ])
}

#[test]
fn tags_are_created_bound_and_listed_as_google_serves_them() {
    let w = world();
    let (s, op) = w.api.post(
        &w.admin,
        "/v3/tagKeys",
        json!({"parent": format!("organizations/{ORG}"), "shortName": "env", "description": "Environment"}),
    );
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["done"], true);
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.resourcemanager.v3.CreateTagKeyMetadata"
    );
    let key = &op["response"];
    assert_eq!(
        key["@type"],
        "type.googleapis.com/google.cloud.resourcemanager.v3.TagKey"
    );
    assert_eq!(key["namespacedName"], format!("{ORG}/env"));
    assert_eq!(key["parent"], format!("organizations/{ORG}"));
    let key_name = key["name"].as_str().unwrap().to_string();
    assert!(key_name.starts_with("tagKeys/"), "{key_name}");
    // The operation is kept, as Google's are.
    let (s, again) = w
        .api
        .get(&w.admin, &format!("/v3/{}", op["name"].as_str().unwrap()));
    assert_eq!((s, &again["response"]["name"]), (200, &json!(key_name)));

    let (s, got) = w.api.get(&w.admin, &format!("/v3/{key_name}"));
    assert_eq!((s, &got["description"]), (200, &json!("Environment")));
    let (s, got) = w
        .api
        .get(&w.admin, &format!("/v3/tagKeys/namespaced?name={ORG}/env"));
    assert_eq!((s, &got["name"]), (200, &json!(key_name)), "{got}");
    let (s, list) = w
        .api
        .get(&w.admin, &format!("/v3/tagKeys?parent=organizations/{ORG}"));
    assert_eq!(s, 200);
    assert_eq!(list["tagKeys"].as_array().unwrap().len(), 1, "{list}");

    // The same short name twice under one parent.
    let (s, err) = w.api.post(
        &w.admin,
        "/v3/tagKeys",
        json!({"parent": format!("organizations/{ORG}"), "shortName": "env"}),
    );
    assert_eq!(
        (s, err["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
    // A bad short name, and a folder as parent.
    let (s, _) = w.api.post(
        &w.admin,
        "/v3/tagKeys",
        json!({"parent": format!("organizations/{ORG}"), "shortName": "-bad"}),
    );
    assert_eq!(s, 400);
    let (s, err) = w.api.post(
        &w.admin,
        "/v3/tagKeys",
        json!({"parent": "folders/200000000001", "shortName": "team"}),
    );
    assert_eq!(s, 400, "{err}");

    // Values: created under the key, named under its namespaced name.
    let dev = w.op(
        &w.admin,
        "/v3/tagValues",
        json!({"parent": key_name, "shortName": "dev"}),
    );
    assert_eq!(dev["namespacedName"], format!("{ORG}/env/dev"));
    let dev = dev["name"].as_str().unwrap().to_string();
    let prod = w.op(
        &w.admin,
        "/v3/tagValues",
        json!({"parent": key_name, "shortName": "prod"}),
    )["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, got) = w.api.get(
        &w.admin,
        &format!("/v3/tagValues/namespaced?name={ORG}/env/prod"),
    );
    assert_eq!((s, &got["name"]), (200, &json!(prod)), "{got}");
    let (_, list) = w
        .api
        .get(&w.admin, &format!("/v3/tagValues?parent={key_name}"));
    assert_eq!(list["tagValues"].as_array().unwrap().len(), 2, "{list}");

    // A binding made with the project id is stored with the project number.
    let (s, op) = w.api.post(
        &w.admin,
        "/v3/tagBindings",
        json!({"parent": full("projects/identity-dev"), "tagValueNamespacedName": format!("{ORG}/env/dev")}),
    );
    assert_eq!(s, 200, "{op}");
    let b = &op["response"];
    assert_eq!(b["parent"], full("projects/300000000002"));
    assert_eq!(b["tagValue"], dev);
    assert_eq!(
        b["name"],
        format!(
            "tagBindings/%2F%2Fcloudresourcemanager.googleapis.com%2Fprojects%2F300000000002/{dev}"
        )
    );
    let binding_name = b["name"].as_str().unwrap().to_string();
    let (_, list) = w.api.get(
        &w.admin,
        &format!("/v3/tagBindings?parent={}", full("projects/300000000002")),
    );
    assert_eq!(list["tagBindings"].as_array().unwrap().len(), 1, "{list}");

    // One value per key on a resource; the same binding twice.
    let (s, err) = w.api.post(
        &w.admin,
        "/v3/tagBindings",
        json!({"parent": full("projects/identity-dev"), "tagValue": prod}),
    );
    assert_eq!(
        (s, err["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{err}"
    );
    let (s, _) = w.api.post(
        &w.admin,
        "/v3/tagBindings",
        json!({"parent": full("projects/identity-dev"), "tagValue": dev}),
    );
    assert_eq!(s, 409);

    // A bound value cannot be deleted, nor a key with values.
    let (s, err) = w.api.delete(&w.admin, &format!("/v3/{dev}"));
    assert_eq!(
        (s, err["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{err}"
    );
    let (s, _) = w.api.delete(&w.admin, &format!("/v3/{key_name}"));
    assert_eq!(s, 400);

    // Unbinding (the name as the client library sends it, percent-encoded).
    let (s, op) = w.api.delete(&w.admin, &format!("/v3/{binding_name}"));
    assert_eq!(s, 200, "{op}");
    let (_, list) = w.api.get(
        &w.admin,
        &format!("/v3/tagBindings?parent={}", full("projects/300000000002")),
    );
    assert!(list.get("tagBindings").is_none(), "{list}");
    for v in [&dev, &prod] {
        assert_eq!(w.api.delete(&w.admin, &format!("/v3/{v}")).0, 200);
    }
    let (s, op) = w.api.delete(&w.admin, &format!("/v3/{key_name}"));
    assert_eq!(s, 200, "{op}");
    let (s, _) = w.api.get(&w.admin, &format!("/v3/{key_name}"));
    assert_eq!(
        s, 403,
        "gone, and answered as Google answers an unknown key"
    );
}

#[test]
fn a_conditional_rule_applies_to_a_tagged_project_and_not_to_its_untagged_sibling() {
    let w = world();
    let p = w.tag_identity_dev_under_dev_rule();
    assert_eq!(
        p["spec"]["rules"][1]["condition"]["expression"],
        format!("resource.matchTag('{ORG}/env', 'dev')"),
        "the condition is kept as written"
    );
    assert!(!w.enforced("projects/identity-dev"), "tagged env=dev");
    assert!(w.enforced("projects/identity-prod"), "untagged sibling");
    assert!(w.enforced(&format!("organizations/{ORG}")));

    // The effective tags say where the tag comes from.
    let (s, tags) = w.api.get(
        &w.admin,
        &format!("/v3/effectiveTags?parent={}", full("projects/identity-dev")),
    );
    assert_eq!(s, 200);
    assert_eq!(
        tags["effectiveTags"][0]["namespacedTagValue"],
        format!("{ORG}/env/dev")
    );
    assert_eq!(
        tags["effectiveTags"][0]["inherited"],
        Value::Null,
        "false is omitted"
    );
}

#[test]
fn a_tag_bound_on_a_folder_is_inherited_by_the_projects_below_and_overridable() {
    let w = world();
    let (_, dev, prod) = w.env_tags();
    let (s, _) = w.set_policy(&format!("organizations/{ORG}"), dev_rule());
    assert_eq!(s, 200);
    assert!(w.enforced("projects/under-folder"));
    w.bind("folders/200000000001", &dev);
    assert!(!w.enforced("projects/under-folder"), "env=dev inherited");
    assert!(w.enforced("projects/identity-prod"), "not below the folder");
    let (_, tags) = w.api.get(
        &w.admin,
        &format!("/v3/effectiveTags?parent={}", full("projects/under-folder")),
    );
    assert_eq!(tags["effectiveTags"][0]["inherited"], true, "{tags}");
    assert_eq!(tags["effectiveTags"][0]["tagValue"], dev);

    // A value of the same key on the project overrides the folder's.
    w.bind("projects/under-folder", &prod);
    assert!(
        w.enforced("projects/under-folder"),
        "env=prod on the project wins"
    );
    let (_, tags) = w.api.get(
        &w.admin,
        &format!("/v3/effectiveTags?parent={}", full("projects/under-folder")),
    );
    assert_eq!(tags["effectiveTags"].as_array().unwrap().len(), 1, "{tags}");
    assert_eq!(tags["effectiveTags"][0]["tagValue"], prod);
}

#[test]
fn the_match_tag_id_form_and_a_policy_lower_in_the_hierarchy() {
    let w = world();
    let (key, dev, _) = w.env_tags();
    w.bind("projects/identity-dev", &dev);
    // Off by default at the org; on for env=dev, written on the project's own policy.
    let rules = json!([
        {"enforce": false},
        {"enforce": true, "condition": {"expression": format!("resource.matchTagId('{key}', '{dev}')")}}
    ]);
    let (s, p) = w.set_policy("projects/identity-dev", rules.clone());
    assert_eq!(s, 200, "{p}");
    let (s, p) = w.set_policy("projects/identity-prod", rules);
    assert_eq!(s, 200, "{p}");
    assert!(w.enforced("projects/identity-dev"));
    assert!(!w.enforced("projects/identity-prod"));
}

#[test]
fn a_bad_condition_is_refused_with_400_and_nothing_is_written() {
    let w = world();
    let org = format!("organizations/{ORG}");
    let bad = |expr: &str| json!([{"enforce": true}, {"enforce": false, "condition": {"expression": expr}}]);
    for (expr, says) in [
        ("resource.matchTag('env', 'dev')", "namespaced tag key"),
        ("resource.matchTag('1/env', 'dev'", "')'"),
        ("resource.name == 'x'", "unexpected '='"),
        (
            "request.time < timestamp('2030-01-01T00:00:00Z')",
            "unexpected '<'",
        ),
        (
            "resource.matchTagId('tagKeys/1', 'dev')",
            "tagValues/VALUE_ID",
        ),
    ] {
        let (s, err) = w.api.post(
            &w.admin,
            &format!("/v2/{org}/policies"),
            json!({"name": format!("{org}/policies/{C}"), "spec": {"rules": bad(expr)}}),
        );
        assert_eq!(s, 400, "{expr}: {err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("Invalid condition in rule 2") && msg.contains(says),
            "{expr}: {msg}"
        );
    }
    let (s, _) = w.api.get(&w.admin, &format!("/v2/{org}/policies/{C}"));
    assert_eq!(s, 404, "nothing written");

    // An existing policy is left as it was by a bad patch.
    let (s, before) = w.set_policy(&org, json!([{"enforce": false}]));
    assert_eq!(s, 200);
    let (s, err) = w.set_policy(&org, bad("resource.hasTagKey('nope')"));
    assert_eq!(s, 400, "{err}");
    // Conditional rules must go the other way from the unconditional one.
    let (s, err) = w.set_policy(
        &org,
        json!([{"enforce": false}, {"enforce": false, "condition": {"expression": "resource.hasTagKey('1/env')"}}]),
    );
    assert_eq!(s, 400, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("opposite"), "{err}");
    let (_, after) = w.api.get(&w.admin, &format!("/v2/{org}/policies/{C}"));
    assert_eq!(after["etag"], before["etag"], "unchanged");
    assert_eq!(after["spec"]["rules"], json!([{"enforce": false}]));
}

#[test]
fn a_cross_project_deploy_is_allowed_from_the_tagged_project_and_refused_from_the_untagged_one() {
    let w = world();
    w.tag_identity_dev_under_dev_rule();
    let dev_token = w.api.token("dev@example.com");
    let mut accounts = vec![];
    for project in ["identity-dev", "identity-prod"] {
        let email = w.create_sa(project, "shared-worker");
        let base = sa_base(&email);
        w.grant(
            &base,
            "roles/iam.serviceAccountUser",
            "user:dev@example.com",
        );
        w.grant(&base, "roles/iam.serviceAccountTokenCreator", AGENT);
        accounts.push(email);
    }
    let deploy = |id: &str, sa: &str| {
        let body = json!({
            "template": {"serviceAccount": sa, "containers": [{"image": "us-docker.pkg.dev/cloudrun/container/worker-pool", "command": ["sleep", "3600"]}]},
            "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 0}
        });
        w.api
            .post(&dev_token, &format!("{POOLS}?workerPoolId={id}"), body)
    };
    let (s, op) = deploy("from-dev", &accounts[0]);
    assert_eq!(s, 200, "the account's project is tagged env=dev: {op}");
    let (s, err) = deploy("from-prod", &accounts[1]);
    assert_eq!(s, 400, "{err}");
    assert_eq!(err["error"]["status"], "FAILED_PRECONDITION");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains(C) && msg.contains("identity-prod"), "{msg}");
    assert_eq!(w.api.get(&w.admin, &format!("{POOLS}/from-prod")).0, 404);
}

#[test]
fn tag_permissions_are_checked_on_the_value_and_on_the_resource() {
    let w = world();
    let bob = w.api.token("bob@example.com");
    let org = format!("organizations/{ORG}");
    // Bob's answer is 403, Google's text for `permission` missing on `resource`.
    let refused = |(s, err): (u16, Value), permission: &str, resource: &str| {
        assert_eq!(s, 403, "{err}");
        assert_eq!(
            err["error"]["message"],
            permission_denied(permission, resource)
        );
    };

    // Creating a key needs resourcemanager.tagKeys.create on the organization.
    let new_key = || {
        w.api.post(
            &bob,
            "/v3/tagKeys",
            json!({"parent": org, "shortName": "team"}),
        )
    };
    refused(new_key(), "resourcemanager.tagKeys.create", &org);
    let (key, dev, _) = w.env_tags();

    // Creating a value needs resourcemanager.tagValues.create on the key; tagAdmin on the key
    // is enough.
    let new_value = || {
        w.api.post(
            &bob,
            "/v3/tagValues",
            json!({"parent": key, "shortName": "qa"}),
        )
    };
    let (s, err) = new_value();
    assert_eq!(s, 403, "{err}");
    assert_eq!(
        err["error"]["details"][0]["metadata"]["permission"],
        "resourcemanager.tagValues.create"
    );
    w.grant(
        &format!("/v3/{key}"),
        "roles/resourcemanager.tagAdmin",
        "user:bob@example.com",
    );
    let (s, op) = new_value();
    assert_eq!(s, 200, "{op}");

    // Binding needs tagValueBindings.create on the value AND hierarchyNodes.createTagBinding
    // on the resource.
    let bind = || {
        w.api.post(
            &bob,
            "/v3/tagBindings",
            json!({"parent": full("projects/identity-dev"), "tagValue": dev}),
        )
    };
    refused(bind(), "resourcemanager.tagValueBindings.create", &dev);
    w.grant(
        &format!("/v3/{dev}"),
        "roles/resourcemanager.tagUser",
        "user:bob@example.com",
    );
    refused(
        bind(),
        "resourcemanager.hierarchyNodes.createTagBinding",
        &full("projects/identity-dev"),
    );
    let (s, _) = w.api.get(
        &bob,
        &format!("/v3/tagBindings?parent={}", full("projects/identity-dev")),
    );
    assert_eq!(s, 403, "listing needs hierarchyNodes.listTagBindings");
    w.grant(
        "/v3/projects/identity-dev",
        "roles/resourcemanager.tagUser",
        "user:bob@example.com",
    );
    let (s, op) = bind();
    assert_eq!(s, 200, "{op}");
    let (s, list) = w.api.get(
        &bob,
        &format!("/v3/tagBindings?parent={}", full("projects/identity-dev")),
    );
    assert_eq!(s, 200, "{list}");
    // Administering one key reaches nothing above it: still no new key on the organization.
    assert_eq!(new_key().0, 403);
}

#[test]
fn the_gcloud_shaped_commands_tag_a_project_and_set_a_conditional_policy() {
    let server = Server::start_with_world(&world_yaml());
    server.login_admin();
    let r = server.ok(&[
        "resource-manager",
        "tags",
        "keys",
        "create",
        "env",
        &format!("--parent=organizations/{ORG}"),
        "--format=json",
    ]);
    let key: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(key["namespacedName"], format!("{ORG}/env"));
    for v in ["dev", "prod"] {
        server.ok(&[
            "resource-manager",
            "tags",
            "values",
            "create",
            v,
            &format!("--parent={ORG}/env"),
        ]);
    }
    let r = server.ok(&[
        "resource-manager",
        "tags",
        "values",
        "list",
        &format!("--parent={ORG}/env"),
    ]);
    assert!(
        r.stdout.contains("SHORT_NAME") && r.stdout.contains("prod"),
        "{r:?}"
    );
    let r = server.ok(&[
        "resource-manager",
        "tags",
        "keys",
        "list",
        &format!("--parent=organizations/{ORG}"),
    ]);
    assert!(r.stdout.contains(key["name"].as_str().unwrap()), "{r:?}");
    server.ok(&[
        "resource-manager",
        "tags",
        "bindings",
        "create",
        &format!("--tag-value={ORG}/env/dev"),
        "--parent=//cloudresourcemanager.googleapis.com/projects/300000000002",
    ]);
    let r = server.ok(&[
        "resource-manager",
        "tags",
        "bindings",
        "list",
        "--parent=//cloudresourcemanager.googleapis.com/projects/300000000002",
        "--format=json",
    ]);
    let list: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        list[0]["tagValueNamespacedName"],
        format!("{ORG}/env/dev"),
        "{r:?}"
    );
    let r = server.ok(&[
        "resource-manager",
        "tags",
        "bindings",
        "list",
        "--effective",
        "--parent=//cloudresourcemanager.googleapis.com/projects/300000000002",
    ]);
    assert!(r.stdout.contains(&format!("{ORG}/env/dev")), "{r:?}");

    // A v2 policy file with a conditional rule, through `org-policies set-policy`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(
        &file,
        format!(
            "name: organizations/{ORG}/policies/{C}\nspec:\n  rules:\n    - enforce: true\n    - enforce: false\n      condition:\n        expression: \"resource.matchTag('{ORG}/env', 'dev')\"\n"
        ),
    )
    .unwrap();
    let r = server.ok(&["org-policies", "set-policy", file.to_str().unwrap()]);
    assert!(r.stdout.contains("resource.matchTag"), "{r:?}");
    let effective = |project: &str| {
        let r = server.ok(&[
            "resource-manager",
            "org-policies",
            "describe",
            C,
            "--effective",
            &format!("--project={project}"),
            "--format=json",
        ]);
        let p: Value = serde_json::from_str(&r.stdout).unwrap();
        p["spec"]["rules"][0]["enforce"].as_bool().unwrap()
    };
    assert!(!effective("identity-dev"));
    assert!(effective("identity-prod"));

    // A bad condition: refused, with the reason.
    std::fs::write(
        &file,
        format!("name: organizations/{ORG}/policies/{C}\nspec:\n  rules:\n    - enforce: true\n    - enforce: false\n      condition: {{expression: \"resource.matchTag('env')\"}}\n"),
    )
    .unwrap();
    let r = server.run(&["org-policies", "set-policy", file.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("INVALID_ARGUMENT: Invalid condition in rule 2"),
        "{r:?}"
    );

    // The legacy group's set-policy takes a v1 policy.
    std::fs::write(
        &file,
        format!("constraint: constraints/{C}\nbooleanPolicy:\n  enforced: false\n"),
    )
    .unwrap();
    server.ok(&[
        "resource-manager",
        "org-policies",
        "set-policy",
        file.to_str().unwrap(),
        "--project=identity-prod",
    ]);
    assert!(!effective("identity-prod"));
}

#[test]
fn a_world_declares_tags_and_conditional_rules_and_they_survive_a_restart() {
    let world = Org::new()
        .admin(POLICY_ADMIN)
        .raw(&format!(
            r#"tagKeys:
  - shortName: env
    id: "281400000000001"
    values: [{{shortName: dev, id: "281400000000011"}}, {{shortName: prod}}]
orgPolicies:
  - constraint: {C}
    enforce: true
    rules:
      - condition: "resource.matchTag('{ORG}/env', 'dev')"
        enforce: false
folders:
  - displayName: dev-folder
    tags: [env/dev]
    projects: [{{projectId: under-folder}}]
projects:
  - projectId: tagged
    tags: ["{ORG}/env/dev"]
  - projectId: untagged
  - projectId: prod-project
    tags: [env/prod]
"#
        ))
        .yaml();
    let data = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let server = Server::start_in(data.path(), &world);
        let api = server.api();
        let admin = api.token("admin@example.com");
        let enforced = |p: &str| {
            let (s, body) = api.get(
                &admin,
                &format!("/v2/projects/{p}/policies/{C}:getEffectivePolicy"),
            );
            assert_eq!(s, 200, "{body}");
            body["spec"]["rules"][0]["enforce"].as_bool().unwrap()
        };
        assert!(!enforced("tagged"), "round {round}");
        assert!(!enforced("under-folder"), "round {round}");
        assert!(enforced("untagged"), "round {round}");
        assert!(enforced("prod-project"), "round {round}");
        let (s, v) = api.get(&admin, "/v3/tagValues/281400000000011");
        assert_eq!(
            (s, &v["namespacedName"]),
            (200, &json!(format!("{ORG}/env/dev")))
        );
    }

    // A world with a bad condition does not start.
    let bad = world.replace("resource.matchTag('", "resource.matchTag('nope");
    let bad = bad.replace(&format!("nope{ORG}/env"), "nope");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("world.yaml");
    std::fs::write(&file, bad).unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "serve",
            "--port",
            "0",
            "--ephemeral",
            "--world",
            file.to_str().unwrap(),
        ])
        .env("RUNPOOL_CONFIG", dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid condition"), "{err}");
}

#[test]
fn a_project_tag_key_is_namespaced_by_the_project_id_and_binds_only_inside_it() {
    let w = world();
    let key = w.op(
        &w.admin,
        "/v3/tagKeys",
        json!({"parent": "projects/identity-dev", "shortName": "team"}),
    );
    assert_eq!(key["namespacedName"], "identity-dev/team");
    assert_eq!(key["parent"], "projects/300000000002");
    let value = w.op(
        &w.admin,
        "/v3/tagValues",
        json!({"parent": "identity-dev/team", "shortName": "a"}),
    );
    let value = value["name"].as_str().unwrap().to_string();
    let (s, err) = w.api.post(
        &w.admin,
        "/v3/tagBindings",
        json!({"parent": full("projects/identity-prod"), "tagValue": value}),
    );
    assert_eq!(s, 400, "outside the key's project: {err}");
    w.bind("projects/identity-dev", &value);
    // The project number names the key's namespace as well as the project id.
    for ns in ["identity-dev", "300000000002"] {
        let rules = json!([
            {"enforce": false},
            {"enforce": true, "condition": {"expression": format!("resource.matchTag('{ns}/team', 'a')")}}
        ]);
        let (s, p) = w.set_policy("projects/identity-dev", rules);
        assert_eq!(s, 200, "{p}");
        assert!(w.enforced("projects/identity-dev"), "{ns}");
    }
}

#[test]
fn resource_manager_v1_org_policies_are_the_same_facts_as_v2() {
    let w = world();
    let v1 = |node: &str, verb: &str, body: Value| {
        w.api.post(&w.admin, &format!("/v1/{node}:{verb}"), body)
    };
    let constraint = json!({"constraint": format!("constraints/{C}")});

    // A v2 rule with a condition: v1 cannot say it, and marks the policy `version: 2`; the
    // effective policy is still evaluated over the project's tags.
    w.tag_identity_dev_under_dev_rule();
    let org = format!("organizations/{ORG}");
    let (s, p) = v1(&org, "getOrgPolicy", constraint.clone());
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["version"], 2, "{p}");
    assert_eq!(p["booleanPolicy"]["enforced"], true, "{p}");
    let (_, e) = v1(
        "projects/identity-dev",
        "getEffectiveOrgPolicy",
        constraint.clone(),
    );
    assert_eq!(
        e,
        json!({"constraint": format!("constraints/{C}"), "booleanPolicy": {}})
    );
    let (_, e) = v1(
        "projects/identity-prod",
        "getEffectiveOrgPolicy",
        constraint.clone(),
    );
    assert_eq!(e["booleanPolicy"]["enforced"], true, "{e}");

    // v1 writes are seen by v2; the etag guards them.
    let (s, set) = v1(
        "projects/identity-prod",
        "setOrgPolicy",
        json!({"policy": {"constraint": format!("constraints/{C}"), "booleanPolicy": {"enforced": false}}}),
    );
    assert_eq!(s, 200, "{set}");
    assert!(!w.enforced("projects/identity-prod"));
    let (s, err) = v1(
        "projects/identity-prod",
        "setOrgPolicy",
        json!({"policy": {"constraint": format!("constraints/{C}"), "booleanPolicy": {"enforced": true}, "etag": "c3RhbGU="}}),
    );
    assert_eq!(s, 409, "a stale etag: {err}");
    assert!(!w.enforced("projects/identity-prod"), "nothing written");

    // Bad policies: Google's 400, nothing written.
    for bad in [
        json!({"constraint": format!("constraints/{C}")}),
        json!({"constraint": format!("constraints/{C}"), "booleanPolicy": {}, "restoreDefault": {}}),
        json!({"constraint": format!("constraints/{C}"), "listPolicy": {"allValues": "ALLOW"}}),
        json!({"constraint": format!("constraints/{C}"), "booleanPolicy": {"enforced": "yes"}}),
    ] {
        let (s, err) = v1(
            "projects/identity-prod",
            "setOrgPolicy",
            json!({"policy": bad}),
        );
        assert_eq!(
            (s, err["error"]["status"].as_str()),
            (400, Some("INVALID_ARGUMENT")),
            "{bad}: {err}"
        );
    }
    assert!(!w.enforced("projects/identity-prod"), "nothing written");

    // clear → the inherited (org) policy applies again; clearing again is no error.
    for _ in 0..2 {
        let (s, r) = v1(
            "projects/identity-prod",
            "clearOrgPolicy",
            constraint.clone(),
        );
        assert_eq!((s, r), (200, json!({})));
    }
    assert!(w.enforced("projects/identity-prod"));
    let (s, list) = v1("projects/identity-prod", "listOrgPolicies", json!({}));
    assert_eq!((s, list), (200, json!({})), "nothing set there now");

    // v1 has no dry-run spec: a v1 write keeps the one v2 set.
    let node = "projects/identity-dev";
    let (s, p) = w.api.patch(
        &w.admin,
        &format!("/v2/{node}/policies/{C}"),
        json!({"name": format!("{node}/policies/{C}"), "dryRunSpec": {"rules": [{"enforce": false}]}}),
    );
    assert_eq!(s, 200, "{p}");
    let (s, set) = v1(
        node,
        "setOrgPolicy",
        json!({"policy": {"constraint": format!("constraints/{C}"), "booleanPolicy": {"enforced": true}}}),
    );
    assert_eq!(s, 200, "{set}");
    let (_, p) = w.api.get(&w.admin, &format!("/v2/{node}/policies/{C}"));
    assert_eq!(
        (&p["spec"]["rules"], &p["dryRunSpec"]["rules"]),
        (&json!([{"enforce": true}]), &json!([{"enforce": false}])),
        "{p}"
    );
    let (s, list) = v1(&org, "listAvailableOrgPolicyConstraints", json!({}));
    assert_eq!(s, 200, "{list}");
    let c = list["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("constraints/{C}"))
        .cloned()
        .unwrap();
    assert_eq!(c["booleanConstraint"], json!({}), "{c}");
}
