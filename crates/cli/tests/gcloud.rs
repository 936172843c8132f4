//! Google's own `gcloud` (the Cloud SDK on PATH; these tests fail, never skip, without it)
//! against a live server, sent there by `runpool gcloud init` and nothing else: the seed's
//! worker pool commands verbatim, with their identity rule, and gcloud's project commands
//! over Resource Manager v1.

mod common;

use common::Run;
use common::session::{Session, act_as_denied, sa_base};
use common::world::{AGENT, IMG, ORG_ADMIN, Org, POLICY_ADMIN, app_project, shared_folder};
use serde_json::Value;
use std::process::{Command, Stdio};

struct W(Session);

common::session::deref_session!(W, 0);

/// A server whose `app-project` has dev@example.com as a Cloud Run developer, the CLI logged
/// in as dev and as the org admin (active), and gcloud configured by `runpool gcloud init`.
fn world() -> W {
    world_of(Org::new())
}

/// [`world`] in `org` (`app-project` added to it).
fn world_of(org: Org) -> W {
    let w = Session::start(&org.project(app_project().developer()).yaml());
    w.server.login_dev_and_admin("app-project");
    let r = w.server.ok(&["gcloud", "init"]);
    assert!(
        r.stderr.contains("Created gcloud configuration [runpool]"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("Accounts given to gcloud: admin@example.com, dev@example.com."),
        "{r:?}"
    );
    W(w)
}

impl W {
    /// Run Google's `gcloud ARGS` as a user of this machine would after `runpool gcloud init`:
    /// the same home (so the same gcloud configuration dir), no `CLOUDSDK_*` overrides from
    /// the test's environment, and no proxy of its own.
    fn gcloud(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("gcloud");
        cmd.args(args)
            .env("HOME", self.server.data_dir())
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLOUDSDK_") {
                cmd.env_remove(k);
            }
        }
        // Unrelated to Runpool: keep gcloud from looking for updates or reporting usage.
        cmd.env("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true")
            .env("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true");
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("Google's gcloud must be on PATH for these tests (the Cloud SDK): {e}")
        });
        // gcloud prints names in bold (`\x1b[1m…\x1b[m`) even to a pipe.
        let text = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            let mut out = String::new();
            let mut rest = s.as_ref();
            while let Some(i) = rest.find('\x1b') {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
                rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
            }
            out + rest
        };
        Run {
            code: out.status.code(),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        }
    }

    fn gcloud_ok(&self, args: &[&str]) -> Run {
        let r = self.gcloud(args);
        assert!(r.ok(), "gcloud {}: {r:?}", args.join(" "));
        r
    }

    fn pool_account(&self, id: &str) -> String {
        let (s, p) = self.pool(id);
        assert_eq!(s, 200, "{p}");
        p["template"]["serviceAccount"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[test]
fn the_seeds_worker_pool_commands_run_verbatim_in_googles_gcloud() {
    let w = world();
    let worker = w.create_sa("app-project", "worker-id");
    let other = w.create_sa("app-project", "other-id");
    w.gcloud_ok(&["config", "set", "account", "dev@example.com"]);

    // The seed's rule: a deployer who may not act as the account is refused, in Google's words.
    let deploy = [
        "beta",
        "run",
        "worker-pools",
        "deploy",
        "my-pool",
        "--image",
        IMG,
        "--service-account",
        &worker,
    ];
    let r = w.gcloud(&deploy);
    assert!(!r.ok(), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("403 {}", act_as_denied(&worker))),
        "{r:?}"
    );
    assert_eq!(w.pool("my-pool").0, 404, "nothing was created");

    w.grant(
        &sa_base(&worker),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    let r = w.gcloud_ok(&deploy);
    assert!(
        r.stderr
            .contains("Worker pool [my-pool] revision [my-pool-00001-")
            && r.stderr.contains("] has been deployed."),
        "{r:?}"
    );
    assert_eq!(w.pool_account("my-pool"), worker);

    // update --service-account: the same rule, then the change.
    let update = [
        "beta",
        "run",
        "worker-pools",
        "update",
        "my-pool",
        "--service-account",
        &other,
    ];
    let r = w.gcloud(&update);
    assert!(
        !r.ok() && r.stderr.contains(&act_as_denied(&other)),
        "{r:?}"
    );
    w.grant(
        &sa_base(&other),
        "roles/iam.serviceAccountUser",
        "user:dev@example.com",
    );
    w.gcloud_ok(&update);
    assert_eq!(w.pool_account("my-pool"), other);

    // describe --format export > workerpool.yaml, edit serviceAccountName, replace.
    let r = w.gcloud_ok(&[
        "beta",
        "run",
        "worker-pools",
        "describe",
        "my-pool",
        "--format",
        "export",
    ]);
    let exported: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(exported["kind"], "WorkerPool", "{}", r.stdout);
    assert_eq!(
        exported["spec"]["template"]["spec"]["serviceAccountName"], other,
        "{}",
        r.stdout
    );
    let edited = r.stdout.replace(
        &format!("serviceAccountName: {other}"),
        &format!("serviceAccountName: {worker}"),
    );
    assert_ne!(edited, r.stdout);
    let file = w.server.data_dir().join("workerpool.yaml");
    std::fs::write(&file, edited).unwrap();
    let r = w.gcloud_ok(&[
        "beta",
        "run",
        "worker-pools",
        "replace",
        file.to_str().unwrap(),
    ]);
    assert!(
        r.stderr
            .contains("New configuration has been applied to worker pool [my-pool]."),
        "{r:?}"
    );
    assert_eq!(w.pool_account("my-pool"), worker);

    // gcloud's own view of the pool.
    let r = w.gcloud_ok(&["beta", "run", "worker-pools", "describe", "my-pool"]);
    assert!(
        r.stdout
            .contains("WorkerPool my-pool in region us-central1")
            && r.stdout.contains(&format!("Service account: {worker}")),
        "{r:?}"
    );
    let r = w.gcloud_ok(&["beta", "run", "worker-pools", "list"]);
    let row = r.stdout.lines().find(|l| l.contains("my-pool"));
    assert!(
        row.is_some_and(|l| l.contains("us-central1") && l.contains("dev@example.com")),
        "{r:?}"
    );
    let r = w.gcloud_ok(&[
        "beta",
        "run",
        "worker-pools",
        "delete",
        "my-pool",
        "--quiet",
    ]);
    assert!(r.stderr.contains("Deleted worker pool [my-pool]."), "{r:?}");
    assert_eq!(w.pool("my-pool").0, 404);
}

#[test]
fn gclouds_project_commands_read_and_edit_the_same_projects_over_v1() {
    let w = world();
    let r = w.gcloud_ok(&["projects", "describe", "app-project"]);
    let p: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(p["projectId"], "app-project", "{}", r.stdout);
    assert_eq!(p["projectNumber"], common::world::APP_NUMBER);
    assert_eq!(p["lifecycleState"], "ACTIVE");
    assert_eq!(p["parent"]["type"], "organization");
    assert_eq!(p["parent"]["id"], common::world::ORG_ID);

    let r = w.gcloud_ok(&["projects", "list", "--filter", "projectId:app-*"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("app-project") && l.contains(common::world::APP_NUMBER)),
        "{r:?}"
    );

    // add-iam-policy-binding writes what v3 then reads; remove-… takes it away.
    let member = "user:carol@example.com";
    let r = w.gcloud_ok(&[
        "projects",
        "add-iam-policy-binding",
        "app-project",
        &format!("--member={member}"),
        "--role=roles/viewer",
    ]);
    assert!(
        r.stderr
            .contains("Updated IAM policy for project [app-project]."),
        "{r:?}"
    );
    let has = |w: &W| {
        let (s, pol) = w.api.post(
            &w.admin,
            "/v3/projects/app-project:getIamPolicy",
            serde_json::json!({}),
        );
        assert_eq!(s, 200, "{pol}");
        pol["bindings"].as_array().unwrap().iter().any(|b| {
            b["role"] == "roles/viewer"
                && b["members"].as_array().unwrap().iter().any(|m| m == member)
        })
    };
    assert!(has(&w), "the v1 write is seen through v3");
    let r = w.gcloud_ok(&["projects", "get-iam-policy", "app-project", "--format=json"]);
    assert!(r.stdout.contains(member), "{r:?}");
    w.gcloud_ok(&[
        "projects",
        "remove-iam-policy-binding",
        "app-project",
        &format!("--member={member}"),
        "--role=roles/viewer",
    ]);
    assert!(!has(&w));

    // A user without access, and a project that does not exist, read as on Google.
    w.gcloud_ok(&["config", "set", "account", "dev@example.com"]);
    let r = w.gcloud(&["projects", "describe", "no-such-project"]);
    assert!(
        !r.ok()
            && r.stderr.contains(
                "[dev@example.com] does not have permission to access projects instance \
                 [no-such-project] (or it may not exist): The caller does not have permission"
            ),
        "{r:?}"
    );
    let r = w.gcloud_ok(&["projects", "get-ancestors", "app-project"]);
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(
        rows.iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        vec![
            vec!["app-project", "project"],
            vec![common::world::ORG_ID, "organization"]
        ],
        "{r:?}"
    );

    // Run again, init updates the one configuration; gcloud's own default stays Google's.
    let r = w.server.ok(&["gcloud", "init"]);
    assert!(
        r.stderr.contains("Updated gcloud configuration [runpool]"),
        "{r:?}"
    );
    w.gcloud_ok(&["config", "configurations", "activate", "default"]);
    let r = w.gcloud_ok(&["config", "get", "proxy/address"]);
    assert_eq!(r.stdout.trim(), "", "{r:?}");
    let r = w.gcloud_ok(&["config", "get", "proxy/address", "--configuration=runpool"]);
    assert_eq!(r.stdout.trim(), "127.0.0.1", "{r:?}");
}

#[test]
fn the_seeds_cross_project_walk_through_gcloud_refuses_each_missing_condition() {
    let w = world_of(
        Org::new()
            .admin(ORG_ADMIN)
            .admin(POLICY_ADMIN)
            .folder(shared_folder()),
    );
    w.gcloud_ok(&[
        "iam",
        "service-accounts",
        "create",
        "shared-worker",
        "--project=identity-project",
    ]);
    let sa = "shared-worker@identity-project.iam.gserviceaccount.com";
    let deploy = |w: &W| {
        w.gcloud(&[
            "beta",
            "run",
            "worker-pools",
            "deploy",
            "my-pool",
            "--image",
            IMG,
            "--service-account",
            sa,
            "--account=dev@example.com",
        ])
    };
    let bind = |member: &str, role: &str| {
        w.gcloud_ok(&[
            "iam",
            "service-accounts",
            "add-iam-policy-binding",
            sa,
            &format!("--member={member}"),
            &format!("--role={role}"),
            "--project=identity-project",
        ]);
    };

    // 1. No roles/iam.serviceAccountUser on the account.
    let r = deploy(&w);
    assert!(!r.ok() && r.stderr.contains(&act_as_denied(sa)), "{r:?}");
    bind("user:dev@example.com", "roles/iam.serviceAccountUser");

    // 2. The constraint, enforced by default on the account's project.
    let r = deploy(&w);
    assert!(
        !r.ok()
            && r.stderr
                .contains("iam.disableCrossProjectServiceAccountUsage")
            && r.stderr.contains("identity-project"),
        "{r:?}"
    );
    let constraint = "iam.disableCrossProjectServiceAccountUsage";
    let effective = |w: &W| -> Value {
        let r = w.gcloud_ok(&[
            "resource-manager",
            "org-policies",
            "describe",
            constraint,
            "--project=identity-project",
            "--effective",
        ]);
        serde_yaml_ng::from_str(&r.stdout).unwrap()
    };
    assert_eq!(
        effective(&w)["booleanPolicy"]["enforced"],
        true,
        "enforced by default"
    );
    let r = w.gcloud_ok(&[
        "resource-manager",
        "org-policies",
        "disable-enforce",
        constraint,
        "--project=identity-project",
    ]);
    let set: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(
        set["constraint"],
        format!("constraints/{constraint}"),
        "{r:?}"
    );
    assert!(
        set["booleanPolicy"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "{r:?}"
    );
    assert!(set["etag"].is_string(), "{r:?}");
    assert!(effective(&w)["booleanPolicy"]["enforced"].is_null());
    // The same fact through Org Policy v2, which `gcloud org-policies` calls.
    let r = w.gcloud_ok(&[
        "org-policies",
        "describe",
        constraint,
        "--project=identity-project",
        "--effective",
    ]);
    let v2: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(v2["spec"]["rules"][0]["enforce"], false, "{r:?}");

    // 3. The pool project's Cloud Run service agent may not mint the account's tokens.
    let r = deploy(&w);
    assert!(
        !r.ok()
            && r.stderr.contains(
                "Google Cloud Run Service Agent does not have permission to get access tokens for the service account"
            ),
        "{r:?}"
    );
    bind(AGENT, "roles/iam.serviceAccountTokenCreator");

    // All three hold.
    let r = deploy(&w);
    assert!(r.ok() && r.stderr.contains("has been deployed."), "{r:?}");
    assert_eq!(w.pool_account("my-pool"), sa);

    // And back: enable-enforce through v1 refuses the next change of identity.
    w.gcloud_ok(&[
        "resource-manager",
        "org-policies",
        "enable-enforce",
        constraint,
        "--project=identity-project",
    ]);
    assert_eq!(effective(&w)["booleanPolicy"]["enforced"], true);
    let r = w.gcloud_ok(&[
        "resource-manager",
        "org-policies",
        "list",
        "--project=identity-project",
    ]);
    assert!(
        r.stdout.contains(&format!("constraints/{constraint}")),
        "{r:?}"
    );
    let r = w.gcloud_ok(&[
        "resource-manager",
        "org-policies",
        "delete",
        constraint,
        "--project=identity-project",
    ]);
    assert!(r.stderr.contains("Deleted [<Empty>]."), "{r:?}");
}

#[test]
fn gclouds_project_create_update_delete_and_undelete_over_v1() {
    let w = world_of(Org::new().admin("roles/resourcemanager.projectCreator"));
    let org = format!("--organization={}", common::world::ORG_ID);
    let v3 = |w: &W| {
        let (s, p) = w.api.get(&w.admin, "/v3/projects/made-by-gcloud");
        assert_eq!(s, 200, "{p}");
        p
    };

    // create: an operation gcloud waits for, then its enabling of the Cloud APIs.
    let create = [
        "projects",
        "create",
        "made-by-gcloud",
        "--name=Made by gcloud",
        &org,
    ];
    let r = w.gcloud_ok(&create);
    for said in [
        "Create in progress for [https://cloudresourcemanager.googleapis.com/v1/projects/made-by-gcloud].",
        "Waiting for [operations/cp.",
        "Enabling service [cloudapis.googleapis.com] on project [made-by-gcloud]...",
    ] {
        assert!(r.stderr.contains(said), "{said}: {r:?}");
    }
    let p = v3(&w);
    assert_eq!(
        (&p["displayName"], &p["parent"], &p["state"]),
        (
            &Value::from("Made by gcloud"),
            &Value::from(format!("organizations/{}", common::world::ORG_ID)),
            &Value::from("ACTIVE")
        ),
        "seen through v3: {p}"
    );
    let r = w.gcloud(&create);
    assert!(
        !r.ok()
            && r.stderr.contains(
                "Project creation failed. The project ID you specified is already in use by another project."
            ),
        "{r:?}"
    );

    // update: gcloud reads the v1 project and writes it back whole.
    let r = w.gcloud_ok(&["projects", "update", "made-by-gcloud", "--name=Renamed"]);
    assert!(
        r.stderr.contains(
            "Updated [https://cloudresourcemanager.googleapis.com/v1/projects/made-by-gcloud]."
        ),
        "{r:?}"
    );
    assert_eq!(v3(&w)["displayName"], "Renamed");

    // delete and undelete.
    let r = w.gcloud_ok(&["projects", "delete", "made-by-gcloud", "--quiet"]);
    assert!(
        r.stderr.contains(
            "Deleted [https://cloudresourcemanager.googleapis.com/v1/projects/made-by-gcloud]."
        ),
        "{r:?}"
    );
    let r = w.gcloud_ok(&[
        "projects",
        "describe",
        "made-by-gcloud",
        "--format=value(lifecycleState)",
    ]);
    assert_eq!(r.stdout.trim(), "DELETE_REQUESTED", "{r:?}");
    assert_eq!(v3(&w)["state"], "DELETE_REQUESTED");
    let r = w.gcloud_ok(&["projects", "undelete", "made-by-gcloud", "--quiet"]);
    assert!(
        r.stderr.contains("Restored project [https://cloudresourcemanager.googleapis.com/v1/projects/made-by-gcloud]."),
        "{r:?}"
    );
    assert_eq!(v3(&w)["state"], "ACTIVE");

    // A user who may not create projects in the organization is refused in Google's words.
    w.gcloud_ok(&["config", "set", "account", "dev@example.com"]);
    let r = w.gcloud(&["projects", "create", "not-by-dev", &org]);
    assert!(
        !r.ok() && r.stderr.contains("resourcemanager.projects.create"),
        "{r:?}"
    );
    let (s, _) = w.api.get(&w.admin, "/v3/projects/not-by-dev");
    assert_eq!(s, 403, "nothing was created");
}

#[test]
fn gclouds_services_commands_and_a_new_projects_first_deploy_asks_for_cloud_run() {
    let w = world_of(Org::new().admin("roles/resourcemanager.projectCreator"));
    let names = |r: &Run| -> Vec<String> {
        r.stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    };
    // A declared world's project has the APIs Runpool serves enabled.
    let r = w.gcloud_ok(&["services", "list"]);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("run.googleapis.com") && l.ends_with("Cloud Run Admin API")),
        "{r:?}"
    );

    // A new project starts with what Google enables on one: no Cloud Run.
    let (s, op) = w.api.post(
        &w.admin,
        "/v3/projects",
        serde_json::json!({"projectId": "fresh-project", "parent": format!("organizations/{}", common::world::ORG_ID)}),
    );
    assert_eq!(s, 200, "{op}");
    let fresh = ["--project=fresh-project"];
    let listed = |w: &W| names(&w.gcloud_ok(&["services", "list", fresh[0]]));
    let before = listed(&w);
    assert!(
        before.contains(&"serviceusage.googleapis.com".to_string()),
        "{before:?}"
    );
    assert!(
        before.contains(&"bigquery.googleapis.com".to_string()),
        "{before:?}"
    );
    assert!(
        !before.contains(&"run.googleapis.com".to_string()),
        "{before:?}"
    );

    // gcloud's deploy asks to enable it first (and, answered by default, enables it).
    let deploy_fresh = |w: &W| {
        w.gcloud(&[
            "beta",
            "run",
            "worker-pools",
            "deploy",
            "first-pool",
            "--image",
            IMG,
            fresh[0],
        ])
    };
    let r = deploy_fresh(&w);
    assert!(
        r.stderr
            .contains("The following APIs are not enabled on project [fresh-project]:")
            && r.stderr
                .contains("Enabling APIs on project [fresh-project]..."),
        "{r:?}"
    );
    assert!(listed(&w).contains(&"run.googleapis.com".to_string()));
    let r = deploy_fresh(&w);
    assert!(
        r.ok() && !r.stderr.contains("not enabled"),
        "asked once: {r:?}"
    );

    // enable / disable / an unknown service / a caller who may not.
    w.gcloud_ok(&["services", "disable", "run.googleapis.com", fresh[0]]);
    assert!(!listed(&w).contains(&"run.googleapis.com".to_string()));
    // Disabled, Cloud Run refuses the project's calls, on every wire, in Google's words; gcloud
    // offers to enable it (no, unattended) and prints Google's error.
    let number = op["response"]["name"]
        .as_str()
        .unwrap()
        .trim_start_matches("projects/")
        .to_string();
    let disabled = format!(
        "Cloud Run Admin API has not been used in project {number} before or it is disabled. \
         Enable it by visiting https://console.developers.google.com/apis/api/run.googleapis.com/overview?project={number} then retry."
    );
    let (s, err) = w.api.get(
        &w.admin,
        "/v2/projects/fresh-project/locations/us-central1/workerPools",
    );
    assert_eq!(s, 403, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&disabled),
        "{err}"
    );
    let info = &err["error"]["details"][0];
    assert_eq!(info["reason"], "SERVICE_DISABLED", "{err}");
    assert_eq!(info["metadata"]["consumer"], format!("projects/{number}"));
    assert_eq!(info["metadata"]["service"], "run.googleapis.com");
    // gcloud names its quota project (`X-Goog-User-Project`, core/project unless
    // `--billing-project`), and that is the project whose enablement counts, as on Google.
    let billed = "--billing-project=fresh-project";
    let r = w.gcloud(&["beta", "run", "worker-pools", "list", fresh[0], billed]);
    assert!(
        !r.ok()
            && r.stderr
                .contains("API [run.googleapis.com] not enabled on project")
            && r.stderr.contains(&disabled),
        "{r:?}"
    );
    let r = w.gcloud(&["beta", "run", "worker-pools", "list", fresh[0]]);
    assert!(
        r.ok(),
        "billed to app-project, where Cloud Run is on: {r:?}"
    );
    w.gcloud_ok(&[
        "services",
        "enable",
        "run.googleapis.com",
        "iam.googleapis.com",
        fresh[0],
    ]);
    let after = listed(&w);
    assert!(
        after.contains(&"run.googleapis.com".to_string())
            && after.contains(&"iam.googleapis.com".to_string()),
        "{after:?}"
    );
    let r = w.gcloud(&["services", "enable", "nope.googleapis.com", fresh[0]]);
    assert!(
        !r.ok()
            && r.stderr
                .contains("Not found or permission denied for service(s): nope.googleapis.com."),
        "{r:?}"
    );
    let r = w.gcloud(&[
        "services",
        "enable",
        "orgpolicy.googleapis.com",
        "--account=dev@example.com",
    ]);
    assert!(
        !r.ok() && r.stderr.contains("serviceusage.services.enable"),
        "{r:?}"
    );
}

#[test]
fn gclouds_folder_key_impersonation_and_recommender_commands() {
    let w = world_of(
        Org::new()
            .admin(ORG_ADMIN)
            .admin(common::world::FOLDER_ADMIN),
    );
    let org = format!("--organization={}", common::world::ORG_ID);

    // Folders over Resource Manager v2: create (an operation gcloud waits for), list, rename.
    let r = w.gcloud_ok(&[
        "resource-manager",
        "folders",
        "create",
        "--display-name=team",
        &org,
    ]);
    assert!(
        r.stderr.contains("Created [<Folder")
            && r.stderr.contains("displayName: 'team'")
            && r.stderr
                .contains("lifecycleState: LifecycleStateValueValuesEnum(ACTIVE, 1)"),
        "the operation carries the v2 folder: {r:?}"
    );
    let r = w.gcloud_ok(&[
        "resource-manager",
        "folders",
        "list",
        &org,
        "--format=value(ID,DISPLAY_NAME)",
    ]);
    let (id, name) = r.stdout.trim().split_once('\t').expect("one folder");
    assert_eq!(name, "team", "{r:?}");
    let r = w.gcloud_ok(&[
        "resource-manager",
        "folders",
        "update",
        id,
        "--display-name=team-2",
    ]);
    assert!(
        r.stderr
            .contains("LifecycleStateValueValuesEnum(ACTIVE, 1)"),
        "{r:?}"
    );
    let (s, f) = w.api.get(&w.admin, &format!("/v3/folders/{id}"));
    assert_eq!(
        (s, f["displayName"].as_str()),
        (200, Some("team-2")),
        "seen through v3: {f}"
    );

    // A key file and an impersonated token, for a service account gcloud created.
    w.gcloud_ok(&["iam", "service-accounts", "create", "robot-one"]);
    let sa = "robot-one@app-project.iam.gserviceaccount.com";
    let key = w.server.data_dir().join("robot-one.json");
    w.gcloud_ok(&[
        "iam",
        "service-accounts",
        "keys",
        "create",
        key.to_str().unwrap(),
        &format!("--iam-account={sa}"),
    ]);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert_eq!(
        (file["type"].as_str(), file["client_email"].as_str()),
        (Some("service_account"), Some(sa))
    );
    let impersonate = [
        "auth",
        "print-access-token",
        &format!("--impersonate-service-account={sa}"),
    ];
    let r = w.gcloud(&impersonate);
    assert!(
        !r.ok() && r.stderr.contains("iam.serviceAccounts.getAccessToken"),
        "owner is not enough: {r:?}"
    );
    w.gcloud_ok(&[
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        sa,
        "--member=user:admin@example.com",
        "--role=roles/iam.serviceAccountTokenCreator",
    ]);
    let r = w.gcloud_ok(&impersonate);
    let (s, info) = w.api.get_with(
        None,
        &format!("/tokeninfo?access_token={}", r.stdout.trim()),
    );
    assert_eq!(s, 200, "{info}");
    assert_eq!(info["email"], sa, "{info}");

    // The recommender: the default compute account's unused editor role.
    let rec = [
        "--project=app-project",
        "--location=global",
        "--recommender=google.iam.policy.Recommender",
    ];
    let mut list = vec![
        "recommender",
        "recommendations",
        "list",
        "--format=value(name,etag)",
    ];
    list.extend(rec);
    let r = w.gcloud_ok(&list);
    let (name, etag) = r
        .stdout
        .lines()
        .next()
        .and_then(|l| l.split_once('\t'))
        .expect("a recommendation");
    let id = name.rsplit('/').next().unwrap();
    let mut claim = vec!["recommender", "recommendations", "mark-claimed", id];
    let etag = format!("--etag={etag}");
    claim.push(&etag);
    claim.extend(rec);
    let r = w.gcloud_ok(&claim);
    let claimed: Value = serde_yaml_ng::from_str(&r.stdout).unwrap();
    assert_eq!(claimed["stateInfo"]["state"], "CLAIMED", "{r:?}");
}
