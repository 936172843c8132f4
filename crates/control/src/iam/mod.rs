//! Identity and Access Management: roles, service accounts and their credentials, deny
//! policies, and who a caller is (tokens, sign-in codes).

pub mod auth;
pub mod credentials;
pub mod denypolicies;
pub mod roles;
pub mod serviceaccounts;
pub mod signin;
