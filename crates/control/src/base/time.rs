//! The clock every service stamps resources with.

use google_cloud_wkt::Timestamp;

/// Now, as the protobuf timestamp Google's resources carry.
pub(crate) fn now() -> Timestamp {
    let n = chrono::Utc::now();
    Timestamp::new(n.timestamp(), n.timestamp_subsec_nanos() as i32).unwrap_or_default()
}

/// Now, in whole seconds since the Unix epoch (token expiries).
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
