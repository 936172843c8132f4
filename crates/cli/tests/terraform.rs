//! `runpool terraform plan|apply` against the real binary: the Google provider's
//! `google_cloud_run_v2_worker_pool` and `google_service_account` from HCL, applied through
//! the same v2 calls the provider makes, so the actAs rule holds here too.

mod common;

use common::Files;
use common::session::{Session, act_as_denied};
use common::world::{Org, POOLS, app_project};
use serde_json::Value;

fn main_tf(instances: u32) -> String {
    format!(
        r#"
provider "google" {{
  project = "app-project"
  region  = "us-central1"
}}

variable "image" {{
  default = "us-docker.pkg.dev/cloudrun/container/worker-pool"
}}

locals {{
  pool_name = "wp-${{var.suffix}}"
}}

variable "suffix" {{
  default = "tf"
}}

resource "google_service_account" "worker" {{
  account_id   = "tf-worker"
  display_name = "Worker pool identity"
}}

resource "google_cloud_run_v2_worker_pool" "default" {{
  name                = local.pool_name
  location            = "us-central1"
  launch_stage        = "BETA"
  deletion_protection = false

  template {{
    service_account = google_service_account.worker.email
    containers {{
      image = var.image
      args  = ["--instances", "{instances}"]
    }}
  }}

  scaling {{
    scaling_mode          = "MANUAL"
    manual_instance_count = {instances}
  }}
}}
"#
    )
}

const SA: &str = "tf-worker@app-project.iam.gserviceaccount.com";

struct W {
    session: Session,
    files: Files,
}

common::session::deref_session!(W, session);

fn world() -> W {
    let session = Session::start(&Org::new().project(app_project().developer()).yaml());
    session.server.login_dev_and_admin("app-project");
    W {
        session,
        files: Files::new(),
    }
}

impl W {
    fn get(&self, path: &str) -> (u16, Value) {
        self.api.get(&self.admin, path)
    }
    fn pool_count(&self) -> usize {
        let (s, list) = self.get(POOLS);
        assert_eq!(s, 200, "{list}");
        list["workerPools"].as_array().map(Vec::len).unwrap_or(0)
    }
}

#[test]
fn apply_creates_the_account_and_the_pool_that_runs_as_it_and_reapply_updates() {
    let w = world();
    let f = w.files.write("main.tf", &main_tf(1));
    let r = w.server.ok(&["terraform", "apply", &f, "-auto-approve"]);
    assert!(
        r.stdout
            .contains("google_service_account.worker: Creating...")
            && r.stdout
                .contains("google_cloud_run_v2_worker_pool.default: Creation complete after"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("Apply complete! Resources: 2 added, 0 changed, 0 destroyed."),
        "{r:?}"
    );
    let (s, sa) = w.get(&format!("/v1/projects/app-project/serviceAccounts/{SA}"));
    assert_eq!(s, 200, "{sa}");
    assert_eq!(sa["displayName"], "Worker pool identity");
    let (s, pool) = w.get(&format!("{POOLS}/wp-tf"));
    assert_eq!(s, 200, "{pool}");
    assert_eq!(
        pool["template"]["serviceAccount"], SA,
        "runs as the new account"
    );
    assert_eq!(pool["launchStage"], "BETA");
    assert_eq!(pool["scaling"]["manualInstanceCount"], 1);

    // Nothing changed: nothing to do.
    let r = w.server.ok(&["terraform", "plan", &f]);
    assert!(r.stdout.contains("No changes."), "{r:?}");

    // Edit and re-apply: an in-place update, not a second pool.
    std::fs::write(&f, main_tf(3)).unwrap();
    let r = w.server.ok(&["terraform", "plan", &f]);
    assert!(
        r.stdout
            .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("scaling.manualInstanceCount = 1 -> 3"),
        "{r:?}"
    );
    let r = w.server.ok(&["terraform", "apply", &f]);
    assert!(
        r.stdout
            .contains("Apply complete! Resources: 0 added, 1 changed, 0 destroyed."),
        "{r:?}"
    );
    let (_, pool) = w.get(&format!("{POOLS}/wp-tf"));
    assert_eq!(pool["scaling"]["manualInstanceCount"], 3);
    assert_eq!(pool["template"]["containers"][0]["args"][1], "3");
    assert_eq!(pool["generation"], "2");
    assert_eq!(w.pool_count(), 1, "no duplicate");

    // -var overrides a default (a new pool name: one more pool).
    let r = w
        .server
        .ok(&["terraform", "apply", &f, "-var", "suffix=two"]);
    assert!(r.stdout.contains("1 added, 0 changed"), "{r:?}");
    assert_eq!(w.get(&format!("{POOLS}/wp-two")).0, 200);
}

#[test]
fn plan_shows_the_counts_and_writes_nothing() {
    let w = world();
    let f = w.files.write("main.tf", &main_tf(2));
    let r = w.server.ok(&["terraform", "plan", &f]);
    assert!(
        r.stdout
            .contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("# google_cloud_run_v2_worker_pool.default will be created"),
        "{r:?}"
    );
    assert!(r.stdout.contains(SA), "the reference is resolved: {r:?}");
    assert_eq!(
        w.get(&format!("/v1/projects/app-project/serviceAccounts/{SA}"))
            .0,
        404
    );
    assert_eq!(w.pool_count(), 0);
}

#[test]
fn without_act_as_plan_and_apply_fail_with_the_act_as_text_and_no_pool_exists() {
    let w = world();
    w.server
        .ok(&["iam", "service-accounts", "create", "shared"]);
    let sa = "shared@app-project.iam.gserviceaccount.com";
    let f = w.files.write(
        "main.tf",
        &format!(
            r#"
resource "google_cloud_run_v2_worker_pool" "default" {{
  name     = "wp"
  location = "us-central1"
  project  = "app-project"
  template {{
    service_account = "{sa}"
    containers {{
      image = "us-docker.pkg.dev/cloudrun/container/worker-pool"
    }}
  }}
}}
"#
        ),
    );
    let text = format!(
        "Error: Error creating WorkerPool: googleapi: Error 403: {}",
        act_as_denied(sa)
    );
    for cmd in ["plan", "apply"] {
        let r = w.server.run_as("dev@example.com", &["terraform", cmd, &f]);
        assert_eq!(r.code, Some(1), "{cmd}: {r:?}");
        assert!(r.stderr.contains(&text), "{cmd}: {r:?}");
        assert!(
            r.stderr
                .contains("with google_cloud_run_v2_worker_pool.default,"),
            "{r:?}"
        );
        assert!(!r.stdout.contains("Apply complete!"), "{r:?}");
        assert_eq!(w.get(&format!("{POOLS}/wp")).0, 404, "{cmd}: no pool");
    }
}

#[test]
fn malformed_hcl_fails_with_its_location_and_applies_nothing() {
    let w = world();
    let f = w.files.write(
        "main.tf",
        r#"resource "google_service_account" "ok" {
  account_id = "fine"
}

resource "google_cloud_run_v2_worker_pool" "default" {
  name = "wp"
  template {
    containers {
      image = 
    }
  }
}
"#,
    );
    let r = w.server.run(&["terraform", "apply", &f]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("Error: Invalid HCL in main.tf")
            && r.stderr.contains("line 9, column 15"),
        "{r:?}"
    );
    assert_eq!(
        w.get("/v1/projects/app-project/serviceAccounts/fine@app-project.iam.gserviceaccount.com")
            .0,
        404,
        "nothing applied"
    );
    // An unknown reference is refused before anything is applied as well.
    let f = w.files.write(
        "refs.tf",
        r#"resource "google_service_account" "ok" {
  account_id = var.missing
}
"#,
    );
    let r = w.server.run(&["terraform", "apply", &f]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("missing"), "{r:?}");
    // The seed page's snippet puts service_account outside template: the provider refuses
    // that argument, and so does runpool (rather than deploying as the default account).
    let f = w.files.write(
        "seed.tf",
        r#"resource "google_cloud_run_v2_worker_pool" "default" {
  name         = "wp"
  location     = "us-central1"
  launch_stage = "BETA"
  template {
    containers {
      image = "us-docker.pkg.dev/cloudrun/container/worker-pool"
    }
  }
  service_account = "x@app-project.iam.gserviceaccount.com"
}
"#,
    );
    let r = w.server.run(&["terraform", "apply", &f]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("An argument named \"service_account\" is not expected here."),
        "{r:?}"
    );
    assert_eq!(w.pool_count(), 0);
}
