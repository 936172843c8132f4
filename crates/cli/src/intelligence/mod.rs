//! Policy intelligence commands: the troubleshooter and the recommender.

pub mod recommender;
pub mod troubleshoot;
