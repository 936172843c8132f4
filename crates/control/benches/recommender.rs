//! Policy intelligence costs: recording a request in the audit log (what the request path
//! pays: a trace of its decisions and a channel send; the SQLite write happens on the audit
//! thread), and computing the IAM recommendations for 10,000 bindings after a million audited
//! calls. (An allow policy holds at most 1,500 principals, so the bindings are spread over
//! ten projects of 1,000, and the figure is the time to list all ten.)

use criterion::{Criterion, criterion_group, criterion_main};
use runpool_control::Control;
use runpool_control::base::store::SqliteStore;
use runpool_control::intelligence::audit::{AuditLog, Decision, Record, Trace};
use runpool_control::world::World;
use std::hint::black_box;
use std::time::Instant;

const PROJECTS: usize = 10;
const BINDINGS: usize = 10_000;
const ENTRIES: usize = 1_000_000;
const ROLES: &[&str] = &[
    "roles/run.developer",
    "roles/logging.viewer",
    "roles/browser",
    "roles/iam.serviceAccountUser",
    "roles/pubsub.editor",
    "roles/editor",
    "roles/viewer",
    "roles/storage.objectViewer",
];

fn number(project: usize) -> String {
    format!("30000000001{project}")
}

fn parent(project: usize) -> String {
    format!(
        "projects/app-project-{project}/locations/global/recommenders/google.iam.policy.Recommender"
    )
}

fn decision(project: usize, permission: &str) -> Decision {
    Decision {
        resource: format!("projects/app-project-{project}"),
        canonical: format!("projects/{}", number(project)),
        resource_type: "cloudresourcemanager.googleapis.com/Project".into(),
        service: "cloudresourcemanager.googleapis.com".into(),
        permission: permission.into(),
        granted: true,
        soft: false,
    }
}

fn record(project: usize, principal: String, decisions: Vec<Decision>) -> Record {
    Record {
        time: chrono::Utc::now(),
        service_name: "cloudresourcemanager.googleapis.com".into(),
        method_name: "google.cloud.resourcemanager.v3.Projects.GetIamPolicy".into(),
        resource_name: format!("projects/app-project-{project}"),
        project: format!("app-project-{project}"),
        principal_email: principal,
        workload: None,
        decisions,
        status_code: 0,
        status_message: String::new(),
        activity: false,
    }
}

fn audit_overhead(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
    // Timed in chunks the writer drains in between (untimed), so every send is a real one
    // rather than a cheap refusal of a full queue.
    c.bench_function("audit: trace 2 decisions + record (request path)", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(1024);
                let t = Instant::now();
                for _ in 0..chunk {
                    let trace = Trace::default();
                    trace.set_principal("alice@example.com");
                    trace.push(decision(0, "resourcemanager.projects.get"));
                    trace.push(decision(0, "resourcemanager.projects.getIamPolicy"));
                    log.record(black_box(record(
                        0,
                        trace.principal().unwrap_or_default(),
                        trace.decisions(),
                    )));
                }
                spent += t.elapsed();
                log.flush();
                left -= chunk;
            }
            spent
        })
    });
    println!("audit: {} records lost", log.lost());
}

fn recommendations(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = "organizations:\n  - domain: example.com\n    iam:\n      - role: roles/owner\n        members: [user:admin@example.com]\n    projects:\n".to_string();
    for p in 0..PROJECTS {
        yaml += &format!(
            "      - projectId: app-project-{p}\n        number: \"{}\"\n        iam:\n",
            number(p)
        );
        for i in (p * BINDINGS / PROJECTS)..((p + 1) * BINDINGS / PROJECTS) {
            yaml += &format!(
                "          - role: {}\n            members: [user:u{i}@example.com]\n",
                ROLES[i % ROLES.len()]
            );
        }
    }
    let control = Control::open(Box::new(
        SqliteStore::open(&dir.path().join("runpool.db")).unwrap(),
    ))
    .unwrap();
    control.seed(&World::from_yaml(&yaml).unwrap()).unwrap();
    control.set_audit_log(AuditLog::open(&dir.path().join("audit.db")).unwrap());
    control.set_admin_credential("cred".into());
    let catalog = control.snapshot().catalog_arc();
    let log = control.audit_log().unwrap();
    let t = Instant::now();
    // Every user calls; the users of every third binding use nothing (REMOVE_ROLE), the others
    // a few of their role's permissions, over and over (REPLACE_ROLE).
    for n in 0..ENTRIES {
        let i = n % BINDINGS;
        if i.is_multiple_of(3) {
            continue;
        }
        let perms = &catalog.role(ROLES[i % ROLES.len()]).unwrap().permissions;
        let p = &perms[(n / BINDINGS) % perms.len().min(4)];
        let project = i * PROJECTS / BINDINGS;
        log.record(record(
            project,
            format!("u{i}@example.com"),
            vec![decision(project, p)],
        ));
        if n.is_multiple_of(2048) {
            log.flush();
        }
    }
    log.flush();
    println!(
        "recommender: {ENTRIES} audit entries written in {:.1} s ({} lost)",
        t.elapsed().as_secs_f64(),
        log.lost()
    );
    let token = control
        .mint_user_token(Some("cred"), "admin@example.com")
        .unwrap()
        .access_token;
    let admin = control.authenticate(Some(&token)).unwrap();
    let list_all = || {
        (0..PROJECTS)
            .map(|p| {
                control
                    .list_recommendations(&admin, &parent(p), "")
                    .unwrap()
                    .len()
            })
            .sum::<usize>()
    };
    let t = Instant::now();
    let first = list_all();
    println!(
        "recommender: first list of {first} recommendations over {BINDINGS} bindings: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut g = c.benchmark_group("recommender");
    g.sample_size(10);
    g.bench_function("list IAM recommendations (10k bindings, 1M entries)", |b| {
        b.iter(list_all)
    });
    g.finish();
}

criterion_group!(benches, audit_overhead, recommendations);
criterion_main!(benches);
