//! Service Usage (`serviceusage.googleapis.com`): which services are enabled on each project.
//!
//! A new project starts with the services Google enables on every new project
//! (<https://cloud.google.com/service-usage/docs/enabled-service>, "Services enabled by
//! default"), so Cloud Run, IAM and the other APIs Runpool serves start disabled there, as on
//! Google. A declared world's projects (the default one's too) are taken as projects already
//! in use: they also have every API Runpool serves enabled ([`world_services`]).
//!
//! Services are named by project number, whatever name the caller used, as Google answers.

use crate::base::error::{Error, Result};
use crate::base::hierarchy::{Kind, Provision};
use crate::base::operation::done_operation;
use crate::base::state::{Change, State};
use crate::{Caller, Control};
use google_cloud_api_serviceusage_v1::model::{
    BatchEnableServicesResponse, DisableServiceResponse, EnableServiceResponse, Service,
    ServiceConfig, State as ServiceState,
};
use google_cloud_longrunning::model::Operation;
use google_cloud_resourcemanager_v3::model::Project;

/// The APIs Runpool serves, with their titles.
pub const SERVED: &[(&str, &str)] = &[
    (
        "cloudresourcemanager.googleapis.com",
        "Cloud Resource Manager API",
    ),
    (
        "iam.googleapis.com",
        "Identity and Access Management (IAM) API",
    ),
    (
        "iamcredentials.googleapis.com",
        "IAM Service Account Credentials API",
    ),
    ("logging.googleapis.com", "Cloud Logging API"),
    ("orgpolicy.googleapis.com", "Organization Policy API"),
    (
        "policytroubleshooter.googleapis.com",
        "Policy Troubleshooter API",
    ),
    ("recommender.googleapis.com", "Recommender API"),
    ("run.googleapis.com", "Cloud Run Admin API"),
    ("serviceusage.googleapis.com", "Service Usage API"),
];

/// What Google enables on a new project, with the titles `gcloud services list` shows.
pub const ENABLED_BY_DEFAULT: &[(&str, &str)] = &[
    ("analyticshub.googleapis.com", "Analytics Hub API"),
    ("bigquery.googleapis.com", "BigQuery API"),
    (
        "bigqueryconnection.googleapis.com",
        "BigQuery Connection API",
    ),
    (
        "bigquerydatapolicy.googleapis.com",
        "BigQuery Data Policy API",
    ),
    (
        "bigquerydatatransfer.googleapis.com",
        "BigQuery Data Transfer API",
    ),
    ("bigquerymigration.googleapis.com", "BigQuery Migration API"),
    (
        "bigqueryreservation.googleapis.com",
        "BigQuery Reservation API",
    ),
    ("bigquerystorage.googleapis.com", "BigQuery Storage API"),
    ("cloudapis.googleapis.com", "Google Cloud APIs"),
    ("cloudtrace.googleapis.com", "Cloud Trace API"),
    ("dataform.googleapis.com", "Dataform API"),
    ("dataplex.googleapis.com", "Cloud Dataplex API"),
    ("datastore.googleapis.com", "Cloud Datastore API"),
    ("logging.googleapis.com", "Cloud Logging API"),
    ("monitoring.googleapis.com", "Cloud Monitoring API"),
    ("servicemanagement.googleapis.com", "Service Management API"),
    ("serviceusage.googleapis.com", "Service Usage API"),
    ("sql-component.googleapis.com", "Cloud SQL"),
    (
        "storage-api.googleapis.com",
        "Google Cloud Storage JSON API",
    ),
    ("storage-component.googleapis.com", "Cloud Storage"),
    ("storage.googleapis.com", "Cloud Storage API"),
];

/// The APIs whose enablement [`Control::require_service`] checks.
pub const RESOURCE_BILLED: &[&str] = &["iam.googleapis.com", "run.googleapis.com"];

/// The most services one `batchEnable` takes.
const BATCH_ENABLE_MAX: usize = 20;

/// A known service's title.
fn title(service: &str) -> Option<&'static str> {
    SERVED
        .iter()
        .chain(ENABLED_BY_DEFAULT)
        .find(|(n, _)| *n == service)
        .map(|(_, t)| *t)
}

/// Every known service, sorted, once each.
fn known() -> Vec<&'static str> {
    let mut all: Vec<&str> = SERVED
        .iter()
        .chain(ENABLED_BY_DEFAULT)
        .map(|(n, _)| *n)
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn key(project: &str, service: &str) -> String {
    format!("{project}/services/{service}")
}

fn service(st: &State, project: &str, name: &str) -> Service {
    let mut s = Service::new();
    s.name = key(project, name);
    s.parent = project.to_string();
    let mut config = ServiceConfig::new();
    config.name = name.to_string();
    config.title = title(name).unwrap_or_default().to_string();
    s.config = Some(config);
    s.state = if st.enabled_services.contains(&s.name) {
        ServiceState::Enabled
    } else {
        ServiceState::Disabled
    };
    s
}

fn enable_all(project: &Project, services: &[(&str, &str)]) -> Vec<Change> {
    services
        .iter()
        .map(|(n, _)| Change::Service(key(&project.name, n), true))
        .collect()
}

/// Service Usage's part in a new project: Google's default services.
pub(crate) fn provision_project(_: &State, project: &Project) -> Provision {
    Provision {
        changes: enable_all(project, ENABLED_BY_DEFAULT),
        grants: vec![],
    }
}

/// A declared world's project also has every API Runpool serves enabled.
pub(crate) fn world_services(project: &Project) -> Vec<Change> {
    enable_all(project, SERVED)
}

/// Google's refusal of a service it does not know (or the caller may not see).
fn unknown(services: &[&str]) -> Error {
    Error::new(
        crate::base::error::Code::PermissionDenied,
        format!(
            "Not found or permission denied for service(s): {}.",
            services.join(", ")
        ),
    )
}

/// Google's front end refusing a call to a service its consumer project has not enabled.
fn service_disabled(number: &str, service: &str) -> Error {
    let title = title(service).unwrap_or(service);
    let url = format!(
        "https://console.developers.google.com/apis/api/{service}/overview?project={number}"
    );
    let consumer = format!("projects/{number}");
    Error::new(
        crate::base::error::Code::PermissionDenied,
        format!(
            "{title} has not been used in project {number} before or it is disabled. Enable it \
             by visiting {url} then retry. If you enabled this API recently, wait a few minutes \
             for the action to propagate to our systems and retry."
        ),
    )
    .with_info(
        "SERVICE_DISABLED",
        "googleapis.com",
        [
            ("consumer", consumer.as_str()),
            ("service", service),
            ("containerInfo", number),
            ("serviceTitle", title),
            ("activationUrl", url.as_str()),
        ],
    )
}

impl Control {
    /// The one enablement rule, applied to every call before its method runs: a call to
    /// Cloud Run or IAM on behalf of a project (`consumer`: the request's
    /// `x-goog-user-project`, else the project its path names) that has not enabled the API
    /// is refused with `SERVICE_DISABLED`. A consumer that is not a known project is left to
    /// the method.
    ///
    /// Only the APIs whose calls Google bills to the project they act on are checked
    /// ([`RESOURCE_BILLED`]). Google takes the consumer of the others (Resource Manager,
    /// Org Policy, Recommender, Logging, the troubleshooter) from the caller's credentials when
    /// no quota project is named: a user's OAuth client project, which Runpool does not
    /// model, so refusing those on the project in the path would refuse what Google allows.
    pub fn require_service(&self, consumer: &str, service: &str) -> Result<()> {
        if !RESOURCE_BILLED.contains(&service) {
            return Ok(());
        }
        let st = self.read();
        let Some(node) = st.resolve(consumer).filter(|n| n.kind == Kind::Project) else {
            return Ok(());
        };
        if st.enabled_services.contains(&key(&node.name, service)) {
            return Ok(());
        }
        Err(service_disabled(
            node.name.trim_start_matches("projects/"),
            service,
        ))
    }

    /// The project a Service Usage call acts on (`projects/ID` or `projects/NUMBER`), by its
    /// canonical name, once `permission` on it is granted.
    fn consumer(&self, caller: &Caller, parent: &str, permission: &str) -> Result<String> {
        if Kind::of(parent) != Some(Kind::Project) {
            return Err(Error::invalid(format!(
                "Invalid parent '{parent}': Service Usage here serves projects/PROJECT."
            )));
        }
        let node = self.node(parent, permission)?;
        self.authorize(caller, permission, &node.target())?;
        Ok(node.name)
    }

    /// `services.get`: `projects/P/services/NAME`.
    pub fn get_service(&self, caller: &Caller, name: &str) -> Result<Service> {
        let (parent, svc) = split(name)?;
        let project = self.consumer(caller, parent, "serviceusage.services.get")?;
        if title(svc).is_none() {
            return Err(unknown(&[svc]));
        }
        Ok(service(&self.read(), &project, svc))
    }

    /// `services.list`, with `filter` `state:ENABLED` or `state:DISABLED`.
    pub fn list_services(
        &self,
        caller: &Caller,
        parent: &str,
        filter: &str,
    ) -> Result<Vec<Service>> {
        let project = self.consumer(caller, parent, "serviceusage.services.list")?;
        let want = match filter.trim() {
            "" => None,
            "state:ENABLED" => Some(ServiceState::Enabled),
            "state:DISABLED" => Some(ServiceState::Disabled),
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter '{other}': only state:ENABLED and state:DISABLED are supported."
                )));
            }
        };
        let st = self.read();
        Ok(known()
            .into_iter()
            .map(|n| service(&st, &project, n))
            .filter(|s| want.as_ref().is_none_or(|w| s.state == *w))
            .collect())
    }

    /// `services.batchGet`: `names` are `projects/P/services/NAME` under `parent`.
    pub fn batch_get_services(
        &self,
        caller: &Caller,
        parent: &str,
        names: &[String],
    ) -> Result<Vec<Service>> {
        if names.len() > 30 {
            return Err(Error::invalid(
                "At most 30 services may be requested at once.",
            ));
        }
        let project = self.consumer(caller, parent, "serviceusage.services.get")?;
        let st = self.read();
        names
            .iter()
            .map(|n| {
                let (_, svc) = split(n)?;
                if title(svc).is_none() {
                    return Err(unknown(&[svc]));
                }
                Ok(service(&st, &project, svc))
            })
            .collect()
    }

    /// `services.enable` (one) and `services.batchEnable` (several, all or none): a done
    /// operation whose response is the services, now enabled.
    pub fn enable_services(
        &self,
        caller: &Caller,
        parent: &str,
        services: &[String],
        batch: bool,
    ) -> Result<Operation> {
        if services.is_empty() {
            return Err(Error::invalid(
                "service_ids must name at least one service.",
            ));
        }
        if services.len() > BATCH_ENABLE_MAX {
            return Err(Error::invalid(format!(
                "At most {BATCH_ENABLE_MAX} services may be enabled at once."
            )));
        }
        let project = self.consumer(caller, parent, "serviceusage.services.enable")?;
        let missing: Vec<&str> = services
            .iter()
            .map(String::as_str)
            .filter(|s| title(s).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(unknown(&missing));
        }
        let number = project.trim_start_matches("projects/").to_string();
        self.write(|st| {
            let mut changes: Vec<Change> = services
                .iter()
                .map(|s| Change::Service(key(&project, s), true))
                .collect();
            // The response shows the services as the change leaves them.
            let shown = |n: &str| {
                let mut s = service(st, &project, n);
                s.state = ServiceState::Enabled;
                s
            };
            let op = if batch {
                let mut r = BatchEnableServicesResponse::new();
                r.services = services.iter().map(|s| shown(s)).collect();
                done_operation(&format!("acat.p2-{number}"), &r)?
            } else {
                let mut r = EnableServiceResponse::new();
                r.service = Some(shown(&services[0]));
                done_operation(&format!("acat.p2-{number}"), &r)?
            };
            changes.push(Change::Operation(op.clone()));
            Ok((changes, op))
        })
    }

    /// `services.disable`.
    pub fn disable_service(&self, caller: &Caller, name: &str) -> Result<Operation> {
        let (parent, svc) = split(name)?;
        let project = self.consumer(caller, parent, "serviceusage.services.disable")?;
        if title(svc).is_none() {
            return Err(unknown(&[svc]));
        }
        let number = project.trim_start_matches("projects/").to_string();
        self.write(|st| {
            let mut s = service(st, &project, svc);
            s.state = ServiceState::Disabled;
            let mut r = DisableServiceResponse::new();
            r.service = Some(s);
            let op = done_operation(&format!("acat.p2-{number}"), &r)?;
            Ok((
                vec![
                    Change::Service(key(&project, svc), false),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }
}

/// `projects/P/services/NAME` → (`projects/P`, `NAME`).
fn split(name: &str) -> Result<(&str, &str)> {
    name.rsplit_once("/services/")
        .filter(|(p, s)| !p.is_empty() && !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| Error::invalid(format!("Invalid service name '{name}'.")))
}
