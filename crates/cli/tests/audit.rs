//! The audit log and enforcement modes, against the real binary: every call a principal
//! makes is a Cloud Audit Log entry with each authorization decision; `soft` enforcement lets
//! denials through and marks them.

mod common;

use common::{Api, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Audit entries of demo-project matching `filter`, waiting (the writer is asynchronous)
/// until `ready` holds.
fn audit(api: &Api, filter: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let admin = api.token("admin@example.com");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, body) = api.post(
            &admin,
            "/v2/entries:list",
            json!({"resourceNames": ["projects/demo-project"], "filter": filter, "pageSize": 100}),
        );
        assert_eq!(s, 200, "{body}");
        let entries = body["entries"].as_array().cloned().unwrap_or_default();
        if ready(&entries) || Instant::now() > deadline {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_call_is_audited_with_its_decisions() {
    let server = Server::start();
    let api = server.api();
    let bob = api.token("bob@example.com");
    let (s, _) = api.get(&bob, "/v3/projects/demo-project");
    assert_eq!(s, 403);
    let admin = api.token("admin@example.com");
    let (_, policy) = api.post(&admin, "/v3/projects/demo-project:getIamPolicy", json!({}));
    let (s, _) = api.post(
        &admin,
        "/v3/projects/demo-project:setIamPolicy",
        json!({"policy": policy}),
    );
    assert_eq!(s, 200);

    let denied = audit(
        &api,
        r#"protoPayload.authenticationInfo.principalEmail="bob@example.com""#,
        |e| !e.is_empty(),
    );
    assert_eq!(denied.len(), 1, "{denied:?}");
    let p = &denied[0]["protoPayload"];
    assert_eq!(
        p["methodName"],
        "google.cloud.resourcemanager.v3.Projects.GetProject"
    );
    assert_eq!(p["serviceName"], "cloudresourcemanager.googleapis.com");
    let d = &p["authorizationInfo"][0];
    assert_eq!(d["resource"], "projects/demo-project");
    assert_eq!(d["permission"], "resourcemanager.projects.get");
    assert_eq!(d["granted"], false);
    assert_eq!(
        d["resourceAttributes"]["type"],
        "cloudresourcemanager.googleapis.com/Project"
    );
    assert!(
        d["resourceAttributes"]["name"]
            .as_str()
            .unwrap()
            .starts_with("projects/"),
        "the canonical name: {d}"
    );
    assert_eq!(p["status"]["code"], 7, "PERMISSION_DENIED");
    assert!(
        denied[0]["logName"]
            .as_str()
            .unwrap()
            .ends_with("cloudaudit.googleapis.com%2Fdata_access")
    );

    let activity = audit(
        &api,
        r#"logName="projects/demo-project/logs/cloudaudit.googleapis.com%2Factivity""#,
        |e| !e.is_empty(),
    );
    let set = activity
        .iter()
        .find(|e| {
            e["protoPayload"]["methodName"]
                == "google.cloud.resourcemanager.v3.Projects.SetIamPolicy"
        })
        .expect("the policy change is admin activity");
    assert_eq!(
        set["protoPayload"]["authenticationInfo"]["principalEmail"],
        "admin@example.com"
    );
    assert_eq!(set["protoPayload"]["authorizationInfo"][0]["granted"], true);
}

#[test]
fn soft_enforcement_allows_what_strict_denies_and_marks_it() {
    let server = Server::start_with_args(&["--enforcement", "soft"]);
    let api = server.api();
    let bob = api.token("bob@example.com");
    let (s, body) = api.get(&bob, "/v3/projects/demo-project");
    assert_eq!(s, 200, "soft mode lets it through: {body}");
    let entries = audit(
        &api,
        r#"protoPayload.authenticationInfo.principalEmail="bob@example.com""#,
        |e| !e.is_empty(),
    );
    let d = &entries[0]["protoPayload"]["authorizationInfo"][0];
    assert_eq!(d["granted"], false, "what strict mode would have done");
    assert_eq!(d["runpoolEnforcement"], "soft");
    // Authentication still applies.
    assert_eq!(api.get_with(None, "/v3/projects/demo-project").0, 401);
}

#[test]
fn entries_come_in_pages_that_neither_repeat_nor_skip() {
    let server = Server::start();
    let api = server.api();
    let carol = api.token("carol@example.com");
    for _ in 0..5 {
        let (s, _) = api.get(&carol, "/v3/projects/demo-project");
        assert_eq!(s, 403);
    }
    let filter = r#"protoPayload.authenticationInfo.principalEmail="carol@example.com""#;
    assert_eq!(audit(&api, filter, |e| e.len() >= 5).len(), 5);
    let admin = api.token("admin@example.com");
    let mut seen = vec![];
    let mut token = String::new();
    for page in 0.. {
        let (s, body) = api.post(
            &admin,
            "/v2/entries:list",
            json!({"resourceNames": ["projects/demo-project"], "filter": filter,
                   "pageSize": 2, "pageToken": token, "orderBy": "timestamp desc"}),
        );
        assert_eq!(s, 200, "{body}");
        let entries = body["entries"].as_array().unwrap();
        assert!(entries.len() <= 2);
        seen.extend(
            entries
                .iter()
                .map(|e| e["insertId"].as_str().unwrap().to_string()),
        );
        match body["nextPageToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
        assert!(page < 5, "more pages than entries");
    }
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (5, 5), "{seen:?}");
    let (s, e) = api.post(
        &admin,
        "/v2/entries:list",
        json!({"resourceNames": ["projects/demo-project"], "pageToken": "garbage"}),
    );
    assert_eq!(s, 400, "{e}");
}
