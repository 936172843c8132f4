//! The recommender against the real binary, told as the seed tells it: a worker pool left on
//! the default compute account (which holds `roles/editor`) reads the project's IAM policy
//! and lists service accounts; Cloud Run's identity recommender proposes a dedicated account
//! with the minimal roles; `runpool recommender recommendations apply` carries it out with the
//! caller's own permissions; the redeployed worker keeps succeeding (read from its logs) as
//! the new account, whose roles grant a few dozen permissions instead of 11,979.

mod common;

use common::Server;
use common::procs::marker;
use common::session::{Session, pool_log_entries};
use common::wait::wait_for;
use common::world::{DEFAULT_SA, Org, POOLS, app_project};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn world_yaml() -> String {
    Org::new().project(app_project()).yaml()
}

const DEDICATED: &str = "queue-worker@app-project.iam.gserviceaccount.com";
const RUN_RECS: &str = "/v1/projects/app-project/locations/us-central1/recommenders/google.run.service.IdentityRecommender/recommendations";
const IAM_RECS: &str = "/v1/projects/app-project/locations/global/recommenders/google.iam.policy.Recommender/recommendations";

/// A worker that, every half second, takes a token from its metadata server and calls two
/// APIs with it, printing who it is and the two HTTP statuses.
const WORKER: &str = r#"
import json, os, sys, time, urllib.request, urllib.error
md = "http://" + os.environ["GCE_METADATA_HOST"] + "/computeMetadata/v1/instance/service-accounts/default/"
ep = os.environ["RUNPOOL_ENDPOINT"]
def meta(path):
    req = urllib.request.Request(md + path, headers={"Metadata-Flavor": "Google"})
    return urllib.request.urlopen(req).read().decode()
def call(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
while True:
    token = json.loads(meta("token"))["access_token"]
    a = call("POST", ep + "/v3/projects/app-project:getIamPolicy", token, {})
    b = call("GET", ep + "/v1/projects/app-project/serviceAccounts", token)
    print("WORKER", meta("email"), a, b, flush=True)
    time.sleep(0.5)
"#;

/// A pool of one instance running WORKER (with `mark` on its command line), as `sa` if given.
fn worker_pool(mark: &str, sa: Option<&str>) -> Value {
    let mut template = json!({"containers": [{
        "image": "us-docker.pkg.dev/cloudrun/container/worker-pool",
        "command": ["python3", "-c", WORKER, mark],
    }]});
    if let Some(sa) = sa {
        template["serviceAccount"] = json!(sa);
    }
    json!({"template": template, "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1}})
}

/// Wait (up to 60 s) for `what`: the worker of `pool` making both its calls, answered 200, as
/// `email`.
fn wait_succeeding(server: &Server, token: &str, pool: &str, email: &str, what: &str) {
    wait_for(what, 60, || {
        let lines = pool_lines(server, token, pool);
        lines
            .iter()
            .any(|(e, a, b)| e == email && *a == 200 && *b == 200)
            .then_some(())
            .ok_or(format!("{lines:?}"))
    });
}

/// `WORKER EMAIL A B` lines of the pool's logs.
fn pool_lines(server: &Server, token: &str, pool: &str) -> Vec<(String, u16, u16)> {
    pool_log_entries(&server.api(), token, pool)
        .iter()
        .filter_map(|e| {
            let parts: Vec<&str> = e["textPayload"].as_str()?.split_whitespace().collect();
            match parts.as_slice() {
                ["WORKER", email, a, b] => {
                    Some((email.to_string(), a.parse().ok()?, b.parse().ok()?))
                }
                _ => None,
            }
        })
        .collect()
}

fn recs(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let (s, body) = server.api().get(token, path);
    assert_eq!(s, 200, "{body}");
    body["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn role_permissions(server: &Server, token: &str, role: &str) -> BTreeSet<String> {
    let (s, r) = server.api().get(token, &format!("/v1/{role}"));
    assert_eq!(s, 200, "{r}");
    r["includedPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_pool_on_the_default_account_gets_a_dedicated_least_privilege_account_and_keeps_working() {
    let w = Session::start(&world_yaml());
    w.deploy("queue-worker", worker_pool(&marker("recommender"), None));
    let Session {
        mut server,
        api,
        admin,
    } = w;
    wait_succeeding(
        &server,
        &admin,
        "queue-worker",
        DEFAULT_SA,
        "the worker to succeed as the default account",
    );

    // Cloud Run's identity recommender: one recommendation, for this pool.
    let list = recs(&server, &admin, RUN_RECS);
    assert_eq!(list.len(), 1, "{list:#?}");
    let rec = &list[0];
    assert_eq!(
        rec["recommenderSubtype"],
        "CREATE_DEDICATED_SERVICE_ACCOUNT"
    );
    assert_eq!(rec["stateInfo"]["state"], "ACTIVE");
    assert_eq!(rec["primaryImpact"]["category"], "SECURITY");
    let overview = &rec["content"]["overview"];
    assert_eq!(overview["currentServiceAccount"], DEFAULT_SA);
    assert_eq!(overview["recommendedServiceAccount"], DEDICATED);
    assert_eq!(overview["currentPermissionsCount"], 11979, "{overview:#}");
    let exercised: BTreeSet<&str> = overview["exercisedPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        exercised,
        BTreeSet::from([
            "iam.serviceAccounts.list",
            "resourcemanager.projects.getIamPolicy"
        ]),
        "only what the pool's own instances did counts"
    );
    assert_eq!(overview["deployers"], json!(["user:admin@example.com"]));
    let added: Vec<String> = overview["addedRoles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut granted = BTreeSet::new();
    for r in &added {
        granted.extend(role_permissions(&server, &admin, r));
    }
    for p in &exercised {
        assert!(granted.contains(*p), "{p} not covered by {added:?}");
    }
    assert_eq!(overview["recommendedPermissionsCount"], granted.len());
    assert!(
        granted.len() < 60,
        "{} permissions: {added:?}",
        granted.len()
    );
    assert_eq!(
        rec["primaryImpact"]["securityProjection"]["details"]["revokedIamPermissionsCount"],
        11979 - granted.len()
    );
    let commands = overview["commands"].as_array().unwrap();
    assert!(
        commands.iter().any(|c| c
            .as_str()
            .unwrap()
            .contains("worker-pools update queue-worker --region=us-central1 --project=app-project --service-account=queue-worker@")),
        "{commands:?}"
    );

    // The IAM recommender, meanwhile, would shrink the default account's editor binding to
    // what it used, granting nothing editor does not.
    let iam = recs(&server, &admin, IAM_RECS);
    let editor = iam
        .iter()
        .find(|r| r["content"]["overview"]["member"] == format!("serviceAccount:{DEFAULT_SA}"))
        .unwrap_or_else(|| panic!("no recommendation for the default account: {iam:#?}"));
    assert_eq!(editor["recommenderSubtype"], "REPLACE_ROLE");
    assert_eq!(editor["content"]["overview"]["removedRole"], "roles/editor");
    let editor_perms = role_permissions(&server, &admin, "roles/editor");
    for r in editor["content"]["overview"]["addedRoles"]
        .as_array()
        .unwrap()
    {
        let perms = role_permissions(&server, &admin, r.as_str().unwrap());
        assert!(perms.is_subset(&editor_perms), "{r} grants beyond editor");
    }

    // Apply it with the CLI, as the admin: the caller's own permissions do the work.
    server.login_admin();
    let id = rec["name"].as_str().unwrap().rsplit('/').next().unwrap();
    let out = server.ok(&[
        "recommender",
        "recommendations",
        "apply",
        id,
        "--recommender=google.run.service.IdentityRecommender",
        "--location=us-central1",
        "--project=app-project",
    ]);
    assert!(out.stderr.contains("Applied recommendation"), "{out:?}");

    let (s, pool) = api.get(&admin, &format!("{POOLS}/queue-worker"));
    assert_eq!(s, 200);
    assert_eq!(pool["template"]["serviceAccount"], DEDICATED);
    let (s, policy) = api.post(&admin, "/v3/projects/app-project:getIamPolicy", json!({}));
    assert_eq!(s, 200);
    let held: BTreeSet<String> = policy["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == &json!(format!("serviceAccount:{DEDICATED}")))
        })
        .map(|b| b["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(held, added.iter().cloned().collect::<BTreeSet<_>>());

    // The redeployed worker keeps succeeding, now as its own account.
    wait_succeeding(
        &server,
        &admin,
        "queue-worker",
        DEDICATED,
        "the worker to succeed as the dedicated account",
    );
    let failures: Vec<_> = pool_lines(&server, &admin, "queue-worker")
        .into_iter()
        .filter(|(e, a, b)| e == DEDICATED && (*a != 200 || *b != 200))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");

    // The recommendation stays listed, marked succeeded, and no new one appears for the pool.
    let after = recs(&server, &admin, RUN_RECS);
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0]["name"], rec["name"]);
    assert_eq!(after[0]["stateInfo"]["state"], "SUCCEEDED");
    server.terminate(Duration::from_secs(30));
}

#[test]
fn recommendations_are_marked_with_their_etag_and_guarded_by_the_recommender_permissions() {
    let w = Session::start(&world_yaml());
    // A user granted a role they never use: the IAM recommender proposes removing it.
    w.grant(
        "/v3/projects/app-project",
        "roles/run.developer",
        "user:idle@example.com",
    );
    let Session { server, api, admin } = w;
    let list = recs(&server, &admin, IAM_RECS);
    let idle = list
        .iter()
        .find(|r| r["content"]["overview"]["member"] == "user:idle@example.com")
        .unwrap_or_else(|| panic!("{list:#?}"));
    assert_eq!(idle["recommenderSubtype"], "REMOVE_ROLE");
    let name = idle["name"].as_str().unwrap();
    assert!(
        name.starts_with("projects/300000000001/locations/global/"),
        "{name}"
    );

    // The insight behind it names no exercised permission.
    let insight = idle["associatedInsights"][0]["insight"].as_str().unwrap();
    let (s, i) = api.get(&admin, &format!("/v1/{insight}"));
    assert_eq!(s, 200, "{i}");
    assert_eq!(i["content"]["exercisedPermissions"], json!([]));
    assert_eq!(i["insightSubtype"], "PERMISSIONS_USAGE");

    // The idle user may not read recommendations.
    let idle_token = api.token("idle@example.com");
    let (s, e) = api.get(&idle_token, IAM_RECS);
    assert_eq!(s, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recommender.iamPolicyRecommendations.list"),
        "{e}"
    );

    // A stale etag is refused; the right one moves the state and freezes it.
    let (s, e) = api.post(
        &admin,
        &format!("/v1/{name}:markClaimed"),
        json!({"etag": "\"stale\""}),
    );
    assert_eq!(s, 409, "{e}");
    let (s, claimed) = api.post(
        &admin,
        &format!("/v1/{name}:markClaimed"),
        json!({"etag": idle["etag"], "stateMetadata": {"ticket": "SEC-1"}}),
    );
    assert_eq!(s, 200, "{claimed}");
    assert_eq!(claimed["stateInfo"]["state"], "CLAIMED");
    assert_eq!(claimed["stateInfo"]["stateMetadata"]["ticket"], "SEC-1");
    assert_ne!(claimed["etag"], idle["etag"]);
    // Claimed cannot be dismissed (only active ones can).
    let (s, e) = api.post(
        &admin,
        &format!("/v1/{name}:markDismissed"),
        json!({"etag": claimed["etag"]}),
    );
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");
    // The CLI filters by state.
    server.login_admin();
    let out = server.ok(&[
        "recommender",
        "recommendations",
        "list",
        "--recommender=google.iam.policy.Recommender",
        "--location=global",
        "--project=app-project",
        "--format=value(name.basename(), stateInfo.state)",
    ]);
    assert!(out.stdout.contains("CLAIMED"), "{out:?}");
    let (s, only) = api.get(
        &admin,
        &format!("{IAM_RECS}?filter=stateInfo.state%20%3D%20CLAIMED"),
    );
    assert_eq!(s, 200);
    assert_eq!(
        only["recommendations"].as_array().unwrap().len(),
        1,
        "{only}"
    );
}

#[test]
fn pools_sharing_an_account_learn_in_soft_mode_what_they_need_and_each_gets_its_own() {
    let w = Session::new(Server::spawn(
        None,
        Some(&world_yaml()),
        &["--enforcement", "soft"],
    ));
    let shared = w.create_sa("app-project", "shared-worker");
    let mark = marker("recommender-soft");
    for pool in ["alpha-pool", "beta-pool"] {
        w.deploy(pool, worker_pool(&mark, Some(&shared)));
    }
    let Session {
        mut server, admin, ..
    } = w;
    // The shared account holds no role at all; soft enforcement lets the calls through.
    for pool in ["alpha-pool", "beta-pool"] {
        wait_succeeding(
            &server,
            &admin,
            pool,
            &shared,
            &format!("{pool} to run its calls"),
        );
    }
    let list = recs(&server, &admin, RUN_RECS);
    assert_eq!(list.len(), 2, "{list:#?}");
    for rec in &list {
        let o = &rec["content"]["overview"];
        assert_eq!(o["reason"], "SHARED_SERVICE_ACCOUNT");
        assert_eq!(o["currentServiceAccount"], shared.as_str());
        // What soft mode let through is what the pool needs.
        assert_eq!(
            o["exercisedPermissions"],
            json!([
                "iam.serviceAccounts.list",
                "resourcemanager.projects.getIamPolicy"
            ])
        );
        let pool = o["workerPool"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert_eq!(
            o["recommendedServiceAccount"],
            format!("{pool}@app-project.iam.gserviceaccount.com")
        );
        assert!(!o["addedRoles"].as_array().unwrap().is_empty());
    }
    server.terminate(Duration::from_secs(30));
}
