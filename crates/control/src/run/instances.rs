//! What the runtime needs from the control plane: the instances each worker pool should run,
//! tokens minted as Cloud Run mints them (by the pool project's service agent, for the
//! pool's service identity), and a place to report what happened.

use crate::Control;
use crate::base::error::{Error, Result};
use crate::base::state::Change;
use crate::iam::auth::{ACCESS_TOKEN_SECONDS, TokenResponse};
use crate::run::identity::Rule;
use google_cloud_run_v2::model::{Condition, condition};

/// One revision's share of a pool's instances.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionSpec {
    /// The revision id (`wp-00001-abc`).
    pub revision: String,
    pub instances: u32,
    pub service_account: String,
    /// The first container's image (the OCI runtime runs it; the process runtime ignores it).
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
}

impl RevisionSpec {
    /// The variables Cloud Run sets in each instance of this revision of `pool`.
    pub fn cloud_run_env(&self, pool: &PoolSpec) -> [(&'static str, String); 2] {
        [
            ("CLOUD_RUN_WORKER_POOL", pool.id.clone()),
            ("CLOUD_RUN_REVISION", self.revision.clone()),
        ]
    }
}

/// A worker pool as the runtime should run it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// `projects/PROJECT_ID/locations/REGION/workerPools/ID`
    pub name: String,
    pub id: String,
    pub project_id: String,
    pub project_number: String,
    pub region: String,
    pub revisions: Vec<RevisionSpec>,
}

/// Split `total` instances by percent, largest remainders first, so the counts add up.
fn split(total: u32, percents: &[i32]) -> Vec<u32> {
    let exact: Vec<f64> = percents
        .iter()
        .map(|p| total as f64 * (*p as f64) / 100.0)
        .collect();
    let mut counts: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut order: Vec<usize> = (0..percents.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
    });
    let mut left = total.saturating_sub(counts.iter().sum());
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

impl Control {
    /// Every pool with the instances it should run, by revision (instance splits honoured).
    pub fn desired_pools(&self) -> Vec<PoolSpec> {
        let st = self.read();
        st.worker_pools
            .values()
            .filter_map(|p| {
                let parts: Vec<&str> = p.name.split('/').collect();
                let (project_id, region, id) = (parts.get(1)?, parts.get(3)?, parts.get(5)?);
                let total = p
                    .scaling
                    .as_ref()
                    .and_then(|s| s.manual_instance_count)
                    .unwrap_or(1)
                    // A count stored before the bound was checked is still never run past it.
                    .clamp(0, crate::run::workerpools::MAX_INSTANCES)
                    as u32;
                let latest = p
                    .latest_ready_revision
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let targets: Vec<(String, i32)> = p
                    .instance_splits
                    .iter()
                    .map(|s| {
                        let rev = crate::run::workerpools::split_revision(s, &latest).to_string();
                        (rev, s.percent)
                    })
                    .collect();
                let counts = split(total, &targets.iter().map(|t| t.1).collect::<Vec<_>>());
                let revisions = targets
                    .iter()
                    .zip(counts)
                    .filter_map(|((rev, _), n)| {
                        let r = st.revisions.get(&format!("{}/revisions/{rev}", p.name))?;
                        let c = r.containers.first().cloned().unwrap_or_default();
                        Some(RevisionSpec {
                            revision: rev.clone(),
                            instances: n,
                            service_account: r.service_account.clone(),
                            image: c.image,
                            command: c.command,
                            args: c.args,
                            env: c
                                .env
                                .iter()
                                .map(|e| (e.name.clone(), e.value().cloned().unwrap_or_default()))
                                .collect(),
                            working_dir: c.working_dir,
                        })
                    })
                    .collect();
                Some(PoolSpec {
                    name: p.name.clone(),
                    id: id.to_string(),
                    project_id: project_id.to_string(),
                    project_number: st.project_number(project_id)?.to_string(),
                    region: region.to_string(),
                    revisions,
                })
            })
            .collect()
    }

    /// Whether an instance's metadata server may hand out a token for `email` now.
    pub fn check_instance_minting(&self, project_number: &str, email: &str) -> Result<()> {
        self.agent_may_mint(project_number, email, "iam.serviceAccounts.getAccessToken")
    }

    /// The pool project's service agent may obtain tokens for the account, and the account
    /// is live and enabled; else the error Cloud Run reports.
    fn agent_may_mint(&self, project_number: &str, email: &str, permission: &str) -> Result<()> {
        let account = self.read().account_by_email(email).ok_or_else(|| {
            Error::failed_precondition(format!("Service account {email} does not exist."))
        })?;
        if account.stored.account.disabled {
            return Err(Error::failed_precondition(format!(
                "Service account {email} is disabled."
            )));
        }
        let agent = self.caller(&format!(
            "serviceAccount:{}",
            crate::run::service_agent(project_number)
        ));
        if !self.allowed(&agent, permission, &account.target()) {
            return Err(self.service_agent_error(project_number, email));
        }
        Ok(())
    }

    /// The same words as the deploy-time rule.
    fn service_agent_error(&self, project_number: &str, email: &str) -> Error {
        let caller = self.caller(&format!(
            "serviceAccount:{}",
            crate::run::service_agent(project_number)
        ));
        self.identity_problems(&caller, project_number, email)
            .problems
            .into_iter()
            .find(|p| p.rule == Rule::ServiceAgentTokenCreator)
            .map(|p| p.error)
            .unwrap_or_else(|| {
                Error::failed_precondition(format!("Cannot mint tokens for {email}."))
            })
    }

    /// An access token for an instance's service identity, minted by the pool project's
    /// service agent. The token remembers the pool (`projects/NUMBER/locations/L/
    /// workerPools/ID`), so what the instance does is attributed to it in the audit log.
    pub fn instance_token(
        &self,
        project_number: &str,
        email: &str,
        pool: &str,
    ) -> Result<TokenResponse> {
        self.agent_may_mint(project_number, email, "iam.serviceAccounts.getAccessToken")?;
        self.issue_access(
            &format!("serviceAccount:{email}"),
            ACCESS_TOKEN_SECONDS,
            None,
            false,
            Some(pool.to_string()),
        )
    }

    /// An ID token for an instance's service identity.
    pub fn instance_id_token(
        &self,
        project_number: &str,
        email: &str,
        audience: &str,
        full: bool,
    ) -> Result<String> {
        self.agent_may_mint(project_number, email, "iam.serviceAccounts.getOpenIdToken")?;
        self.id_token(email, audience, full)
    }

    /// Record what the runtime sees on a pool: its `Ready` condition (and whether a crash
    /// loop or missing command keeps it from running), how many of its instances run now, and
    /// the `Ready` condition of each revision it runs (the one `status.problem` names failed,
    /// the others ready). Not a change of the pool's spec: the generation and etag stay.
    ///
    /// Cloud Run's v2 `WorkerPool` has no field for the running count; it goes where Cloud
    /// Run puts what it observes, the `Ready` condition's message (see [`running_message`]),
    /// so the wire shapes stay Google's. The transition time moves only when the state does.
    pub fn set_pool_status(&self, name: &str, status: &PoolStatus) -> Result<()> {
        self.write(|st| {
            let Some(mut p) = st.worker_pools.get(name).cloned() else {
                return Ok((vec![], ()));
            };
            let mut changes = vec![];
            let count = running_message(status.running);
            let shown = match status.problem {
                None => count,
                Some(Problem {
                    reason, message, ..
                }) => {
                    let end = if message.ends_with('.') { "" } else { "." };
                    format!("{reason}: {message}{end} {count}")
                }
            };
            let problem = status.problem.map(|pr| (pr.reason, pr.message));
            if let Some(c) = ready_condition(p.terminal_condition.as_ref(), problem, shown) {
                p.terminal_condition = Some(c);
                changes.push(Change::WorkerPool(name.to_string(), Some(p)));
            }
            for revision in &status.revisions {
                let full = format!("{name}/revisions/{revision}");
                let Some(mut r) = st.revisions.get(&full).cloned() else {
                    continue;
                };
                let (problem, shown) = match status.problem {
                    Some(pr) if pr.revision == *revision => {
                        (Some((pr.reason, pr.message)), pr.message.to_string())
                    }
                    _ => (None, String::new()),
                };
                let at = r.conditions.iter().position(|c| c.r#type == "Ready");
                if let Some(c) = ready_condition(at.map(|i| &r.conditions[i]), problem, shown) {
                    match at {
                        Some(i) => r.conditions[i] = c,
                        None => r.conditions.insert(0, c),
                    }
                    changes.push(Change::Revision(full, Some(r)));
                }
            }
            Ok((changes, ()))
        })
    }
}

/// What the runtime reports of a pool ([`Control::set_pool_status`]).
pub struct PoolStatus<'a> {
    /// The revisions it runs instances of (short names).
    pub revisions: Vec<&'a str>,
    /// Why an instance of one of them cannot run.
    pub problem: Option<Problem<'a>>,
    /// How many of its instances run.
    pub running: usize,
}

/// Why instances of `revision` cannot run: the runtime's reason and message.
#[derive(Clone, Copy)]
pub struct Problem<'a> {
    pub revision: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

/// The `Ready` condition a pool or revision should now carry (`problem`: the runtime's
/// reason and message; `shown`: the message to show), or `None` if `current` already says it.
fn ready_condition(
    current: Option<&Condition>,
    problem: Option<(&str, &str)>,
    shown: String,
) -> Option<Condition> {
    let state = if problem.is_none() {
        condition::State::ConditionSucceeded
    } else {
        condition::State::ConditionFailed
    };
    if current.is_some_and(|c| c.state == state && c.message == shown) {
        return None;
    }
    let since = current
        .filter(|c| c.state == state)
        .and_then(|c| c.last_transition_time);
    let mut c = Condition::new();
    c.r#type = "Ready".to_string();
    c.state = state;
    c.message = shown;
    c.last_transition_time = Some(since.unwrap_or_else(crate::base::time::now));
    if let Some((reason, _)) = problem {
        c.severity = condition::Severity::Error;
        // Cloud Run's reason for a revision whose container it cannot find, or that has
        // nothing to run.
        if matches!(reason, "ImageNotFound" | "ContainerMissingCommand") {
            c = c.set_reason(condition::CommonReason::ContainerMissing);
        }
    }
    Some(c)
}

/// How the `Ready` condition's message says how many instances run: `1 instance running.`,
/// `3 instances running.` (at its end, after the reason of a pool that is not ready).
pub fn running_message(n: usize) -> String {
    if n == 1 {
        "1 instance running.".to_string()
    } else {
        format!("{n} instances running.")
    }
}

/// The running count a `Ready` condition's message reports, if the runtime has reported one.
pub fn running_count(message: &str) -> Option<usize> {
    let rest = message
        .strip_suffix(" instances running.")
        .or_else(|| message.strip_suffix(" instance running."))?;
    let digits = rest.rsplit(' ').next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{running_count, running_message, split};

    #[test]
    fn splits_add_up_to_the_total() {
        assert_eq!(split(3, &[100]), vec![3]);
        assert_eq!(split(3, &[50, 50]).iter().sum::<u32>(), 3);
        assert_eq!(split(10, &[25, 75]), vec![3, 7]);
        assert_eq!(split(0, &[100]), vec![0]);
    }

    #[test]
    fn the_running_count_reads_back_from_the_ready_message() {
        assert_eq!(running_message(1), "1 instance running.");
        assert_eq!(running_message(0), "0 instances running.");
        for n in [0, 1, 2, 100] {
            assert_eq!(running_count(&running_message(n)), Some(n));
            let failed = format!(
                "CrashLoopBackOff: keeps exiting (exit status: 3). {}",
                running_message(n)
            );
            assert_eq!(running_count(&failed), Some(n));
        }
        assert_eq!(running_count(""), None);
        assert_eq!(running_count("Ready."), None);
    }
}
