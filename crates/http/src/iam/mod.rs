//! IAM on the wire: roles, service accounts and their keys and credentials, deny policies,
//! and the OAuth endpoints (tokens, token info, certificates).
pub mod denypolicies;
pub mod oauth;
pub mod roles;
pub mod serviceaccounts;
