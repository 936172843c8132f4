//! Cloud Run: worker pools and their revisions, the service identity rules of a deploy,
//! and what the runtime needs to run their instances.

pub mod identity;
pub mod instance_logs;
pub mod instances;
pub mod kubernetes;
pub mod v1;
pub mod workerpools;

/// The Cloud Run service agent of a project.
pub fn service_agent(project_number: &str) -> String {
    format!("service-{project_number}@serverless-robot-prod.iam.gserviceaccount.com")
}

/// Cloud Run's part in a new project: its service agent, granted `roles/run.serviceAgent`.
pub(crate) fn provision_project(
    _: &crate::base::state::State,
    project: &google_cloud_resourcemanager_v3::model::Project,
) -> crate::base::hierarchy::Provision {
    let number = project.name.trim_start_matches("projects/");
    crate::base::hierarchy::Provision {
        changes: vec![],
        grants: vec![(
            "roles/run.serviceAgent".to_string(),
            format!("serviceAccount:{}", service_agent(number)),
        )],
    }
}
