//! Two `Control`s over one PostgreSQL database, with no notification between them (neither
//! subscribes): what one commits, the other decides and authenticates on at once, because a
//! mutation catches up as it locks the store and a token check catches up before it judges.
//! Needs `RUNPOOL_TEST_POSTGRES` (`scripts/postgres` starts a server and prints it).

use runpool_control::Control;
use runpool_control::base::store::PostgresStore;
use runpool_control::world::World;

/// A new, empty database named for this process and `test`.
fn database(test: &str) -> String {
    let base = std::env::var("RUNPOOL_TEST_POSTGRES").expect(
        "RUNPOOL_TEST_POSTGRES names a PostgreSQL server for these tests (scripts/postgres starts one)",
    );
    let name = format!("runpool_control_{test}_{}", std::process::id());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

#[test]
fn what_one_control_commits_the_other_acts_on_without_being_told() {
    let url = database("notify");
    let open = || Control::open(Box::new(PostgresStore::open(&url).unwrap())).unwrap();
    // Both open on the empty database, before anything is written.
    let (a, b) = (open(), open());
    assert!(a.seed(&World::default_world()).unwrap());
    // b's mutation is decided on a's world: it does not seed a second one.
    assert!(!b.seed(&World::default_world()).unwrap());
    a.set_admin_credential("cred".into());
    let token = a
        .mint_user_token(Some("cred"), "alice@example.com")
        .unwrap()
        .access_token;
    let caller = b
        .authenticate(Some(&token))
        .expect("minted on a, accepted by b");
    assert_eq!(caller.member, "user:alice@example.com");
    a.revoke(&token).unwrap();
    assert!(
        b.authenticate(Some(&token)).is_err(),
        "revoked on a, refused by b"
    );
}

#[test]
fn a_control_behind_what_the_log_keeps_reads_the_rows_again() {
    let url = database("gap");
    let token_on = |c: &Control| {
        c.mint_user_token(Some("cred"), "alice@example.com")
            .unwrap()
            .access_token
    };
    let a = Control::open(Box::new(PostgresStore::open(&url).unwrap().keeping_log(2))).unwrap();
    let b = Control::open(Box::new(PostgresStore::open(&url).unwrap())).unwrap();
    a.set_admin_credential("cred".into());
    b.set_admin_credential("cred".into());
    assert!(a.seed(&World::default_world()).unwrap());
    let mut tokens: Vec<String> = (0..4).map(|_| token_on(&a)).collect();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let logged = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM runpool_log", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(
        logged(&mut db),
        2,
        "a's commits keep the newest two batches"
    );

    // b saw none of it, and the log no longer holds the seed: its mutation reads the rows
    // again under the lock and is decided on a's world (no second seed)...
    assert!(!b.seed(&World::default_world()).unwrap());
    tokens.push(token_on(&b));
    // ...and so does a token check that finds a gap.
    tokens.extend((0..4).map(|_| token_on(&a)));
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(
            b.authenticate(Some(token))
                .expect("b knows every token")
                .member,
            "user:alice@example.com",
            "token {i}"
        );
        a.authenticate(Some(token)).expect("a knows every token");
    }
}
