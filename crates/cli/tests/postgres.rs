//! Several servers over one PostgreSQL database (`serve --database`): one world, whichever
//! server a call reaches. Each test makes a database of its own on the server
//! `RUNPOOL_TEST_POSTGRES` names (`scripts/postgres` starts this machine's and prints it;
//! `.ci/run` does so); without one these tests fail, never skip.

mod common;

use common::Server;
use serde_json::{Value, json};

/// A new, empty database on the test PostgreSQL server, as a URL.
fn database() -> String {
    let base = std::env::var("RUNPOOL_TEST_POSTGRES").expect(
        "RUNPOOL_TEST_POSTGRES names a PostgreSQL server for these tests (scripts/postgres starts one)",
    );
    let name = format!(
        "runpool_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (server, _) = base.rsplit_once('/').expect("a URL that names a database");
    format!("{server}/{name}")
}

fn servers(url: &str, n: usize) -> Vec<Server> {
    (0..n)
        .map(|_| Server::spawn(None, None, &["--database", url]))
        .collect()
}

const SA: &str = "/v1/projects/demo-project/serviceAccounts";

#[test]
fn three_servers_over_one_database_serve_one_world() {
    let url = database();
    let s = servers(&url, 3);
    // One world: seeded once, by the first; one admin credential, accepted by all.
    let tokens: Vec<String> = s
        .iter()
        .map(|x| x.api().token("admin@example.com"))
        .collect();
    for (i, server) in s.iter().enumerate() {
        let (st, p) = server
            .api()
            .get(&tokens[(i + 1) % 3], "/v3/projects/demo-project");
        assert_eq!(st, 200, "server {i} with another's token: {p}");
    }
    let (_, orgs) = s[2].api().get(&tokens[2], "/v3/organizations:search");
    assert_eq!(
        orgs["organizations"].as_array().map(Vec::len),
        Some(1),
        "{orgs}"
    );

    // One local CA: every server's proxy signs Google's host names with the first's, so a
    // client that trusts it reaches them through any server.
    let ca_of = |server: &Server| server.api().get_with(None, "/runpool/v1/ca").1["pem"].clone();
    let files = common::Files::new();
    let ca = files.write("ca.pem", ca_of(&s[0]).as_str().expect("the CA's PEM"));
    for (i, server) in s.iter().enumerate() {
        assert_eq!(ca_of(server), ca_of(&s[0]), "server {i}'s CA");
        let out = std::process::Command::new("curl")
            .args(["-sS", "--proxy", &server.endpoint, "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {}", tokens[i])])
            .arg("https://cloudresourcemanager.googleapis.com/v3/projects/demo-project")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .output()
            .expect("curl is installed (.ci/run installs it)");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body.contains("\"projectId\":\"demo-project\""),
            "through server {i}'s proxy: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A write acknowledged by one server is read through each of the others at once.
    for (i, server) in s.iter().enumerate() {
        let id = format!("written-through-{i}");
        let (st, sa) = server.api().post(&tokens[i], SA, json!({"accountId": id}));
        assert_eq!(st, 200, "{sa}");
        for (j, other) in s.iter().enumerate() {
            let (st, got) = other.api().get(
                &tokens[j],
                &format!("{SA}/{id}@demo-project.iam.gserviceaccount.com"),
            );
            assert_eq!(st, 200, "written through {i}, read through {j}: {got}");
        }
    }

    // Durable: a server started after all three stopped sees every write.
    drop(s);
    let later = Server::spawn(None, None, &["--database", &url]);
    let token = later.api().token("admin@example.com");
    let (_, list) = later.api().get(&token, SA);
    let emails: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["email"].as_str())
        .collect();
    for i in 0..3 {
        assert!(
            emails.contains(
                &format!("written-through-{i}@demo-project.iam.gserviceaccount.com").as_str()
            ),
            "{emails:?}"
        );
    }
}

#[test]
fn racing_read_modify_writes_across_three_servers_lose_no_update() {
    let url = database();
    let s = servers(&url, 3);
    let apis: Vec<_> = s.iter().map(Server::api).collect();
    let tokens: Vec<String> = apis.iter().map(|a| a.token("admin@example.com")).collect();
    const CLIENTS: usize = 8;
    let path = "/v3/projects/demo-project";
    let conflicts = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (apis, tokens, conflicts) = (&apis, &tokens, &conflicts);
            scope.spawn(move || {
                let member = format!("user:racer-{c}@example.com");
                // Read through one server, write through the next, as clients behind a load
                // balancer do; a stale etag is refused and the client reads again.
                for attempt in 0.. {
                    assert!(attempt < 200, "client {c} never got its write in");
                    let (r, w) = ((c + attempt) % 3, (c + attempt + 1) % 3);
                    let (st, mut policy) =
                        apis[r].post(&tokens[r], &format!("{path}:getIamPolicy"), json!({}));
                    assert_eq!(st, 200, "{policy}");
                    let bindings = policy["bindings"].as_array_mut().unwrap();
                    bindings.push(json!({"role": "roles/viewer", "members": [member]}));
                    let (st, body) = apis[w].post(
                        &tokens[w],
                        &format!("{path}:setIamPolicy"),
                        json!({"policy": policy}),
                    );
                    match st {
                        200 => return,
                        409 => {
                            assert_eq!(body["error"]["status"], "ABORTED", "{body}");
                            conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => panic!("client {c}: {st} {body}"),
                    }
                }
            });
        }
    });
    for (i, api) in apis.iter().enumerate() {
        let (_, policy) = api.post(&tokens[i], &format!("{path}:getIamPolicy"), json!({}));
        let members: Vec<&str> = policy["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["role"] == "roles/viewer")
            .flat_map(|b| b["members"].as_array().unwrap().iter())
            .filter_map(Value::as_str)
            .collect();
        for c in 0..CLIENTS {
            assert!(
                members.contains(&format!("user:racer-{c}@example.com").as_str()),
                "server {i} lost racer {c}'s update: {members:?}"
            );
        }
    }
    // They raced for real: some writes were refused as stale and retried.
    assert!(conflicts.into_inner() > 0, "no write was ever stale");
}

/// The parent of process `pid` (`/proc/PID/stat` field 4).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn the_instances_run_once_and_another_server_takes_over_when_their_server_is_killed() {
    let url = database();
    let mut s = servers(&url, 3);
    let mark = common::procs::marker("failover");
    let api = s[1].api();
    let token = api.token("admin@example.com");
    let script = format!("echo \"start {mark}\"; while true; do sleep 0.2; done");
    let (st, op) = api.post(
        &token,
        "/v2/projects/demo-project/locations/us-central1/workerPools?workerPoolId=wp",
        json!({
            "template": {"containers": [{
                "image": "us-docker.pkg.dev/cloudrun/container/worker-pool",
                "command": ["sh", "-c", script],
            }]},
            "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 2},
        }),
    );
    assert_eq!(st, 200, "{op}");
    let pids: Vec<u32> = s.iter().map(Server::pid).collect();
    // Exactly the pool's two, all under one of `live` (the lease holder), not two per server.
    // (An instance of a killed server is, until its SIGKILL lands, a child of init.)
    let running = |why: &str, live: &[u32]| {
        common::wait::wait_for(why, 30, || {
            let p = common::procs::procs_with(&mark);
            let parents: Vec<Option<u32>> = p.iter().map(|&x| parent_of(x)).collect();
            match parents.first() {
                Some(Some(first))
                    if p.len() == 2
                        && live.contains(first)
                        && parents.iter().all(|x| *x == Some(*first)) =>
                {
                    Ok((p, *first))
                }
                _ => Err(format!("instances {p:?} under {parents:?}")),
            }
        })
    };
    let (before, holder) = running("the pool's instances under one server", &pids);
    let holder = pids
        .iter()
        .position(|p| *p == holder)
        .expect("a server runs them");
    s[holder].kill();
    let live: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| *p != pids[holder])
        .collect();
    let (after, next) = running("the instances back under another server", &live);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "the killed server's instances died with it: {before:?} then {after:?}"
    );
    assert_ne!(next, pids[holder], "another server runs them");
    // Their output, the killed holder's instances' and the new ones', is read through any
    // server: four starts (two instances, twice).
    for (i, server) in s.iter().enumerate().filter(|(i, _)| *i != holder) {
        let api = server.api();
        let token = api.token("admin@example.com");
        common::wait::wait_for(
            &format!("the instances' lines through server {i}"),
            30,
            || {
                let (st, body) = api.post(
                    &token,
                    "/v2/entries:list",
                    json!({"resourceNames": ["projects/demo-project"], "pageSize": 1000,
                       "filter": "resource.labels.worker_pool_name=\"wp\""}),
                );
                assert_eq!(st, 200, "{body}");
                let starts = body["entries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["textPayload"].as_str() == Some(&format!("start {mark}")))
                    .count();
                match starts {
                    4 => Ok(()),
                    n => Err(format!("{n} starts: {body}")),
                }
            },
        );
    }
    // And no more than the pool wants, a moment later.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(common::procs::procs_with(&mark).len(), 2);
    common::procs::kill_ours(&mark);
}

#[test]
fn a_token_revoked_on_one_server_is_refused_on_the_others_at_once() {
    let url = database();
    let s = servers(&url, 3);
    let token = s[0].api().token("admin@example.com");
    let info = |server: &Server| {
        server
            .api()
            .get_with(None, &format!("/tokeninfo?access_token={token}"))
            .0
    };
    assert_eq!(s.iter().map(info).collect::<Vec<_>>(), [200, 200, 200]);
    let revoke = |server: &Server| {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/revoke", server.endpoint))
            .form(&[("token", token.as_str())])
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!(revoke(&s[1]), (200, json!({})));
    // At once: no waiting for the notification.
    for server in &s {
        assert_eq!(info(server), 400);
        let (st, err) = server.api().get(&token, "/v3/projects/demo-project");
        assert_eq!(st, 401, "{err}");
    }
    assert_eq!(
        revoke(&s[2]),
        (
            400,
            json!({"error": "invalid_token", "error_description": "Token expired or revoked"})
        )
    );
}

#[test]
fn every_servers_audit_entries_are_read_through_any_server() {
    let url = database();
    let s = servers(&url, 3);
    // Each of three callers is refused by a server of its own.
    for (i, server) in s.iter().enumerate() {
        let api = server.api();
        let caller = api.token(&format!("caller-{i}@example.com"));
        assert_eq!(api.get(&caller, "/v3/projects/demo-project").0, 403);
    }
    // One server's Cloud Logging lists all three refusals (the writers are asynchronous).
    let api = s[0].api();
    let admin = api.token("admin@example.com");
    let callers = common::wait::wait_for("every server's audit entries", 15, || {
        let (st, body) = api.post(
            &admin,
            "/v2/entries:list",
            json!({"resourceNames": ["projects/demo-project"], "pageSize": 100}),
        );
        assert_eq!(st, 200, "{body}");
        let mut callers: Vec<String> = body["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e["protoPayload"]["authenticationInfo"]["principalEmail"].as_str())
            .filter(|p| p.starts_with("caller-"))
            .map(String::from)
            .collect();
        callers.sort();
        callers.dedup();
        if callers.len() == 3 {
            Ok(callers)
        } else {
            Err(format!("{callers:?}"))
        }
    });
    assert_eq!(
        callers,
        [
            "caller-0@example.com",
            "caller-1@example.com",
            "caller-2@example.com"
        ]
    );
}

#[test]
fn a_console_sign_in_code_from_one_server_is_redeemed_once_on_another() {
    let url = database();
    let s = servers(&url, 2);
    let api = s[0].api();
    let alice = api.token("alice@example.com");
    let (st, code) = api.post(&alice, "/runpool/v1/console/codes", json!({}));
    assert_eq!(st, 200, "{code}");
    let redeem = |server: &Server| {
        server.api().post(
            "",
            "/runpool/v1/console/sessions",
            json!({"code": code["code"]}),
        )
    };
    let (st, session) = redeem(&s[1]);
    assert_eq!(st, 200, "{session}");
    assert_eq!(session["principal"], "user:alice@example.com");
    let token = session["access_token"].as_str().unwrap();
    assert_eq!(
        s[0].api()
            .get_with(None, &format!("/tokeninfo?access_token={token}"))
            .0,
        200,
        "the session works on the server that issued the code too"
    );
    for server in &s {
        let (st, err) = redeem(server);
        assert_eq!((st, &err["error"]), (400, &json!("invalid_grant")), "once");
    }
}
