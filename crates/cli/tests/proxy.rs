//! Google's own host names, through the server's port as an HTTP proxy: real TLS with the
//! server's local CA, HTTP/2 or HTTP/1.1 by ALPN, Google's API hosts only, the CA kept across
//! restarts, and `runpool env` sending a shell's programs there unchanged. Driven with curl
//! (what `.ci/run` installs), as any program that honours `HTTPS_PROXY` would go.

mod common;

use common::Server;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

struct Curl {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `curl -sS ARGS...` with no proxy or CA from the test's own environment.
fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .arg("-sS")
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE")
        .output()
        .expect("curl is installed (.ci/run installs it)");
    Curl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn google_host_names_reach_the_server_through_its_proxy_over_real_tls() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(Some(data.path()), None, &[]);
    server.login_admin();
    let token = server.ok(&["auth", "print-access-token"]).stdout;
    let auth = format!("Authorization: Bearer {}", token.trim());

    // The CA: made at first start, its key private, printed by `runpool ca`.
    let ca_path = data.path().join("ca").join("ca.pem");
    let key_mode = std::fs::metadata(data.path().join("ca").join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let printed = server.ok(&["ca"]).stdout;
    let pem = std::fs::read_to_string(&ca_path).unwrap();
    assert_eq!(printed, format!("{}\n{pem}", ca_path.display()));
    let ca = ca_path.to_str().unwrap();
    // A call through the proxy, trusting the CA, with the admin's token; the answer's body,
    // then its HTTP version and status.
    let trusted = |extra: &[&str], url: &str| {
        let mut args = vec!["--proxy", &server.endpoint, "--cacert", ca, "-H", &auth];
        args.extend_from_slice(extra);
        args.extend(["-w", "\n%{http_version} %{http_code}", url]);
        curl(&args)
    };

    // Resource Manager by its own host name, over HTTP/2 (ALPN), answered by this server.
    let r = trusted(
        &[],
        "https://cloudresourcemanager.googleapis.com/v3/projects/demo-project",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("\"projectId\":\"demo-project\""),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("\n2 200"), "{}", r.stdout);

    // A Cloud Run regional host over HTTP/1.1.
    let r = trusted(
        &["--http1.1"],
        "https://us-central1-run.googleapis.com/v2/projects/demo-project/locations/us-central1/workerPools",
    );
    assert!(r.stdout.ends_with("\n1.1 200"), "{} {}", r.stdout, r.stderr);

    // The TLS is real: a client that does not trust the CA refuses the certificate.
    let r = curl(&[
        "--proxy",
        &server.endpoint,
        "https://iam.googleapis.com/v1/roles",
    ]);
    assert_eq!(r.code, 60, "certificate refused: {}", r.stderr);

    // Never an open proxy: another host is refused, tunnelled or not.
    let r = curl(&["--proxy", &server.endpoint, "https://example.com/"]);
    assert_eq!(r.code, 56, "CONNECT refused: {}", r.stderr);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    let r = curl(&[
        "--proxy",
        &server.endpoint,
        "-w",
        "%{http_code}",
        "http://example.com/",
    ]);
    assert!(
        r.stdout.contains("'example.com' is not one"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("403"), "{}", r.stdout);

    // `eval "$(runpool env)"`: a program with no proxy, CA or credentials of its own reaches
    // the server by Google's host names, and Application Default Credentials' refresh token
    // is traded by Google's token host, that is, by this server.
    let script = format!(
        r#"eval "$('{bin}' env)" &&
           refresh=$(sed 's/.*"refresh_token":"\([^"]*\)".*/\1/' "$GOOGLE_APPLICATION_CREDENTIALS") &&
           t=$(curl -sS https://oauth2.googleapis.com/token -d grant_type=refresh_token \
                 -d "refresh_token=$refresh" -d client_id=x -d client_secret=y |
               sed 's/.*"access_token":"\([^"]*\)".*/\1/') &&
           curl -sS -H "Authorization: Bearer $t" https://cloudresourcemanager.googleapis.com/v3/projects/demo-project"#,
        bin = common::bin()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env("RUNPOOL_CONFIG", server.config.path())
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"projectId\":\"demo-project\""),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CA survives a restart: trust is set up once.
    server.kill();
    let server = Server::spawn(Some(data.path()), None, &[]);
    assert_eq!(server.ok(&["ca"]).stdout, printed);
}
