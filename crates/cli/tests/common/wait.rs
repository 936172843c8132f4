//! Waiting for what a server does in the background: a poll with a deadline, never a sleep
//! that guesses how long it takes.

use std::time::{Duration, Instant};

/// Poll `f` (every 100 ms) until it answers Ok, for up to `secs`; panic with its last Err
/// otherwise.
pub fn wait_for<T>(what: &str, secs: u64, f: impl FnMut() -> Result<T, String>) -> T {
    wait_for_every(Duration::from_millis(100), what, secs, f)
}

/// `wait_for`, polling every `pause` (for a poll that costs more than a REST call: running the
/// CLI, say).
pub fn wait_for_every<T>(
    pause: Duration,
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {secs} s waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(pause),
        }
    }
}
