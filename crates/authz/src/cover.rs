//! The smallest set of predefined roles that grants a set of permissions: what the role
//! recommender proposes in place of a broader role. "Smallest" is fewest permissions granted
//! in total (the size of the union of the roles' permissions). This is weighted set cover,
//! NP-hard in general; the search here is branch and bound over the needed permissions, exact
//! whenever it finishes within its node budget (always, for the few dozen permissions a
//! binding exercises in practice), and otherwise the best cover found, which is never worse
//! than the greedy (ln n)-approximate cover it starts from.

use crate::catalog::{Catalog, PermSet};

/// Basic roles are never proposed: Google's recommender replaces them, never suggests them.
const EXCLUDED: &[&str] = &["roles/owner", "roles/editor", "roles/viewer"];

/// Roles a recommendation may propose: generally available or beta, neither basic nor a
/// service agent role (those are for Google's own agents only).
fn eligible(name: &str, stage: &str) -> bool {
    !EXCLUDED.contains(&name)
        && matches!(stage, "GA" | "BETA")
        && !name.to_ascii_lowercase().ends_with("serviceagent")
}
/// Search nodes before settling for the best cover found.
const NODE_BUDGET: usize = 200_000;

/// A set of roles covering the needed permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cover {
    pub roles: Vec<String>,
    /// Permissions the roles grant together.
    pub permissions: usize,
    /// Whether the search proved this cover minimal.
    pub exact: bool,
}

struct Candidate<'a> {
    name: &'a str,
    perms: &'a PermSet,
    size: usize,
    /// Which needed permissions it holds, as a bitmask over the needed list.
    hits: Vec<u64>,
}

fn covers(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & y == *y)
}

struct Search<'a> {
    cands: Vec<Candidate<'a>>,
    /// For each needed permission, the candidates holding it, smallest first.
    by_perm: Vec<Vec<usize>>,
    needed: usize,
    best: Option<(usize, Vec<usize>)>,
    nodes: usize,
    space: usize,
}

impl Search<'_> {
    fn cost(&self, chosen: &[usize]) -> usize {
        let mut u = PermSet::with_len(self.space);
        for &c in chosen {
            u.union_with(self.cands[c].perms);
        }
        u.count()
    }

    fn go(&mut self, covered: &mut Vec<u64>, chosen: &mut Vec<usize>) {
        self.nodes += 1;
        if self.nodes > NODE_BUDGET {
            return;
        }
        let cost = self.cost(chosen);
        if self.best.as_ref().is_some_and(|(b, _)| cost >= *b) {
            return;
        }
        // The uncovered permission with the fewest candidates: the narrowest branch.
        let next = (0..self.needed)
            .filter(|&i| covered[i / 64] >> (i % 64) & 1 == 0)
            .min_by_key(|&i| self.by_perm[i].len());
        let Some(p) = next else {
            self.best = Some((cost, chosen.clone()));
            return;
        };
        for c in self.by_perm[p].clone() {
            let saved = covered.clone();
            for (w, h) in covered.iter_mut().zip(&self.cands[c].hits) {
                *w |= h;
            }
            chosen.push(c);
            self.go(covered, chosen);
            chosen.pop();
            *covered = saved;
        }
    }
}

/// The cover of `needed` (permission names), or `None` when some permission is in no
/// eligible predefined role (unknown, or only in basic, service agent or deprecated roles).
pub fn minimal_roles(catalog: &Catalog, needed: &[String]) -> Option<Cover> {
    cover(catalog, needed, None)
}

/// The cover of `needed` by roles that grant nothing `role` does not: what may replace a
/// binding of `role` without widening anyone's access. `None` when there is none (or
/// `role` is unknown).
pub fn minimal_roles_within(catalog: &Catalog, needed: &[String], role: &str) -> Option<Cover> {
    let within = catalog.ref_perms(&catalog.role_ref(role)?)?;
    cover(catalog, needed, Some(within))
}

fn cover(catalog: &Catalog, needed: &[String], within: Option<&PermSet>) -> Option<Cover> {
    let mut needed: Vec<&String> = needed.iter().collect();
    needed.sort();
    needed.dedup();
    let ids: Vec<_> = needed
        .iter()
        .map(|p| catalog.permission_id(p))
        .collect::<Option<_>>()?;
    let words = ids.len().div_ceil(64).max(1);
    let mut cands: Vec<Candidate> = catalog
        .predefined_sets()
        .filter(|(name, stage, perms)| {
            eligible(name, stage) && within.is_none_or(|w| perms.is_subset(w))
        })
        .filter_map(|(name, _, perms)| {
            let mut hits = vec![0u64; words];
            for (i, id) in ids.iter().enumerate() {
                if perms.contains(*id) {
                    hits[i / 64] |= 1 << (i % 64);
                }
            }
            hits.iter().any(|w| *w != 0).then(|| Candidate {
                name,
                perms,
                size: perms.count(),
                hits,
            })
        })
        .collect();
    // A role whose needed permissions another no-larger role also holds is never needed.
    cands.sort_by(|a, b| a.size.cmp(&b.size).then(a.name.cmp(b.name)));
    let mut kept: Vec<Candidate> = vec![];
    for c in cands {
        if !kept.iter().any(|k| covers(&k.hits, &c.hits)) {
            kept.push(c);
        }
    }
    let mut by_perm = vec![vec![]; ids.len()];
    for (ci, c) in kept.iter().enumerate() {
        for (i, list) in by_perm.iter_mut().enumerate() {
            if c.hits[i / 64] >> (i % 64) & 1 == 1 {
                list.push(ci);
            }
        }
    }
    if by_perm.iter().any(Vec::is_empty) {
        return None;
    }
    let mut search = Search {
        cands: kept,
        by_perm,
        needed: ids.len(),
        best: None,
        nodes: 0,
        space: catalog.perm_space(),
    };
    // Greedy first: an upper bound that makes the search prune from the start.
    let mut covered = vec![0u64; words];
    let mut greedy = vec![];
    while (0..ids.len()).any(|i| covered[i / 64] >> (i % 64) & 1 == 0) {
        let pick = (0..search.cands.len())
            .filter_map(|c| {
                let new: u32 = search.cands[c]
                    .hits
                    .iter()
                    .zip(&covered)
                    .map(|(h, w)| (h & !w).count_ones())
                    .sum();
                (new > 0).then(|| (search.cands[c].size as f64 / new as f64, c))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, c)| c)?;
        for (w, h) in covered.iter_mut().zip(&search.cands[pick].hits) {
            *w |= h;
        }
        greedy.push(pick);
    }
    search.best = Some((search.cost(&greedy), greedy));
    search.go(&mut vec![0u64; words], &mut vec![]);
    let exact = search.nodes <= NODE_BUDGET;
    let (permissions, chosen) = search.best?;
    let mut roles: Vec<String> = chosen
        .iter()
        .map(|&c| search.cands[c].name.to_string())
        .collect();
    roles.sort();
    Some(Cover {
        roles,
        permissions,
        exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    fn perms_of(catalog: &Catalog, role: &str) -> Vec<String> {
        catalog.role(role).unwrap().permissions.clone()
    }

    /// Exhaustive search over every eligible role and pair of roles: exact for up to two
    /// needed permissions, since two roles always suffice then.
    fn brute_force(catalog: &Catalog, needed: &[String]) -> usize {
        let ids: Vec<_> = needed
            .iter()
            .map(|p| catalog.permission_id(p).unwrap())
            .collect();
        let roles: Vec<&PermSet> = catalog
            .predefined_sets()
            .filter(|(name, stage, _)| eligible(name, stage))
            .filter(|(_, _, perms)| ids.iter().any(|i| perms.contains(*i)))
            .map(|(_, _, perms)| perms)
            .collect();
        let mut best = usize::MAX;
        for a in 0..roles.len() {
            for b in a..roles.len() {
                let mut u = roles[a].clone();
                u.union_with(roles[b]);
                if ids.iter().all(|i| u.contains(*i)) {
                    best = best.min(u.count());
                }
            }
        }
        best
    }

    #[test]
    fn the_cover_is_optimal_on_cases_small_enough_to_brute_force() {
        let catalog = Catalog::predefined();
        // Deterministic pseudo-random cases drawn from the permissions of a few families.
        let pool: Vec<String> = [
            "roles/run.developer",
            "roles/iam.serviceAccountUser",
            "roles/browser",
            "roles/logging.viewer",
        ]
        .iter()
        .flat_map(|r| perms_of(&catalog, r))
        .collect();
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..12 {
            let k = 1 + (next() % 2) as usize;
            let needed: Vec<String> = (0..k)
                .map(|_| pool[(next() as usize) % pool.len()].clone())
                .collect();
            let cover = minimal_roles(&catalog, &needed).expect("coverable");
            assert!(cover.exact, "case {case}");
            assert_eq!(
                cover.permissions,
                brute_force(&catalog, &needed),
                "case {case}: {needed:?} → {cover:?}"
            );
            for p in &needed {
                assert!(
                    cover.roles.iter().any(|r| catalog.role_grants(r, p)),
                    "case {case}: {p} uncovered by {cover:?}"
                );
            }
        }
    }

    #[test]
    fn a_larger_set_is_covered_without_granting_more_than_the_broad_role() {
        let catalog = Catalog::predefined();
        let needed = perms_of(&catalog, "roles/run.viewer");
        let cover = minimal_roles(&catalog, &needed).unwrap();
        assert!(
            cover.permissions
                <= needed
                    .len()
                    .max(catalog.role("roles/run.viewer").unwrap().permissions.len())
        );
        for p in &needed {
            assert!(cover.roles.iter().any(|r| catalog.role_grants(r, p)));
        }
    }

    #[test]
    fn a_single_permission_gets_the_smallest_role_holding_it_and_never_a_basic_role() {
        let catalog = Catalog::predefined();
        let cover = minimal_roles(&catalog, &["run.workerpools.get".to_string()]).unwrap();
        assert_eq!(cover.roles.len(), 1);
        assert!(!EXCLUDED.contains(&cover.roles[0].as_str()));
        assert!(
            cover.permissions < catalog.role("roles/run.viewer").unwrap().permissions.len() + 1
        );
        assert!(minimal_roles(&catalog, &["no.such.permission".to_string()]).is_none());
    }

    #[test]
    fn a_replacement_grants_nothing_the_replaced_role_does_not_and_no_service_agent_role() {
        let catalog = Catalog::predefined();
        let needed = vec![
            "resourcemanager.projects.getIamPolicy".to_string(),
            "iam.serviceAccounts.list".to_string(),
        ];
        // Unrestricted, the two smallest holders would be service agent roles.
        let free = minimal_roles(&catalog, &needed).unwrap();
        assert!(
            free.roles.iter().all(|r| !r.ends_with("erviceAgent")),
            "{free:?}"
        );
        let viewer = perms_of(&catalog, "roles/viewer");
        let within = minimal_roles_within(&catalog, &needed, "roles/viewer").unwrap();
        assert!(within.exact);
        for r in &within.roles {
            for p in perms_of(&catalog, r) {
                assert!(
                    viewer.binary_search(&p).is_ok(),
                    "{r} grants {p}, viewer does not"
                );
            }
        }
        assert!(within.permissions < viewer.len());
        assert!(minimal_roles_within(&catalog, &needed, "roles/no.such").is_none());
    }
}
