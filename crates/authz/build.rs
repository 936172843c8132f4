//! Turns `data/gcp-predefined-roles.json` (6.5 MB) into a compact line format in OUT_DIR so that
//! the server never parses JSON at start-up. Format (UTF-8, `\n`-separated):
//!
//! ```text
//! P <permission count>
//! <permission>                       one per line, sorted; line k (0-based) is PermId k
//! R <role count>
//! <name>\t<title>\t<description>\t<stage>\t<delta-encoded ids>
//! ```
//! Text fields escape `\\`, `\t`, `\n`. Ids are ascending, written as hex deltas separated by
//! `,` (first delta from 0), which keeps the file small and the decoder trivial.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(serde::Deserialize)]
struct RawRole {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    stage: String,
    #[serde(default, rename = "includedPermissions")]
    included_permissions: Vec<String>,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "")
}

fn main() {
    let src = "data/gcp-predefined-roles.json";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(src).expect("read role dataset");
    let mut roles: Vec<RawRole> = serde_json::from_str(&text).expect("parse role dataset");
    roles.sort_by(|a, b| a.name.cmp(&b.name));

    let perms: BTreeSet<&str> = roles
        .iter()
        .flat_map(|r| r.included_permissions.iter().map(String::as_str))
        .collect();
    let perms: Vec<&str> = perms.into_iter().collect();

    let mut out = String::with_capacity(2 << 20);
    writeln!(out, "P {}", perms.len()).unwrap();
    for p in &perms {
        assert!(!p.contains(['\n', '\t']), "odd permission {p:?}");
        out.push_str(p);
        out.push('\n');
    }
    writeln!(out, "R {}", roles.len()).unwrap();
    for r in &roles {
        let mut ids: Vec<usize> = r
            .included_permissions
            .iter()
            .map(|p| perms.binary_search(&p.as_str()).unwrap())
            .collect();
        // The decoder borrows role names unescaped as index keys.
        assert!(
            !r.name.contains(['\\', '\t', '\n']),
            "odd role name {:?}",
            r.name
        );
        ids.sort_unstable();
        ids.dedup();
        write!(
            out,
            "{}\t{}\t{}\t{}\t",
            esc(&r.name),
            esc(&r.title),
            esc(&r.description),
            esc(&r.stage)
        )
        .unwrap();
        let mut prev = 0usize;
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write!(out, "{:x}", id - prev).unwrap();
            prev = *id;
        }
        out.push('\n');
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("roles.txt");
    std::fs::write(dest, out).expect("write compact roles");
}
