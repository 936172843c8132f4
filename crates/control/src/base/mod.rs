//! The core every service room stands on: the state and its changes, the store, errors,
//! allow-policy semantics, keys and tokens' cryptography, bounded YAML, and where a local
//! server is found.

pub mod allow;
pub mod crypto;
pub mod error;
pub mod hierarchy;
pub mod ids;
pub mod local;
pub mod operation;
pub mod state;
pub mod store;
pub mod time;
pub mod yaml;
