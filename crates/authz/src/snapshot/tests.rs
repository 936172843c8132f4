use super::*;
use crate::policy::{Binding, normalize};
use chrono::TimeZone;

fn ctx() -> RequestContext {
    RequestContext::at(chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap())
}

fn policy(bindings: &[(&str, &[&str])]) -> Policy {
    let mut p = Policy {
        version: 1,
        bindings: bindings
            .iter()
            .map(|(r, ms)| Binding {
                role: r.to_string(),
                members: ms.iter().map(|s| s.to_string()).collect(),
                condition: None,
            })
            .collect(),
        audit_configs_json: None,
    };
    normalize(&mut p, &Catalog::predefined()).unwrap();
    p
}

/// org 1 → folder 10 → folder 11 → project p1; folder 10 → project p2; org 1 → project p3;
/// a service account under p1.
fn world() -> Snapshot {
    let mut b = Snapshot::builder(Catalog::predefined());
    b.resource("organizations/1", None)
        .resource("folders/10", Some("organizations/1"))
        .resource("folders/11", Some("folders/10"))
        .resource("projects/p1", Some("folders/11"))
        .resource("projects/p2", Some("folders/10"))
        .resource("projects/p3", Some("organizations/1"))
        .resource(
            "projects/p1/serviceAccounts/sa@p1.iam.gserviceaccount.com",
            Some("projects/p1"),
        );
    b.build()
}

const SA: &str = "projects/p1/serviceAccounts/sa@p1.iam.gserviceaccount.com";

#[test]
fn org_grant_is_inherited_by_a_project_below() {
    let s = world().with_policy(
        "organizations/1",
        &policy(&[("roles/run.admin", &["user:alice@example.com"])]),
    );
    let alice = s.principal("user:Alice@Example.com");
    let bob = s.principal("user:bob@example.com");
    assert!(s.check(&alice, "run.workerpools.create", "projects/p1", &ctx()));
    assert!(s.check(&alice, "run.workerpools.create", "projects/p3", &ctx()));
    assert!(!s.check(&bob, "run.workerpools.create", "projects/p1", &ctx()));
    assert!(!s.check(&alice, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
    assert!(!s.check(&alice, "run.workerpools.create", "projects/unknown", &ctx()));
    assert!(!s.check(&alice, "no.such.permission", "projects/p1", &ctx()));
    assert_eq!(
        s.ancestry(SA),
        vec![
            SA,
            "projects/p1",
            "folders/11",
            "folders/10",
            "organizations/1"
        ]
    );
    assert!(s.ancestry("projects/unknown").is_empty());
}

#[test]
fn folder_grant_applies_only_below_that_folder() {
    let s = world().with_policy(
        "folders/11",
        &policy(&[("roles/iam.serviceAccountUser", &["user:dev@example.com"])]),
    );
    let dev = s.principal("user:dev@example.com");
    assert!(s.check(&dev, "iam.serviceAccounts.actAs", SA, &ctx()));
    assert!(s.check(&dev, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
    assert!(!s.check(&dev, "iam.serviceAccounts.actAs", "projects/p2", &ctx()));
    assert!(!s.check(&dev, "iam.serviceAccounts.actAs", "folders/10", &ctx()));
    assert!(!s.check(&dev, "iam.serviceAccounts.actAs", "organizations/1", &ctx()));

    // Moving p2 under folder 11 brings the grant; removing folder 11 takes it from p1.
    let moved = s.with_resource("projects/p2", Some("folders/11"));
    assert!(moved.check(&dev, "iam.serviceAccounts.actAs", "projects/p2", &ctx()));
    let removed = s.without_resource("folders/11");
    assert!(!removed.check(&dev, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
    // The old snapshot is untouched.
    assert!(s.check(&dev, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
}

#[test]
fn group_nested_two_deep_grants_and_cycles_are_safe() {
    let s = world()
        .with_group("team@example.com", &["user:carol@example.com".into()])
        .with_group("group:dept@example.com", &["group:team@example.com".into()])
        .with_group(
            "eng@example.com",
            &[
                "group:dept@example.com".into(),
                "group:eng@example.com".into(),
            ],
        )
        // A cycle: team contains eng, which (through dept) contains team.
        .with_group(
            "team@example.com",
            &[
                "user:carol@example.com".into(),
                "group:eng@example.com".into(),
            ],
        )
        .with_policy(
            "projects/p1",
            &policy(&[("roles/run.developer", &["group:eng@example.com"])]),
        );
    let carol = s.principal("user:carol@example.com");
    assert!(carol.is("group:team@example.com"));
    assert!(carol.is("group:dept@example.com"));
    assert!(carol.is("group:eng@example.com"));
    assert!(s.check(&carol, "run.workerpools.get", "projects/p1", &ctx()));
    assert!(!s.check(&carol, "run.workerpools.get", "projects/p2", &ctx()));
    let dave = s.principal("user:dave@example.com");
    assert!(!s.check(&dave, "run.workerpools.get", "projects/p1", &ctx()));

    let e = s.explain(&carol, "run.workerpools.get", "projects/p1", &ctx());
    assert!(e.granted);
    assert_eq!(e.grants.len(), 1);
    assert_eq!(e.grants[0].resource, "projects/p1");
    assert_eq!(e.grants[0].role, "roles/run.developer");
    assert_eq!(e.grants[0].member, "group:eng@example.com");
    assert_eq!(
        e.grants[0].membership,
        Membership::ViaGroups(vec![
            "user:carol@example.com".into(),
            "group:team@example.com".into(),
            "group:dept@example.com".into(),
            "group:eng@example.com".into(),
        ])
    );

    // Removing carol from team ends the chain.
    let s2 = s.with_group("team@example.com", &["group:eng@example.com".into()]);
    let carol2 = s2.principal("user:carol@example.com");
    assert!(!s2.check(&carol2, "run.workerpools.get", "projects/p1", &ctx()));
}

#[test]
fn domain_and_public_members() {
    let s = world().with_policy(
        "projects/p1",
        &policy(&[
            ("roles/run.viewer", &["domain:example.com"]),
            ("roles/iam.serviceAccountUser", &["allAuthenticatedUsers"]),
        ]),
    );
    let alice = s.principal("user:alice@example.com");
    let other = s.principal("user:eve@other.com");
    let sa = s.principal("serviceAccount:x@example.com");
    assert!(s.check(&alice, "run.workerpools.get", "projects/p1", &ctx()));
    assert!(!s.check(&other, "run.workerpools.get", "projects/p1", &ctx()));
    // Service accounts are not members of a domain.
    assert!(!s.check(&sa, "run.workerpools.get", "projects/p1", &ctx()));
    assert!(s.check(&sa, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
    let anon = s.principal("allUsers");
    assert!(!s.check(&anon, "iam.serviceAccounts.actAs", "projects/p1", &ctx()));
    let e = s.explain(&alice, "run.workerpools.get", "projects/p1", &ctx());
    assert_eq!(
        e.grants[0].membership,
        Membership::ViaDomain("domain:example.com".into())
    );
}

fn conditional(expr: &str) -> Policy {
    let mut p = Policy {
        version: 3,
        bindings: vec![Binding {
            role: "roles/run.admin".into(),
            members: vec!["user:tmp@example.com".into()],
            condition: Some(Expr {
                expression: expr.into(),
                title: "temporary".into(),
                ..Default::default()
            }),
        }],
        audit_configs_json: None,
    };
    normalize(&mut p, &Catalog::predefined()).unwrap();
    p
}

#[test]
fn condition_on_request_time() {
    let s = world().with_policy(
        "projects/p1",
        &conditional("request.time < timestamp('2026-07-01T00:00:00Z')"),
    );
    let tmp = s.principal("user:tmp@example.com");
    let before = ctx();
    let after = RequestContext::at(chrono::Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).unwrap());
    assert!(s.check(&tmp, "run.workerpools.create", "projects/p1", &before));
    assert!(!s.check(&tmp, "run.workerpools.create", "projects/p1", &after));
    let e = s.explain(&tmp, "run.workerpools.create", "projects/p1", &after);
    assert!(!e.granted);
    let b = &e.examined[0].bindings[0];
    assert!(b.role_includes_permission);
    assert_eq!(
        b.memberships,
        vec![("user:tmp@example.com".into(), Membership::Direct)]
    );
    assert_eq!(b.condition.as_ref().unwrap().1, ConditionOutcome::False);
}

#[test]
fn condition_on_resource_name_uses_checked_resource() {
    let s = world().with_policy(
        "projects/p1",
        &conditional("resource.name.startsWith('projects/p1/serviceAccounts/')"),
    );
    let tmp = s.principal("user:tmp@example.com");
    assert!(s.check(&tmp, "run.workerpools.create", SA, &ctx()));
    assert!(!s.check(&tmp, "run.workerpools.create", "projects/p1", &ctx()));
}

#[test]
fn explanation_names_granting_resource_role_and_member() {
    let s = world()
        .with_policy(
            "organizations/1",
            &policy(&[("roles/iam.serviceAccountUser", &["user:alice@example.com"])]),
        )
        .with_policy(
            SA,
            &policy(&[
                ("roles/iam.serviceAccountUser", &["user:alice@example.com"]),
                ("roles/run.viewer", &["user:alice@example.com"]),
            ]),
        );
    let alice = s.principal("user:alice@example.com");
    let e = s.explain(&alice, "iam.serviceAccounts.actAs", SA, &ctx());
    assert!(e.granted);
    assert_eq!(e.permission, "iam.serviceAccounts.actAs");
    assert_eq!(e.examined.len(), 5);
    assert_eq!(e.examined[0].resource, SA);
    assert_eq!(e.examined[4].resource, "organizations/1");
    let where_: Vec<(&str, &str, &str)> = e
        .grants
        .iter()
        .map(|g| (g.resource.as_str(), g.role.as_str(), g.member.as_str()))
        .collect();
    assert_eq!(
        where_,
        vec![
            (SA, "roles/iam.serviceAccountUser", "user:alice@example.com"),
            (
                "organizations/1",
                "roles/iam.serviceAccountUser",
                "user:alice@example.com"
            ),
        ]
    );
    let viewer = &e.examined[0].bindings[1];
    assert_eq!(viewer.role, "roles/run.viewer");
    assert!(!viewer.role_includes_permission);
    assert!(!viewer.grants);
    let bob = s.principal("user:bob@example.com");
    let e = s.explain(&bob, "iam.serviceAccounts.actAs", SA, &ctx());
    assert!(!e.granted && e.grants.is_empty());
    assert!(
        e.examined[0]
            .bindings
            .iter()
            .all(|b| b.memberships.is_empty())
    );
}

#[test]
fn test_permissions_keeps_request_order_and_counts_granted() {
    let s = world().with_policy(
        "projects/p1",
        &policy(&[
            ("roles/run.invoker", &["user:alice@example.com"]),
            ("roles/run.viewer", &["user:alice@example.com"]),
        ]),
    );
    let alice = s.principal("user:alice@example.com");
    let asked: Vec<String> = [
        "run.workerpools.list",
        "run.workerpools.create",
        "bogus.x.y",
        "run.workerpools.get",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        s.test_permissions(&alice, "projects/p1", &asked, &ctx()),
        vec!["run.workerpools.list", "run.workerpools.get"]
    );
    let cat = Catalog::predefined();
    let mut union: Vec<&String> = cat
        .role("roles/run.invoker")
        .unwrap()
        .permissions
        .iter()
        .chain(&cat.role("roles/run.viewer").unwrap().permissions)
        .collect();
    union.sort();
    union.dedup();
    assert_eq!(
        s.granted_permissions(&alice, "projects/p1", &ctx()),
        union.len()
    );
    assert_eq!(
        s.granted_permission_names(&alice, SA, &ctx()).len(),
        union.len()
    );
}

#[test]
fn custom_roles_follow_the_catalog() {
    let custom_name = "projects/p1/roles/poolDeployer";
    let mk = |deleted: bool| {
        Arc::new(Catalog::with_custom_roles(
            &Catalog::predefined(),
            vec![crate::Role {
                name: custom_name.into(),
                title: "Pool deployer".into(),
                description: String::new(),
                stage: "GA".into(),
                permissions: vec!["run.workerpools.create".into()],
                deleted,
            }],
        ))
    };
    let live = mk(false);
    let mut p = Policy {
        version: 1,
        bindings: vec![Binding {
            role: custom_name.into(),
            members: vec!["user:alice@example.com".into()],
            condition: None,
        }],
        audit_configs_json: None,
    };
    normalize(&mut p, &live).unwrap();
    let s = world().with_catalog(live).with_policy("projects/p1", &p);
    let alice = s.principal("user:alice@example.com");
    assert!(s.check(&alice, "run.workerpools.create", "projects/p1", &ctx()));
    let deleted = s.with_catalog(mk(true));
    assert!(!deleted.check(&alice, "run.workerpools.create", "projects/p1", &ctx()));
    let restored = deleted.with_catalog(mk(false));
    assert!(restored.check(&alice, "run.workerpools.create", "projects/p1", &ctx()));
}

#[test]
fn with_policy_shares_unchanged_indexes() {
    let s = world()
        .with_policy(
            "projects/p1",
            &policy(&[("roles/run.viewer", &["user:a@x.com"])]),
        )
        .with_policy(
            "projects/p2",
            &policy(&[("roles/run.viewer", &["user:b@x.com"])]),
        );
    let s2 = s.with_policy(
        "projects/p2",
        &policy(&[("roles/run.admin", &["user:b@x.com"])]),
    );
    let a = s.0.nodes["projects/p1"].policy.as_ref().unwrap();
    let a2 = s2.0.nodes["projects/p1"].policy.as_ref().unwrap();
    assert!(Arc::ptr_eq(a, a2));
    assert!(!Arc::ptr_eq(
        s.0.nodes["projects/p2"].policy.as_ref().unwrap(),
        s2.0.nodes["projects/p2"].policy.as_ref().unwrap()
    ));
    // An empty policy removes the index.
    let s3 = s2.with_policy("projects/p2", &Policy::default());
    assert!(s3.policy("projects/p2").is_none());
    assert!(s3.policy("projects/p1").is_some());
}
