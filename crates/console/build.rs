//! Build the web console (`console/` at the workspace root) and embed it.
//!
//! `npm ci` runs when `console/node_modules` is missing or was installed from another
//! `package-lock.json`; then `tsc --noEmit` type-checks and `vite build` writes the assets into
//! `OUT_DIR/dist`. The build then writes `OUT_DIR/assets.rs`: a table of every built file,
//! its content type and its bytes (`include_bytes!`), so the binary serves the console with
//! nothing fetched at run time. Cargo reruns this only when the console's sources change.
//!
//! Without Node.js/npm the build fails with a clear message; `RUNPOOL_CONSOLE_SKIP=1` builds a
//! binary whose `/console` page says how to get the console instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// What the console build reads: a change to any of these rebuilds it. (Each must exist: Cargo
/// counts a missing path as changed and would rerun this on every build. Add `public` here if
/// the console ever gets Vite's `public/` directory.)
const INPUTS: &[&str] = &[
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let console = manifest.join("../../console");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", console.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=RUNPOOL_CONSOLE_SKIP");
    println!("cargo:rerun-if-env-changed=NPM");
    let dist = out.join("dist");
    let skip = std::env::var_os("RUNPOOL_CONSOLE_SKIP").is_some_and(|v| !v.is_empty() && v != "0");
    let built = if skip {
        println!(
            "cargo:warning=RUNPOOL_CONSOLE_SKIP is set: the console is not built; /console shows how to build it"
        );
        placeholder(&dist);
        false
    } else {
        let _lock = Lock::take(&console.join(".build-lock"));
        install(&console);
        build(&console, &dist);
        true
    };
    write_table(&dist, &out.join("assets.rs"), built);
}

fn npm() -> String {
    std::env::var("NPM").unwrap_or_else(|_| "npm".to_string())
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "\n\nThe Runpool console is built with Node.js (>= 20.19) and npm, and `{what}` could \
             not start: {e}.\nInstall Node.js and npm (https://nodejs.org), or build without the \
             console: RUNPOOL_CONSOLE_SKIP=1 cargo build ...\n\n"
        )
    });
    if !status.success() {
        panic!(
            "\n\n`{what}` failed ({status}) while building the Runpool console; see its output above.\n\n"
        );
    }
}

/// `npm ci`, unless `node_modules` was installed from this `package-lock.json` already (npm's
/// own record of an install, `node_modules/.package-lock.json`, is newer than the lock file).
fn install(console: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(&console.join("package-lock.json"))
        .expect("console/package-lock.json is part of the source tree");
    let installed = modified(&console.join("node_modules/.package-lock.json"));
    if installed.is_some_and(|t| t >= lock)
        && console.join("node_modules/vite/bin/vite.js").exists()
    {
        return;
    }
    run(
        Command::new(npm())
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(console),
        "npm ci",
    );
}

/// Type-check, then bundle into `dist`.
fn build(console: &Path, dist: &Path) {
    run(
        Command::new("node")
            .args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."])
            .current_dir(console),
        "tsc --noEmit",
    );
    run(
        Command::new("node")
            .arg("node_modules/vite/bin/vite.js")
            .args(["build", "--logLevel", "warn", "--emptyOutDir", "--outDir"])
            .arg(dist)
            .current_dir(console),
        "vite build",
    );
}

/// The page a binary built without the console serves.
fn placeholder(dist: &Path) {
    let _ = std::fs::remove_dir_all(dist);
    std::fs::create_dir_all(dist).expect("create dist");
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Runpool console</title>\
         <h1>Runpool console</h1><p>This binary was built with <code>RUNPOOL_CONSOLE_SKIP</code> \
         set, so it holds no console. Build it with Node.js and npm installed to get one.</p></html>",
    )
    .expect("write placeholder");
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dist")
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        if e.path().is_dir() {
            files(&e.path(), &format!("{rel}/"), out);
        } else {
            out.push((rel, e.path()));
        }
    }
}

fn write_table(dist: &Path, target: &Path, built: bool) {
    let mut all = vec![];
    files(dist, "", &mut all);
    let mut code = String::from(
        "/// Every file of the console build (generated by build.rs).\npub static ASSETS: &[Asset] = &[\n",
    );
    for (rel, path) in &all {
        // Vite names what it writes under assets/ by content hash: cacheable for ever.
        let immutable = rel.starts_with("assets/");
        writeln!(
            code,
            "    Asset {{ path: {rel:?}, content_type: {:?}, bytes: include_bytes!({:?}), immutable: {immutable} }},",
            content_type(rel),
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    writeln!(code, "/// Whether the console was built (false: `RUNPOOL_CONSOLE_SKIP`).\npub const BUILT: bool = {built};").unwrap();
    std::fs::write(target, code).expect("write assets.rs");
}

/// A directory used as a lock, so that two builds sharing this source tree (but not a target
/// dir, which Cargo locks itself) do not run `npm ci` over each other. A lock left by a killed
/// build goes stale after ten minutes.
struct Lock(PathBuf);

impl Lock {
    fn take(path: &Path) -> Lock {
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
                Err(e) => panic!(
                    "cannot create the console build lock {}: {e}",
                    path.display()
                ),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
