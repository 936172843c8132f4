//! Token costs on the request path: verifying an opaque access token, a self-signed
//! service-account JWT (first sight and remembered), and minting tokens (each one a durable
//! SQLite commit).

use criterion::{Criterion, criterion_group, criterion_main};
use runpool_control::Control;
use runpool_control::base::store::SqliteStore;
use runpool_control::world::World;
use serde_json::json;
use std::hint::black_box;

fn setup() -> (tempfile::TempDir, Control) {
    let dir = tempfile::tempdir().unwrap();
    let control = Control::open(Box::new(
        SqliteStore::open(&dir.path().join("runpool.db")).unwrap(),
    ))
    .unwrap();
    control.seed(&World::default_world()).unwrap();
    control.set_admin_credential("bench-credential".into());
    (dir, control)
}

fn tokens(c: &mut Criterion) {
    let (_dir, control) = setup();
    let admin = control
        .mint_user_token(Some("bench-credential"), "admin@example.com")
        .unwrap()
        .access_token;
    c.bench_function("authenticate opaque access token", |b| {
        b.iter(|| {
            control
                .authenticate(black_box(Some(admin.as_str())))
                .unwrap()
        })
    });

    // A service account with a key whose private half we keep, as a key file holder would.
    let caller = control.authenticate(Some(&admin)).unwrap();
    let sa = control
        .create_service_account(&caller, "projects/demo-project", "bench-sa", None)
        .unwrap();
    let key = control
        .create_key(&caller, &sa.name, Default::default())
        .unwrap();
    let file: serde_json::Value = serde_json::from_slice(&key.private_key_data).unwrap();
    let pem = file["private_key"].as_str().unwrap();
    let kid = file["private_key_id"].as_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    let jwt_at = |iat: i64| -> String {
        let claims = json!({"iss": sa.email, "sub": sa.email, "aud": "https://iam.googleapis.com/", "iat": iat, "exp": iat + 3600});
        runpool_control::base::crypto::sign_jwt(pem, kid, &claims).unwrap()
    };
    let remembered = jwt_at(now);
    control.authenticate(Some(&remembered)).unwrap();
    c.bench_function("authenticate self-signed JWT (remembered)", |b| {
        b.iter(|| {
            control
                .authenticate(black_box(Some(remembered.as_str())))
                .unwrap()
        })
    });
    // The first time a JWT is seen its RS256 signature is checked; that check dominates.
    let public = runpool_control::base::crypto::public_from_cert(
        std::str::from_utf8(&control.get_key(&caller, &key.name).unwrap().public_key_data).unwrap(),
    )
    .unwrap();
    let fresh = jwt_at(now - 1);
    c.bench_function("verify a self-signed JWT signature (first sight)", |b| {
        b.iter(|| runpool_control::base::crypto::verify_jwt(black_box(&fresh), &public).unwrap())
    });

    let mut g = c.benchmark_group("mint");
    g.sample_size(20);
    g.bench_function("mint a user access token (durable commit)", |b| {
        b.iter(|| {
            control
                .mint_user_token(Some("bench-credential"), "alice@example.com")
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
