//! What an attacker or a careless user sends at the boundary: inputs that once crashed the
//! server, bodies Google refuses, forged and stale credentials, idle and half-sent
//! connections, load on the audit log, and a data dir that is not what it seems. Each is
//! answered as Google answers it, and the server stays up.

mod common;

use base64::Engine;
use common::session::Session;
use common::wait::wait_for;
use common::{Api, Server};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

const ADMIN: &str = "admin@example.com";
const PROJECT: &str = "demo-project";
const POOLS: &str = "/v2/projects/demo-project/locations/us-central1/workerPools";

fn alive(api: &Api, token: &str) {
    let (s, body) = api.get(token, &format!("/v3/projects/{PROJECT}"));
    assert_eq!(s, 200, "the server still answers: {body}");
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// A pool body whose container runs a command (a pool without one is not Ready).
fn pool(extra: Value) -> Value {
    let mut body =
        json!({"template": {"containers": [{"image": "img", "command": ["sleep", "3600"]}]}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

#[test]
fn deeply_nested_conditions_are_refused_and_the_server_stays_up() {
    let s = Session::new(Server::start());
    let (api, admin) = (&s.api, &s.admin);
    // Any user of the domain may create a project, and owns it: the attack needs no grant.
    let bob = api.token("bob@example.com");
    let (st, project) = api.get(admin, &format!("/v3/projects/{PROJECT}"));
    assert_eq!(st, 200, "{project}");
    let (st, op) = api.post(
        &bob,
        "/v3/projects",
        json!({"projectId": "bobs-project", "parent": project["parent"]}),
    );
    assert_eq!(st, 200, "{op}");
    let parens = format!("{}true{}", "(".repeat(278), ")".repeat(278));
    let (st, body) = api.post(
        &bob,
        "/v3/projects/bobs-project:setIamPolicy",
        json!({"policy": {"version": 3, "bindings": [{
            "role": "roles/run.viewer", "members": ["user:bob@example.com"],
            "condition": {"title": "deep", "expression": parens}}]}}),
    );
    assert_eq!(st, 400, "{body}");
    assert!(
        message(&body).contains("nests deeper than 32 levels"),
        "{body}"
    );
    alive(api, admin);

    // Org policy rule conditions and deny conditions go through the same bound.
    let nots = format!("{}resource.hasTagKey('1/env')", "!".repeat(5000));
    let (st, body) = api.post(
        admin,
        &format!("/v2/projects/{PROJECT}/policies"),
        json!({"name": format!("projects/{PROJECT}/policies/iam.disableCrossProjectServiceAccountUsage"),
               "spec": {"rules": [{"enforce": true}, {"enforce": false, "condition": {"expression": nots}}]}}),
    );
    assert_eq!(st, 400, "{body}");
    alive(api, admin);

    let deep = format!(
        "{}resource.matchTag('1/env', 'prod'){}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let attachment = format!("cloudresourcemanager.googleapis.com%2Fprojects%2F{PROJECT}");
    let (st, body) = api.post(
        admin,
        &format!("/v2/policies/{attachment}/denypolicies?policyId=deep"),
        json!({"rules": [{"denyRule": {
            "deniedPrincipals": ["principalSet://goog/public:all"],
            "deniedPermissions": ["iam.googleapis.com/serviceAccounts.create"],
            "denialCondition": {"expression": deep}}}]}),
    );
    assert_eq!(st, 400, "{body}");
    alive(api, admin);
}

#[test]
fn bodies_are_checked_as_googles_front_end_checks_them() {
    let s = Session::new(Server::start());
    let (api, admin) = (&s.api, &s.admin);

    // A misspelt field would have deployed the pool as the default account: refused.
    let body = pool(json!({}));
    let mut typo = body.clone();
    typo["template"]["serviceAcount"] = json!("worker@demo-project.iam.gserviceaccount.com");
    let (st, e) = api.post(admin, &format!("{POOLS}?workerPoolId=typo"), typo);
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        message(&e),
        "Invalid JSON payload received. Unknown name \"serviceAcount\" at 'worker_pool.template': Cannot find field."
    );
    assert_eq!(
        e["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        e["error"]["details"][0]["fieldViolations"][0]["field"],
        "worker_pool.template"
    );
    assert_eq!(
        api.get(admin, &format!("{POOLS}/typo")).0,
        404,
        "nothing written"
    );

    let (st, e) = api.post(
        admin,
        &format!("{POOLS}?workerPoolId=stage"),
        pool(json!({"launchStage": "NOT_A_STAGE"})),
    );
    assert_eq!(st, 400, "{e}");
    assert!(message(&e).contains("'worker_pool.launch_stage'"), "{e}");

    let sa = format!("/v1/projects/{PROJECT}/serviceAccounts");
    let (st, e) = api.post(admin, &sa, json!({"accountId": 123}));
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        message(&e),
        "Invalid value at 'account_id' (TYPE_STRING), 123"
    );
    let (st, e) = api.post(admin, &sa, json!({"accountId": "ok-name", "foo": 1}));
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        message(&e),
        "Invalid JSON payload received. Unknown name \"foo\": Cannot find field."
    );

    // Fields Google accepts though its documents do not list them (Terraform sends them).
    let (st, op) = api.post(
        admin,
        &format!("{POOLS}?workerPoolId=tf&validateOnly=true"),
        pool(
            json!({"scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1, "maxSurge": 1}}),
        ),
    );
    assert_eq!(st, 200, "{op}");

    // A member naming a service account that does not exist.
    let ghost = "ghost@demo-project.iam.gserviceaccount.com";
    let (st, e) = api.post(
        admin,
        &format!("/v3/projects/{PROJECT}:setIamPolicy"),
        json!({"policy": {"bindings": [{"role": "roles/viewer", "members": [format!("serviceAccount:{ghost}")]}]}}),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        message(&e),
        format!("Service account {ghost} does not exist.")
    );
}

#[test]
fn instance_counts_outside_cloud_runs_range_are_refused() {
    let s = Session::new(Server::start());
    let (api, admin) = (&s.api, &s.admin);
    for (n, validate) in [
        (2147483647i64, true),
        (2147483647, false),
        (-5, true),
        (1001, false),
    ] {
        let (st, e) = api.post(
            admin,
            &format!("{POOLS}?workerPoolId=many&validateOnly={validate}"),
            pool(json!({"scaling": {"manualInstanceCount": n}})),
        );
        assert_eq!(st, 400, "{n}: {e}");
        assert!(message(&e).contains("between 0 and 1000"), "{e}");
    }
    assert_eq!(api.get(admin, &format!("{POOLS}/many")).0, 404);
    let (st, e) = api.post(
        admin,
        &format!("{POOLS}?workerPoolId=many&validateOnly=true"),
        pool(json!({"scaling": {"manualInstanceCount": 1000}})),
    );
    assert_eq!(st, 200, "{e}");
    alive(api, admin);
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A key file for a new account, made over REST.
fn key_file(s: &Session, id: &str) -> Value {
    let email = s.create_sa(PROJECT, id);
    let (st, key) = s.api.post(
        &s.admin,
        &format!("/v1/projects/{PROJECT}/serviceAccounts/{email}/keys"),
        json!({}),
    );
    assert_eq!(st, 200, "{key}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key["privateKeyData"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Trade an assertion signed by the key file, with header `{"alg":"RS256"}` and nothing
/// else (as Node's google-auth-library signs it), for an access token.
fn kidless_grant(api: &Api, key: &Value) -> (u16, Value) {
    let t = now();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    assert!(header.kid.is_none());
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            typ: None,
            ..header
        },
        &json!({"iss": key["client_email"], "aud": key["token_uri"], "iat": t, "exp": t + 3600,
                "scope": "https://www.googleapis.com/auth/cloud-platform"}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(key["private_key"].as_str().unwrap().as_bytes())
            .unwrap(),
    )
    .unwrap();
    api.jwt_bearer(&assertion)
}

#[test]
fn a_kid_less_assertion_is_traded_and_key_files_are_googles_bytes() {
    let s = Session::new(Server::start());
    let key = key_file(&s, "nodeish");
    let pem = key["private_key"].as_str().unwrap();
    assert!(
        !pem.contains('\r'),
        "LF line ends, as Google's key files: {pem:?}"
    );
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n")
            && pem.ends_with("-----END PRIVATE KEY-----\n")
    );
    let (st, body) = kidless_grant(&s.api, &key);
    assert_eq!(st, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (st, who) = s
        .api
        .get_with(None, &format!("/tokeninfo?access_token={token}"));
    assert_eq!(st, 200, "{who}");
    assert_eq!(who["email"], key["client_email"]);
}

#[test]
fn an_undeleted_account_does_not_get_its_old_tokens_back() {
    let s = Session::new(Server::start());
    let key = key_file(&s, "comeback");
    let email = key["client_email"].as_str().unwrap();
    let (st, body) = kidless_grant(&s.api, &key);
    assert_eq!(st, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let sa = format!("/v1/projects/{PROJECT}/serviceAccounts/{email}");
    let (st, acct) = s.api.get(&s.admin, &sa);
    assert_eq!(st, 200, "{acct}");
    let uid = acct["uniqueId"].as_str().unwrap().to_string();
    // A live token of an account with no roles: authenticated, then denied.
    let project = format!("/v3/projects/{PROJECT}");
    assert_eq!(s.api.get(&token, &project).0, 403);
    assert_eq!(s.api.delete(&s.admin, &sa).0, 200);
    assert_eq!(s.api.get(&token, &project).0, 401, "deleting revokes");
    let (st, body) = s.api.post(
        &s.admin,
        &format!("/v1/projects/-/serviceAccounts/{uid}:undelete"),
        json!({}),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = s.api.get(&token, &project);
    assert_eq!(
        st, 401,
        "the token issued before the delete stays revoked: {body}"
    );
}

/// Open `n` TCP connections that never send a byte.
fn idle_connections(endpoint: &str, n: usize) -> Vec<TcpStream> {
    let addr = endpoint.trim_start_matches("http://");
    (0..n)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect()
}

/// Let this test process hold more descriptors than the default 1,024.
fn raise_own_file_limit() {
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

#[test]
fn eleven_hundred_idle_connections_under_a_1024_file_limit_do_not_stop_a_get() {
    raise_own_file_limit();
    let server = Server::spawn_limited(None, None, &[], Some(1024));
    let api = server.api();
    let admin = api.token(ADMIN);
    let idle = idle_connections(&server.endpoint, 1100);
    assert!(idle.len() >= 1000, "opened {}", idle.len());
    let started = Instant::now();
    // A fresh client connection, as a new caller would make.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/v3/projects/{PROJECT}", server.endpoint))
        .bearer_auth(&admin)
        .send()
        .expect("a GET is answered with 1,100 idle connections open");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(idle);
}

#[test]
fn sigterm_with_a_half_sent_request_exits_within_the_grace_period() {
    let mut server = Server::start();
    let api = server.api();
    let admin = api.token(ADMIN);
    let addr = server.endpoint.trim_start_matches("http://").to_string();
    // Headers complete, body promised but never sent: a request in flight for good.
    let mut held = TcpStream::connect(&addr).unwrap();
    write!(
        held,
        "POST /v1/projects/{PROJECT}/serviceAccounts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"accountId\""
    )
    .unwrap();
    // And one that has sent half its headers.
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(slow, "GET /v3/projects/{PROJECT} HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(20));
    let took = started.elapsed();
    assert!(status.is_some(), "serve exited by itself after SIGTERM");
    assert!(took < Duration::from_secs(15), "exited after {took:?}");
    // The held connection was dropped, not answered with a half-made account.
    held.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 64];
    assert!(matches!(held.read(&mut buf), Ok(0) | Err(_)));
}

fn status(api: &Api, token: &str) -> (u64, u64) {
    let (st, v) = api.get(token, "/runpool/v1/status");
    assert_eq!(st, 200, "{v}");
    let n = |k: &str| v[k].as_str().unwrap().parse::<u64>().unwrap();
    (n("auditRecordsWritten"), n("auditRecordsLost"))
}

#[test]
fn under_load_every_call_has_its_audit_record() {
    let server = Server::start();
    let api = server.api();
    let admin = api.token(ADMIN);
    let (before, _) = status(&api, &admin);
    // More calls than the writer's queue holds, from 16 keep-alive clients at once.
    const CLIENTS: usize = 16;
    const CALLS: usize = 400;
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                let http = reqwest::blocking::Client::new();
                for _ in 0..CALLS {
                    let r = http
                        .get(format!("{}/v3/projects/{PROJECT}", server.endpoint))
                        .bearer_auth(&admin)
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                }
            });
        }
    });
    let want = before + (CLIENTS * CALLS) as u64;
    let (written, lost) = wait_for("every record written", 30, || {
        let (w, l) = status(&api, &admin);
        if w >= want {
            Ok((w, l))
        } else {
            Err(format!("{w} of {want}"))
        }
    });
    assert_eq!(written, want, "one record per call, no more");
    assert_eq!(lost, 0);
}

#[test]
fn under_wrk_at_the_servers_peak_rate_no_audit_record_is_lost() {
    let server = Server::start();
    let api = server.api();
    let admin = api.token(ADMIN);
    let (before, _) = status(&api, &admin);
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c32", "-d3s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {admin}"))
        .arg(format!("{}/v3/projects/{PROJECT}", server.endpoint))
        .output()
        .expect("wrk is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    let calls: u64 = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().ok())
        })
        .flatten()
        .unwrap_or_else(|| panic!("wrk's request count: {text}"));
    assert!(calls > 1000, "{text}");
    let (written, lost) = wait_for("the writer to catch up", 60, || {
        let (w, l) = status(&api, &admin);
        if w - before >= calls {
            Ok((w, l))
        } else {
            Err(format!("{} of {calls}", w - before))
        }
    });
    // wrk counts the answers it read; at most one request per connection was answered as it
    // stopped and not counted.
    assert!(
        written - before <= calls + 32,
        "{} records for {calls} calls",
        written - before
    );
    assert_eq!(lost, 0);
}

#[test]
fn a_killed_server_keeps_the_record_of_every_acknowledged_write() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(Some(data.path()), None, &[]);
    let api = server.api();
    let admin = api.token(ADMIN);
    const N: usize = 40;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (api, admin) = (&api, &admin);
            scope.spawn(move || {
                for i in 0..N / 4 {
                    let (st, b) = api.post(
                        admin,
                        &format!("/v1/projects/{PROJECT}/serviceAccounts"),
                        json!({"accountId": format!("acked-{t}-{i}")}),
                    );
                    assert_eq!(st, 200, "{b}");
                }
            });
        }
    });
    // Acknowledged: now the process dies with no chance to flush anything.
    server.kill();
    let server = Server::spawn(Some(data.path()), None, &[]);
    let api = server.api();
    let admin = api.token(ADMIN);
    let (st, body) = api.post(
        &admin,
        "/v2/entries:list",
        json!({"resourceNames": [format!("projects/{PROJECT}")], "pageSize": 1000,
               "filter": "protoPayload.methodName=\"google.iam.admin.v1.IAM.CreateServiceAccount\""}),
    );
    assert_eq!(st, 200, "{body}");
    let created = body["entries"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(created, N, "one audit record per acknowledged create");
}

#[test]
fn the_readme_audit_filter_finds_audit_entries() {
    let s = Session::new(Server::start());
    s.create_sa(PROJECT, "audited");
    let (st, body) = s.api.post(
        &s.admin,
        "/v2/entries:list",
        json!({"resourceNames": [format!("projects/{PROJECT}")],
               "filter": "logName:\"cloudaudit.googleapis.com\""}),
    );
    assert_eq!(st, 200, "{body}");
    let entries = body["entries"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "{body}");
    assert!(entries.iter().all(|e| {
        e["logName"]
            .as_str()
            .unwrap()
            .contains("cloudaudit.googleapis.com")
    }));
}

/// `runpool serve` on `data`, expected to refuse to start: its stderr.
fn refused_start(data: &Path) -> String {
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data)
        .env("RUNPOOL_CONFIG", data.join("cfg"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "serve started over {data:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn an_empty_or_foreign_store_is_refused_at_start_and_the_data_dir_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("runpool.db"), "").unwrap();
    let err = refused_start(dir.path());
    assert!(err.contains("is empty (0 bytes)"), "{err}");
    assert_eq!(
        std::fs::metadata(dir.path().join("runpool.db"))
            .unwrap()
            .len(),
        0
    );

    std::fs::write(
        dir.path().join("runpool.db"),
        "not a database at all, just text\n".repeat(200),
    )
    .unwrap();
    let err = refused_start(dir.path());
    assert!(err.contains("is not a SQLite database"), "{err}");

    let foreign = dir.path().join("runpool.db");
    std::fs::remove_file(&foreign).unwrap();
    let made = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table songs(x)'); c.commit()"])
        .arg(&foreign)
        .status()
        .unwrap();
    assert!(made.success());
    let err = refused_start(dir.path());
    assert!(err.contains("another program's SQLite database"), "{err}");

    // An existing, readable dir keeps its mode; the server's files in it are private.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::spawn(Some(open.path()), None, &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(open.path()), 0o755);
    assert_eq!(mode(&open.path().join("runpool.db")), 0o600);
    assert_eq!(mode(&open.path().join("admin-credential")), 0o600);
    drop(server);
}

#[test]
fn routing_instances_to_an_older_revision_needs_act_as_on_its_account() {
    let s = Session::new(Server::start());
    let (api, admin) = (&s.api, &s.admin);
    let old_sa = s.create_sa(PROJECT, "old-identity");
    let new_sa = s.create_sa(PROJECT, "new-identity");
    let deploy = |sa: &str| {
        let body = json!({"template": {"serviceAccount": sa,
            "containers": [{"image": "img", "command": ["sleep", "3600"]}]}});
        let (st, op) = api.patch(admin, &format!("{POOLS}/routed?allowMissing=true"), body);
        assert_eq!(st, 200, "{op}");
    };
    deploy(&old_sa);
    let (_, p) = api.get(admin, &format!("{POOLS}/routed"));
    let old_rev = p["latestCreatedRevision"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    deploy(&new_sa);
    // dev may deploy, and act as the new account only.
    let dev = "dev@example.com";
    s.grant(
        &format!("/v3/projects/{PROJECT}"),
        "roles/run.developer",
        &format!("user:{dev}"),
    );
    s.grant(
        &format!("/v1/projects/{PROJECT}/serviceAccounts/{new_sa}"),
        "roles/iam.serviceAccountUser",
        &format!("user:{dev}"),
    );
    let dev_token = api.token(dev);
    let (_, mut current) = api.get(admin, &format!("{POOLS}/routed"));
    // Each write below is a whole pool, last writer wins (no etag).
    current.as_object_mut().unwrap().remove("etag");
    let mut routed = current.clone();
    routed["instanceSplits"] = json!([{"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": old_rev, "percent": 100}]);
    let (st, e) = api.patch(&dev_token, &format!("{POOLS}/routed"), routed.clone());
    assert_eq!(st, 403, "{e}");
    assert_eq!(
        message(&e),
        format!(
            "Permission 'iam.serviceaccounts.actAs' denied on service account {old_sa} (or it may not exist)."
        )
    );
    // Keeping the split and asking for more instances moves more of them onto it, too.
    let mut split_half = current.clone();
    split_half["instanceSplits"] = json!([
        {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": old_rev, "percent": 50},
        {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "percent": 50}]);
    split_half["scaling"] = json!({"manualInstanceCount": 2});
    let (st, e) = api.patch(admin, &format!("{POOLS}/routed"), split_half.clone());
    assert_eq!(st, 200, "{e}");
    split_half["scaling"] = json!({"manualInstanceCount": 8});
    let (st, e) = api.patch(&dev_token, &format!("{POOLS}/routed"), split_half.clone());
    assert_eq!(st, 403, "the same share of more instances: {e}");
    split_half["scaling"] = json!({"manualInstanceCount": 1});
    let (st, e) = api.patch(&dev_token, &format!("{POOLS}/routed"), split_half);
    assert_eq!(st, 200, "fewer instances on it: {e}");
    // Keeping every instance on the latest revision needs no more than before.
    let mut latest = current.clone();
    latest["labels"] = json!({"touched": "yes"});
    let (st, e) = api.patch(&dev_token, &format!("{POOLS}/routed"), latest);
    assert_eq!(st, 200, "{e}");
    // Whoever may act as the old account may route to it.
    let (st, e) = api.patch(admin, &format!("{POOLS}/routed"), routed);
    assert_eq!(st, 200, "{e}");
}
