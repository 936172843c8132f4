//! Finding a test's own worker pool instances among the host's processes: each runs a command
//! line that carries a marker unique to the test (and to this test process).

/// A unique marker for the processes of `test`.
pub fn marker(test: &str) -> String {
    format!("rpmark-{test}-{}", std::process::id())
}

/// Pids of live processes whose command line contains `mark`, in order.
pub fn procs_with(mark: &str) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        // A zombie has an empty command line; it is not running.
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(mark)
        {
            out.push(pid);
        }
    }
    out.sort();
    out
}

/// Kill (SIGKILL) the processes that carry `mark`: clean-up only.
pub fn kill_ours(mark: &str) {
    for pid in procs_with(mark) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
