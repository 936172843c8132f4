//! The web console's server side, against the real binary: the embedded page and assets under
//! `/console/`, and `runpool console`'s one-time sign-in link (a code good once, for the CLI's
//! account, traded for a session of that same principal). The pages themselves are tested in
//! Chromium by `console/tests/` (run by `scripts/test`).

mod common;

use common::Server;
use serde_json::{Value, json};

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `runpool console --no-browser`: the link, and the code in it.
fn console_link(server: &Server, extra: &[&str]) -> (String, String) {
    let mut args = vec!["console", "--no-browser"];
    args.extend_from_slice(extra);
    let r = server.ok(&args);
    let url = r.stdout.trim().to_string();
    let code = url
        .strip_prefix(&format!("{}/console/#code=", server.endpoint))
        .unwrap_or_else(|| panic!("unexpected link: {r:?}"))
        .to_string();
    (url, code)
}

fn redeem(server: &Server, code: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/runpool/v1/console/sessions", server.endpoint))
        .json(&json!({ "code": code }))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn the_console_page_and_its_assets_are_served_from_the_binary() {
    let server = Server::start();
    let c = http();
    let r = c
        .get(format!("{}/console", server.endpoint))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(r.headers()["location"], "/console/");

    let r = c
        .get(format!("{}/console/", server.endpoint))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = r.text().unwrap();
    // Whatever the page loads comes from this server: no CDN, no web fonts.
    assert!(
        !html.contains("https://") && !html.contains("//fonts."),
        "{html}"
    );
    let assets: Vec<&str> = html
        .split("\"/console/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    for a in assets {
        let r = c
            .get(format!("{}/console/{a}", server.endpoint))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{a}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            (a.ends_with(".js") && ct.starts_with("text/javascript"))
                || (a.ends_with(".css") && ct.starts_with("text/css")),
            "{a}: {ct}"
        );
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    let r = c
        .get(format!("{}/console/assets/nope.js", server.endpoint))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[test]
fn a_console_link_signs_in_the_cli_account_once() {
    let server = Server::start();
    server.login_admin();
    let (_, code) = console_link(&server, &[]);
    let (status, session) = redeem(&server, &code);
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["principal"], "user:admin@example.com");
    assert!(session["refresh_token"].is_string());
    // The admin credential came along (this machine holds it), so the page can switch users.
    assert!(session["admin_credential"].is_string());
    let token = session["access_token"].as_str().unwrap();
    let api = server.api();
    let (s, info) = api.get(token, "/tokeninfo");
    assert_eq!(
        (s, info["email"].as_str()),
        (200, Some("admin@example.com"))
    );
    let (s, _) = api.get(token, "/v3/projects/demo-project");
    assert_eq!(s, 200);

    // Used once: a second trade, or a made-up code, is refused.
    let (status, again) = redeem(&server, &code);
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = redeem(&server, "not-a-code");
    assert_eq!(status, 400);
}

#[test]
fn the_link_is_for_the_account_named_and_grants_nothing_more() {
    let server = Server::start();
    server.login_admin();
    server.ok(&["auth", "login", "alice@example.com"]);
    // The current account is alice's now; --account names another of the CLI's accounts.
    let (_, code) = console_link(&server, &["--no-admin"]);
    let (_, session) = redeem(&server, &code);
    assert_eq!(session["principal"], "user:alice@example.com");
    assert!(session.get("admin_credential").is_none(), "{session}");
    let api = server.api();
    let alice = session["access_token"].as_str().unwrap();
    // Alice holds nothing in the default world: the console's token is refused like any other.
    let (s, body) = api.get(alice, "/v3/projects/demo-project");
    assert_eq!(s, 403, "{body}");

    let (_, code) = console_link(&server, &["--account", "admin@example.com"]);
    assert_eq!(
        redeem(&server, &code).1["principal"],
        "user:admin@example.com"
    );
}

#[test]
fn a_code_needs_a_caller_and_only_the_servers_admin_credential_rides_along() {
    let server = Server::start();
    let api = server.api();
    let c = http();
    let r = c
        .post(format!("{}/runpool/v1/console/codes", server.endpoint))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let alice = api.token("alice@example.com");
    let (s, body) = api.post(
        &alice,
        "/runpool/v1/console/codes",
        json!({"adminCredential": "rpa.guess"}),
    );
    assert_eq!(
        (s, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (s, body) = api.post(&alice, "/runpool/v1/console/codes", json!({}));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["principal"], "user:alice@example.com");
}
