//! `runpool run worker-pools …` against the real binary: the seed page's gcloud and YAML walk
//! (deploy with an identity, describe, export, edit, replace, update), the actAs rule on every
//! path that can change the identity, scaling without a revision, and gcloud's messages.

mod common;

use common::session::{Session, act_as_denied};
use common::world::{IMG, Org, app_project};
use serde_json::{Value, json};

struct W(Session);

common::session::deref_session!(W, 0);

fn world() -> W {
    let w = Session::start(&Org::new().project(app_project().developer()).yaml());
    w.server.login_dev_and_admin("app-project");
    W(w)
}

impl W {
    /// `iam service-accounts create ID` (in app-project); the email.
    fn cli_create_sa(&self, id: &str) -> String {
        self.server.ok(&["iam", "service-accounts", "create", id]);
        format!("{id}@app-project.iam.gserviceaccount.com")
    }

    /// `beta run worker-pools deploy ID --image IMG --service-account SA`.
    fn cli_deploy(&self, id: &str, sa: &str) {
        let r = self.server.ok(&[
            "beta",
            "run",
            "worker-pools",
            "deploy",
            id,
            "--image",
            IMG,
            "--service-account",
            sa,
            "--region",
            "us-central1",
        ]);
        assert!(
            r.stderr
                .contains(&format!("Worker pool [{id}] revision [{id}-00001-")),
            "{r:?}"
        );
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

#[test]
fn the_seed_walk_deploy_describe_export_replace_update() {
    let w = world();
    let sa = w.cli_create_sa("worker-sa");
    let other = w.cli_create_sa("other-sa");

    // gcloud beta run worker-pools deploy WORKER_POOL --image IMAGE_URL --service-account SA
    w.cli_deploy("wp", &sa);
    let (s, pool) = w.pool("wp");
    assert_eq!(s, 200, "{pool}");
    assert_eq!(pool["template"]["serviceAccount"], sa);
    assert_eq!(pool["template"]["containers"][0]["image"], IMG);
    assert_eq!(pool["launchStage"], "BETA", "the beta track sets the stage");
    assert_eq!(pool["client"], "runpool");
    let first_rev = pool["latestCreatedRevision"].clone();

    // describe: gcloud's human description by default, the v1 object with `--format yaml`.
    let r = w.server.describe_pool("wp", &[]);
    assert!(
        r.stdout.contains("WorkerPool wp in region us-central1")
            && r.stdout.contains(&format!("Service account:   {sa}"))
            && r.stdout.contains("Scaling:"),
        "{r:?}"
    );
    let r = w.server.describe_pool("wp", &["--format", "yaml"]);
    let v1 = yaml(&r.stdout);
    assert_eq!(v1["kind"], "WorkerPool");
    assert_eq!(v1["spec"]["template"]["spec"]["serviceAccountName"], sa);
    assert!(v1["status"].is_object() && v1["metadata"]["resourceVersion"].is_string());

    // describe --format export > workerpool.yaml
    let r = w.server.describe_pool("wp", &["--format", "export"]);
    let mut exported = yaml(&r.stdout);
    assert!(exported.get("status").is_none(), "{}", r.stdout);
    let meta = &exported["metadata"];
    for gone in [
        "resourceVersion",
        "uid",
        "generation",
        "selfLink",
        "creationTimestamp",
    ] {
        assert!(meta.get(gone).is_none(), "{gone} kept:\n{}", r.stdout);
    }
    assert!(
        meta["annotations"]
            .get("serving.knative.dev/creator")
            .is_none()
    );
    assert_eq!(
        meta["annotations"]["run.googleapis.com/launch-stage"],
        "BETA"
    );
    assert_eq!(meta["namespace"], "300000000001", "namespace kept");
    assert_eq!(
        meta["labels"]["cloud.googleapis.com/location"],
        "us-central1"
    );

    // Edit serviceAccountName, then replace.
    exported["spec"]["template"]["spec"]["serviceAccountName"] = json!(other);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workerpool.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&exported).unwrap()).unwrap();
    let r = w.server.ok(&[
        "beta",
        "run",
        "worker-pools",
        "replace",
        file.to_str().unwrap(),
    ]);
    assert!(
        r.stderr
            .contains("New configuration has been applied to worker pool [wp]."),
        "{r:?}"
    );
    let (_, pool) = w.pool("wp");
    assert_eq!(pool["template"]["serviceAccount"], other);
    assert_ne!(pool["latestCreatedRevision"], first_rev, "a new revision");
    assert_eq!(
        pool["template"]["containers"][0]["image"], IMG,
        "the rest kept"
    );

    // gcloud beta run worker-pools update WORKER_POOL --service-account SERVICE_ACCOUNT
    let r = w.server.ok(&[
        "beta",
        "run",
        "worker-pools",
        "update",
        "wp",
        "--service-account",
        &sa,
        "--region",
        "us-central1",
    ]);
    assert!(r.stderr.contains("has been deployed."), "{r:?}");
    let r = w.server.ok(&[
        "run",
        "worker-pools",
        "describe",
        "wp",
        "--region",
        "us-central1",
        "--format",
        "json",
    ]);
    let v1: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v1["spec"]["template"]["spec"]["serviceAccountName"], sa);
    assert_eq!(w.revisions("wp"), 3);
}

#[test]
fn without_act_as_deploy_replace_and_update_are_refused_and_nothing_changes() {
    let w = world();
    let sa = w.cli_create_sa("worker-sa");
    let other = w.cli_create_sa("other-sa");
    w.cli_deploy("wp", &sa);
    let before = w.pool("wp").1;
    let dev = |args: &[&str]| w.server.run_as("dev@example.com", args);
    let update_to = |account: &str| {
        dev(&[
            "beta",
            "run",
            "worker-pools",
            "update",
            "wp",
            "--service-account",
            account,
            "--region",
            "us-central1",
        ])
    };
    let grant_user = |account: &str| {
        w.server.ok(&[
            "iam",
            "service-accounts",
            "add-iam-policy-binding",
            account,
            "--member",
            "user:dev@example.com",
            "--role",
            "roles/iam.serviceAccountUser",
        ])
    };

    let r = dev(&[
        "beta",
        "run",
        "worker-pools",
        "deploy",
        "wp2",
        "--image",
        IMG,
        "--service-account",
        &other,
        "--region",
        "us-central1",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&act_as_denied(&other)), "{r:?}");
    assert_eq!(w.pool("wp2").0, 404, "nothing created");

    // replace: the developer can read the pool (run.developer) but not act as `other`.
    let r = w.server.export_pool(Some("dev@example.com"), "wp");
    let mut exported = yaml(&r.stdout);
    exported["spec"]["template"]["spec"]["serviceAccountName"] = json!(other);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wp.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&exported).unwrap()).unwrap();
    let r = dev(&[
        "beta",
        "run",
        "worker-pools",
        "replace",
        file.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&act_as_denied(&other)), "{r:?}");

    let r = update_to(&other);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&act_as_denied(&other)), "{r:?}");

    let after = w.pool("wp").1;
    assert_eq!(after["template"]["serviceAccount"], sa);
    assert_eq!(after["etag"], before["etag"], "nothing written");
    assert_eq!(w.revisions("wp"), 1);

    // Granted actAs on the account, the same update goes through.
    for account in [&other, &sa] {
        grant_user(account);
    }
    let r = update_to(&other);
    assert!(r.ok(), "{r:?}");
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], other);
}

#[test]
fn instances_alone_make_no_revision_and_the_other_commands_work() {
    let w = world();
    let sa = w.cli_create_sa("worker-sa");
    w.server.ok(&["config", "set", "run/region", "us-central1"]);

    // --dry-run validates and writes nothing.
    let r = w.server.ok(&[
        "run",
        "worker-pools",
        "deploy",
        "wp",
        "--image",
        IMG,
        "--service-account",
        &sa,
        "--dry-run",
    ]);
    assert!(r.stderr.contains("Nothing was deployed"), "{r:?}");
    assert_eq!(w.pool("wp").0, 404);

    w.server.ok(&[
        "run",
        "worker-pools",
        "deploy",
        "wp",
        "--image",
        IMG,
        "--service-account",
        &sa,
        "--instances",
        "1",
        "--args",
        "--fast,--quiet",
    ]);
    let r = w
        .server
        .ok(&["run", "worker-pools", "update", "wp", "--instances", "3"]);
    assert!(
        r.stderr.contains("has been updated.") && !r.stderr.contains("Creating Revision"),
        "{r:?}"
    );
    let pool = w.pool("wp").1;
    assert_eq!(pool["scaling"]["manualInstanceCount"], 3);
    assert_eq!(pool["scaling"]["scalingMode"], "MANUAL");
    assert_eq!(
        pool["template"]["containers"][0]["args"],
        json!(["--fast", "--quiet"])
    );
    assert_eq!(w.revisions("wp"), 1, "scaling makes no revision");
    let r = w.server.ok(&[
        "run",
        "worker-pools",
        "revisions",
        "list",
        "--worker-pool",
        "wp",
    ]);
    assert_eq!(r.stdout.lines().count(), 2, "{r:?}");
    let rev = pool["latestCreatedRevision"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(r.stdout.contains(&rev), "{r:?}");
    let r = w
        .server
        .ok(&["run", "worker-pools", "revisions", "describe", &rev]);
    assert_eq!(yaml(&r.stdout)["serviceAccount"], sa);

    // A deploy (forceNewRevision) of the same template still makes one.
    w.server
        .ok(&["run", "worker-pools", "deploy", "wp", "--image", IMG]);
    assert_eq!(w.revisions("wp"), 2);
    assert_eq!(w.pool("wp").1["template"]["serviceAccount"], sa, "kept");

    let r = w.server.ok(&["run", "worker-pools", "list"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].contains("WORKER_POOL") && lines[0].contains("LAST DEPLOYED BY"),
        "{r:?}"
    );
    assert!(
        // ✔ when ready; the runtime marks a pool without a command ✖ (it cannot start it).
        ["✔", "✖", "…"].iter().any(|m| lines[1].starts_with(m))
            && lines[1].contains("wp")
            && lines[1].contains("us-central1"),
        "{r:?}"
    );

    // Pool IAM: read with GET, written with setIamPolicy.
    w.server.ok(&[
        "run",
        "worker-pools",
        "add-iam-policy-binding",
        "wp",
        "--member",
        "user:vic@example.com",
        "--role",
        "roles/run.viewer",
    ]);
    let r = w.server.ok(&[
        "run",
        "worker-pools",
        "get-iam-policy",
        "wp",
        "--format",
        "json",
    ]);
    let policy: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        policy["bindings"][0]["members"],
        json!(["user:vic@example.com"])
    );

    let r = w.server.ok(&["run", "worker-pools", "delete", "wp"]);
    assert!(r.stderr.contains("Deleted worker pool [wp]."), "{r:?}");
    assert_eq!(w.pool("wp").0, 404);
}

#[test]
fn describing_a_missing_pool_says_so() {
    let w = world();
    let r = w.server.run(&[
        "run",
        "worker-pools",
        "describe",
        "nope",
        "--region",
        "us-central1",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("ERROR: (runpool.run.worker-pools.describe) Cannot find worker pool [nope]"),
        "{r:?}"
    );
    let r = w
        .server
        .run(&["run", "worker-pools", "deploy", "wp", "--image", IMG]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("Missing required argument [--region]"),
        "{r:?}"
    );
}
