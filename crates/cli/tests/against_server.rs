//! End to end: the real binary serving the default world (organization `example.com`, project
//! `demo-project`, `admin@example.com` owner of the organization), driven by the CLI.
mod common;
use common::Server;

#[test]
fn admin_logs_in_and_describes_the_demo_project() {
    let s = Server::start();
    s.login_admin();
    let list = s.ok(&["auth", "list"]);
    assert!(
        list.stdout.contains("*       admin@example.com"),
        "{list:?}"
    );
    let token = s.ok(&["auth", "print-access-token"]);
    assert!(!token.stdout.trim().is_empty());

    let r = s.ok(&["projects", "describe", "demo-project"]);
    assert!(r.stdout.contains("projectId: demo-project"), "{r:?}");
    let r = s.ok(&[
        "projects",
        "describe",
        "demo-project",
        "--format=value(projectId)",
    ]);
    assert_eq!(r.stdout, "demo-project\n");
    let r = s.ok(&["projects", "describe", "demo-project", "--format=json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["projectId"], "demo-project");

    let r = s.ok(&["projects", "list"]);
    assert!(r.stdout.starts_with("PROJECT_ID"), "{r:?}");
    assert!(r.stdout.contains("demo-project"), "{r:?}");
}

#[test]
fn viewer_binding_lets_alice_read_but_not_change_policy() {
    let s = Server::start();
    s.login_admin();
    let r = s.ok(&[
        "projects",
        "add-iam-policy-binding",
        "demo-project",
        "--member=user:alice@example.com",
        "--role=roles/viewer",
    ]);
    assert!(
        r.stderr
            .contains("Updated IAM policy for project [demo-project]."),
        "{r:?}"
    );
    assert!(r.stdout.contains("user:alice@example.com"), "{r:?}");
    let roles = s.ok(&[
        "projects",
        "get-iam-policy",
        "demo-project",
        "--flatten=bindings[].members",
        "--format=value(bindings.role,bindings.members)",
    ]);
    assert!(
        roles
            .stdout
            .lines()
            .any(|l| l == "roles/viewer\tuser:alice@example.com"),
        "{roles:?}"
    );

    let filtered = s.ok(&[
        "projects",
        "get-iam-policy",
        "demo-project",
        "--flatten=bindings[].members",
        "--filter=bindings.members:alice@example.com",
        "--format=value(bindings.role)",
    ]);
    assert_eq!(filtered.stdout, "roles/viewer\n");

    // Logging alice in makes her the active account.
    s.ok(&["auth", "login", "alice@example.com"]);
    let r = s.ok(&["projects", "describe", "demo-project"]);
    assert!(r.stdout.contains("projectId: demo-project"), "{r:?}");

    let r = s.run(&[
        "projects",
        "add-iam-policy-binding",
        "demo-project",
        "--member=user:alice@example.com",
        "--role=roles/owner",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .starts_with("ERROR: (runpool.projects.add-iam-policy-binding) PERMISSION_DENIED"),
        "{r:?}"
    );

    // --account switches identity for one command only.
    let r = s.ok(&[
        "projects",
        "remove-iam-policy-binding",
        "demo-project",
        "--member=user:alice@example.com",
        "--role=roles/viewer",
        "--account=admin@example.com",
    ]);
    assert!(!r.stdout.contains("user:alice@example.com"), "{r:?}");
}

#[test]
fn disabling_cross_project_sa_usage_shows_in_effective_policy() {
    let s = Server::start();
    s.login_admin();
    let r = s.ok(&[
        "resource-manager",
        "org-policies",
        "disable-enforce",
        "iam.disableCrossProjectServiceAccountUsage",
        "--project",
        "demo-project",
    ]);
    assert!(r.stdout.contains("enforce: false"), "{r:?}");
    let r = s.ok(&[
        "resource-manager",
        "org-policies",
        "describe",
        "constraints/iam.disableCrossProjectServiceAccountUsage",
        "--project",
        "demo-project",
        "--effective",
        "--format=json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["spec"]["rules"][0]["enforce"], false, "{r:?}");

    // A second write goes through PATCH with the etag.
    let r = s.ok(&[
        "beta",
        "resource-manager",
        "org-policies",
        "enable-enforce",
        "iam.disableCrossProjectServiceAccountUsage",
        "--project",
        "demo-project",
    ]);
    assert!(r.stdout.contains("enforce: true"), "{r:?}");
    let r = s.ok(&[
        "resource-manager",
        "org-policies",
        "list",
        "--project",
        "demo-project",
    ]);
    assert!(
        r.stdout
            .contains("constraints/iam.disableCrossProjectServiceAccountUsage"),
        "{r:?}"
    );
}

#[test]
fn organizations_and_roles_are_readable() {
    let s = Server::start();
    s.login_admin();
    let r = s.ok(&["organizations", "list"]);
    assert!(r.stdout.starts_with("DISPLAY_NAME"), "{r:?}");
    let r = s.ok(&[
        "organizations",
        "describe",
        "example.com",
        "--format=value(name)",
    ]);
    let org = r.stdout.trim().to_string();
    assert!(org.starts_with("organizations/"), "{r:?}");
    let r = s.ok(&["organizations", "get-iam-policy", &org, "--format=json"]);
    assert!(r.stdout.contains("user:admin@example.com"), "{r:?}");

    let r = s.ok(&[
        "iam",
        "roles",
        "describe",
        "roles/viewer",
        "--format=value(name)",
    ]);
    assert_eq!(r.stdout, "roles/viewer\n");
    s.ok(&[
        "iam",
        "roles",
        "create",
        "poolReader",
        "--project=demo-project",
        "--title=Pool reader",
        "--permissions=run.workerpools.get,run.workerpools.list",
        "--stage=GA",
    ]);
    let r = s.ok(&[
        "iam",
        "roles",
        "list",
        "--project=demo-project",
        "--format=value(name)",
    ]);
    assert!(r.stdout.contains("/roles/poolReader"), "{r:?}");
}

#[test]
fn folders_lifecycle() {
    let s = Server::start();
    s.login_admin();
    let org = s.ok(&["organizations", "list", "--format=value(name.basename())"]);
    let org = org.stdout.lines().next().unwrap().to_string();
    let r = s.ok(&[
        "resource-manager",
        "folders",
        "create",
        "--display-name=Team",
        &format!("--organization={org}"),
        "--format=value(name)",
    ]);
    let folder = r.stdout.trim().trim_start_matches("folders/").to_string();
    assert!(!folder.is_empty(), "{r:?}");
    let r = s.ok(&[
        "resource-manager",
        "folders",
        "list",
        &format!("--organization={org}"),
    ]);
    assert!(r.stdout.contains("Team"), "{r:?}");
    s.ok(&[
        "resource-manager",
        "folders",
        "add-iam-policy-binding",
        &folder,
        "--member=group:devs@example.com",
        "--role=roles/viewer",
    ]);
    s.ok(&["resource-manager", "folders", "delete", &folder]);
}
