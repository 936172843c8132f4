//! `runpool policy-intelligence troubleshoot-policy iam` and the log readers (`logging read`,
//! `run worker-pools logs read|tail`) against the real binary: the troubleshooter's summary
//! names the granting role or what is missing, and a worker pool instance's output comes back
//! through each log command (tail included, for a line written after it started).

mod common;

use common::Server;
use common::procs::marker;
use common::wait::wait_for_every;
use common::world::{IMG, ORG_ADMIN, Org, app_project};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROJECT: &str = "//cloudresourcemanager.googleapis.com/projects/app-project";
/// How explained policies name the project (by id or, as Runpool does, by number).
const PROJECTS: &str = "//cloudresourcemanager.googleapis.com/projects/";

/// alice is a browser of app-project; so was bob, on a condition long expired.
fn world() -> Server {
    let app = app_project()
        .grant("roles/browser", "user:alice@example.com")
        .grant_if(
            "roles/browser",
            "user:bob@example.com",
            "expired",
            "request.time < timestamp('2000-01-01T00:00:00Z')",
        );
    let s = Server::start_with_world(&Org::new().admin(ORG_ADMIN).project(app).yaml());
    s.login_admin();
    s.ok(&["config", "set", "project", "app-project"]);
    s
}

fn troubleshoot(s: &Server, email: &str, perm: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "policy-intelligence",
        "troubleshoot-policy",
        "iam",
        PROJECT,
        "--principal-email",
        email,
        "--permission",
        perm,
    ];
    args.extend(extra);
    s.ok(&args).stdout
}

#[test]
fn troubleshoot_summary_names_the_granting_role_or_what_is_missing() {
    let s = world();

    // roles/browser on the project includes resourcemanager.projects.get.
    let out = troubleshoot(&s, "alice@example.com", "resourcemanager.projects.get", &[]);
    assert!(out.starts_with("Access: GRANTED (CAN_ACCESS)"), "{out}");
    assert!(
        out.contains("- roles/browser: includes the permission; principal matched as user:alice@example.com => GRANTED"),
        "{out}"
    );
    assert!(
        out.contains(&format!("granted by roles/browser on {PROJECTS}")),
        "{out}"
    );

    // Nothing alice holds includes projects.delete: owner does, but she is not its member.
    let out = troubleshoot(
        &s,
        "alice@example.com",
        "resourcemanager.projects.delete",
        &[],
    );
    assert!(
        out.starts_with("Access: NOT GRANTED (CANNOT_ACCESS)"),
        "{out}"
    );
    assert!(
        out.contains("- roles/browser: does not include the permission"),
        "{out}"
    );
    let last = out.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with(
            "Conclusion: alice@example.com lacks resourcemanager.projects.delete: it is not a \
             member of any binding whose role includes the permission"
        ) && last.contains(
            "roles/owner on //cloudresourcemanager.googleapis.com/organizations/100000000001"
        ),
        "{out}"
    );

    // A permission no bound role includes at all.
    let out = troubleshoot(&s, "alice@example.com", "run.nothing.such", &[]);
    assert!(out.contains("no binding grants the permission"), "{out}");

    // bob's browser binding would grant projects.get, but its condition is false.
    let out = troubleshoot(&s, "bob@example.com", "resourcemanager.projects.get", &[]);
    assert!(out.starts_with("Access: NOT GRANTED"), "{out}");
    assert!(
        out.contains("condition \"expired\" (`request.time < timestamp('2000-01-01T00:00:00Z')`) is false => NOT_GRANTED"),
        "{out}"
    );
    let last = out.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "Conclusion: bob@example.com lacks resourcemanager.projects.get: roles/browser on \
             {PROJECTS}"
        )) && last.ends_with(" would grant it, but its condition \"expired\" (`request.time < timestamp('2000-01-01T00:00:00Z')`) is false."),
        "{out}"
    );

    // --format json prints the whole response.
    let out = troubleshoot(
        &s,
        "alice@example.com",
        "resourcemanager.projects.get",
        &["--format", "json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["overallAccessState"], "CAN_ACCESS", "{v}");
    assert!(
        v["allowPolicyExplanation"]["explainedPolicies"].is_array(),
        "{v}"
    );
}

/// A running `runpool ...` whose stdout lines arrive on a channel; killed on drop.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn start(s: &Server, args: &[&str]) -> Streaming {
        let home = s.config.path().join("home");
        let mut child = Command::new(common::bin())
            .env("RUNPOOL_CONFIG", s.config.path())
            .env("HOME", &home)
            .env_remove("RUNPOOL_ADMIN_CREDENTIAL")
            .env_remove("RUNPOOL_CORE_PROJECT")
            .env_remove("RUNPOOL_CORE_ACCOUNT")
            .env_remove("RUNPOOL_CORE_API_ENDPOINT")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn runpool");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Streaming {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Wait up to `secs` for a line containing `text`; every line seen so far.
    fn wait_line(&mut self, text: &str, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let status = self.child.try_wait();
                panic!(
                    "no line with {text:?} within {secs} s (process: {status:?}); lines: {:#?}",
                    self.seen
                );
            }
            if let Ok(l) = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                self.seen.push(l);
            }
        }
        self.seen.clone()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_pools_output_comes_back_through_logs_read_logging_read_and_tail() {
    let s = world();
    let mark = marker("logs");
    let trigger = common::instance_dir();
    let go = trigger.path().join("go");
    // Two early lines, then (once the test creates `go`) a late one; then idle.
    let script = format!(
        "echo first-{mark}; echo second-{mark}; while [ ! -e {go} ]; do sleep 0.2; done; \
         echo late-{mark}; while true; do sleep 0.5; done",
        go = go.display()
    );
    s.ok(&[
        "beta",
        "run",
        "worker-pools",
        "deploy",
        "wp",
        "--image",
        IMG,
        "--command",
        "sh",
        "--args",
        &format!("-c,{script}"),
        "--instances",
        "1",
        "--region",
        "us-central1",
    ]);
    let read = |extra: &[&str]| {
        let mut args = vec![
            "beta",
            "run",
            "worker-pools",
            "logs",
            "read",
            "wp",
            "--region",
            "us-central1",
        ];
        args.extend(extra);
        s.ok(&args).stdout
    };

    // logs read: `YYYY-MM-DD HH:MM:SS TEXT`, oldest first.
    // Each poll runs the CLI: every 300 ms.
    let every = Duration::from_millis(300);
    let out = wait_for_every(every, "both early lines in `logs read`", 15, || {
        let out = read(&[]);
        if out.contains(&format!("second-{mark}")) {
            Ok(out)
        } else {
            Err(out)
        }
    });
    let lines: Vec<&str> = out.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.ends_with(&format!(" first-{mark}")))
        .unwrap_or_else(|| panic!("{out}"));
    let second = lines
        .iter()
        .position(|l| l.ends_with(&format!(" second-{mark}")))
        .unwrap();
    assert!(first < second, "oldest first: {out}");
    let stamp = &lines[first][..19];
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").is_ok(),
        "timestamp prefix: {out}"
    );

    // --limit 1: only the newest.
    let out = read(&["--limit", "1"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&format!("second-{mark}")), "{out}");

    // Another pool name shows nothing of this one.
    let out = s
        .ok(&["run", "worker-pools", "logs", "read", "other"])
        .stdout;
    assert!(!out.contains(&mark), "{out}");

    // logging read: YAML entries, newest first.
    let out = s
        .ok(&[
            "logging",
            "read",
            r#"resource.type="cloud_run_worker_pool""#,
        ])
        .stdout;
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&out)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let texts: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["textPayload"].as_str())
        .collect();
    let (f, sec) = (
        texts.iter().position(|t| *t == format!("first-{mark}")),
        texts.iter().position(|t| *t == format!("second-{mark}")),
    );
    assert!(
        matches!((f, sec), (Some(f), Some(sec)) if sec < f),
        "newest first: {out}"
    );
    let e = &docs[sec.unwrap()];
    assert_eq!(e["resource"]["type"], "cloud_run_worker_pool", "{out}");
    assert_eq!(e["resource"]["labels"]["worker_pool_name"], "wp", "{out}");
    assert_eq!(e["severity"], "DEFAULT", "stdout is DEFAULT: {out}");
    let out = s
        .ok(&[
            "logging",
            "read",
            r#"resource.type="cloud_run_worker_pool""#,
            "--limit",
            "1",
            "--format",
            "json",
        ])
        .stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{out}");

    // logs tail: prints what is written after it started, not what came before.
    let mut tail = Streaming::start(
        &s,
        &[
            "beta",
            "run",
            "worker-pools",
            "logs",
            "tail",
            "wp",
            "--region",
            "us-central1",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&go, "").unwrap();
    let seen = tail.wait_line(&format!("late-{mark}"), 15);
    assert!(
        !seen.iter().any(|l| l.contains(&format!("first-{mark}"))),
        "tail prints only new entries: {seen:#?}"
    );
    assert!(
        seen.iter()
            .all(|l| l.len() > 20 && l.as_bytes()[19] == b' '),
        "`TIMESTAMP TEXT` lines: {seen:#?}"
    );
    drop(tail);

    s.ok(&[
        "run",
        "worker-pools",
        "delete",
        "wp",
        "--region",
        "us-central1",
    ]);
}
