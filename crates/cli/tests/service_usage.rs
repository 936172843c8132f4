//! Service Usage v1 over REST against the real binary: per-project enablement, named by
//! project number, Google's limits and errors, and durable across a restart.

mod common;

use common::Server;
use common::session::Session;
use common::world::{APP_NUMBER, Org, app_project};
use serde_json::{Value, json};

const BASE: &str = "/v1/projects/app-project/services";

fn yaml() -> String {
    Org::new().project(app_project().developer()).yaml()
}

#[test]
fn services_are_enabled_and_disabled_per_project_within_googles_limits_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let w = Session::new(Server::start_in(data.path(), &yaml()));
    let state = |w: &Session, svc: &str| -> Value {
        let (s, r) = w.api.get(&w.admin, &format!("{BASE}/{svc}"));
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            r["name"],
            format!("projects/{APP_NUMBER}/services/{svc}"),
            "named by number"
        );
        r["state"].clone()
    };
    assert_eq!(
        state(&w, "run.googleapis.com"),
        "ENABLED",
        "a world's project"
    );

    let (s, op) = w.api.post(
        &w.admin,
        &format!("{BASE}/run.googleapis.com:disable"),
        json!({}),
    );
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["done"], true);
    assert!(
        op["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("operations/acat.p2-{APP_NUMBER}."))
    );
    assert_eq!(op["response"]["service"]["state"], "DISABLED");
    let (s, again) = w
        .api
        .get(&w.admin, &format!("/v1/{}", op["name"].as_str().unwrap()));
    assert_eq!((s, &again["name"]), (200, &op["name"]), "{again}");

    // batchEnable: more than 20, or one unknown service, changes nothing.
    let many: Vec<String> = (0..21).map(|_| "run.googleapis.com".to_string()).collect();
    let (s, err) = w.api.post(
        &w.admin,
        &format!("{BASE}:batchEnable"),
        json!({"serviceIds": many}),
    );
    assert_eq!(s, 400, "{err}");
    let (s, err) = w.api.post(
        &w.admin,
        &format!("{BASE}:batchEnable"),
        json!({"serviceIds": ["run.googleapis.com", "nope.googleapis.com"]}),
    );
    assert_eq!(s, 403, "{err}");
    assert_eq!(
        err["error"]["message"],
        "Not found or permission denied for service(s): nope.googleapis.com."
    );
    assert_eq!(
        state(&w, "run.googleapis.com"),
        "DISABLED",
        "nothing written"
    );
    let (s, err) = w.api.post(
        &w.admin,
        &format!("{BASE}:batchEnable"),
        json!({"serviceIds": "run"}),
    );
    assert_eq!(s, 400, "a bad body: {err}");

    // list: the filter Google takes, and nothing else.
    let (s, r) = w.api.get(
        &w.admin,
        &format!("{BASE}?filter=state:DISABLED&pageSize=200"),
    );
    assert_eq!(s, 200, "{r}");
    let names: Vec<&str> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["config"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"run.googleapis.com"), "{names:?}");
    assert!(!names.contains(&"iam.googleapis.com"), "{names:?}");
    let (s, _) = w.api.get(&w.admin, &format!("{BASE}?filter=name:run"));
    assert_eq!(s, 400);

    // batchGet, and a caller without serviceusage permissions.
    let (s, r) = w.api.get(
        &w.admin,
        &format!("{BASE}:batchGet?names=projects/app-project/services/run.googleapis.com&names=projects/app-project/services/iam.googleapis.com"),
    );
    assert_eq!(s, 200, "{r}");
    let states: Vec<&str> = r["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["DISABLED", "ENABLED"]);
    let dev = w.api.token("dev@example.com");
    let (s, err) = w.api.post(
        &dev,
        &format!("{BASE}/run.googleapis.com:enable"),
        json!({}),
    );
    assert_eq!(s, 403, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serviceusage.services.enable")
    );

    // Durable: a restart keeps what was acknowledged.
    drop(w);
    let w = Session::new(Server::start_in(data.path(), &yaml()));
    assert_eq!(state(&w, "run.googleapis.com"), "DISABLED");
    assert_eq!(state(&w, "iam.googleapis.com"), "ENABLED");
}
