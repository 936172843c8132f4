//! What the server saw, and what follows from it: the audit log, Cloud Logging reads,
//! the Policy Troubleshooter and the recommender.

pub mod audit;
pub mod logging;
pub mod recommender;
pub mod troubleshoot;
