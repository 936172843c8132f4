//! Service accounts as Google runs them, through the real binary: keys and key files, the
//! JWT-bearer grant and self-signed JWTs (and every way they must be refused), immediate
//! revocation, impersonation with and without delegation, actAs inheritance, ID tokens.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use common::{Api, Server};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use std::path::Path;

const PROJECT: &str = "demo-project";
const ADMIN: &str = "admin@example.com";

fn email(id: &str) -> String {
    format!("{id}@{PROJECT}.iam.gserviceaccount.com")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server with the default world, the CLI logged in as the org admin, `core/project` set.
fn start() -> (Server, Api) {
    let server = Server::start();
    server.login_admin();
    server.ok(&["config", "set", "project", PROJECT]);
    let api = server.api();
    (server, api)
}

/// Add `member` to `role` on a policy-bearing resource (`/v3/projects/P` or
/// `/v1/projects/P/serviceAccounts/E`), as the admin, by read-modify-write.
fn grant(api: &Api, resource: &str, role: &str, member: &str) {
    edit_policy(api, resource, |bindings| {
        bindings.push(json!({"role": role, "members": [member]}))
    });
}

/// Remove every binding of `role` on the resource.
fn revoke_role(api: &Api, resource: &str, role: &str) {
    edit_policy(api, resource, |bindings| {
        bindings.retain(|b| b["role"] != role)
    });
}

fn edit_policy(api: &Api, resource: &str, f: impl FnOnce(&mut Vec<Value>)) {
    let admin = api.token(ADMIN);
    let (s, mut policy) = api.post(&admin, &format!("{resource}:getIamPolicy"), json!({}));
    assert_eq!(s, 200, "{policy}");
    let mut bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
    f(&mut bindings);
    policy["bindings"] = Value::Array(bindings);
    let (s, body) = api.post(
        &admin,
        &format!("{resource}:setIamPolicy"),
        json!({ "policy": policy }),
    );
    assert_eq!(s, 200, "{body}");
}

fn project_resource() -> String {
    format!("/v3/projects/{PROJECT}")
}

fn sa_resource(email: &str) -> String {
    format!("/v1/projects/{PROJECT}/serviceAccounts/{email}")
}

/// `iam service-accounts create ID` through the CLI (as whoever is active); the email.
fn create_sa(server: &Server, id: &str) -> String {
    let r = server.ok(&[
        "iam",
        "service-accounts",
        "create",
        id,
        "--display-name",
        id,
    ]);
    assert_eq!(r.stderr, format!("Created service account [{id}].\n"));
    email(id)
}

/// `keys create FILE --iam-account` through the CLI; the key file's JSON.
fn create_key_file(server: &Server, email: &str, file: &Path) -> Value {
    let f = file.to_str().unwrap();
    let r = server.ok(&[
        "iam",
        "service-accounts",
        "keys",
        "create",
        f,
        &format!("--iam-account={email}"),
    ]);
    let key: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(
        r.stderr,
        format!(
            "created key [{}] of type [json] as [{f}] for [{email}]\n",
            key["private_key_id"].as_str().unwrap()
        )
    );
    key
}

/// A key created over REST (as the admin): the decoded key file.
fn rest_key(api: &Api, email: &str) -> Value {
    let (s, key) = api.post(
        &api.token(ADMIN),
        &format!("{}/keys", sa_resource(email)),
        json!({}),
    );
    assert_eq!(s, 200, "{key}");
    let bytes = B64.decode(key["privateKeyData"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// RS256-sign `claims` with the key file's private key, header `kid` as given.
fn sign(key_file: &Value, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let key = EncodingKey::from_rsa_pem(key_file["private_key"].as_str().unwrap().as_bytes())
        .expect("key file private_key is an RSA PEM");
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A self-signed JWT as google-auth makes one for `https://HOST/`.
fn self_signed(key_file: &Value, aud: &str, iat: i64, exp: i64) -> String {
    let email = key_file["client_email"].as_str().unwrap();
    let kid = key_file["private_key_id"].as_str().unwrap();
    sign(
        key_file,
        kid,
        &json!({"iss": email, "sub": email, "aud": aud, "iat": iat, "exp": exp}),
    )
}

const CRM: &str = "https://cloudresourcemanager.googleapis.com/";

/// The status of reading the project with this bearer token.
fn read_project(api: &Api, token: &str) -> u16 {
    api.get(token, &format!("/v3/projects/{PROJECT}")).0
}

/// The JWT-bearer grant for an access token with this key file.
fn jwt_bearer_token(api: &Api, key_file: &Value) -> String {
    let t = now();
    let assertion = sign(
        key_file,
        key_file["private_key_id"].as_str().unwrap(),
        &json!({"iss": key_file["client_email"], "aud": key_file["token_uri"], "iat": t,
                "exp": t + 3600, "scope": "https://www.googleapis.com/auth/cloud-platform"}),
    );
    let (status, body) = api.jwt_bearer(&assertion);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_string()
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_activated_key_acts_as_its_account_with_exactly_its_grants() {
    let (server, api) = start();
    let dir = tempfile::tempdir().unwrap();
    let sa = create_sa(&server, "ci-runner");
    let key_path = dir.path().join("key.json");
    let key = create_key_file(&server, &sa, &key_path);
    #[cfg(unix)]
    assert_eq!(mode(&key_path), 0o600, "key files are private");
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["client_email"], sa.as_str());
    assert_eq!(
        key["token_uri"],
        format!("{}/token", server.endpoint),
        "the key file sends its grants to this server"
    );

    let r = server.ok(&[
        "auth",
        "activate-service-account",
        &format!("--key-file={}", key_path.display()),
    ]);
    assert_eq!(
        r.stderr,
        format!("Activated service account credentials for: [{sa}]\n")
    );
    let list = server.ok(&["auth", "list"]);
    assert!(list.stdout.contains(&format!("*       {sa}\n")), "{list:?}");
    let cred_file = server
        .config
        .path()
        .join("credentials")
        .join(format!("{sa}.json"));
    #[cfg(unix)]
    assert_eq!(mode(&cred_file), 0o600, "the stored key is private");

    // No grant: the account is authenticated but may not read the project.
    let r = server.run(&["projects", "describe", PROJECT]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("PERMISSION_DENIED"), "{r:?}");
    assert!(
        r.stderr
            .contains("Permission 'resourcemanager.projects.get' denied"),
        "{r:?}"
    );

    grant(
        &api,
        &project_resource(),
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    let r = server.ok(&["projects", "describe", PROJECT]);
    assert!(r.stdout.contains("projectId: demo-project"), "{r:?}");

    // An expired stored token is replaced by a new grant signed with the stored key.
    let mut cred: Value =
        serde_json::from_str(&std::fs::read_to_string(&cred_file).unwrap()).unwrap();
    cred["access_token"] = json!("ya29.stale");
    cred["expiry"] = json!("2000-01-01T00:00:00Z");
    std::fs::write(&cred_file, cred.to_string()).unwrap();
    server.ok(&["projects", "describe", PROJECT]);
    let cred: Value = serde_json::from_str(&std::fs::read_to_string(&cred_file).unwrap()).unwrap();
    assert_ne!(
        cred["access_token"], "ya29.stale",
        "refreshed and re-stored"
    );

    // Deleting the key revokes the account's CLI session at once.
    server.ok(&[
        "--account",
        ADMIN,
        "iam",
        "service-accounts",
        "keys",
        "delete",
        key["private_key_id"].as_str().unwrap(),
        &format!("--iam-account={sa}"),
    ]);
    let r = server.run(&["projects", "describe", PROJECT]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("UNAUTHENTICATED"), "{r:?}");
}

#[test]
fn self_signed_jwts_are_accepted_only_when_everything_checks_out() {
    let (server, api) = start();
    let sa = create_sa(&server, "jwt-caller");
    grant(
        &api,
        &project_resource(),
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    let a = rest_key(&api, &sa);
    let b = rest_key(&api, &sa);
    let kid_a = a["private_key_id"].as_str().unwrap();
    let t = now();

    let good = self_signed(&a, CRM, t, t + 3600);
    assert_eq!(
        read_project(&api, &good),
        200,
        "a well-formed self-signed JWT"
    );

    let claims = json!({"iss": sa, "sub": sa, "aud": CRM, "iat": t, "exp": t + 3600});
    let forged = sign(&b, kid_a, &claims);
    assert_eq!(read_project(&api, &forged), 401, "signed by another key");
    assert_eq!(
        read_project(&api, &self_signed(&a, "https://example.com/", t, t + 3600)),
        401,
        "an audience that is no Google API"
    );
    assert_eq!(
        read_project(&api, &self_signed(&a, CRM, t - 7200, t - 3600)),
        401,
        "expired"
    );
    assert_eq!(
        read_project(&api, &self_signed(&a, CRM, t + 3600, t + 7200)),
        401,
        "issued an hour in the future"
    );
    let unknown_kid = sign(&a, &"0".repeat(40), &claims);
    assert_eq!(read_project(&api, &unknown_kid), 401, "unknown kid");
    let other = format!("someone-else@{PROJECT}.iam.gserviceaccount.com");
    let wrong_iss = sign(
        &a,
        kid_a,
        &json!({"iss": other, "sub": other, "aud": CRM, "iat": t, "exp": t + 3600}),
    );
    assert_eq!(
        read_project(&api, &wrong_iss),
        401,
        "iss is not the key's account"
    );

    // The JWT-bearer grant with key A; then `keys delete` kills both A's JWT and its token.
    let token_a = jwt_bearer_token(&api, &a);
    assert_eq!(read_project(&api, &token_a), 200);
    let jwt_b = self_signed(&b, CRM, t, t + 3600);
    assert_eq!(read_project(&api, &jwt_b), 200);
    let account = format!("--iam-account={sa}");
    let r = server.ok(&["iam", "service-accounts", "keys", "delete", kid_a, &account]);
    assert_eq!(
        r.stderr,
        format!("deleted key [{kid_a}] for service account [{sa}]\n")
    );
    assert_eq!(read_project(&api, &good), 401, "deleted key's JWT");
    assert_eq!(
        read_project(&api, &token_a),
        401,
        "token from a deleted key"
    );
    assert_eq!(
        read_project(&api, &jwt_b),
        200,
        "the other key is untouched"
    );

    // Disabling the account stops its credentials at once; enabling restores them.
    let token_b = jwt_bearer_token(&api, &b);
    server.ok(&["iam", "service-accounts", "disable", &sa]);
    assert_eq!(read_project(&api, &jwt_b), 401, "JWT of a disabled account");
    assert_eq!(
        read_project(&api, &token_b),
        401,
        "token of a disabled account"
    );
    server.ok(&["iam", "service-accounts", "enable", &sa]);
    assert_eq!(read_project(&api, &jwt_b), 200, "enabled again");
    assert_eq!(read_project(&api, &token_b), 200, "enabled again");

    // Same for the key itself.
    let kid_b = b["private_key_id"].as_str().unwrap();
    let r = server.ok(&[
        "iam",
        "service-accounts",
        "keys",
        "disable",
        kid_b,
        &account,
    ]);
    assert_eq!(
        r.stderr,
        format!("Disabled key [{kid_b}] for service account [{sa}].\n")
    );
    assert_eq!(read_project(&api, &jwt_b), 401, "JWT of a disabled key");
    assert_eq!(read_project(&api, &token_b), 401, "token of a disabled key");
    let list = server.ok(&["iam", "service-accounts", "keys", "list", &account]);
    let row = list.stdout.lines().find(|l| l.starts_with(kid_b)).unwrap();
    assert!(row.ends_with("True"), "{list:?}");
    server.ok(&["iam", "service-accounts", "keys", "enable", kid_b, &account]);
    assert_eq!(read_project(&api, &jwt_b), 200, "key enabled again");
    assert_eq!(read_project(&api, &token_b), 200, "key enabled again");

    let list = server.ok(&["iam", "service-accounts", "keys", "list", &account]);
    let head = list.stdout.lines().next().unwrap_or_default();
    let columns: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(
        columns,
        ["KEY_ID", "CREATED_AT", "EXPIRES_AT", "DISABLED"],
        "{list:?}"
    );
    assert!(
        !list.stdout.contains(kid_a),
        "deleted key is gone: {list:?}"
    );
    assert!(list.stdout.contains(kid_b), "{list:?}");
}

/// `projects describe` as alice, impersonating `chain`.
fn describe_as_alice(server: &Server, chain: &str) -> common::Run {
    server.run(&[
        "--account",
        "alice@example.com",
        &format!("--impersonate-service-account={chain}"),
        "projects",
        "describe",
        PROJECT,
    ])
}

const TOKEN_CREATOR: &str = "roles/iam.serviceAccountTokenCreator";

#[test]
fn impersonation_needs_token_creator_on_the_account_or_its_project() {
    let (server, api) = start();
    server.ok(&["auth", "login", "alice@example.com", "--no-activate"]);
    let sa = create_sa(&server, "deployer");
    grant(
        &api,
        &project_resource(),
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    let warning = format!(
        "WARNING: This command is using service account impersonation. All API calls will be \
         executed as [{sa}].\n"
    );

    let r = describe_as_alice(&server, &sa);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.starts_with(&warning), "{r:?}");
    assert!(
        r.stderr
            .contains("Permission 'iam.serviceAccounts.getAccessToken' denied on resource"),
        "{r:?}"
    );

    // Granted on the account itself.
    grant(
        &api,
        &sa_resource(&sa),
        TOKEN_CREATOR,
        "user:alice@example.com",
    );
    let r = describe_as_alice(&server, &sa);
    assert!(r.ok(), "{r:?}");
    assert!(r.stdout.contains("projectId: demo-project"), "{r:?}");
    assert!(r.stderr.starts_with(&warning), "{r:?}");
    // The property does the same as the flag.
    server.ok(&["config", "set", "auth/impersonate_service_account", &sa]);
    let r = server.ok(&[
        "--account",
        "alice@example.com",
        "auth",
        "print-access-token",
    ]);
    let token = r.stdout.trim();
    let (s, info) = api.get_with(None, &format!("/tokeninfo?access_token={token}"));
    assert_eq!(s, 200, "{info}");
    assert_eq!(
        info["email"],
        sa.as_str(),
        "the printed token is the account's"
    );
    server.ok(&["config", "unset", "auth/impersonate_service_account"]);

    // Revoked there, granted on the project: inherited, also by an account created later.
    revoke_role(&api, &sa_resource(&sa), TOKEN_CREATOR);
    assert!(!describe_as_alice(&server, &sa).ok());
    grant(
        &api,
        &project_resource(),
        TOKEN_CREATOR,
        "user:alice@example.com",
    );
    assert!(describe_as_alice(&server, &sa).ok());
    let later = create_sa(&server, "deployer-two");
    let r = server.ok(&[
        "--account",
        "alice@example.com",
        &format!("--impersonate-service-account={later}"),
        "auth",
        "print-identity-token",
        "--audiences=https://pool.example",
        "--include-email",
    ]);
    let claims = jwt_claims(r.stdout.trim());
    assert_eq!(claims["aud"], "https://pool.example");
    assert_eq!(claims["email"], later.as_str());
}

#[test]
fn a_delegation_chain_needs_token_creator_at_every_hop() {
    let (server, api) = start();
    server.ok(&["auth", "login", "alice@example.com", "--no-activate"]);
    let sa1 = create_sa(&server, "hop-one");
    let sa2 = create_sa(&server, "hop-two");
    grant(
        &api,
        &project_resource(),
        "roles/browser",
        &format!("serviceAccount:{sa2}"),
    );
    let chain = format!("{sa1},{sa2}");

    grant(
        &api,
        &sa_resource(&sa1),
        TOKEN_CREATOR,
        "user:alice@example.com",
    );
    let r = describe_as_alice(&server, &chain);
    assert_eq!(r.code, Some(1), "sa1 may not mint for sa2 yet: {r:?}");
    assert!(
        r.stderr.contains(&format!("executed as [{sa2}]")),
        "the target is the last of the chain: {r:?}"
    );

    grant(
        &api,
        &sa_resource(&sa2),
        TOKEN_CREATOR,
        &format!("serviceAccount:{sa1}"),
    );
    let r = describe_as_alice(&server, &chain);
    assert!(r.ok(), "user -> sa1 -> sa2: {r:?}");
    assert!(r.stdout.contains("projectId: demo-project"), "{r:?}");
    assert!(
        !describe_as_alice(&server, &sa2).ok(),
        "alice herself holds nothing on sa2"
    );

    revoke_role(&api, &sa_resource(&sa1), TOKEN_CREATOR);
    assert!(
        !describe_as_alice(&server, &chain).ok(),
        "the first hop is gone"
    );
}

/// Google's IAM Credentials denial, word for word (reference §4, from a real answer).
#[test]
fn a_denied_generate_access_token_answers_google_s_error() {
    let (server, api) = start();
    let sa = create_sa(&server, "not-for-alice");
    let (s, body) = api.post(
        &api.token("alice@example.com"),
        &format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken"),
        json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"]}),
    );
    assert_eq!(s, 403, "{body}");
    let e = &body["error"];
    let info = e["details"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["reason"] == "IAM_PERMISSION_DENIED"))
        .cloned()
        .unwrap_or_default();
    let got = json!({"status": e["status"], "message": e["message"],
                     "domain": info["domain"], "metadata": info["metadata"]});
    assert_eq!(
        got,
        json!({
            "status": "PERMISSION_DENIED",
            "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            "domain": "iam.googleapis.com",
            "metadata": {"permission": "iam.serviceAccounts.getAccessToken"},
        })
    );
}

/// `iam.serviceAccounts.actAs` as `user` on the account, by `:testIamPermissions`.
fn can_act_as(api: &Api, user: &str, sa: &str) -> bool {
    let (s, body) = api.post(
        &api.token(user),
        &format!("{}:testIamPermissions", sa_resource(sa)),
        json!({"permissions": ["iam.serviceAccounts.actAs"]}),
    );
    assert_eq!(s, 200, "{body}");
    body["permissions"] == json!(["iam.serviceAccounts.actAs"])
}

#[test]
fn service_account_user_on_the_project_covers_every_account_on_one_only_that_one() {
    let (server, api) = start();
    let before = create_sa(&server, "made-before");
    grant(
        &api,
        &project_resource(),
        "roles/iam.serviceAccountUser",
        "user:alice@example.com",
    );
    let after = create_sa(&server, "made-after");
    assert!(can_act_as(&api, "alice@example.com", &before));
    assert!(
        can_act_as(&api, "alice@example.com", &after),
        "inherited by an account created later"
    );

    // The seed's command, verbatim: a grant on one account.
    let r = server.ok(&[
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        &before,
        "--member=user:bob@example.com",
        "--role=roles/iam.serviceAccountUser",
    ]);
    assert_eq!(
        r.stderr,
        format!("Updated IAM policy for serviceAccount [{before}].\n")
    );
    assert!(r.stdout.contains("- user:bob@example.com"), "{r:?}");
    assert!(can_act_as(&api, "bob@example.com", &before));
    assert!(
        !can_act_as(&api, "bob@example.com", &after),
        "a grant on one account is not on its sibling"
    );
    let r = server.ok(&["iam", "service-accounts", "get-iam-policy", &before]);
    assert!(
        r.stdout.contains("role: roles/iam.serviceAccountUser"),
        "{r:?}"
    );

    server.ok(&[
        "iam",
        "service-accounts",
        "remove-iam-policy-binding",
        &before,
        "--member=user:bob@example.com",
        "--role=roles/iam.serviceAccountUser",
    ]);
    assert!(!can_act_as(&api, "bob@example.com", &before));
}

#[test]
fn print_identity_token_for_a_key_is_a_verifiable_google_id_token() {
    let (server, api) = start();
    let dir = tempfile::tempdir().unwrap();
    let sa = create_sa(&server, "id-token-maker");
    let key_path = dir.path().join("k.json");
    create_key_file(&server, &sa, &key_path);

    let r = server.run(&["auth", "print-identity-token", "--audiences=https://x"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("not supported yet"),
        "a simulated user has no ID token: {r:?}"
    );

    server.ok(&[
        "auth",
        "activate-service-account",
        &sa,
        &format!("--key-file={}", key_path.display()),
    ]);
    let aud = "https://my-pool-abc123-uc.a.run.app";
    let r = server.ok(&[
        "auth",
        "print-identity-token",
        &format!("--audiences={aud}"),
    ]);
    let token = r.stdout.trim();
    let claims = jwt_claims(token);
    assert_eq!(claims["aud"], aud);
    assert_eq!(claims["email"], sa.as_str());
    assert_eq!(claims["iss"], "https://accounts.google.com");

    // The signature verifies against the published JWKS, and only for the untouched token.
    let header = jsonwebtoken::decode_header(token).unwrap();
    let (s, jwks) = api.get_with(None, "/oauth2/v3/certs");
    assert_eq!(s, 200, "{jwks}");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .expect("the token's kid is published");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&["https://accounts.google.com"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).expect("signature verifies");
    assert_eq!(data.claims["email"], sa.as_str());
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims.clone();
    forged_claims["email"] = json!("admin@example.com");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(forged_claims.to_string()),
        parts[2]
    );
    assert!(jsonwebtoken::decode::<Value>(&forged, &key, &v).is_err());

    // A mismatched account name is refused, as gcloud refuses it.
    let r = server.run(&[
        "auth",
        "activate-service-account",
        "someone@example.com",
        &format!("--key-file={}", key_path.display()),
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("does not match"), "{r:?}");
}

#[test]
fn account_lifecycle_through_the_cli() {
    let (server, _api) = start();
    let sa = email("lifecycle-sa");
    server.ok(&[
        "iam",
        "service-accounts",
        "create",
        "lifecycle-sa",
        "--display-name=Life",
        "--description=cycle",
    ]);
    let r = server.ok(&["iam", "service-accounts", "list"]);
    let mut lines = r.stdout.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("DISPLAY NAME"), "{r:?}");
    assert!(
        head.contains("EMAIL") && head.ends_with("DISABLED"),
        "{r:?}"
    );
    let row = r.stdout.lines().find(|l| l.contains(&sa)).unwrap();
    assert!(row.starts_with("Life ") && row.ends_with("False"), "{r:?}");

    let r = server.ok(&[
        "iam",
        "service-accounts",
        "update",
        &sa,
        "--display-name=Renamed",
    ]);
    assert_eq!(r.stderr, format!("Updated service account [{sa}].\n"));
    assert!(r.stdout.contains("displayName: Renamed"), "{r:?}");
    let r = server.ok(&["iam", "service-accounts", "describe", &sa, "--format=json"]);
    let described: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        described["description"], "cycle",
        "update kept the description"
    );
    let unique_id = described["uniqueId"].as_str().unwrap().to_string();

    let r = server.ok(&["iam", "service-accounts", "disable", &sa]);
    assert_eq!(r.stderr, format!("Disabled service account [{sa}].\n"));
    let r = server.ok(&["iam", "service-accounts", "describe", &sa]);
    assert!(r.stdout.contains("disabled: true"), "{r:?}");
    server.ok(&["iam", "service-accounts", "enable", &sa]);

    let r = server.ok(&["iam", "service-accounts", "delete", &sa]);
    assert_eq!(r.stderr, format!("deleted service account [{sa}]\n"));
    let r = server.run(&["iam", "service-accounts", "describe", &sa]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("NOT_FOUND"), "{r:?}");
    let r = server.run(&["iam", "service-accounts", "undelete", &sa]);
    assert_eq!(r.code, Some(1), "undelete takes the unique ID: {r:?}");
    let r = server.ok(&["iam", "service-accounts", "undelete", &unique_id]);
    assert!(r.stdout.contains(&format!("email: {sa}")), "{r:?}");
    server.ok(&["iam", "service-accounts", "describe", &sa]);
}

#[test]
fn an_uploaded_public_key_lets_its_private_half_sign_for_the_account() {
    let (server, api) = start();
    let dir = tempfile::tempdir().unwrap();
    let sa = create_sa(&server, "byo-key");
    grant(
        &api,
        &project_resource(),
        "roles/browser",
        &format!("serviceAccount:{sa}"),
    );
    // Any RSA key of ours will do: take one the server generated for another account.
    let donor = rest_key(&api, &create_sa(&server, "key-donor"));
    let pem = donor["private_key"].as_str().unwrap();
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();

    let r = server.ok(&[
        "iam",
        "service-accounts",
        "keys",
        "upload",
        cert_path.to_str().unwrap(),
        &format!("--iam-account={sa}"),
        "--format=json",
    ]);
    let key: Value = serde_json::from_str(&r.stdout).unwrap();
    let kid = key["name"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(key["keyOrigin"], "USER_PROVIDED", "{key}");

    let t = now();
    let jwt = sign(
        &donor,
        kid,
        &json!({"iss": sa, "sub": sa, "aud": CRM, "iat": t, "exp": t + 3600}),
    );
    assert_eq!(read_project(&api, &jwt), 200, "signed by the uploaded key");
}
