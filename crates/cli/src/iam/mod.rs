//! IAM commands: roles, service accounts and their keys, deny policies, and the allow-policy
//! commands every resource shares.

pub mod deny_policies;
pub mod policy;
pub mod roles;
pub mod service_accounts;
