//! Every service identity rule (`runpool_control::run::identity::Rule`: Exists, Enabled, ActAs,
//! CrossProjectPolicy, ServiceAgentTokenCreator) holds on the two entry points besides the v2
//! API that can set a pool's identity: the v1 (Knative) `replace`
//! (`runpool beta run worker-pools replace FILE`, and the raw v1 PUT it makes) and
//! `runpool terraform apply`.
//!
//! One table of accounts, each breaking exactly one rule (the v2 preflight names it), is
//! deployed through each path, both creating a new pool and changing an existing one: every
//! path is refused with the v2 path's status and text, and nothing is written. An account that
//! keeps every rule then goes through the same paths, so the refusals are the rules' doing.

mod common;

use common::session::{Session, act_as_denied, sa_base};
use common::world::{AGENT, AGENT_EMAIL, DEFAULT_SA, IMG, POOLS};
use common::world::{app_project, cross_project, project, shared_folder};
use common::{Files, Run, Server};
use serde_json::{Value, json};

const V1: &str = "/apis/run.googleapis.com/v1/namespaces/app-project/workerpools";
const DEV: &str = "user:dev@example.com";
const SA_USER: &str = "roles/iam.serviceAccountUser";
const TOKEN_CREATOR: &str = "roles/iam.serviceAccountTokenCreator";
const ALL_RULES: [&str; 5] = [
    "Exists",
    "Enabled",
    "ActAs",
    "CrossProjectPolicy",
    "ServiceAgentTokenCreator",
];

/// An account that breaks exactly `rule` when the developer deploys it into app-project, and
/// Google's answer for it (what the v2 API gives).
struct Case {
    rule: &'static str,
    /// Part of the pool names this case tries to create.
    slug: &'static str,
    account: String,
    code: u16,
    status: &'static str,
    message: String,
}

impl Case {
    /// How the CLI prints the server's error: `STATUS: message`.
    fn cli_text(&self) -> String {
        format!("{}: {}", self.status, self.message)
    }
    /// How the Terraform provider prints it.
    fn googleapi(&self) -> String {
        format!("googleapi: Error {}: {}", self.code, self.message)
    }
}

struct W {
    session: Session,
    /// dev@example.com's token (roles/run.developer on app-project).
    dev: String,
    files: Files,
}

common::session::deref_session!(W, session);

/// The world, the table of cases and a control account every rule allows; an existing pool
/// `wp` (running as an app-project account) for the update paths.
fn world() -> (W, Vec<Case>, String) {
    // identity-project keeps the cross-project constraint (enforced by default); open-project
    // turns it off.
    let shared = shared_folder().project(project("open-project", "300000000003"));
    let s = Server::start_with_world(&cross_project(shared, app_project().developer()).yaml());
    s.login_dev_and_admin("app-project");
    let session = Session::new(s);
    let dev = session.api.token("dev@example.com");
    let w = W {
        session,
        dev,
        files: Files::new(),
    };
    let base = w.create_sa("app-project", "base-sa");
    w.deploy("wp", v2_pool(&base));
    let cases = w.cases();
    let ok = w.control_account();
    (w, cases, ok)
}

impl W {
    /// Add a binding to the policy of the service account `email`.
    fn grant_on_sa(&self, email: &str, role: &str, member: &str) {
        self.grant(&sa_base(email), role, member);
    }

    /// One account per rule, each breaking that rule alone.
    fn cases(&self) -> Vec<Case> {
        let never = "never-created@app-project.iam.gserviceaccount.com".to_string();

        let deleted = self.create_sa("app-project", "deleted-sa");
        self.grant_on_sa(&deleted, SA_USER, DEV);
        let (s, body) = self.api.delete(&self.admin, &sa_base(&deleted));
        assert_eq!(s, 200, "{body}");

        let disabled = self.create_sa("app-project", "disabled-sa");
        self.grant_on_sa(&disabled, SA_USER, DEV);
        let (s, body) = self.api.post(
            &self.admin,
            &format!("{}:disable", sa_base(&disabled)),
            json!({}),
        );
        assert_eq!(s, 200, "{body}");

        // No grant at all: the developer may not act as it.
        let no_act_as = self.create_sa("app-project", "no-act-as-sa");

        // In identity-project, where the cross-project constraint is enforced (the default);
        // actAs and the service agent's token creator are granted.
        let cross = self.create_sa("identity-project", "cross-sa");
        self.grant_on_sa(&cross, SA_USER, DEV);
        self.grant_on_sa(&cross, TOKEN_CREATOR, AGENT);

        // In open-project, where the constraint is off; actAs granted, the agent has nothing.
        self.disable_cross_project_constraint("projects/open-project");
        let no_agent = self.create_sa("open-project", "no-agent-sa");
        self.grant_on_sa(&no_agent, SA_USER, DEV);

        let cases = vec![
            Case {
                rule: "Exists",
                slug: "never",
                message: act_as_denied(&never),
                account: never,
                code: 403,
                status: "PERMISSION_DENIED",
            },
            Case {
                rule: "Exists",
                slug: "deleted",
                message: act_as_denied(&deleted),
                account: deleted,
                code: 403,
                status: "PERMISSION_DENIED",
            },
            Case {
                rule: "Enabled",
                slug: "disabled",
                message: format!("Service account {disabled} is disabled."),
                account: disabled,
                code: 400,
                status: "FAILED_PRECONDITION",
            },
            Case {
                rule: "ActAs",
                slug: "actas",
                message: act_as_denied(&no_act_as),
                account: no_act_as,
                code: 403,
                status: "PERMISSION_DENIED",
            },
            Case {
                rule: "CrossProjectPolicy",
                slug: "cross",
                message: format!(
                    "Service account {cross} belongs to project identity-project, where the \
                     organization policy constraint \
                     constraints/iam.disableCrossProjectServiceAccountUsage is enforced: it \
                     cannot be attached to a worker pool in another project. Turn the \
                     constraint off on project identity-project (or an ancestor) to allow it."
                ),
                account: cross,
                code: 400,
                status: "FAILED_PRECONDITION",
            },
            Case {
                rule: "ServiceAgentTokenCreator",
                slug: "agent",
                message: format!(
                    "Google Cloud Run Service Agent does not have permission to get access \
                     tokens for the service account {no_agent}. Please give {AGENT_EMAIL} permission \
                     iam.serviceAccounts.getAccessToken on the service account. Alternatively, \
                     if the service account is unspecified or in the same project you are \
                     deploying in, ensure that the Service Agent is assigned the Google Cloud \
                     Run Service Agent role roles/run.serviceAgent."
                ),
                account: no_agent,
                code: 400,
                status: "FAILED_PRECONDITION",
            },
        ];
        let mut covered: Vec<&str> = cases.iter().map(|c| c.rule).collect();
        covered.dedup();
        assert_eq!(covered, ALL_RULES, "the table covers every rule");

        // The reference: what the v2 API answers for each account. The preflight names the
        // one rule the account breaks; the deploy answers with Google's status and text.
        for c in &cases {
            let id = format!("v2-{}", c.slug);
            let (s, err) = self.api.post(
                &self.dev,
                &format!("{POOLS}?workerPoolId={id}&validateOnly=true"),
                v2_pool(&c.account),
            );
            assert_eq!(s, c.code, "{}: {err}", c.rule);
            let failure = err["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["@type"] == "type.googleapis.com/google.rpc.PreconditionFailure")
                .unwrap_or_else(|| panic!("{}: a PreconditionFailure: {err}", c.rule));
            let kinds = common::strs(&failure["violations"], "type");
            assert_eq!(kinds, [c.rule], "{} breaks that rule alone", c.slug);

            let (s, err) = self.api.post(
                &self.dev,
                &format!("{POOLS}?workerPoolId={id}"),
                v2_pool(&c.account),
            );
            assert_eq!(
                (s, &err["error"]["status"], &err["error"]["message"]),
                (c.code, &json!(c.status), &json!(c.message)),
                "{}: v2 create",
                c.rule
            );
            assert_eq!(self.pool(&id).0, 404, "{}: v2 stored nothing", c.rule);
        }
        cases
    }

    /// A cross-project account for which all the rules hold (the hardest case to pass).
    fn control_account(&self) -> String {
        let ok = self.create_sa("open-project", "control-sa");
        self.grant_on_sa(&ok, SA_USER, DEV);
        self.grant_on_sa(&ok, TOKEN_CREATOR, AGENT);
        let (s, op) = self.api.post(
            &self.dev,
            &format!("{POOLS}?workerPoolId=v2-ok&validateOnly=true"),
            v2_pool(&ok),
        );
        assert_eq!(s, 200, "the control account passes the v2 preflight: {op}");
        ok
    }

    /// `runpool --account dev@example.com ARGS...`
    fn as_dev(&self, args: &[&str]) -> Run {
        self.server.run_as("dev@example.com", args)
    }

    /// `run worker-pools describe NAME --format json`, as the developer.
    fn describe(&self, name: &str) -> Run {
        self.as_dev(&[
            "run",
            "worker-pools",
            "describe",
            name,
            "--region",
            "us-central1",
            "--format",
            "json",
        ])
    }

    fn assert_absent(&self, name: &str, what: &str) {
        let r = self.describe(name);
        assert_eq!(r.code, Some(1), "{what}: {name} exists: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("Cannot find worker pool [{name}]")),
            "{what}: {r:?}"
        );
    }

    /// `wp` now runs as `sa`, in a second revision.
    fn assert_moved_to(&self, sa: &str) {
        let after = self.snapshot("wp");
        assert_eq!(after["serviceAccountName"], sa);
        assert_eq!(after["revisions"], 2, "a new revision");
    }

    /// What a write to a pool would change, as `describe` shows it, and its revision count.
    fn snapshot(&self, name: &str) -> Value {
        let r = self.describe(name);
        assert!(r.ok(), "{r:?}");
        let v1: Value = serde_json::from_str(&r.stdout).unwrap();
        json!({
            "resourceVersion": v1["metadata"]["resourceVersion"],
            "generation": v1["metadata"]["generation"],
            "serviceAccountName": v1["spec"]["template"]["spec"]["serviceAccountName"],
            "latestCreatedRevisionName": v1["status"]["latestCreatedRevisionName"],
            "revisions": self.revisions(name),
        })
    }
}

fn v2_pool(sa: &str) -> Value {
    json!({"template": {"serviceAccount": sa, "containers": [{"image": IMG}]}})
}

/// A v1 `WorkerPool` file for a new pool, as a user would write it for `replace`.
fn v1_yaml(name: &str, sa: &str) -> String {
    format!(
        r#"apiVersion: run.googleapis.com/v1
kind: WorkerPool
metadata:
  name: {name}
  labels:
    cloud.googleapis.com/location: us-central1
spec:
  template:
    spec:
      serviceAccountName: {sa}
      containers:
      - image: {IMG}
"#
    )
}

fn tf_pool(name: &str, sa: &str) -> String {
    format!(
        r#"
provider "google" {{
  project = "app-project"
  region  = "us-central1"
}}

resource "google_cloud_run_v2_worker_pool" "default" {{
  name                = "{name}"
  location            = "us-central1"
  launch_stage        = "BETA"
  deletion_protection = false

  template {{
    service_account = "{sa}"
    containers {{
      image = "{IMG}"
    }}
  }}
}}
"#
    )
}

#[test]
fn replace_is_refused_for_every_identity_rule_and_writes_nothing() {
    let (w, cases, ok) = world();
    // `beta run worker-pools replace FILE` of `text` written to the file `name`.
    let replace = |name: &str, text: &str| {
        let file = w.files.write(name, text);
        w.as_dev(&["beta", "run", "worker-pools", "replace", &file])
    };
    // The seed's YAML walk: export, edit serviceAccountName, replace.
    let r = w.server.export_pool(Some("dev@example.com"), "wp");
    let exported: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    let with_account = |sa: &str| {
        let mut v = exported.clone();
        v["spec"]["template"]["spec"]["serviceAccountName"] = json!(sa);
        v
    };
    let before = w.snapshot("wp");

    for c in &cases {
        let what = format!("{} ({})", c.rule, c.slug);
        let refused = format!(
            "ERROR: (runpool.beta.run.worker-pools.replace) {}",
            c.cli_text()
        );

        // A pool that does not exist yet: replace creates it (v1 POST).
        let name = format!("rp-{}", c.slug);
        let r = replace(&format!("{name}.yaml"), &v1_yaml(&name, &c.account));
        assert_eq!(r.code, Some(1), "{what}: create: {r:?}");
        assert!(r.stderr.contains(&refused), "{what}: create: {r:?}");
        assert!(
            !r.stderr.contains("New configuration has been applied"),
            "{what}: {r:?}"
        );
        w.assert_absent(&name, &what);

        // The existing pool: replace over it (v1 PUT).
        let edited = with_account(&c.account);
        let text = serde_yaml_ng::to_string(&edited).unwrap();
        let r = replace(&format!("wp-{}.yaml", c.slug), &text);
        assert_eq!(r.code, Some(1), "{what}: replace: {r:?}");
        assert!(r.stderr.contains(&refused), "{what}: replace: {r:?}");
        assert_eq!(w.snapshot("wp"), before, "{what}: wp unchanged");

        // The raw v1 PUT answers with Google's HTTP status and error body.
        let (s, err) = w
            .api
            .send_json(reqwest::Method::PUT, &w.dev, &format!("{V1}/wp"), edited);
        assert_eq!(
            (s, &err["error"]["status"], &err["error"]["message"]),
            (c.code, &json!(c.status), &json!(c.message)),
            "{what}: v1 PUT"
        );
        assert_eq!(w.snapshot("wp"), before, "{what}: wp unchanged");
    }

    // Control: the same files with an account every rule allows go through.
    let r = replace("rp-ok.yaml", &v1_yaml("rp-ok", &ok));
    assert!(r.ok(), "{r:?}");
    assert_eq!(w.pool("rp-ok").1["template"]["serviceAccount"], ok);
    let text = serde_yaml_ng::to_string(&with_account(&ok)).unwrap();
    let r = replace("wp-ok.yaml", &text);
    assert!(
        r.stderr
            .contains("New configuration has been applied to worker pool [wp]."),
        "{r:?}"
    );
    w.assert_moved_to(&ok);
}

#[test]
fn terraform_apply_is_refused_for_every_identity_rule_and_writes_nothing() {
    let (w, cases, ok) = world();
    // `terraform apply FILE -auto-approve` of `text` written to the file `name`.
    let apply = |name: &str, text: &str| {
        let file = w.files.write(name, text);
        w.as_dev(&["terraform", "apply", &file, "-auto-approve"])
    };
    let before = w.snapshot("wp");

    for c in &cases {
        let what = format!("{} ({})", c.rule, c.slug);
        // Applying `text` fails: the provider starts the resource's `step` (its `progress`
        // line), Google's answer is the case's error after `error`, nothing is applied.
        let refused = |name: &str, text: &str, step: &str, progress: &str, error: &str| {
            let r = apply(name, text);
            assert_eq!(r.code, Some(1), "{what}: {step}: {r:?}");
            assert!(
                r.stdout.contains(&format!(
                    "google_cloud_run_v2_worker_pool.default: {progress}..."
                )),
                "{what}: {r:?}"
            );
            assert!(
                r.stderr
                    .contains(&format!("Error: {error}: {}", c.googleapi())),
                "{what}: {step}: {r:?}"
            );
            assert!(!r.stdout.contains("Apply complete!"), "{what}: {r:?}");
        };

        // A new pool: the provider's create (v2 POST).
        let name = format!("tf-{}", c.slug);
        refused(
            &format!("{name}.tf"),
            &tf_pool(&name, &c.account),
            "create",
            "Creating",
            "Error creating WorkerPool",
        );
        w.assert_absent(&name, &what);

        // The existing pool: the provider's update (v2 PATCH).
        refused(
            &format!("wp-{}.tf", c.slug),
            &tf_pool("wp", &c.account),
            "update",
            "Modifying",
            "Error updating WorkerPool \"projects/app-project/locations/us-central1/workerPools/wp\"",
        );
        assert_eq!(w.snapshot("wp"), before, "{what}: wp unchanged");
    }

    // Control: the same configuration with an account every rule allows is applied.
    let r = apply("tf-ok.tf", &tf_pool("tf-ok", &ok));
    assert!(
        r.stdout
            .contains("Apply complete! Resources: 1 added, 0 changed, 0 destroyed."),
        "{r:?}"
    );
    assert_eq!(w.pool("tf-ok").1["template"]["serviceAccount"], ok);
    let r = apply("wp-ok.tf", &tf_pool("wp", &ok));
    assert!(
        r.stdout
            .contains("Apply complete! Resources: 0 added, 1 changed, 0 destroyed."),
        "{r:?}"
    );
    w.assert_moved_to(&ok);
}

/// The rules' allowing side through the same two paths: actAs held on the account's project
/// (not on the account), no account named (the default compute account), and a cross-project
/// account whose project's constraint is turned off on the folder above it.
#[test]
fn the_allowed_variants_go_through_replace_and_terraform_too() {
    let (w, _, _) = world();
    // A grant on app-project covers its accounts, the default compute account among them.
    let inherited = w.create_sa("app-project", "inherited-sa");
    w.grant("/v3/projects/app-project", SA_USER, DEV);
    // identity-project keeps its constraint; the folder `shared` above it turns it off.
    w.disable_cross_project_constraint("folders/200000000001");
    let via_folder = w.create_sa("identity-project", "folder-ok-sa");
    w.grant_on_sa(&via_folder, SA_USER, DEV);
    w.grant_on_sa(&via_folder, TOKEN_CREATOR, AGENT);

    // v1 replace (create) and terraform apply (create), for each allowed variant; no account
    // named gives the default compute account.
    let variants = [
        ("inherit", Some(inherited.as_str()), inherited.clone()),
        ("default", None, DEFAULT_SA.to_string()),
        ("folder", Some(via_folder.as_str()), via_folder.clone()),
    ];
    for (slug, named, runs_as) in &variants {
        let name = format!("rp-ok-{slug}");
        let yaml = match named {
            Some(sa) => v1_yaml(&name, sa),
            None => v1_yaml(&name, "").replace("      serviceAccountName: \n", ""),
        };
        let file = w.files.write(&format!("{name}.yaml"), &yaml);
        let r = w.as_dev(&["beta", "run", "worker-pools", "replace", &file]);
        assert!(r.ok(), "{slug}: replace: {r:?}");
        assert_eq!(
            w.pool(&name).1["template"]["serviceAccount"],
            **runs_as,
            "{slug}"
        );

        let name = format!("tf-ok-{slug}");
        let tf = match named {
            Some(sa) => tf_pool(&name, sa),
            None => tf_pool(&name, "").replace("    service_account = \"\"\n", ""),
        };
        let file = w.files.write(&format!("{name}.tf"), &tf);
        let r = w.as_dev(&["terraform", "apply", &file, "-auto-approve"]);
        assert!(
            r.stdout
                .contains("Apply complete! Resources: 1 added, 0 changed, 0 destroyed."),
            "{slug}: terraform: {r:?}"
        );
        assert_eq!(
            w.pool(&name).1["template"]["serviceAccount"],
            **runs_as,
            "{slug}"
        );
    }
}
