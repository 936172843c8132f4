//! The IAM recommender's two promises, on generated cases: no recommendation ever takes away
//! a permission that was exercised in the window (nor grants one the binding did not), and
//! where the cases are small enough to search exhaustively, the proposed roles are the
//! smallest set there is.

use runpool_authz::Catalog;
use runpool_control::Control;
use runpool_control::base::store::SqliteStore;
use runpool_control::intelligence::audit::{AuditLog, Decision, Record};
use runpool_control::world::World;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const NUMBER: &str = "300000000001";
const PARENT: &str =
    "projects/app-project/locations/global/recommenders/google.iam.policy.Recommender";
/// Roles of several sizes and families, broad and narrow.
const ROLES: &[&str] = &[
    "roles/editor",
    "roles/viewer",
    "roles/run.developer",
    "roles/run.viewer",
    "roles/iam.serviceAccountAdmin",
    "roles/logging.viewer",
    "roles/browser",
    "roles/pubsub.editor",
    "roles/storage.admin",
    "roles/iam.securityReviewer",
];

/// xorshift: deterministic cases, the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn eligible(r: &runpool_authz::Role) -> bool {
    !matches!(
        r.name.as_str(),
        "roles/owner" | "roles/editor" | "roles/viewer"
    ) && matches!(r.stage.as_str(), "GA" | "BETA")
        && !r.name.to_ascii_lowercase().ends_with("serviceagent")
}

/// The fewest permissions any one or two eligible roles inside `within` grant while holding
/// every needed permission (two roles always suffice for two permissions).
fn brute_force(cat: &Catalog, needed: &[String], within: &BTreeSet<String>) -> Option<usize> {
    let roles: Vec<BTreeSet<&str>> = cat
        .predefined_roles()
        .filter(|r| eligible(r))
        .map(|r| {
            r.permissions
                .iter()
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
        })
        .filter(|p| p.iter().all(|x| within.contains(*x)))
        .filter(|p| needed.iter().any(|n| p.contains(n.as_str())))
        .collect();
    let mut best: Option<usize> = None;
    for a in 0..roles.len() {
        for b in a..roles.len() {
            let u: BTreeSet<&str> = roles[a].union(&roles[b]).copied().collect();
            if needed.iter().all(|n| u.contains(n.as_str())) {
                best = Some(best.map_or(u.len(), |x| x.min(u.len())));
            }
        }
    }
    best
}

#[test]
fn recommendations_keep_every_exercised_permission_and_are_minimal_where_checkable() {
    let cat = Catalog::predefined();
    let mut rng = Rng(0x2545f4914f6cdd1d);
    // One user per case: a role, and up to three of its permissions used.
    let mut cases: Vec<(String, String, Vec<String>)> = vec![];
    for i in 0..40 {
        let role = ROLES[rng.below(ROLES.len())];
        let perms = &cat.role(role).unwrap().permissions;
        let used: BTreeSet<String> = (0..rng.below(4))
            .map(|_| perms[rng.below(perms.len())].clone())
            .collect();
        cases.push((
            format!("u{i}@example.com"),
            role.to_string(),
            used.into_iter().collect(),
        ));
    }
    let mut yaml = format!(
        "organizations:\n  - domain: example.com\n    iam:\n      - role: roles/owner\n        members: [user:admin@example.com]\n    projects:\n      - projectId: app-project\n        number: \"{NUMBER}\"\n        iam:\n"
    );
    for (user, role, _) in &cases {
        yaml += &format!("          - role: {role}\n            members: [user:{user}]\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let control = Control::open(Box::new(
        SqliteStore::open(&dir.path().join("runpool.db")).unwrap(),
    ))
    .unwrap();
    control.seed(&World::from_yaml(&yaml).unwrap()).unwrap();
    control.set_audit_log(AuditLog::open(&dir.path().join("audit.db")).unwrap());
    control.set_admin_credential("cred".into());
    let log = control.audit_log().unwrap();
    for (user, _, used) in &cases {
        log.record(Record {
            time: chrono::Utc::now(),
            service_name: "cloudresourcemanager.googleapis.com".into(),
            method_name: "m".into(),
            resource_name: "projects/app-project".into(),
            project: "app-project".into(),
            principal_email: user.clone(),
            workload: None,
            decisions: used
                .iter()
                .map(|p| Decision {
                    resource: "projects/app-project".into(),
                    canonical: format!("projects/{NUMBER}"),
                    resource_type: "cloudresourcemanager.googleapis.com/Project".into(),
                    service: "cloudresourcemanager.googleapis.com".into(),
                    permission: p.clone(),
                    granted: true,
                    soft: false,
                })
                .collect(),
            status_code: 0,
            status_message: String::new(),
            activity: false,
        });
    }
    let token = control
        .mint_user_token(Some("cred"), "admin@example.com")
        .unwrap()
        .access_token;
    let admin = control.authenticate(Some(&token)).unwrap();
    let recs = control.list_recommendations(&admin, PARENT, "").unwrap();
    let by_member: BTreeMap<String, Value> = recs
        .iter()
        .map(|r| {
            let v = serde_json::to_value(r).unwrap();
            (
                v["content"]["overview"]["member"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v,
            )
        })
        .collect();
    let mut checked_optimal = 0;
    for (user, role, used) in &cases {
        let member = format!("user:{user}");
        let role_perms: BTreeSet<String> = cat
            .role(role)
            .unwrap()
            .permissions
            .iter()
            .cloned()
            .collect();
        let Some(rec) = by_member.get(&member) else {
            assert!(
                !used.is_empty(),
                "{member}: nothing used, yet no REMOVE_ROLE"
            );
            // No recommendation: nothing smaller than the role covers what was used.
            if used.len() <= 2
                && let Some(best) = brute_force(&cat, used, &role_perms)
            {
                assert!(
                    best >= role_perms.len(),
                    "{member}: {role} could shrink to {best}"
                );
            }
            continue;
        };
        assert_eq!(rec["content"]["overview"]["removedRole"], role.as_str());
        let added: Vec<&str> = rec["content"]["overview"]["addedRoles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        match rec["recommenderSubtype"].as_str().unwrap() {
            "REMOVE_ROLE" => assert!(used.is_empty(), "{member} used {used:?}"),
            "REPLACE_ROLE" => {
                let granted: BTreeSet<String> = added
                    .iter()
                    .flat_map(|r| cat.role(r).unwrap().permissions.clone())
                    .collect();
                for p in used {
                    assert!(
                        granted.contains(p),
                        "{member}: {p} lost replacing {role} by {added:?}"
                    );
                }
                assert!(
                    granted.is_subset(&role_perms),
                    "{member}: {added:?} grant beyond {role}"
                );
                assert!(granted.len() < role_perms.len());
                if used.len() <= 2 {
                    assert_eq!(
                        Some(granted.len()),
                        brute_force(&cat, used, &role_perms),
                        "{member}: {used:?} in {role} → {added:?} is not the smallest"
                    );
                    checked_optimal += 1;
                }
            }
            other => panic!("unexpected subtype {other}"),
        }
    }
    assert!(
        checked_optimal >= 5,
        "too few cases checked for optimality: {checked_optimal}"
    );
}
