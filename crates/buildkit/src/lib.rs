//! What Runpool's build scripts share. Two of them take inputs from the npm registry: the
//! console (`console/`, built with Vite) and Google's API definitions (`protos/`, compiled
//! into the gRPC gateway's descriptors). Each directory has its own `package-lock.json`, so
//! what is fetched is pinned by integrity hash, and is installed here by `npm ci`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The npm to run: `$NPM`, or `npm` on `PATH`.
pub fn npm() -> String {
    std::env::var("NPM").unwrap_or_else(|_| "npm".to_string())
}

/// What a build step is part of, for its error messages: what is built, and what else a
/// user can do when Node.js is missing.
#[derive(Clone, Copy)]
pub struct Building {
    pub what: &'static str,
    pub otherwise: &'static str,
}

/// Run a build step, failing the build with a message that says what was being built and
/// what to install when the step cannot start.
pub fn run(cmd: &mut Command, what: &str, building: Building) {
    let Building {
        what: building,
        otherwise,
    } = building;
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "\n\nRunpool's {building} is built with Node.js (>= 20.19) and npm, and `{what}` \
             could not start: {e}.\nInstall Node.js and npm (https://nodejs.org){otherwise}.\n\n"
        )
    });
    if !status.success() {
        panic!(
            "\n\n`{what}` failed ({status}) while building Runpool's {building}; see its output above.\n\n"
        );
    }
}

/// `npm ci` in `dir`, unless `node_modules` was installed from its `package-lock.json`
/// already (npm's own record of an install, `node_modules/.package-lock.json`, is newer than
/// the lock file) and holds `sentinel`. Two builds sharing the source tree (but not a target
/// dir, which Cargo locks itself) take turns.
pub fn npm_ci(dir: &Path, sentinel: &str, building: Building) {
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("package.json").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        dir.join("package-lock.json").display()
    );
    println!("cargo:rerun-if-env-changed=NPM");
    let _lock = Lock::take(&dir.join(".build-lock"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(&dir.join("package-lock.json")).unwrap_or_else(|| {
        panic!(
            "{}/package-lock.json is part of the source tree",
            dir.display()
        )
    });
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_some_and(|t| t >= lock) && dir.join("node_modules").join(sentinel).exists() {
        return;
    }
    run(
        Command::new(npm())
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
        "npm ci",
        building,
    );
}

/// A directory used as a lock. A lock left by a killed build goes stale after ten minutes.
pub struct Lock(PathBuf);

impl Lock {
    pub fn take(path: &Path) -> Lock {
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Lock(path.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(path);
                    } else {
                        std::thread::sleep(Duration::from_millis(250));
                    }
                }
                Err(e) => panic!("cannot create the build lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
