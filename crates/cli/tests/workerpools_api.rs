//! Worker pools over Cloud Run Admin API v2, against the real binary: the service identity
//! rules on every deploy path, revisions, scaling, validate-only, bad input.

mod common;

use common::session::{Session, act_as_denied, sa_base};
use common::world::{AGENT, POOLS, app_project, cross_project, shared_folder};
use serde_json::{Value, json};

struct World {
    session: Session,
    /// dev@example.com's token (roles/run.developer on app-project).
    dev: String,
}

common::session::deref_session!(World, session);

fn world() -> World {
    let session = Session::start(&cross_project(shared_folder(), app_project().developer()).yaml());
    let dev = session.api.token("dev@example.com");
    World { session, dev }
}

impl World {
    /// Create the pool `id` with `pool_body(sa)`, with `token`.
    fn deploy_as(&self, token: &str, id: &str, sa: Option<&str>) -> (u16, Value) {
        self.api
            .post(token, &format!("{POOLS}?workerPoolId={id}"), pool_body(sa))
    }
}

fn pool_body(sa: Option<&str>) -> Value {
    let mut template = json!({"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/worker-pool", "command": ["sleep", "3600"]}]});
    if let Some(sa) = sa {
        template["serviceAccount"] = json!(sa);
    }
    json!({"template": template, "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 2}})
}

#[test]
fn without_act_as_the_deploy_is_refused_and_nothing_is_stored() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let (s, err) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 403, "{err}");
    assert_eq!(err["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(err["error"]["message"], act_as_denied(&sa));
    assert_eq!(w.pool("wp").0, 404, "nothing stored");
}

#[test]
fn act_as_granted_on_the_account_lets_the_deploy_through() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    w.grant(
        &sa_base(&sa),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    let (s, op) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["done"], true);
    assert_eq!(
        op["response"]["@type"],
        "type.googleapis.com/google.cloud.run.v2.WorkerPool"
    );
    let (_, pool) = w.pool("wp");
    assert_eq!(pool["template"]["serviceAccount"], sa);
    assert_eq!(pool["creator"], "dev@example.com");
    assert_eq!(pool["generation"], "1", "int64 as a string");
    assert_eq!(pool["terminalCondition"]["state"], "CONDITION_SUCCEEDED");
    let rev = pool["latestReadyRevision"].as_str().unwrap();
    assert!(
        rev.starts_with(&format!("{}/wp/revisions/wp-00001-", &POOLS[4..])),
        "{rev}"
    );
    let (s, r) = w.api.get(&w.admin, &format!("/v2/{rev}"));
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["serviceAccount"], sa);
    assert_eq!(
        pool["scaling"]["scalingMode"], "MANUAL",
        "scaling fields round-trip"
    );
    assert_eq!(pool["scaling"]["manualInstanceCount"], 2);
}

#[test]
fn act_as_inherited_from_the_accounts_project_is_enough() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    w.grant(
        "/v3/projects/app-project",
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    let (s, op) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 200, "{op}");
}

#[test]
fn no_service_account_means_the_default_compute_account() {
    let w = world();
    let default = "300000000001-compute@developer.gserviceaccount.com";
    let (s, err) = w.deploy_as(&w.dev, "wp", None);
    assert_eq!(
        s, 403,
        "the developer may not act as the default account either: {err}"
    );
    assert_eq!(err["error"]["message"], act_as_denied(default));
    // The owner holds actAs on every account of the project.
    let (s, op) = w.deploy_as(&w.admin, "wp", None);
    assert_eq!(s, 200, "{op}");
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], default);
}

#[test]
fn a_disabled_account_is_refused() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let (s, _) = w
        .api
        .post(&w.admin, &format!("{}:disable", sa_base(&sa)), json!({}));
    assert_eq!(s, 200);
    let (s, err) = w.deploy_as(&w.admin, "wp", Some(&sa));
    assert_eq!(s, 400, "{err}");
    assert_eq!(err["error"]["status"], "FAILED_PRECONDITION");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{err}"
    );
    assert_eq!(w.pool("wp").0, 404);
}

#[test]
fn a_cross_project_account_needs_all_three_conditions() {
    let w = world();
    let sa = w.create_sa("identity-project", "shared-worker");
    let base = sa_base(&sa);

    // 1. No actAs: the actAs denial.
    let (s, err) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(
        (s, err["error"]["message"].as_str().unwrap()),
        (403, act_as_denied(&sa).as_str())
    );
    w.grant(
        &base,
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );

    // 2. The constraint is enforced by default on the account's project.
    let (s, err) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 400, "{err}");
    assert_eq!(err["error"]["status"], "FAILED_PRECONDITION");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("iam.disableCrossProjectServiceAccountUsage")
            && msg.contains("identity-project"),
        "{msg}"
    );
    w.disable_cross_project_constraint("projects/identity-project");

    // 3. The pool project's service agent cannot mint tokens for the account.
    let (s, err) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 400, "{err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Google Cloud Run Service Agent does not have permission to get access tokens for the service account"), "{msg}");
    assert!(
        msg.contains("service-300000000001@serverless-robot-prod.iam.gserviceaccount.com"),
        "{msg}"
    );
    w.grant(&base, "roles/iam.serviceAccountTokenCreator", AGENT);

    // All three hold: deployed.
    let (s, op) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 200, "{op}");
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], sa);
}

#[test]
fn the_constraint_turned_off_at_the_folder_above_the_accounts_project_allows_it() {
    let w = world();
    let sa = w.create_sa("identity-project", "shared-worker");
    w.grant(
        &sa_base(&sa),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    w.grant(&sa_base(&sa), "roles/iam.serviceAccountTokenCreator", AGENT);
    w.disable_cross_project_constraint("folders/200000000001");
    let (s, op) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 200, "{op}");
}

#[test]
fn validate_only_runs_every_check_and_writes_nothing() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let (s, err) = w.api.post(
        &w.dev,
        &format!("{POOLS}?workerPoolId=wp&validateOnly=true"),
        pool_body(Some(&sa)),
    );
    assert_eq!(s, 403, "the checks run: {err}");
    let (s, op) = w.api.post(
        &w.admin,
        &format!("{POOLS}?workerPoolId=wp&validateOnly=true"),
        pool_body(Some(&sa)),
    );
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["response"]["template"]["serviceAccount"], sa);
    assert_eq!(w.pool("wp").0, 404, "nothing stored");
    let (_, revs) = w.api.get(&w.admin, &format!("{POOLS}/wp/revisions"));
    assert!(revs.get("revisions").is_none(), "{revs}");
}

#[test]
fn a_scaling_change_makes_no_revision_and_a_template_change_does() {
    let w = world();
    let (s, _) = w.deploy_as(&w.admin, "wp", None);
    assert_eq!(s, 200);
    let first = w.pool("wp").1;
    let patch = json!({"scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 5}});
    let (s, op) = w
        .api
        .patch(&w.admin, &format!("{POOLS}/wp?updateMask=scaling"), patch);
    assert_eq!(s, 200, "{op}");
    let scaled = w.pool("wp").1;
    assert_eq!(scaled["scaling"]["manualInstanceCount"], 5);
    assert_eq!(scaled["generation"], "2");
    assert_eq!(
        scaled["latestCreatedRevision"], first["latestCreatedRevision"],
        "no new revision"
    );

    let mut body = pool_body(None);
    body["template"]["containers"][0]["args"] = json!(["--fast"]);
    let (s, op) = w.api.patch(&w.admin, &format!("{POOLS}/wp"), body);
    assert_eq!(s, 200, "{op}");
    let changed = w.pool("wp").1;
    assert_ne!(
        changed["latestCreatedRevision"],
        first["latestCreatedRevision"]
    );
    let (_, revs) = w.api.get(&w.admin, &format!("{POOLS}/wp/revisions"));
    assert_eq!(revs["revisions"].as_array().unwrap().len(), 2);
}

#[test]
fn patch_with_allow_missing_creates_and_checks_identity_too() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let (s, err) = w.api.patch(
        &w.dev,
        &format!("{POOLS}/wp?allowMissing=true"),
        pool_body(Some(&sa)),
    );
    assert_eq!(s, 403, "{err}");
    assert_eq!(err["error"]["message"], act_as_denied(&sa));
    let (s, err) = w
        .api
        .patch(&w.admin, &format!("{POOLS}/wp"), pool_body(Some(&sa)));
    assert_eq!(s, 404, "without allowMissing: {err}");
    let (s, op) = w.api.patch(
        &w.admin,
        &format!("{POOLS}/wp?allowMissing=true"),
        pool_body(Some(&sa)),
    );
    assert_eq!(s, 200, "{op}");
    assert_eq!(w.pool("wp").0, 200);
}

#[test]
fn a_grant_on_the_pool_itself_reaches_only_that_pool() {
    let w = world();
    for id in ["wp-a", "wp-b"] {
        assert_eq!(w.deploy_as(&w.admin, id, None).0, 200);
    }
    w.grant(
        &format!("{POOLS}/wp-a"),
        "roles/run.viewer",
        "user:vic@example.com",
    );
    let vic = w.api.token("vic@example.com");
    assert_eq!(w.api.get(&vic, &format!("{POOLS}/wp-a")).0, 200);
    let (s, err) = w.api.get(&vic, &format!("{POOLS}/wp-b"));
    assert_eq!(s, 403, "{err}");
    assert_eq!(
        err["error"]["message"],
        format!(
            "Permission 'run.workerpools.get' denied on resource '{}/wp-b' (or it may not exist).",
            &POOLS[4..]
        )
    );
}

#[test]
fn bad_input_is_refused_with_400_and_nothing_stored() {
    let w = world();
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("c{i}"), "image": "img"}))
        .collect();
    let cases = vec![
        (
            "unknown region",
            "/v2/projects/app-project/locations/mars-north1/workerPools?workerPoolId=wp"
                .to_string(),
            pool_body(None),
        ),
        (
            "bad id",
            format!("{POOLS}?workerPoolId=Bad_Id"),
            pool_body(None),
        ),
        (
            "missing template",
            format!("{POOLS}?workerPoolId=wp"),
            json!({"scaling": {"manualInstanceCount": 1}}),
        ),
        (
            "eleven containers",
            format!("{POOLS}?workerPoolId=wp"),
            json!({"template": {"containers": eleven}}),
        ),
        (
            "reserved annotation",
            format!("{POOLS}?workerPoolId=wp"),
            json!({
            "annotations": {"run.googleapis.com/secret": "x"},
            "template": {"containers": [{"image": "img"}]}}),
        ),
        (
            "wrong type",
            format!("{POOLS}?workerPoolId=wp"),
            json!({"template": {"containers": "img"}}),
        ),
    ];
    for (what, path, body) in cases {
        let (s, err) = w.api.post(&w.admin, &path, body);
        assert_eq!(s, 400, "{what}: {err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT", "{what}");
    }
    let (_, list) = w.api.get(&w.admin, POOLS);
    assert!(list.get("workerPools").is_none(), "{list}");
}

const V1: &str = "/apis/run.googleapis.com/v1/namespaces/app-project/workerpools";

fn v1_pool(name: &str, sa: &str) -> Value {
    json!({
        "apiVersion": "run.googleapis.com/v1",
        "kind": "WorkerPool",
        "metadata": {
            "name": name,
            "labels": {"cloud.googleapis.com/location": "us-central1"},
            "annotations": {"run.googleapis.com/scalingMode": "manual", "run.googleapis.com/manualInstanceCount": "3"}
        },
        "spec": {"template": {"spec": {"serviceAccountName": sa, "containers": [{"image": "img", "command": ["/w"]}]}}}
    })
}

#[test]
fn the_v1_api_is_the_same_store_under_the_same_rules() {
    let w = world();
    let sa = w.create_sa("app-project", "worker-sa");
    let other = w.create_sa("app-project", "other-sa");
    w.grant(
        &sa_base(&sa),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );

    let (s, created) = w.api.post(&w.dev, V1, v1_pool("wp", &sa));
    assert_eq!(s, 200, "{created}");
    assert_eq!(created["kind"], "WorkerPool");
    assert_eq!(created["metadata"]["namespace"], "300000000001");
    assert_eq!(
        created["spec"]["template"]["spec"]["serviceAccountName"],
        sa
    );
    // The v2 view of the same pool.
    let (_, v2) = w.pool("wp");
    assert_eq!(v2["template"]["serviceAccount"], sa);
    assert_eq!(v2["scaling"]["manualInstanceCount"], 3);

    // Replace with an account the developer may not act as: the same denial, nothing stored.
    let (_, mut current) = w.api.get(&w.dev, &format!("{V1}/wp"));
    current["spec"]["template"]["spec"]["serviceAccountName"] = json!(other);
    let (s, err) = w.api.send_json(
        reqwest::Method::PUT,
        &w.dev,
        &format!("{V1}/wp"),
        current.clone(),
    );
    assert_eq!(s, 403, "{err}");
    assert_eq!(err["error"]["message"], act_as_denied(&other));
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], sa);

    // Granted: the replace lands, with a new revision.
    w.grant(
        &sa_base(&other),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    let (s, replaced) = w.api.send_json(
        reqwest::Method::PUT,
        &w.dev,
        &format!("{V1}/wp"),
        current.clone(),
    );
    assert_eq!(s, 200, "{replaced}");
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], other);
    assert_ne!(
        replaced["status"]["latestCreatedRevisionName"],
        created["status"]["latestCreatedRevisionName"]
    );

    // The resourceVersion read before is stale now.
    let (s, err) = w
        .api
        .send_json(reqwest::Method::PUT, &w.dev, &format!("{V1}/wp"), current);
    assert_eq!(s, 409, "{err}");

    let (s, list) = w.api.get(&w.dev, V1);
    assert_eq!(s, 200);
    assert_eq!(list["kind"], "WorkerPoolList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (s, _) = w.api.delete(&w.dev, &format!("{V1}/wp"));
    assert_eq!(s, 200);
    assert_eq!(w.pool("wp").0, 404);
}

#[test]
fn v1_bad_input_is_refused() {
    let w = world();
    let mut no_template = v1_pool("wp", "x@app-project.iam.gserviceaccount.com");
    no_template["spec"] = json!({});
    let (s, err) = w.api.post(&w.admin, V1, no_template);
    assert_eq!(s, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.template is required")
    );
    let (s, err) = w.api.post_raw(&w.admin, V1, "kind: WorkerPool".to_string());
    assert_eq!(s, 400, "not JSON: {err}");
    let mut no_region = v1_pool("wp", "x@app-project.iam.gserviceaccount.com");
    no_region["metadata"]["labels"] = json!({});
    let (s, err) = w.api.post(&w.admin, V1, no_region);
    assert_eq!(s, 400, "{err}");
    assert_eq!(w.pool("wp").0, 404);
}

#[test]
fn the_preflight_lists_every_failing_rule_with_the_command_that_fixes_it() {
    let w = world();
    let sa = w.create_sa("identity-project", "shared-worker");
    let preflight = format!("{POOLS}?workerPoolId=wp&validateOnly=true");
    let (s, err) = w.api.post(&w.dev, &preflight, pool_body(Some(&sa)));
    assert_eq!(s, 403, "the first failing rule decides the status: {err}");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with(&act_as_denied(&sa)), "{msg}");
    assert!(
        msg.contains("This deploy fails 3 service identity rule(s)"),
        "{msg}"
    );
    let violations = err["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure")
        .expect("a PreconditionFailure detail")["violations"]
        .as_array()
        .unwrap()
        .clone();
    let kinds: Vec<&str> = violations
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ActAs", "CrossProjectPolicy", "ServiceAgentTokenCreator"]
    );

    // Run each printed fix, as printed, with the CLI (as the admin).
    w.server.login_admin();
    let fixes: Vec<String> = msg
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Fix: runpool "))
        .map(str::to_string)
        .collect();
    assert_eq!(fixes.len(), 3, "{msg}");
    for fix in &fixes {
        let args: Vec<&str> = fix.split_whitespace().collect();
        w.server.ok(&args);
    }
    let (s, op) = w.api.post(&w.dev, &preflight, pool_body(Some(&sa)));
    assert_eq!(s, 200, "the preflight passes now: {op}");
    let (s, op) = w.deploy_as(&w.dev, "wp", Some(&sa));
    assert_eq!(s, 200, "and so does the deploy: {op}");
}
