//! Container images imported from local archives (`runpool images import`): a `docker save`
//! tarball or an OCI image layout in a tar, no registry. Each image is kept once, under its
//! id (the sha256 of its config, as Docker names images), in `DATA_DIR/images/HEX/`:
//! `rootfs/` (its layers applied in order, whiteouts honoured) and `config.json` (the image
//! config as the archive holds it: `Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`).
//! `tags.json` maps references (`busybox:local`) to ids.
//!
//! An import is staged in `DATA_DIR/images/.staging-RANDOM/` and moved into place only once
//! every layer is unpacked, so a bad archive (not a tar, no manifest, a blob that does not
//! match its digest, a layer entry that would land outside the root) leaves nothing behind.
//! Every blob stored under `blobs/sha256/HEX` is checked against `HEX` as it is read.

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

const STAGING_PREFIX: &str = ".staging-";
const TAGS_FILE: &str = "tags.json";
/// Manifests, indexes and configs are small; a larger one is not what it claims to be.
const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;
/// As the kernel limits symlink resolution.
const MAX_SYMLINKS: u32 = 40;

/// What an image says to run, from its config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=VALUE`
    pub env: Vec<String>,
    pub working_dir: String,
    /// `uid`, `uid:gid`, `name` or `name:group`; empty is root.
    pub user: String,
}

/// An imported image, ready to run.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:HEX`
    pub id: String,
    pub rootfs: PathBuf,
    pub config: ImageConfig,
}

/// One image an import recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Imported {
    pub id: String,
    pub tags: Vec<String>,
}

/// A private directory for one import, removed when dropped (whatever was not moved into
/// the store goes with it).
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Where the uploaded archive is written.
    pub fn upload_path(&self) -> PathBuf {
        self.dir.join("upload")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct ImageStore {
    dir: PathBuf,
    /// Held while images are moved into place and the tags rewritten.
    commit: Mutex<()>,
}

impl ImageConfig {
    fn from_json(config: &Value) -> ImageConfig {
        let c = &config["config"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ImageConfig {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            working_dir: text(&c["WorkingDir"]),
            user: text(&c["User"]),
        }
    }
}

impl Image {
    /// The uid and gid the image's `User` names: `uid`, `uid:gid`, `name` or `name:group`,
    /// names looked up in the image's own `/etc/passwd` and `/etc/group` (as Docker does);
    /// root when unset. A user without a group runs with its primary group from passwd.
    pub fn user_ids(&self) -> std::result::Result<(u32, u32), String> {
        let spec = self.config.user.trim();
        if spec.is_empty() {
            return Ok((0, 0));
        }
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let passwd = self.etc("passwd");
        // passwd: name:password:uid:gid:…
        let entry = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| {
                f.len() > 3 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user))
            });
        let uid = match (user.parse::<u32>(), &entry) {
            (Ok(uid), _) => uid,
            (Err(_), Some(f)) => f[2]
                .parse()
                .map_err(|_| format!("bad passwd entry for {user}"))?,
            (Err(_), None) => {
                return Err(format!("user {user} is not in the image's /etc/passwd"));
            }
        };
        let gid = match group {
            None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => self
                    .etc("group")
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 2 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| format!("group {g} is not in the image's /etc/group"))?,
            },
        };
        Ok((uid, gid))
    }

    /// A file of the image's `/etc`, read with its symlinks resolved inside the image.
    fn etc(&self, name: &str) -> String {
        resolve_in_root(&self.rootfs, &Path::new("etc").join(name))
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// A reference as images are recorded: Docker Hub's implied parts dropped
/// (`docker.io/library/busybox` is `busybox`) and `:latest` added when no tag or digest is
/// given.
pub fn normalize(reference: &str) -> String {
    let r = reference.trim();
    let r = r
        .strip_prefix("docker.io/library/")
        .or_else(|| r.strip_prefix("docker.io/"))
        .unwrap_or(r);
    let name = r.rsplit('/').next().unwrap_or(r);
    if name.contains(':') || name.contains('@') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

fn valid_reference(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && !r.starts_with(['/', ':', '@', '.', '-'])
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
}

impl ImageStore {
    /// The store in `dir`; what an interrupted import staged there is removed.
    pub fn open(dir: PathBuf) -> io::Result<ImageStore> {
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                std::fs::remove_dir_all(e.path())?;
            }
        }
        Ok(ImageStore {
            dir,
            commit: Mutex::new(()),
        })
    }

    /// A new staging directory for one import.
    pub fn staging(&self) -> io::Result<Staging> {
        let mut b = [0u8; 8];
        rand::Rng::fill(&mut rand::rng(), &mut b);
        let dir = self.dir.join(format!("{STAGING_PREFIX}{}", hex::encode(b)));
        std::fs::create_dir(&dir)?;
        Ok(Staging { dir })
    }

    fn tags(&self) -> BTreeMap<String, String> {
        std::fs::read(self.dir.join(TAGS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The image a container's `image` names, if it was imported.
    pub fn resolve(&self, reference: &str) -> Option<Image> {
        let id = self.tags().get(&normalize(reference))?.clone();
        let dir = self.dir.join(id.strip_prefix("sha256:")?);
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
        Some(Image {
            id,
            rootfs: dir.join("rootfs"),
            config: ImageConfig::from_json(&config),
        })
    }

    /// Import the archive uploaded into `staging`: every image it holds, under the tags it
    /// gives them, or under `tag` alone (then it must hold exactly one image).
    pub fn import(&self, staging: Staging, tag: Option<&str>) -> Result<Vec<Imported>> {
        let tag = match tag {
            Some(t) if !valid_reference(t.trim()) => {
                return Err(Error::invalid(format!("Invalid image reference [{t}].")));
            }
            Some(t) => Some(normalize(t)),
            None => None,
        };
        let archive = Archive::open(&staging.upload_path(), &staging.dir)?;
        let mut manifests = archive.manifests()?;
        if manifests.is_empty() {
            return Err(Error::invalid("The archive holds no image."));
        }
        if let Some(t) = tag {
            if manifests.len() > 1 {
                return Err(Error::invalid(format!(
                    "The archive holds {} images; --tag names one.",
                    manifests.len()
                )));
            }
            manifests[0].tags = vec![t];
        }
        let mut out = vec![];
        let mut unpacked = HashSet::new();
        for m in &manifests {
            let tags: Vec<String> = m
                .tags
                .iter()
                .filter(|t| valid_reference(t))
                .map(|t| normalize(t))
                .collect();
            if tags.is_empty() {
                return Err(Error::invalid(
                    "The archive does not name its image; pass --tag NAME:TAG.",
                ));
            }
            let config_bytes = archive.read_json_blob(&m.config)?;
            let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
                Error::invalid(format!("The image config {} is not JSON: {e}", m.config))
            })?;
            if !config.is_object() {
                return Err(Error::invalid(format!(
                    "The image config {} is not an object.",
                    m.config
                )));
            }
            let hex = hex::encode(Sha256::digest(&config_bytes));
            if !self.dir.join(&hex).exists() && unpacked.insert(hex.clone()) {
                let target = staging.dir.join(&hex);
                let rootfs = target.join("rootfs");
                std::fs::create_dir_all(&rootfs).map_err(internal)?;
                for layer in &m.layers {
                    archive.apply_layer(layer, &rootfs)?;
                }
                std::fs::write(target.join("config.json"), &config_bytes).map_err(internal)?;
            }
            out.push(Imported {
                id: format!("sha256:{hex}"),
                tags,
            });
        }
        let _held = self.commit.lock().unwrap_or_else(|e| e.into_inner());
        for hex in &unpacked {
            let dest = self.dir.join(hex);
            // The same image imported meanwhile is the same bytes: keep the one in place.
            if !dest.exists() {
                std::fs::rename(staging.dir.join(hex), dest).map_err(internal)?;
            }
        }
        let mut tags = self.tags();
        for i in &out {
            for t in &i.tags {
                tags.insert(t.clone(), i.id.clone());
            }
        }
        let tmp = staging.dir.join(TAGS_FILE);
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&tags).map_err(|e| Error::internal(e.to_string()))?,
        )
        .map_err(internal)?;
        std::fs::rename(&tmp, self.dir.join(TAGS_FILE)).map_err(internal)?;
        Ok(out)
    }
}

fn internal(e: io::Error) -> Error {
    Error::internal(format!("Cannot write the image store: {e}"))
}

/// One image of an archive: paths of its config and layers inside the archive.
struct Manifest {
    config: String,
    layers: Vec<String>,
    tags: Vec<String>,
}

enum Stored {
    File { offset: u64, size: u64 },
    Link(String),
}

/// The outer archive, indexed once so blobs can be read in any order without unpacking it.
struct Archive {
    file: File,
    entries: HashMap<String, Stored>,
}

/// `./a/b/` → `a/b`
fn clean_name(name: &str) -> String {
    name.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A digest (`sha256:HEX`) as a path inside an OCI layout.
fn blob_path(digest: &str) -> Result<String> {
    match digest.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("blobs/sha256/{hex}"))
        }
        _ => Err(Error::invalid(format!(
            "Unsupported digest [{digest}]: only sha256 digests are supported."
        ))),
    }
}

/// The digest a blob must have, when its path names it.
fn expected_digest(path: &str) -> Option<&str> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The platform name Go (and so every image) uses for this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A window of the archive file, read without moving a shared cursor.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    /// Read what is left and check the whole against the digest `path` names.
    fn verify(mut self, path: &str) -> Result<()> {
        io::copy(&mut self, &mut io::sink())
            .map_err(|e| Error::invalid(format!("Cannot read {path} from the archive: {e}")))?;
        match expected_digest(path) {
            Some(hex) if hex::encode(self.hasher.finalize()) != hex.to_ascii_lowercase() => Err(
                Error::invalid(format!("The blob {path} does not match its digest.")),
            ),
            _ => Ok(()),
        }
    }
}

impl Archive {
    /// Index the archive at `path`; a gzip-compressed one is first decompressed into `work`.
    fn open(path: &Path, work: &Path) -> Result<Archive> {
        let not_tar =
            |e: io::Error| Error::invalid(format!("The upload is not a tar archive: {e}"));
        let mut file = File::open(path).map_err(internal)?;
        let mut magic = [0u8; 2];
        let n = file.read_at(&mut magic, 0).map_err(internal)?;
        if n == 2 && magic == [0x1f, 0x8b] {
            let plain = work.join("upload.tar");
            let mut out = File::create(&plain).map_err(internal)?;
            io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut out)
                .map_err(|e| Error::invalid(format!("The upload is not valid gzip: {e}")))?;
            file = File::open(&plain).map_err(internal)?;
        }
        let mut entries = HashMap::new();
        {
            let mut ar = tar::Archive::new(&file);
            for entry in ar.entries().map_err(not_tar)? {
                let entry = entry.map_err(not_tar)?;
                let name = clean_name(&String::from_utf8_lossy(&entry.path_bytes()));
                let kind = entry.header().entry_type();
                let stored = if kind.is_symlink() || kind.is_hard_link() {
                    let Some(target) = entry.link_name_bytes() else {
                        continue;
                    };
                    let target = String::from_utf8_lossy(&target).into_owned();
                    // A symlink is relative to its directory; a hard link to the archive root.
                    let from_root = if kind.is_symlink() && !target.starts_with('/') {
                        match name.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{target}"),
                            None => target,
                        }
                    } else {
                        target
                    };
                    Stored::Link(from_root)
                } else if kind.is_file() {
                    Stored::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else {
                    continue;
                };
                entries.insert(name, stored);
            }
        }
        if entries.is_empty() {
            return Err(Error::invalid(
                "The upload is not a tar archive, or is empty.",
            ));
        }
        Ok(Archive { file, entries })
    }

    /// Where the file `name` lies in the archive (links followed).
    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = clean_path(name)?;
        for _ in 0..MAX_SYMLINKS {
            match self.entries.get(&name)? {
                Stored::File { offset, size } => return Some((*offset, *size)),
                Stored::Link(target) => name = clean_path(target)?,
            }
        }
        None
    }

    fn open_blob(&self, name: &str) -> Result<(Hashing<Section<'_>>, u64)> {
        let (offset, size) = self.locate(name).ok_or_else(|| {
            Error::invalid(format!(
                "The archive has no {name}, which its manifest names."
            ))
        })?;
        Ok((
            Hashing {
                inner: Section {
                    file: &self.file,
                    pos: offset,
                    end: offset + size,
                },
                hasher: Sha256::new(),
            },
            size,
        ))
    }

    /// A small (JSON) blob, checked against its digest.
    fn read_json_blob(&self, name: &str) -> Result<Vec<u8>> {
        let (mut r, size) = self.open_blob(name)?;
        if size > MAX_JSON_BYTES {
            return Err(Error::invalid(format!(
                "{name} is too large for a manifest or config ({size} bytes)."
            )));
        }
        let mut bytes = vec![];
        r.read_to_end(&mut bytes)
            .map_err(|e| Error::invalid(format!("Cannot read {name}: {e}")))?;
        r.verify(name)?;
        Ok(bytes)
    }

    fn json(&self, name: &str) -> Result<Value> {
        serde_json::from_slice(&self.read_json_blob(name)?)
            .map_err(|e| Error::invalid(format!("{name} is not valid JSON: {e}")))
    }

    /// The images the archive holds: from `docker save`'s `manifest.json` when there is one
    /// (it carries the tags), else from the OCI layout's `index.json`.
    fn manifests(&self) -> Result<Vec<Manifest>> {
        if self.locate("manifest.json").is_some() {
            return self.docker_manifests();
        }
        if self.locate("index.json").is_some() {
            let index = self.json("index.json")?;
            let mut out = vec![];
            for desc in index["manifests"].as_array().into_iter().flatten() {
                let a = &desc["annotations"];
                // `io.containerd.image.name` is a full reference; the OCI ref name is often
                // only a tag, which names no image on its own.
                let name = a["io.containerd.image.name"].as_str().or_else(|| {
                    a["org.opencontainers.image.ref.name"]
                        .as_str()
                        .filter(|n| n.contains([':', '/']))
                });
                out.push(self.oci_manifest(desc, name.map(str::to_string), 0)?);
            }
            return Ok(out);
        }
        Err(Error::invalid(
            "The archive holds neither a docker save manifest (manifest.json) nor an OCI image \
             layout (index.json).",
        ))
    }

    fn docker_manifests(&self) -> Result<Vec<Manifest>> {
        let list = self.json("manifest.json")?;
        let items = list
            .as_array()
            .ok_or_else(|| Error::invalid("manifest.json is not a list of images."))?;
        items
            .iter()
            .map(|m| {
                let config = m["Config"]
                    .as_str()
                    .ok_or_else(|| Error::invalid("An image in manifest.json has no Config."))?;
                let layers = m["Layers"]
                    .as_array()
                    .ok_or_else(|| Error::invalid("An image in manifest.json has no Layers."))?
                    .iter()
                    .map(|l| {
                        l.as_str().map(str::to_string).ok_or_else(|| {
                            Error::invalid("manifest.json lists a layer that is not a path.")
                        })
                    })
                    .collect::<Result<_>>()?;
                let tags = m["RepoTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                Ok(Manifest {
                    config: config.to_string(),
                    layers,
                    tags,
                })
            })
            .collect()
    }

    /// The image manifest a descriptor leads to; an index (a multi-platform image) leads to
    /// its manifest for this machine's platform.
    fn oci_manifest(&self, desc: &Value, name: Option<String>, depth: u32) -> Result<Manifest> {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| Error::invalid("A descriptor in the OCI layout has no digest."))?;
        let doc = self.json(&blob_path(digest)?)?;
        if let Some(list) = doc["manifests"].as_array() {
            if depth > 4 {
                return Err(Error::invalid("The OCI layout nests indexes too deeply."));
            }
            let arch = host_architecture();
            let chosen = list
                .iter()
                .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == arch)
                .ok_or_else(|| {
                    Error::invalid(format!("The archive has no image for linux/{arch}."))
                })?;
            return self.oci_manifest(chosen, name, depth + 1);
        }
        let config = doc["config"]["digest"]
            .as_str()
            .ok_or_else(|| Error::invalid(format!("The manifest {digest} has no config.")))?;
        let layers = doc["layers"]
            .as_array()
            .ok_or_else(|| Error::invalid(format!("The manifest {digest} has no layers.")))?
            .iter()
            .map(|l| blob_path(l["digest"].as_str().unwrap_or_default()))
            .collect::<Result<_>>()?;
        Ok(Manifest {
            config: blob_path(config)?,
            layers,
            tags: name.into_iter().collect(),
        })
    }

    /// Apply one layer (a tar, plain or gzip-compressed) onto `root`.
    fn apply_layer(&self, name: &str, root: &Path) -> Result<()> {
        let (mut hashing, _) = self.open_blob(name)?;
        {
            let mut buffered = BufReader::new(&mut hashing);
            let head = buffered
                .fill_buf()
                .map_err(|e| Error::invalid(format!("Cannot read layer {name}: {e}")))?;
            if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                return Err(Error::invalid(format!(
                    "Layer {name} is zstd-compressed; only plain and gzip layers are supported."
                )));
            }
            if head.starts_with(&[0x1f, 0x8b]) {
                unpack(name, flate2::read::MultiGzDecoder::new(buffered), root)?;
            } else {
                unpack(name, buffered, root)?;
            }
        }
        hashing.verify(name)
    }
}

/// A path inside the archive or an image, cleaned: `None` if it climbs out with `..`.
fn clean_path(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = vec![];
    for s in name.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// A layer entry's path relative to the image root; an entry that climbs out is refused.
fn entry_path(layer: &str, raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid(format!(
                    "Layer {layer} has an entry outside the image root: {}",
                    raw.display()
                )));
            }
        }
    }
    Ok(out)
}

/// `dir` (relative to `root`) with every symlink on the way resolved as if `root` were `/`,
/// so no entry lands outside the root, whatever links earlier entries made.
fn resolve_in_root(root: &Path, dir: &Path) -> Result<PathBuf> {
    let mut resolved: Vec<std::ffi::OsString> = vec![];
    let mut todo: std::collections::VecDeque<std::ffi::OsString> = dir
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part == "/" || part.is_empty() {
            continue;
        }
        let here: PathBuf = root
            .iter()
            .chain(resolved.iter().map(|p| p.as_os_str()))
            .collect();
        let candidate = here.join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::invalid(format!(
                        "Too many levels of symbolic links under {}",
                        dir.display()
                    )));
                }
                let target = std::fs::read_link(&candidate).map_err(internal)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for c in target.components().rev() {
                    todo.push_front(c.as_os_str().to_os_string());
                }
            }
            _ => resolved.push(part),
        }
    }
    Ok(root
        .iter()
        .chain(resolved.iter().map(|p| p.as_os_str()))
        .collect())
}

/// Remove whatever is at `path`, without following a symlink there.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove what `dir` held from earlier layers (an opaque whiteout): keep only `created`.
fn clear_lower(dir: &Path, created: &HashSet<PathBuf>) -> io::Result<()> {
    let Ok(children) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for c in children.flatten() {
        let p = c.path();
        if !created.contains(&p) {
            remove_any(&p)?;
        } else if c.file_type()?.is_dir() {
            clear_lower(&p, created)?;
        }
    }
    Ok(())
}

/// Unpack a layer tar onto `root`, as a container runtime does: `.wh.NAME` deletes `NAME`
/// from the layers below, `.wh..wh..opq` empties its directory of them.
fn unpack(layer: &str, reader: impl Read, root: &Path) -> Result<()> {
    use std::os::unix::fs::{PermissionsExt, lchown, symlink};
    let bad = |e: io::Error| Error::invalid(format!("Layer {layer} is not a valid tar: {e}"));
    let fail = |p: &Path, e: io::Error| {
        internal(io::Error::new(
            e.kind(),
            format!("layer {layer}, entry {}: {e}", p.display()),
        ))
    };
    // Ownership is kept only when the server can set it (as root, which running images needs).
    let chown = unsafe { libc::geteuid() } == 0;
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut ar = tar::Archive::new(reader);
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let rel = entry_path(layer, &entry.path().map_err(bad)?)?;
        let Some(file_name) = rel.file_name().map(|n| n.to_os_string()) else {
            continue; // the root itself
        };
        let parent = resolve_in_root(root, rel.parent().unwrap_or(Path::new("")))?;
        let name = file_name.to_string_lossy();
        if name == ".wh..wh..opq" {
            clear_lower(&parent, &created).map_err(|e| fail(&rel, e))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove_any(&parent.join(hidden)).map_err(|e| fail(&rel, e))?;
            continue;
        }
        std::fs::create_dir_all(&parent).map_err(|e| fail(&rel, e))?;
        for a in parent.ancestors().take_while(|a| a.starts_with(root)) {
            created.insert(a.to_path_buf());
        }
        let dest = parent.join(&file_name);
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(bad)? & 0o7777;
        let (uid, gid) = (header.uid().map_err(bad)?, header.gid().map_err(bad)?);
        let existing = std::fs::symlink_metadata(&dest).ok();
        if kind.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                remove_any(&dest).map_err(|e| fail(&rel, e))?;
            }
            if !dest.is_dir() {
                std::fs::create_dir(&dest).map_err(|e| fail(&rel, e))?;
            }
        } else if kind.is_file() || kind.is_symlink() || kind.is_hard_link() {
            if existing.is_some() {
                remove_any(&dest).map_err(|e| fail(&rel, e))?;
            }
            if kind.is_file() {
                let mut out = File::create(&dest).map_err(|e| fail(&rel, e))?;
                io::copy(&mut entry, &mut out).map_err(bad)?;
            } else {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .ok_or_else(|| Error::invalid(format!("Layer {layer}: a link without target")))?
                    .into_owned();
                if kind.is_symlink() {
                    // Left as written: it is resolved inside the container, under its root.
                    symlink(&target, &dest).map_err(|e| fail(&rel, e))?;
                } else {
                    let target = entry_path(layer, &target)?;
                    let source = resolve_in_root(root, target.parent().unwrap_or(Path::new("")))?
                        .join(target.file_name().unwrap_or_default());
                    std::fs::hard_link(&source, &dest).map_err(|e| fail(&rel, e))?;
                }
            }
        } else {
            // Device nodes and fifos: the runtime gives a container its /dev; nodes from an
            // image are not created on the host.
            continue;
        }
        created.insert(dest.clone());
        if chown {
            lchown(&dest, Some(uid as u32), Some(gid as u32)).map_err(|e| fail(&rel, e))?;
        }
        if !kind.is_symlink() && !kind.is_hard_link() {
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                .map_err(|e| fail(&rel, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, contents)` regular files and `(path, "->target")` symlinks.
    fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(vec![]);
        for (path, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            if let Some(target) = body.strip_prefix("->") {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_link_name(target).unwrap();
                h.set_path(path).unwrap();
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            } else if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).unwrap();
            } else {
                h.set_size(body.len() as u64);
                b.append_data(&mut h, path, body.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// A raw tar entry named `path` (the builder itself refuses `..`).
    fn raw_entry(path: &str) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend([b'x']);
        out.resize(1024, 0);
        out.extend([0u8; 1024]);
        out
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    /// A `docker save` archive of one image made of `layers`.
    fn docker_save(tags: &[&str], layers: &[Vec<u8>]) -> Vec<u8> {
        let config = serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/w"}})
        .to_string();
        let mut files: Vec<(String, Vec<u8>)> = vec![];
        let mut layer_paths = vec![];
        for l in layers {
            let p = format!("blobs/sha256/{}", sha(l));
            layer_paths.push(p.clone());
            files.push((p, l.clone()));
        }
        let config_path = format!("blobs/sha256/{}", sha(config.as_bytes()));
        files.push((config_path.clone(), config.into_bytes()));
        let manifest =
            serde_json::json!([{"Config": config_path, "RepoTags": tags, "Layers": layer_paths}]);
        files.push(("manifest.json".into(), manifest.to_string().into_bytes()));
        let mut b = tar::Builder::new(vec![]);
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, p, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn store() -> (tempfile::TempDir, ImageStore) {
        let d = tempfile::tempdir().unwrap();
        let s = ImageStore::open(d.path().join("images")).unwrap();
        (d, s)
    }

    fn import(s: &ImageStore, archive: &[u8], tag: Option<&str>) -> Result<Vec<Imported>> {
        let st = s.staging().unwrap();
        std::fs::write(st.upload_path(), archive).unwrap();
        s.import(st, tag)
    }

    /// Only `images/tags.json` and image dirs: no staging left.
    fn leftovers(s: &ImageStore) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&s.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_image_user_is_looked_up_in_the_images_own_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnode:x:1000:1001::/home/node:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let ids = |user: &str| {
            Image {
                id: String::new(),
                rootfs: d.path().to_path_buf(),
                config: ImageConfig {
                    user: user.into(),
                    ..Default::default()
                },
            }
            .user_ids()
        };
        assert_eq!(ids(""), Ok((0, 0)));
        assert_eq!(ids("node"), Ok((1000, 1001)));
        assert_eq!(ids("1000"), Ok((1000, 1001)));
        assert_eq!(ids("node:staff"), Ok((1000, 50)));
        assert_eq!(ids("7:8"), Ok((7, 8)));
        assert!(ids("nobody").unwrap_err().contains("/etc/passwd"));
    }

    #[test]
    fn references_are_normalized_as_docker_does() {
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(
            normalize("gcr.io/p/app@sha256:ab"),
            "gcr.io/p/app@sha256:ab"
        );
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let (_d, s) = store();
        let lower = tar_of(&[
            ("bin/", ""),
            ("bin/tool", "v1"),
            ("etc/gone", "x"),
            ("opaque/", ""),
            ("opaque/old", "x"),
            ("lib", "->usr/lib"),
            ("usr/lib/", ""),
        ]);
        let upper = tar_of(&[
            ("bin/tool", "v2"),
            ("etc/.wh.gone", ""),
            ("opaque/new", "y"),
            ("opaque/.wh..wh..opq", ""),
            ("lib/libx.so", "so"),
        ]);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
            io::Write::write_all(&mut e, &upper).unwrap();
            e.finish().unwrap()
        };
        let out = import(
            &s,
            &docker_save(&["docker.io/library/busybox:local"], &[lower, gz]),
            None,
        )
        .unwrap();
        assert_eq!(out[0].tags, vec!["busybox:local"]);
        let img = s.resolve("busybox:local").expect("resolves");
        assert_eq!(img.id, out[0].id);
        assert_eq!(img.config.cmd, vec!["sh"]);
        assert_eq!(img.config.working_dir, "/w");
        let r = &img.rootfs;
        assert_eq!(std::fs::read_to_string(r.join("bin/tool")).unwrap(), "v2");
        assert!(!r.join("etc/gone").exists());
        assert!(!r.join("opaque/old").exists());
        assert!(r.join("opaque/new").exists());
        // Written through the symlink, inside the root.
        assert!(
            std::fs::symlink_metadata(r.join("lib"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read_to_string(r.join("usr/lib/libx.so")).unwrap(),
            "so"
        );
        assert_eq!(
            leftovers(&s),
            vec![
                out[0].id.trim_start_matches("sha256:").to_string(),
                "tags.json".into()
            ]
        );
    }

    #[test]
    fn a_symlink_to_an_absolute_path_stays_inside_the_root() {
        let (d, s) = store();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let layer = tar_of(&[
            ("esc", &format!("->{}", outside.display())),
            ("esc/pwned", "x"),
        ]);
        import(&s, &docker_save(&["a:b"], &[layer]), None).unwrap();
        assert!(!outside.join("pwned").exists(), "wrote outside the root");
    }

    #[test]
    fn bad_archives_are_refused_and_leave_nothing() {
        let (_d, s) = store();
        let err = |archive: &[u8]| import(&s, archive, Some("x:y")).unwrap_err().to_string();
        assert!(
            err(b"not a tar at all").contains("not a tar archive"),
            "{}",
            err(b"not a tar at all")
        );
        assert!(err(&tar_of(&[("hello", "x")])).contains("neither a docker save manifest"));
        let escape = docker_save(&["a:b"], &[raw_entry("../../etc/evil")]);
        assert!(
            err(&escape).contains("outside the image root"),
            "{}",
            err(&escape)
        );
        // A layer whose bytes do not match the digest its path names.
        let mut tampered = docker_save(&["a:b"], &[tar_of(&[("f", "original-bytes")])]);
        let at = tampered
            .windows(14)
            .position(|w| w == b"original-bytes")
            .unwrap();
        tampered[at] = b'O';
        assert!(
            err(&tampered).contains("does not match its digest"),
            "{}",
            err(&tampered)
        );
        assert_eq!(leftovers(&s), Vec::<String>::new());
        assert!(s.resolve("x:y").is_none());
    }

    #[test]
    fn an_untagged_image_needs_a_tag_and_a_tag_overrides() {
        let (_d, s) = store();
        let archive = docker_save(&[], &[tar_of(&[("f", "1")])]);
        assert!(
            import(&s, &archive, None)
                .unwrap_err()
                .to_string()
                .contains("--tag")
        );
        let out = import(&s, &archive, Some("mine")).unwrap();
        assert_eq!(out[0].tags, vec!["mine:latest"]);
        assert!(s.resolve("mine").is_some());
    }
}
