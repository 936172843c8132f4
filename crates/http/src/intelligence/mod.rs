//! Cloud Logging reads, the Policy Troubleshooter and the recommender on the wire.
pub mod logging;
pub mod recommender;
pub mod troubleshooter;
