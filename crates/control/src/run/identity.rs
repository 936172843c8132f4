//! The service identity rules of a worker pool deploy (DESIGN.md, "The rules"), in one
//! place. Every path that can set a pool's identity (v2 create and patch, v1 create and
//! replace, Terraform apply, the console) calls [`Control::check_identity`]; the preflight
//! calls [`Control::identity_problems`] to see every rule that fails, not only the first.

use crate::base::error::{Code, Error, Result};
use crate::iam::serviceaccounts::{self, Account};
use crate::run::service_agent as run_service_agent;
use crate::{Caller, Control};

pub const CROSS_PROJECT_CONSTRAINT: &str = "iam.disableCrossProjectServiceAccountUsage";

/// A rule a deploy fails, with Google's error for it and the command that fixes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub rule: Rule,
    pub error: Error,
    /// A `runpool` command (gcloud's shape) that makes the rule hold.
    pub fix: String,
}

/// The identity rules, in the order Cloud Run applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The account must exist.
    Exists,
    /// The account must be enabled.
    Enabled,
    /// The deployer needs `iam.serviceAccounts.actAs` on the account.
    ActAs,
    /// A cross-project account's project must not enforce
    /// `iam.disableCrossProjectServiceAccountUsage`.
    CrossProjectPolicy,
    /// The pool project's Cloud Run service agent needs `iam.serviceAccounts.getAccessToken`
    /// on the account.
    ServiceAgentTokenCreator,
}

/// The identity a deploy resolves to and what it would fail.
#[derive(Debug, Clone)]
pub struct IdentityCheck {
    /// The service account the revision runs as (the default compute account when none
    /// was named).
    pub email: String,
    pub account: Option<Account>,
    pub problems: Vec<Problem>,
}

/// Google's actAs denial, as Cloud Run words it.
pub fn act_as_denied(email: &str) -> Error {
    Error::new(
        Code::PermissionDenied,
        format!("Permission 'iam.serviceaccounts.actAs' denied on service account {email} (or it may not exist)."),
    )
    .with_info(
        "IAM_PERMISSION_DENIED",
        "iam.googleapis.com",
        [("permission", "iam.serviceAccounts.actAs"), ("resource", email)],
    )
}

impl Control {
    /// Every identity rule a deploy into `pool_project_number` as `requested` (empty: the
    /// project's default compute account) fails for `caller`.
    pub fn identity_problems(
        &self,
        caller: &Caller,
        pool_project_number: &str,
        requested: &str,
    ) -> IdentityCheck {
        let email = if requested.is_empty() {
            serviceaccounts::default_compute_email(pool_project_number)
        } else {
            requested.trim().to_lowercase()
        };
        let fix = |rule| fix_for(rule, &email, &caller.member, pool_project_number);
        let problem = |rule, error| Problem {
            rule,
            error,
            fix: fix(rule),
        };
        let Some(account) = self.read().account_by_email(&email) else {
            // Whether the account is missing or hidden, Cloud Run answers with the actAs
            // denial: the caller cannot tell the two apart.
            return IdentityCheck {
                email: email.clone(),
                account: None,
                problems: vec![problem(Rule::Exists, act_as_denied(&email))],
            };
        };
        let mut problems = vec![];
        if account.stored.account.disabled {
            problems.push(problem(
                Rule::Enabled,
                Error::failed_precondition(format!("Service account {email} is disabled.")),
            ));
        }
        if !self.allowed(caller, "iam.serviceAccounts.actAs", &account.target()) {
            problems.push(problem(Rule::ActAs, act_as_denied(&email)));
        }
        let account_project = format!("projects/{}", account.project_number);
        if account.project_number != pool_project_number
            && self.is_enforced(&account_project, CROSS_PROJECT_CONSTRAINT)
        {
            let project_id = &account.stored.account.project_id;
            problems.push(problem(
                Rule::CrossProjectPolicy,
                Error::failed_precondition(format!(
                    "Service account {email} belongs to project {project_id}, where the organization policy constraint constraints/{CROSS_PROJECT_CONSTRAINT} is enforced: it cannot be attached to a worker pool in another project. Turn the constraint off on project {project_id} (or an ancestor) to allow it."
                ))
                .with_info(
                    "CONSTRAINT_VIOLATED",
                    "run.googleapis.com",
                    [("constraint", "constraints/iam.disableCrossProjectServiceAccountUsage"), ("project", project_id.as_str())],
                ),
            ));
        }
        let agent = run_service_agent(pool_project_number);
        let agent_caller = self.caller(&format!("serviceAccount:{agent}"));
        if !self.allowed(
            &agent_caller,
            "iam.serviceAccounts.getAccessToken",
            &account.target(),
        ) {
            problems.push(problem(
                Rule::ServiceAgentTokenCreator,
                Error::failed_precondition(format!(
                    "Google Cloud Run Service Agent does not have permission to get access tokens for the service account {email}. Please give {agent} permission iam.serviceAccounts.getAccessToken on the service account. Alternatively, if the service account is unspecified or in the same project you are deploying in, ensure that the Service Agent is assigned the Google Cloud Run Service Agent role roles/run.serviceAgent."
                )),
            ));
        }
        IdentityCheck {
            email,
            account: Some(account),
            problems,
        }
    }

    /// The identity a deploy runs as, or the first rule it fails. A preflight
    /// (`validate_only`) reports every rule it fails, each with its fix, as
    /// `PreconditionFailure` violations and in the message.
    pub fn check_identity(
        &self,
        caller: &Caller,
        pool_project_number: &str,
        requested: &str,
        preflight: bool,
    ) -> Result<String> {
        let check = self.identity_problems(caller, pool_project_number, requested);
        let mut problems = check.problems.into_iter();
        let Some(first) = problems.next() else {
            return Ok(check.email);
        };
        if !preflight {
            return Err(first.error);
        }
        let all: Vec<Problem> = std::iter::once(first).chain(problems).collect();
        let mut err = all[0].error.clone();
        let mut text = format!(
            "{}\n\nThis deploy fails {} service identity rule(s); each with the command that fixes it:",
            err.message,
            all.len()
        );
        for (i, p) in all.iter().enumerate() {
            text.push_str(&format!(
                "\n{}. {}\n   Fix: {}",
                i + 1,
                p.error.message,
                p.fix
            ));
            err.violations.push(
                crate::base::error::Violation::new()
                    .set_type(format!("{:?}", p.rule))
                    .set_subject(check.email.clone())
                    .set_description(format!("{} Fix: {}", p.error.message, p.fix)),
            );
        }
        err.message = text;
        Err(err)
    }
}

/// The command that makes a rule hold, with the values of this deploy filled in (the seed's
/// own commands, `gcloud` → `runpool`).
fn fix_for(rule: Rule, email: &str, deployer: &str, pool_project_number: &str) -> String {
    let account_project = email
        .split_once('@')
        .and_then(|(_, d)| d.strip_suffix(".iam.gserviceaccount.com"))
        .unwrap_or_default();
    match rule {
        Rule::Exists => format!(
            "runpool iam service-accounts create {} --project={account_project}",
            email.split('@').next().unwrap_or_default()
        ),
        Rule::Enabled => format!("runpool iam service-accounts enable {email}"),
        Rule::ActAs => format!(
            "runpool iam service-accounts add-iam-policy-binding {email} --member={deployer} --role=roles/iam.serviceAccountUser"
        ),
        Rule::CrossProjectPolicy => format!(
            "runpool resource-manager org-policies disable-enforce {CROSS_PROJECT_CONSTRAINT} --project={account_project}"
        ),
        Rule::ServiceAgentTokenCreator => format!(
            "runpool iam service-accounts add-iam-policy-binding {email} --member=serviceAccount:{} --role=roles/iam.serviceAccountTokenCreator",
            run_service_agent(pool_project_number)
        ),
    }
}
