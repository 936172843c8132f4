//! `check_id` on a generated world, and the same decisions made by the `cedar-policy` crate.
//!
//! World at scale 1 (the target): 1 organization, 3 folder levels (10 / 100 / 1,000 folders),
//! 10,000 projects, 100,000 users, 1,000 groups nested 3 deep (10 top, 90 middle, 900 leaf; each
//! user in one leaf group), 1,000,000 member-role bindings (100 per project: 95 users, 5 groups,
//! over 18 predefined roles) plus a few on folders and the org. Scale 0.1 divides every count by
//! 10, to show the check time does not grow with the world.
//!
//! Cedar encoding (equivalent decisions, explained because Cedar has no IAM model):
//! - Entities: `User` (parent: its leaf group), `Group` (parent: its enclosing group), `Resource`
//!   (parent: its parent resource), and `Action::"perm"` with parents `Action::"role:R"` for every
//!   role R that includes the permission (action groups stand in for roles).
//! - One policy per (role, resource) binding, members listed in the condition:
//!   `permit(principal, action in Action::"role:R", resource in Resource::"X")
//!    when { principal in [User::"u1", Group::"g2", …] };`
//!   `principal in [..]` follows group nesting through the entity hierarchy and
//!   `resource in Resource::"X"` gives inheritance down the resource tree.
//! - Cedar's authorizer evaluates every policy in the set it is given (no indexing), so 200k
//!   policies per request would measure only that. We hand it the *slice* for the request: the
//!   policies of the resource and its ancestors (as the Cedar OOPSLA'24 evaluation does with
//!   slicing). Slicing is done outside the timed loop, which favours Cedar.
//!
//! Principals are resolved (`Snapshot::principal`) outside the timed loop on our side too: the
//! server resolves the caller once per request, then makes one or more checks.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cedar_policy as cedar;
use criterion::{Criterion, criterion_group, criterion_main};
use runpool_authz::{Binding, Catalog, PermId, Policy, Principal, RequestContext, Snapshot};

const ROLES: [&str; 18] = [
    "roles/run.admin",
    "roles/run.developer",
    "roles/run.viewer",
    "roles/run.invoker",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/storage.objectViewer",
    "roles/storage.objectAdmin",
    "roles/pubsub.publisher",
    "roles/pubsub.subscriber",
    "roles/logging.viewer",
    "roles/monitoring.viewer",
    "roles/secretmanager.secretAccessor",
    "roles/cloudsql.client",
    "roles/bigquery.dataViewer",
    "roles/artifactregistry.reader",
    "roles/browser",
    "roles/cloudbuild.builds.viewer",
];

/// Granted by none of ROLES, so every check for it walks the whole ancestry and fails.
const DENIED_PERM: &str = "resourcemanager.projects.delete";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic worlds without a dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn user(i: usize) -> String {
    format!("user:u{i}@example.com")
}
fn group(i: usize) -> String {
    format!("group:g{i}@example.com")
}

/// resource → (role → members)
type Bindings = Vec<(String, Vec<String>)>;

struct World {
    /// resource → parent
    parents: Vec<(String, Option<String>)>,
    policies: Vec<(String, Bindings)>,
    /// group → members
    groups: Vec<(String, Vec<String>)>,
    users: usize,
    /// (user index, project, a permission it is granted there)
    allowed: Vec<(usize, String, String)>,
    denied: Vec<(usize, String)>,
}

fn generate(scale: f64) -> World {
    let n = |x: f64| ((x * scale).round() as usize).max(1);
    let (f1, f2, f3, projects, users) = (n(10.0), n(100.0), n(1000.0), n(10_000.0), n(100_000.0));
    let (g1, g2, g3) = (n(10.0), n(90.0), n(900.0));
    let groups_total = g1 + g2 + g3;
    let cat = Catalog::predefined();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    let mut parents = vec![("organizations/1".to_string(), None)];
    for i in 0..f1 {
        parents.push((format!("folders/1{i:05}"), Some("organizations/1".into())));
    }
    for i in 0..f2 {
        parents.push((
            format!("folders/2{i:05}"),
            Some(format!("folders/1{:05}", i % f1)),
        ));
    }
    for i in 0..f3 {
        parents.push((
            format!("folders/3{i:05}"),
            Some(format!("folders/2{:05}", i % f2)),
        ));
    }
    for i in 0..projects {
        parents.push((
            format!("projects/p{i}"),
            Some(format!("folders/3{:05}", i % f3)),
        ));
    }

    // Groups: leaf (g1+g2 ..) in middle, middle in top. Users spread over leaves.
    let mut members: Vec<Vec<String>> = vec![Vec::new(); groups_total];
    for m in 0..g2 {
        members[m % g1].push(group(g1 + m));
    }
    for l in 0..g3 {
        members[g1 + l % g2].push(group(g1 + g2 + l));
    }
    for u in 0..users {
        members[g1 + g2 + u % g3].push(user(u));
    }
    let groups = (0..groups_total)
        .map(|g| (group(g), std::mem::take(&mut members[g])))
        .collect();

    let mut policies = Vec::new();
    let mut allowed = Vec::new();
    let mut denied = Vec::new();
    for i in 0..projects {
        let project = format!("projects/p{i}");
        let mut by_role: HashMap<&str, Vec<String>> = HashMap::new();
        for k in 0..100 {
            let role = ROLES[rng.below(ROLES.len())];
            if k < 95 {
                let u = rng.below(users);
                by_role.entry(role).or_default().push(user(u));
                if k == 0 && allowed.len() < 2000 {
                    let perms = &cat.role(role).unwrap().permissions;
                    allowed.push((u, project.clone(), perms[rng.below(perms.len())].clone()));
                }
            } else {
                by_role
                    .entry(role)
                    .or_default()
                    .push(group(rng.below(groups_total)));
            }
        }
        if denied.len() < 2000 {
            denied.push((rng.below(users), project.clone()));
        }
        let mut bindings: Bindings = by_role
            .into_iter()
            .map(|(r, mut m)| {
                m.sort();
                m.dedup();
                (r.to_string(), m)
            })
            .collect();
        bindings.sort();
        policies.push((project, bindings));
    }
    // A few inherited grants: top groups on top folders, one group on the org.
    for i in 0..f1 {
        policies.push((
            format!("folders/1{i:05}"),
            vec![("roles/logging.viewer".into(), vec![group(i % g1)])],
        ));
    }
    policies.push((
        "organizations/1".into(),
        vec![("roles/browser".into(), vec![group(0)])],
    ));
    World {
        parents,
        policies,
        groups,
        users,
        allowed,
        denied,
    }
}

fn build_snapshot(w: &World) -> Snapshot {
    let mut b = Snapshot::builder(Catalog::predefined());
    for (r, p) in &w.parents {
        b.resource(r, p.as_deref());
    }
    for (g, m) in &w.groups {
        b.group(g, m);
    }
    for (r, bs) in &w.policies {
        let policy = Policy {
            version: 1,
            bindings: bs
                .iter()
                .map(|(role, m)| Binding {
                    role: role.clone(),
                    members: m.clone(),
                    condition: None,
                })
                .collect(),
            audit_configs_json: None,
        };
        b.policy(r, &policy);
    }
    b.build()
}

fn uid(ty: &str, id: &str) -> cedar::EntityUid {
    cedar::EntityUid::from_type_name_and_id(
        cedar::EntityTypeName::from_str(ty).unwrap(),
        cedar::EntityId::new(id),
    )
}

/// Cedar ids: member strings minus their prefix, resource names as they are.
fn member_uid(m: &str) -> cedar::EntityUid {
    match m.split_once(':') {
        Some(("group", e)) => uid("Group", e),
        Some((_, e)) => uid("User", e),
        None => uid("User", m),
    }
}

struct CedarWorld {
    entities: cedar::Entities,
    /// Per query resource: the policy slice of it and its ancestors.
    slices: HashMap<String, cedar::PolicySet>,
}

fn build_cedar(w: &World, query_resources: &HashSet<String>) -> CedarWorld {
    let cat = Catalog::predefined();
    let mut ents = Vec::new();
    let mut user_parent: Vec<Option<String>> = vec![None; w.users];
    let mut group_parent: HashMap<&str, &str> = HashMap::new();
    for (g, ms) in &w.groups {
        for m in ms {
            if let Some(rest) = m.strip_prefix("user:u") {
                let i: usize = rest.split('@').next().unwrap().parse().unwrap();
                user_parent[i] = Some(g.clone());
            } else {
                group_parent.insert(m, g);
            }
        }
    }
    for (i, p) in user_parent.iter().enumerate() {
        let parents = p.iter().map(|g| member_uid(g)).collect();
        ents.push(cedar::Entity::new_no_attrs(member_uid(&user(i)), parents));
    }
    for (g, _) in &w.groups {
        let parents = group_parent
            .get(g.as_str())
            .map(|p| member_uid(p))
            .into_iter()
            .collect();
        ents.push(cedar::Entity::new_no_attrs(member_uid(g), parents));
    }
    for (r, p) in &w.parents {
        let parents = p.iter().map(|p| uid("Resource", p)).collect();
        ents.push(cedar::Entity::new_no_attrs(uid("Resource", r), parents));
    }
    let mut action_roles: HashMap<&str, HashSet<cedar::EntityUid>> = HashMap::new();
    for role in ROLES {
        let role_uid = uid("Action", &format!("role:{role}"));
        ents.push(cedar::Entity::new_no_attrs(
            role_uid.clone(),
            HashSet::new(),
        ));
        for p in &cat.role(role).unwrap().permissions {
            action_roles
                .entry(p.as_str())
                .or_default()
                .insert(role_uid.clone());
        }
    }
    action_roles.entry(DENIED_PERM).or_default();
    for (p, roles) in action_roles {
        ents.push(cedar::Entity::new_no_attrs(uid("Action", p), roles));
    }
    let entities = cedar::Entities::from_entities(ents, None).expect("cedar entities");

    let parent_of: HashMap<&str, &str> = w
        .parents
        .iter()
        .filter_map(|(r, p)| p.as_deref().map(|p| (r.as_str(), p)))
        .collect();
    let policy_of: HashMap<&str, &Bindings> =
        w.policies.iter().map(|(r, b)| (r.as_str(), b)).collect();
    let mut parsed: HashMap<String, Vec<cedar::Policy>> = HashMap::new();
    let mut policies_for = |r: &str| -> Vec<cedar::Policy> {
        parsed
            .entry(r.to_string())
            .or_insert_with(|| {
                policy_of
                    .get(r)
                    .into_iter()
                    .flat_map(|bs| bs.iter())
                    .enumerate()
                    .map(|(i, (role, ms))| {
                        let list: Vec<String> = ms.iter().map(|m| member_uid(m).to_string()).collect();
                        let text = format!(
                            "permit(principal, action in {}, resource in {}) when {{ principal in [{}] }};",
                            uid("Action", &format!("role:{role}")),
                            uid("Resource", r),
                            list.join(", ")
                        );
                        cedar::Policy::parse(Some(cedar::PolicyId::new(format!("{r}#{i}"))), text)
                            .expect("cedar policy")
                    })
                    .collect()
            })
            .clone()
    };
    let mut slices = HashMap::new();
    for q in query_resources {
        let mut set = cedar::PolicySet::new();
        let mut cur = Some(q.as_str());
        while let Some(c) = cur {
            for p in policies_for(c) {
                set.add(p).expect("add policy");
            }
            cur = parent_of.get(c).copied();
        }
        slices.insert(q.clone(), set);
    }
    CedarWorld { entities, slices }
}

fn bench_world(c: &mut Criterion, label: &str, scale: f64) {
    let t = Instant::now();
    let w = generate(scale);
    let gen_t = t.elapsed();
    let t = Instant::now();
    let snap = build_snapshot(&w);
    let snap_t = t.elapsed();
    let ctx = RequestContext::at(chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap());
    let cat: Arc<Catalog> = snap.catalog_arc();

    let allowed: Vec<(Principal, PermId, String)> = w
        .allowed
        .iter()
        .map(|(u, r, p)| {
            (
                snap.principal(&user(*u)),
                cat.permission_id(p).unwrap(),
                r.clone(),
            )
        })
        .collect();
    let denied_id = cat.permission_id(DENIED_PERM).unwrap();
    let denied: Vec<(Principal, PermId, String)> = w
        .denied
        .iter()
        .map(|(u, r)| (snap.principal(&user(*u)), denied_id, r.clone()))
        .collect();
    for (p, id, r) in &allowed {
        assert!(
            snap.check_id(p, *id, r, &ctx),
            "world generation: expected allow"
        );
    }
    for (p, id, r) in &denied {
        assert!(
            !snap.check_id(p, *id, r, &ctx),
            "world generation: expected deny"
        );
    }
    // with_policy on the big world: only the one index is rebuilt.
    let t = Instant::now();
    let updated = snap.with_policy(&w.policies[0].0, &Policy::default());
    let with_policy_t = t.elapsed();
    drop(updated);

    let queries: HashSet<String> = allowed.iter().chain(&denied).map(|q| q.2.clone()).collect();
    let t = Instant::now();
    let cw = build_cedar(&w, &queries);
    let cedar_t = t.elapsed();
    let authz = cedar::Authorizer::new();
    let cedar_q = |list: &[(usize, String, String)]| -> Vec<cedar::Request> {
        list.iter()
            .map(|(u, r, p)| {
                cedar::Request::new(
                    member_uid(&user(*u)),
                    uid("Action", p),
                    uid("Resource", r),
                    cedar::Context::empty(),
                    None,
                )
                .unwrap()
            })
            .collect()
    };
    let c_allowed: Vec<(cedar::Request, &cedar::PolicySet)> = cedar_q(&w.allowed)
        .into_iter()
        .zip(&w.allowed)
        .map(|(q, (_, r, _))| (q, &cw.slices[r]))
        .collect();
    let denied_list: Vec<(usize, String, String)> = w
        .denied
        .iter()
        .map(|(u, r)| (*u, r.clone(), DENIED_PERM.to_string()))
        .collect();
    let c_denied: Vec<(cedar::Request, &cedar::PolicySet)> = cedar_q(&denied_list)
        .into_iter()
        .zip(&w.denied)
        .map(|(q, (_, r))| (q, &cw.slices[r]))
        .collect();
    for (q, ps) in &c_allowed {
        assert_eq!(
            authz.is_authorized(q, ps, &cw.entities).decision(),
            cedar::Decision::Allow
        );
    }
    for (q, ps) in &c_denied {
        assert_eq!(
            authz.is_authorized(q, ps, &cw.entities).decision(),
            cedar::Decision::Deny
        );
    }
    let bindings: usize = w
        .policies
        .iter()
        .flat_map(|(_, b)| b)
        .map(|(_, m)| m.len())
        .sum();
    eprintln!(
        "[{label}] {} resources, {bindings} bindings, {} groups: generate {gen_t:?}, snapshot {snap_t:?}, \
         with_policy {with_policy_t:?}, cedar entities+slices {cedar_t:?}",
        w.parents.len(),
        w.groups.len()
    );

    let mut g = c.benchmark_group(label);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut i = 0usize;
    g.bench_function("runpool check_id allowed", |b| {
        b.iter(|| {
            let (p, id, r) = &allowed[i % allowed.len()];
            i += 1;
            black_box(snap.check_id(p, *id, r, &ctx))
        })
    });
    g.bench_function("runpool check_id denied", |b| {
        b.iter(|| {
            let (p, id, r) = &denied[i % denied.len()];
            i += 1;
            black_box(snap.check_id(p, *id, r, &ctx))
        })
    });
    g.bench_function("runpool principal resolve", |b| {
        b.iter(|| {
            i += 1;
            black_box(snap.principal(&user(i % w.users)))
        })
    });
    g.bench_function("cedar allowed", |b| {
        b.iter(|| {
            let (q, ps) = &c_allowed[i % c_allowed.len()];
            i += 1;
            black_box(authz.is_authorized(q, ps, &cw.entities).decision())
        })
    });
    g.bench_function("cedar denied", |b| {
        b.iter(|| {
            let (q, ps) = &c_denied[i % c_denied.len()];
            i += 1;
            black_box(authz.is_authorized(q, ps, &cw.entities).decision())
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let t = Instant::now();
    let n = runpool_authz::catalog::decode_predefined_for_bench();
    eprintln!("decode of {n} predefined roles: {:?}", t.elapsed());
    bench_world(c, "world_0.1x", 0.1);
    bench_world(c, "world_1x", 1.0);
}

criterion_group!(check, benches);
criterion_main!(check);
