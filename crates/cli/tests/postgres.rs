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
