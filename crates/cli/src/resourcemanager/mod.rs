//! Resource Manager commands: projects, folders, organizations, tags, org policies.

pub mod folders;
pub mod org_policies;
pub mod organizations;
pub mod projects;
pub mod tags;
