//! Client behaviour that needs no server: properties, usage errors, credential look-up.
mod common;
use common::Offline;

#[test]
fn config_set_get_list_unset_like_gcloud() {
    let env = Offline::new();
    let r = env.run(&["config", "set", "project", "demo-project"]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.stderr, "Updated property [core/project].\n");
    let r = env.run(&["config", "set", "run/region", "europe-west1"]);
    assert_eq!(r.stderr, "Updated property [run/region].\n");
    assert_eq!(
        env.run(&["config", "get", "core/project"]).stdout,
        "demo-project\n"
    );
    let r = env.run(&["config", "list"]);
    assert_eq!(
        r.stdout,
        "[core]\nproject = demo-project\n\n[run]\nregion = europe-west1\n"
    );
    let r = env.run(&["config", "unset", "project"]);
    assert_eq!(r.stderr, "Unset property [core/project].\n");
    let r = env.run(&["config", "get", "project"]);
    assert!(r.ok());
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", "(unset)\n"));
}

#[test]
fn unknown_property_is_an_error_with_gcloud_prefix() {
    let env = Offline::new();
    let r = env.run(&["config", "set", "core/nope", "x"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stderr,
        "ERROR: (runpool.config.set) Section [core] has no property [nope].\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = Offline::new();
    assert_eq!(env.run(&["projects", "describe"]).code, Some(2));
    assert_eq!(env.run(&["projects", "frobnicate"]).code, Some(2));
    let r = env.run(&[
        "projects",
        "add-iam-policy-binding",
        "p",
        "--member=user:a@x",
        "--role=roles/viewer",
        "--condition=title=only",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("[expression]"), "{r:?}");
}

#[test]
fn beta_and_alpha_prefixes_are_accepted() {
    let env = Offline::new();
    env.run(&["config", "set", "project", "p1"]);
    let r = env.run(&["beta", "config", "get", "project"]);
    assert_eq!(r.stdout, "p1\n", "{r:?}");
    let r = env.run(&["alpha", "config", "set", "core/bogus", "x"]);
    assert!(
        r.stderr.starts_with("ERROR: (runpool.alpha.config.set)"),
        "{r:?}"
    );
}

#[test]
fn login_without_a_server_explains_where_credentials_come_from() {
    let env = Offline::new();
    env.run(&["config", "set", "api_endpoint", "http://127.0.0.1:9"]);
    let r = env.run(&["auth", "login", "alice@example.com"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("runpool serve"), "{r:?}");
    assert!(r.stderr.contains("--admin-credential"), "{r:?}");
}

#[test]
fn commands_without_an_account_say_how_to_log_in() {
    let env = Offline::new();
    let r = env.run(&["projects", "describe", "demo-project"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with(
            "ERROR: (runpool.projects.describe) You do not currently have an active account selected."
        ),
        "{r:?}"
    );
    let r = env.run(&["auth", "list"]);
    assert!(r.ok());
    assert!(r.stderr.contains("No credentialed accounts."), "{r:?}");
}
