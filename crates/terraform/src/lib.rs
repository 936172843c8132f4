//! `terraform plan|apply [PATH]`: the Terraform Google provider's resources for worker pools
//! and their identity, read from HCL and applied through the same REST calls the provider
//! makes, so the server's rules (actAs above all) apply unchanged.
//!
//! Supported: `google_cloud_run_v2_worker_pool`, `google_service_account`,
//! `google_service_account_iam_member`, `google_project_iam_member`; `variable` (with
//! `default`, `TF_VAR_name`, `-var name=value`), `locals`, `provider "google" { project,
//! region }`, expressions and references between resources (`google_service_account.sa.email`).
//!
//! Choices, written down because Terraform itself works differently:
//! - There is no state file. The server is the state: each resource is read first and
//!   created when missing, updated in place when it differs from the configuration (an
//!   implicit import), left alone otherwise. So nothing is ever destroyed (`0 to destroy`),
//!   and removing a block from the file leaves its resource in place.
//! - `plan` also asks the server to validate each pool it would create or change
//!   (`validateOnly=true`), so identity rule violations show at plan time, unless an earlier
//!   step of the same plan (a new account, a new grant) would change the outcome.
//! - PATH is a `.tf` file or a directory of them (default: the current directory).
//! - `project` falls back to the provider block, then to `core/project`; a pool's `location`
//!   to the provider's `region`.

use anyhow::{Result, anyhow, bail};
use hcl::eval::{Context, Evaluate};
use reqwest::Method;
use runpool_client::api::{Api, ApiError, has_status};
use runpool_client::run::{CLIENT, get_pool, v2_path};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

const POOL: &str = "google_cloud_run_v2_worker_pool";
const SA: &str = "google_service_account";
const SA_IAM: &str = "google_service_account_iam_member";
const PROJECT_IAM: &str = "google_project_iam_member";

/// An evaluated block body: attributes as JSON, nested blocks in order.
#[derive(Debug, Clone, Default)]
struct Node {
    attrs: Map<String, Value>,
    blocks: Vec<(String, Node)>,
}

impl Node {
    fn str(&self, k: &str) -> Option<String> {
        match self.attrs.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    fn block(&self, k: &str) -> Option<&Node> {
        self.blocks.iter().find(|(n, _)| n == k).map(|(_, b)| b)
    }
    fn all(&self, k: &str) -> Vec<&Node> {
        self.blocks
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, b)| b)
            .collect()
    }
}

struct Resource {
    rtype: String,
    name: String,
    body: hcl::Body,
    /// `FILE line N`, for error messages.
    file: String,
    line: Option<usize>,
}

impl Resource {
    fn address(&self) -> String {
        format!("{}.{}", self.rtype, self.name)
    }
}

/// A resource with its configuration evaluated and its target on the server.
struct Planned {
    address: String,
    rtype: String,
    res_idx: usize,
    desired: Desired,
    action: Action,
}

enum Desired {
    Pool {
        project: String,
        location: String,
        id: String,
        body: Value,
    },
    Account {
        project: String,
        account_id: String,
        body: Value,
    },
    Member {
        /// The URL path of the resource carrying the policy (`/v1/...` or `/v3/...`).
        resource: String,
        /// How the provider names the resource in its errors.
        shown: String,
        role: String,
        member: String,
    },
}

#[derive(Debug, PartialEq)]
enum Action {
    Create,
    /// The differing fields: (path, old, new).
    Update(Vec<(String, Value, Value)>),
    NoOp,
}

struct Opts {
    path: PathBuf,
    vars: Vec<(String, String)>,
}

fn parse_args(args: &[String]) -> Result<Opts> {
    let mut path = None;
    let mut vars = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let flag = a.trim_start_matches('-');
        if a.starts_with('-') {
            match flag.split_once('=') {
                Some(("var", kv)) => vars.push(kv.to_string()),
                None if flag == "var" => {
                    i += 1;
                    vars.push(
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| anyhow!("-var needs NAME=VALUE"))?,
                    );
                }
                // Nothing here prompts, so approval flags change nothing.
                _ if flag == "auto-approve" || flag == "input=false" || flag == "no-color" => {}
                _ => bail!("Unsupported option {a} (supported: -var NAME=VALUE, -auto-approve)."),
            }
        } else if path.is_none() {
            path = Some(PathBuf::from(a));
        } else {
            bail!("Too many command line arguments: {a}");
        }
        i += 1;
    }
    let vars = vars
        .into_iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("Invalid -var option {kv:?}: expected NAME=VALUE"))
        })
        .collect::<Result<_>>()?;
    Ok(Opts {
        path: path.unwrap_or_else(|| PathBuf::from(".")),
        vars,
    })
}

/// A failed plan or apply, as Terraform prints it: its error box (for stderr, as it is).
#[derive(Debug)]
pub struct Diagnostics(pub String);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Diagnostics {}

/// `terraform plan` (`apply` false) or `apply` with Terraform's arguments
/// (`[PATH] [-var NAME=VALUE]... [-auto-approve]`), printing what Terraform prints on stdout.
/// `default_project` is the client's `core/project`; `api` is called once the configuration
/// has been read. A failure the configuration explains is a [`Diagnostics`].
pub async fn run(
    args: &[String],
    apply: bool,
    default_project: Option<String>,
    api: impl Future<Output = Result<Api>>,
) -> Result<()> {
    let opts = parse_args(args)?;
    let files = tf_files(&opts.path)?;
    let mut sources = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow!("Failed to read {}: {e}", f.display()))?;
        let shown = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // hcl-rs bounds its own recursion (deeper nesting is a parse error; tests::fuzz).
        match hcl::parse(&text) {
            Ok(body) => sources.push((shown, text, body)),
            Err(e) => {
                return Err(fail(&[
                    format!("Invalid HCL in {shown}"),
                    String::new(),
                    e.to_string(),
                ]));
            }
        }
    }
    let config = match Config::load(default_project, sources, &opts.vars) {
        Ok(c) => c,
        Err(e) => return Err(fail(&[format!("{e:#}")])),
    };
    let api = api.await?;
    let plan = plan(&api, &config).await;
    let plan = match plan {
        Ok(p) => p,
        Err((idx, msg)) => return Err(fail_at(&config, idx, &msg)),
    };
    print_plan(&plan);
    let (add, change) = counts(&plan);
    if !apply {
        validate(&api, &config, &plan).await?;
        if add + change > 0 {
            println!(
                "\nNote: runpool keeps no plan file; run \"runpool terraform apply\" to apply \
                 these changes."
            );
        }
        return Ok(());
    }
    if add + change == 0 {
        println!("\nApply complete! Resources: 0 added, 0 changed, 0 destroyed.");
        return Ok(());
    }
    println!();
    let (mut added, mut changed) = (0, 0);
    for p in &plan {
        match &p.action {
            Action::NoOp => continue,
            Action::Create => println!("{}: Creating...", p.address),
            Action::Update(_) => println!("{}: Modifying... [id={}]", p.address, id_of(&p.desired)),
        }
        let started = std::time::Instant::now();
        if let Err(msg) = execute(&api, p).await {
            return Err(fail_at(&config, p.res_idx, &msg));
        }
        let secs = started.elapsed().as_secs();
        match p.action {
            Action::Create => {
                added += 1;
                println!(
                    "{}: Creation complete after {secs}s [id={}]",
                    p.address,
                    id_of(&p.desired)
                );
            }
            _ => {
                changed += 1;
                println!(
                    "{}: Modifications complete after {secs}s [id={}]",
                    p.address,
                    id_of(&p.desired)
                );
            }
        }
    }
    println!("\nApply complete! Resources: {added} added, {changed} changed, 0 destroyed.");
    Ok(())
}

fn tf_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "No configuration files: the directory {} has no .tf file.",
                path.display()
            );
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        bail!("No such file or directory: {}", path.display())
    }
}

/// Terraform's error box for these lines (the first is the error's summary).
fn fail(lines: &[String]) -> anyhow::Error {
    let _ = std::io::stdout().flush();
    let mut out = String::from("╷\n");
    for (i, l) in lines.iter().enumerate() {
        if i == 0 {
            out += &format!("│ Error: {l}\n");
        } else if l.is_empty() {
            out += "│\n";
        } else {
            for sub in l.lines() {
                out += &format!("│ {sub}\n");
            }
        }
    }
    out += "╵\n";
    Diagnostics(out).into()
}

fn fail_at(config: &Config, idx: usize, msg: &str) -> anyhow::Error {
    let r = &config.resources[idx];
    let mut lines = vec![
        msg.to_string(),
        String::new(),
        format!("  with {},", r.address()),
    ];
    if let Some(n) = r.line {
        lines.push(format!(
            "  on {} line {n}, in resource \"{}\" \"{}\":",
            r.file, r.rtype, r.name
        ));
    }
    lines.push(String::new());
    fail(&lines)
}

// ---------------------------------------------------------------------------------------------
// Reading the configuration

struct Config {
    resources: Vec<Resource>,
    /// Evaluated bodies, by resource index.
    nodes: Vec<Node>,
    project: Option<String>,
    region: Option<String>,
}

fn to_json(v: hcl::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn to_hcl(v: &Value) -> hcl::Value {
    hcl::to_value(v).unwrap_or(hcl::Value::Null)
}

fn eval_body(body: &hcl::Body, ctx: &Context) -> Result<Node, String> {
    let mut node = Node::default();
    for attr in body.attributes() {
        let key = attr.key();
        if matches!(key, "depends_on" | "provider" | "lifecycle") {
            continue;
        }
        let v = attr.expr().evaluate(ctx).map_err(|e| e.to_string())?;
        node.attrs.insert(key.to_string(), to_json(v));
    }
    for b in body.blocks() {
        if b.identifier() == "lifecycle" {
            continue;
        }
        node.blocks
            .push((b.identifier().to_string(), eval_body(b.body(), ctx)?));
    }
    Ok(node)
}

fn line_of(text: &str, rtype: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with("resource")
                && t.contains(&format!("\"{rtype}\""))
                && (t.contains(&format!("\"{name}\"")) || t.contains(&format!(" {name} ")))
        })
        .map(|i| i + 1)
}

impl Config {
    fn load(
        default_project: Option<String>,
        sources: Vec<(String, String, hcl::Body)>,
        cli_vars: &[(String, String)],
    ) -> Result<Config> {
        let mut vars = Map::new();
        let mut locals: Vec<hcl::Attribute> = vec![];
        let mut provider: Option<hcl::Body> = None;
        let mut resources = vec![];
        for (file, text, body) in sources {
            for b in body.blocks() {
                let labels: Vec<String> =
                    b.labels().iter().map(|l| l.as_str().to_string()).collect();
                match (b.identifier(), labels.as_slice()) {
                    ("variable", [name]) => {
                        let from_cli = cli_vars.iter().rev().find(|(k, _)| k == name);
                        let from_env = std::env::var(format!("TF_VAR_{name}")).ok();
                        let v = if let Some((_, v)) = from_cli {
                            json!(v)
                        } else if let Some(v) = from_env {
                            json!(v)
                        } else if let Some(d) = b.body().attributes().find(|a| a.key() == "default")
                        {
                            to_json(d.expr().evaluate(&Context::new()).map_err(|e| {
                                anyhow!("Invalid default value for variable \"{name}\": {e}")
                            })?)
                        } else {
                            bail!(
                                "No value for required variable\n\nThe root module input variable \"{name}\" is not set, and has no default value. Use a -var command line argument or TF_VAR_{name} to provide a value."
                            );
                        };
                        vars.insert(name.clone(), v);
                    }
                    ("locals", []) => locals.extend(b.body().attributes().cloned()),
                    ("provider", [p]) if p == "google" || p == "google-beta" => {
                        provider = Some(b.body().clone())
                    }
                    ("terraform", _) | ("output", _) => {}
                    ("resource", [rtype, name]) => {
                        if ![POOL, SA, SA_IAM, PROJECT_IAM].contains(&rtype.as_str()) {
                            bail!(
                                "Unsupported resource type \"{rtype}\" (runpool knows {POOL}, {SA}, {SA_IAM} and {PROJECT_IAM})."
                            );
                        }
                        if b.body()
                            .attributes()
                            .any(|a| a.key() == "count" || a.key() == "for_each")
                        {
                            bail!("{rtype}.{name}: count and for_each are not supported.");
                        }
                        resources.push(Resource {
                            line: line_of(&text, rtype, name),
                            file: file.clone(),
                            rtype: rtype.clone(),
                            name: name.clone(),
                            body: b.body().clone(),
                        });
                    }
                    (other, _) => bail!("Unsupported block type \"{other}\"."),
                }
            }
        }
        for (k, _) in cli_vars {
            if !vars.contains_key(k) {
                bail!(
                    "Value for undeclared variable\n\nA variable named \"{k}\" was assigned on the command line, but the root module does not declare a variable of that name."
                );
            }
        }
        let mut hctx = Context::new();
        hctx.declare_var("var", to_hcl(&Value::Object(vars)));
        // Locals may refer to each other: evaluate until nothing more resolves.
        let mut local_vals = Map::new();
        let mut pending = locals;
        while !pending.is_empty() {
            hctx.declare_var("local", to_hcl(&Value::Object(local_vals.clone())));
            let before = pending.len();
            let mut errors = vec![];
            pending.retain(|a| match a.expr().evaluate(&hctx) {
                Ok(v) => {
                    local_vals.insert(a.key().to_string(), to_json(v));
                    false
                }
                Err(e) => {
                    errors.push(format!("local.{}: {e}", a.key()));
                    true
                }
            });
            if pending.len() == before {
                bail!("Invalid reference\n\n{}", errors.join("\n"));
            }
        }
        hctx.declare_var("local", to_hcl(&Value::Object(local_vals)));
        let mut project = None;
        let mut region = None;
        if let Some(p) = &provider {
            let n = eval_body(p, &hctx).map_err(|e| anyhow!("provider \"google\": {e}"))?;
            project = n.str("project");
            region = n.str("region");
        }
        let project = project.or(default_project);
        // Resources may refer to each other's attributes: evaluate until nothing more
        // resolves (that is also the dependency order).
        let mut nodes: Vec<Option<Node>> = vec![None; resources.len()];
        let mut attrs: Map<String, Value> = Map::new();
        loop {
            let mut progress = false;
            let mut errors = vec![];
            for (k, v) in &attrs {
                hctx.declare_var(k.as_str(), to_hcl(v));
            }
            for (i, r) in resources.iter().enumerate() {
                if nodes[i].is_some() {
                    continue;
                }
                match eval_body(&r.body, &hctx) {
                    Ok(n) => {
                        let exported = exported_attrs(r, &n, project.as_deref(), region.as_deref());
                        attrs.entry(r.rtype.clone()).or_insert_with(|| json!({}))[&r.name] =
                            exported;
                        nodes[i] = Some(n);
                        progress = true;
                    }
                    Err(e) => errors.push(format!("{}: {e}", r.address())),
                }
            }
            if nodes.iter().all(Option::is_some) {
                break;
            }
            if !progress {
                bail!(
                    "Reference to undeclared resource or value\n\n{}",
                    errors.join("\n")
                );
            }
        }
        Ok(Config {
            resources,
            nodes: nodes.into_iter().map(Option::unwrap_or_default).collect(),
            project,
            region,
        })
    }
}

/// The attributes other resources can refer to (what the provider knows before apply).
fn exported_attrs(r: &Resource, n: &Node, project: Option<&str>, region: Option<&str>) -> Value {
    let mut out = Value::Object(n.attrs.clone());
    let project = n
        .str("project")
        .or(project.map(str::to_string))
        .unwrap_or_default();
    out["project"] = json!(project);
    match r.rtype.as_str() {
        SA => {
            let email = format!(
                "{}@{project}.iam.gserviceaccount.com",
                n.str("account_id").unwrap_or_default()
            );
            let name = format!("projects/{project}/serviceAccounts/{email}");
            out["email"] = json!(email);
            out["member"] = json!(format!("serviceAccount:{email}"));
            out["name"] = json!(name);
            out["id"] = json!(name);
        }
        POOL => {
            let location = n
                .str("location")
                .or(region.map(str::to_string))
                .unwrap_or_default();
            out["location"] = json!(location);
            out["id"] = json!(format!(
                "projects/{project}/locations/{location}/workerPools/{}",
                n.str("name").unwrap_or_default()
            ));
        }
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Configuration → API bodies

fn str_map(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| v.is_object()).cloned()
}

/// The provider's top-level arguments of `google_cloud_run_v2_worker_pool`.
const POOL_ARGS: &[&str] = &[
    "name",
    "location",
    "project",
    "description",
    "labels",
    "annotations",
    "client",
    "client_version",
    "launch_stage",
    "deletion_protection",
    "deletion_policy",
    "custom_audiences",
];

fn pool_body(n: &Node) -> Result<Value, String> {
    // Terraform refuses an argument the schema lacks; ignoring it would deploy something else
    // than the file says (e.g. `service_account` outside `template`, which then runs the pool
    // as the default account).
    if let Some(k) = n.attrs.keys().find(|k| !POOL_ARGS.contains(&k.as_str())) {
        let hint = if k == "service_account" {
            " The service identity is set inside the block: template { service_account = ... }."
        } else {
            ""
        };
        return Err(format!(
            "Unsupported argument: An argument named \"{k}\" is not expected here.{hint}"
        ));
    }
    let mut body = json!({});
    for (tf, api) in [
        ("description", "description"),
        ("launch_stage", "launchStage"),
        ("client", "client"),
        ("client_version", "clientVersion"),
    ] {
        if let Some(v) = n.str(tf) {
            body[api] = json!(v);
        }
    }
    if body.get("client").is_none() {
        body["client"] = json!(CLIENT);
    }
    for (tf, api) in [("labels", "labels"), ("annotations", "annotations")] {
        if let Some(v) = str_map(n.attrs.get(tf)) {
            body[api] = v;
        }
    }
    let Some(t) = n.block("template") else {
        return Err("Missing required argument: The argument \"template\" is required, but no definition was found.".into());
    };
    let mut template = json!({});
    if let Some(sa) = t.str("service_account") {
        template["serviceAccount"] = json!(sa);
    }
    if let Some(r) = t.str("revision") {
        template["revision"] = json!(r);
    }
    for (tf, api) in [("labels", "labels"), ("annotations", "annotations")] {
        if let Some(v) = str_map(t.attrs.get(tf)) {
            template[api] = v;
        }
    }
    let mut containers = vec![];
    for c in t.all("containers") {
        let Some(image) = c.str("image") else {
            return Err("Missing required argument: The argument \"image\" is required, but no definition was found.".into());
        };
        let mut cj = json!({"image": image});
        if let Some(name) = c.str("name") {
            cj["name"] = json!(name);
        }
        for k in ["command", "args"] {
            if let Some(v) = c.attrs.get(k) {
                cj[k] = v.clone();
            }
        }
        if let Some(w) = c.str("working_dir") {
            cj["workingDir"] = json!(w);
        }
        let env: Vec<Value> = c
            .all("env")
            .iter()
            .map(|e| json!({"name": e.str("name").unwrap_or_default(), "value": e.str("value").unwrap_or_default()}))
            .collect();
        if !env.is_empty() {
            cj["env"] = json!(env);
        }
        if let Some(limits) = c.block("resources").and_then(|r| r.attrs.get("limits")) {
            cj["resources"] = json!({"limits": limits});
        }
        containers.push(cj);
    }
    template["containers"] = json!(containers);
    body["template"] = template;
    if let Some(s) = n.block("scaling") {
        let mut scaling = json!({});
        if let Some(m) = s.str("scaling_mode") {
            scaling["scalingMode"] = json!(m);
        }
        for (tf, api) in [
            ("manual_instance_count", "manualInstanceCount"),
            ("min_instance_count", "minInstanceCount"),
            ("max_instance_count", "maxInstanceCount"),
        ] {
            if let Some(v) = s.attrs.get(tf) {
                let n = match v {
                    Value::String(s) => s
                        .parse::<i64>()
                        .map_err(|_| format!("{tf}: a number is required"))?,
                    other => other
                        .as_i64()
                        .ok_or_else(|| format!("{tf}: a number is required"))?,
                };
                scaling[api] = json!(n);
            }
        }
        body["scaling"] = scaling;
    }
    if let Some(v) = n.attrs.get("deletion_protection")
        && !v.is_boolean()
    {
        return Err("deletion_protection: a bool is required".into());
    }
    Ok(body)
}

/// Whether a configured value equals what the server has (missing, null and empty agree).
fn diff(path: &str, want: &Value, have: &Value, out: &mut Vec<(String, Value, Value)>) {
    let empty = |v: &Value| {
        v.is_null()
            || v.as_object().is_some_and(|o| o.is_empty())
            || v.as_array().is_some_and(|a| a.is_empty())
            || v.as_str().is_some_and(str::is_empty)
    };
    match (want, have) {
        (Value::Object(w), _) if have.is_object() || have.is_null() => {
            for (k, v) in w {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(&p, v, have.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (a, b)) in w.iter().zip(h).enumerate() {
                diff(&format!("{path}[{i}]"), a, b, out);
            }
        }
        _ if empty(want) && empty(have) => {}
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a))
            if a.to_string() == *b => {}
        _ if want == have => {}
        _ => out.push((path.to_string(), have.clone(), want.clone())),
    }
}

fn iam_target(rtype: &str, n: &Node, project: Option<&str>) -> Result<(String, String), String> {
    if rtype == SA_IAM {
        let id = n
            .str("service_account_id")
            .ok_or("Missing required argument: service_account_id")?;
        let name = if id.starts_with("projects/") {
            id
        } else {
            format!("projects/-/serviceAccounts/{id}")
        };
        Ok((format!("/v1/{name}"), format!("service account '{name}'")))
    } else {
        let p = n
            .str("project")
            .or(project.map(str::to_string))
            .ok_or("Missing required argument: project")?;
        Ok((format!("/v3/projects/{p}"), format!("project \"{p}\"")))
    }
}

async fn plan(api: &Api, config: &Config) -> Result<Vec<Planned>, (usize, String)> {
    // The order of apply: accounts, then grants, then pools (what a pool's deploy checks).
    let rank = |t: &str| match t {
        SA => 0,
        SA_IAM | PROJECT_IAM => 1,
        _ => 2,
    };
    let mut order: Vec<usize> = (0..config.resources.len()).collect();
    order.sort_by_key(|i| rank(&config.resources[*i].rtype));
    let mut out = vec![];
    for i in order {
        let r = &config.resources[i];
        let n = &config.nodes[i];
        let err = |m: String| (i, m);
        let project = n
            .str("project")
            .or(config.project.clone())
            .ok_or_else(|| err("project: the project is not set (provider \"google\" { project = ... } or runpool config set project).".into()))?;
        let (desired, action) = match r.rtype.as_str() {
            POOL => {
                let id = n
                    .str("name")
                    .ok_or_else(|| err("Missing required argument: name".into()))?;
                let location = n
                    .str("location")
                    .or(config.region.clone())
                    .ok_or_else(|| err("Missing required argument: location".into()))?;
                let body = pool_body(n).map_err(err)?;
                let current = get_pool(api, &v2_path(&project, &location, &id))
                    .await
                    .map_err(|e| err(format!("Error reading WorkerPool: {}", googleapi(&e))))?;
                let action = match current {
                    None => Action::Create,
                    Some(cur) => {
                        let mut d = vec![];
                        let mut want = body.clone();
                        want.as_object_mut().map(|o| o.remove("client"));
                        diff("", &want, &cur, &mut d);
                        if d.is_empty() {
                            Action::NoOp
                        } else {
                            Action::Update(d)
                        }
                    }
                };
                (
                    Desired::Pool {
                        project,
                        location,
                        id,
                        body,
                    },
                    action,
                )
            }
            SA => {
                let account_id = n
                    .str("account_id")
                    .ok_or_else(|| err("Missing required argument: account_id".into()))?;
                let mut body = json!({});
                if let Some(d) = n.str("display_name") {
                    body["displayName"] = json!(d);
                }
                if let Some(d) = n.str("description") {
                    body["description"] = json!(d);
                }
                let email = format!("{account_id}@{project}.iam.gserviceaccount.com");
                let action = match api
                    .get(&format!("/v1/projects/{project}/serviceAccounts/{email}"))
                    .await
                {
                    Ok(cur) => {
                        let mut d = vec![];
                        diff("", &body, &cur, &mut d);
                        if d.is_empty() {
                            Action::NoOp
                        } else {
                            Action::Update(d)
                        }
                    }
                    Err(e) if has_status(&e, "NOT_FOUND") => Action::Create,
                    Err(e) => {
                        return Err(err(format!(
                            "Error reading service account: {}",
                            googleapi(&e)
                        )));
                    }
                };
                (
                    Desired::Account {
                        project,
                        account_id,
                        body,
                    },
                    action,
                )
            }
            _ => {
                let (resource, shown) = iam_target(&r.rtype, n, Some(&project)).map_err(err)?;
                let role = n
                    .str("role")
                    .ok_or_else(|| err("Missing required argument: role".into()))?;
                let member = n
                    .str("member")
                    .ok_or_else(|| err("Missing required argument: member".into()))?;
                // A grant on an account this plan creates is to add; nothing to read yet.
                let on_new_account = out.iter().any(|p: &Planned| {
                    p.action == Action::Create
                        && matches!(&p.desired, Desired::Account { project, account_id, .. }
                            if resource.ends_with(&format!("/{account_id}@{project}.iam.gserviceaccount.com")))
                });
                let action = if on_new_account {
                    Action::Create
                } else {
                    match get_policy(api, &resource).await {
                        Ok(p) if has_member(&p, &role, &member) => Action::NoOp,
                        Ok(_) => Action::Create,
                        Err(e) => {
                            return Err(err(format!(
                                "Error retrieving IAM policy for {shown}: {}",
                                googleapi(&e)
                            )));
                        }
                    }
                };
                (
                    Desired::Member {
                        resource,
                        shown,
                        role,
                        member,
                    },
                    action,
                )
            }
        };
        out.push(Planned {
            address: r.address(),
            rtype: r.rtype.clone(),
            res_idx: i,
            desired,
            action,
        });
    }
    Ok(out)
}

async fn get_policy(api: &Api, resource: &str) -> Result<Value> {
    api.post(
        &format!("{resource}:getIamPolicy"),
        &json!({"options": {"requestedPolicyVersion": 3}}),
    )
    .await
}

fn has_member(policy: &Value, role: &str, member: &str) -> bool {
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| {
            b["role"] == role
                && b.get("condition").is_none_or(Value::is_null)
                && b["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x == member))
        })
}

fn counts(plan: &[Planned]) -> (usize, usize) {
    let add = plan.iter().filter(|p| p.action == Action::Create).count();
    let change = plan
        .iter()
        .filter(|p| matches!(p.action, Action::Update(_)))
        .count();
    (add, change)
}

fn id_of(d: &Desired) -> String {
    match d {
        Desired::Pool {
            project,
            location,
            id,
            ..
        } => {
            format!("projects/{project}/locations/{location}/workerPools/{id}")
        }
        Desired::Account {
            project,
            account_id,
            ..
        } => {
            format!(
                "projects/{project}/serviceAccounts/{account_id}@{project}.iam.gserviceaccount.com"
            )
        }
        Desired::Member {
            resource,
            role,
            member,
            ..
        } => format!(
            "{}/{role}/{member}",
            resource
                .trim_start_matches("/v1/")
                .trim_start_matches("/v3/")
        ),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Leaf fields of a body, flattened (`template.containers[0].image`).
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, x, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for (i, x) in a.iter().enumerate() {
                leaves(&format!("{prefix}[{i}]"), x, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn print_plan(plan: &[Planned]) {
    let (add, change) = counts(plan);
    if add + change == 0 {
        println!("No changes. Your infrastructure matches the configuration.");
        return;
    }
    println!(
        "Terraform used the selected providers to generate the following execution plan.\n\
         Resource actions are indicated with the following symbols:"
    );
    if add > 0 {
        println!("  + create");
    }
    if change > 0 {
        println!("  ~ update in-place");
    }
    println!("\nTerraform will perform the following actions:");
    for p in plan {
        let (rtype, name) = p.address.split_once('.').unwrap_or((&p.address, ""));
        match &p.action {
            Action::NoOp => {}
            Action::Create => {
                println!("\n  # {} will be created", p.address);
                println!("  + resource \"{rtype}\" \"{name}\" {{");
                let mut l = vec![];
                let body = match &p.desired {
                    Desired::Pool {
                        id,
                        location,
                        project,
                        body,
                    } => {
                        let mut b = body.clone();
                        b["name"] = json!(id);
                        b["location"] = json!(location);
                        b["project"] = json!(project);
                        b
                    }
                    Desired::Account {
                        project,
                        account_id,
                        body,
                    } => {
                        let mut b = body.clone();
                        b["accountId"] = json!(account_id);
                        b["project"] = json!(project);
                        b["email"] =
                            json!(format!("{account_id}@{project}.iam.gserviceaccount.com"));
                        b
                    }
                    Desired::Member {
                        role,
                        member,
                        shown,
                        ..
                    } => {
                        json!({"resource": shown, "role": role, "member": member})
                    }
                };
                leaves("", &body, &mut l);
                for (k, v) in l {
                    println!("      + {k} = {}", show(&v));
                }
                println!("    }}");
            }
            Action::Update(changes) => {
                println!("\n  # {} will be updated in-place", p.address);
                println!("  ~ resource \"{rtype}\" \"{name}\" {{");
                println!("        id = \"{}\"", id_of(&p.desired));
                for (k, old, new) in changes {
                    println!("      ~ {k} = {} -> {}", show(old), show(new));
                }
                println!("    }}");
            }
        }
    }
    println!("\nPlan: {add} to add, {change} to change, 0 to destroy.");
}

/// `plan`: ask the server to validate each pool it would create or change. Skipped when an
/// account or grant earlier in the plan is pending (the answer would change after them).
async fn validate(api: &Api, config: &Config, plan: &[Planned]) -> Result<()> {
    let prerequisites_pending = plan
        .iter()
        .any(|p| p.rtype != POOL && p.action != Action::NoOp);
    for p in plan {
        let Desired::Pool {
            project,
            location,
            id,
            body,
        } = &p.desired
        else {
            continue;
        };
        let result = match &p.action {
            Action::NoOp => continue,
            _ if prerequisites_pending => {
                println!(
                    "\nNote: {} was not validated against the server: it depends on changes earlier in this plan.",
                    p.address
                );
                continue;
            }
            Action::Create => {
                api.call(
                    Method::POST,
                    &format!("/v2/projects/{project}/locations/{location}/workerPools"),
                    &[
                        ("workerPoolId", id.clone()),
                        ("validateOnly", "true".into()),
                    ],
                    Some(body),
                )
                .await
            }
            Action::Update(_) => {
                api.call(
                    Method::PATCH,
                    &v2_path(project, location, id),
                    &[("validateOnly", "true".into())],
                    Some(body),
                )
                .await
            }
        };
        if let Err(e) = result {
            let verb = if p.action == Action::Create {
                "creating"
            } else {
                "updating"
            };
            return Err(fail_at(
                config,
                p.res_idx,
                &format!("Error {verb} WorkerPool: {}", googleapi(&e)),
            ));
        }
    }
    Ok(())
}

/// One step of apply, through the calls the provider makes.
async fn execute(api: &Api, p: &Planned) -> Result<(), String> {
    match (&p.desired, &p.action) {
        (
            Desired::Pool {
                project,
                location,
                id,
                body,
            },
            Action::Create,
        ) => {
            let op = api
                .call(
                    Method::POST,
                    &format!("/v2/projects/{project}/locations/{location}/workerPools"),
                    &[("workerPoolId", id.clone())],
                    Some(body),
                )
                .await
                .map_err(|e| format!("Error creating WorkerPool: {}", googleapi(&e)))?;
            api.wait_silently(op)
                .await
                .map_err(|e| format!("Error waiting to create WorkerPool: {}", googleapi(&e)))?;
        }
        (
            Desired::Pool {
                project,
                location,
                id,
                body,
            },
            Action::Update(_),
        ) => {
            let path = v2_path(project, location, id);
            let op = api
                .call(Method::PATCH, &path, &[], Some(body))
                .await
                .map_err(|e| {
                    format!(
                        "Error updating WorkerPool \"{}\": {}",
                        path.trim_start_matches("/v2/"),
                        googleapi(&e)
                    )
                })?;
            api.wait_silently(op)
                .await
                .map_err(|e| format!("Error waiting to update WorkerPool: {}", googleapi(&e)))?;
        }
        (
            Desired::Account {
                project,
                account_id,
                body,
            },
            Action::Create,
        ) => {
            api.post(
                &format!("/v1/projects/{project}/serviceAccounts"),
                &json!({"accountId": account_id, "serviceAccount": body}),
            )
            .await
            .map_err(|e| format!("Error creating service account: {}", googleapi(&e)))?;
        }
        (
            Desired::Account {
                project,
                account_id,
                body,
            },
            Action::Update(_),
        ) => {
            let mask: Vec<&str> = body
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            api.call(
                Method::PATCH,
                &format!("/v1/projects/{project}/serviceAccounts/{account_id}@{project}.iam.gserviceaccount.com"),
                &[],
                Some(&json!({"serviceAccount": body, "updateMask": mask.join(",")})),
            )
            .await
            .map_err(|e| format!("Error updating service account: {}", googleapi(&e)))?;
        }
        (
            Desired::Member {
                resource,
                shown,
                role,
                member,
            },
            Action::Create,
        ) => {
            // Read–modify–write with the etag, retried on a concurrent change.
            for attempt in 0..5 {
                let mut policy = get_policy(api, resource).await.map_err(|e| {
                    format!("Error retrieving IAM policy for {shown}: {}", googleapi(&e))
                })?;
                if has_member(&policy, role, member) {
                    return Ok(());
                }
                runpool_client::iam::add_binding(
                    &mut policy,
                    member,
                    role,
                    &runpool_client::iam::CondArg::None,
                )
                .map_err(|e| e.to_string())?;
                match api
                    .post(
                        &format!("{resource}:setIamPolicy"),
                        &json!({"policy": policy}),
                    )
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) if has_status(&e, "ABORTED") && attempt < 4 => {
                        tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                    }
                    Err(e) => {
                        return Err(format!(
                            "Error applying IAM policy for {shown}: Error setting IAM policy for {shown}: {}",
                            googleapi(&e)
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// An API error in Terraform's words: `googleapi: Error 403: MESSAGE`.
pub fn googleapi(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ApiError>() {
        Some(a) => format!("googleapi: Error {}: {}", a.code, a.message),
        None => format!("{e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_ignores_unset_and_empty_and_reports_changes() {
        let mut d = vec![];
        diff(
            "",
            &json!({"labels": {}, "template": {"serviceAccount": "b", "containers": [{"image": "i"}]}, "scaling": {"manualInstanceCount": 2}}),
            &json!({"uid": "u", "template": {"serviceAccount": "a", "containers": [{"image": "i", "name": "c"}]}, "scaling": {"manualInstanceCount": 2}}),
            &mut d,
        );
        assert_eq!(
            d,
            vec![(
                "template.serviceAccount".to_string(),
                json!("a"),
                json!("b")
            )]
        );
    }

    #[test]
    fn args_take_a_path_vars_and_approval() {
        let o = parse_args(&[
            "main.tf".into(),
            "-var".into(),
            "a=1".into(),
            "-var=b=2".into(),
            "-auto-approve".into(),
        ])
        .unwrap();
        assert_eq!(o.path, PathBuf::from("main.tf"));
        assert_eq!(
            o.vars,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(parse_args(&["-destroy".into()]).is_err());
    }

    #[test]
    fn pool_body_maps_the_providers_fields() {
        let body = hcl::parse(
            r#"
            template {
              service_account = "sa@p.iam.gserviceaccount.com"
              containers {
                image = "img"
                args  = ["--x"]
                env {
                  name  = "A"
                  value = "1"
                }
              }
            }
            scaling {
              scaling_mode          = "MANUAL"
              manual_instance_count = 2
            }
            launch_stage = "BETA"
            "#,
        )
        .unwrap();
        let n = eval_body(&body, &Context::new()).unwrap();
        let b = pool_body(&n).unwrap();
        assert_eq!(
            b["template"]["serviceAccount"],
            "sa@p.iam.gserviceaccount.com"
        );
        assert_eq!(
            b["template"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}])
        );
        assert_eq!(
            b["scaling"],
            json!({"scalingMode": "MANUAL", "manualInstanceCount": 2})
        );
        assert_eq!(b["launchStage"], "BETA");
    }

    mod fuzz {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

            #[test]
            fn any_text_is_hcl_or_refused(text in "[a-z_0-9 ={}\\[\\]().,\"$\n#*+-]{0,300}") {
                let _ = hcl::parse(&text);
            }

            #[test]
            fn deep_hcl_is_refused_not_a_crash(depth in 0usize..100_000, kind in 0usize..3) {
                let (open, close) = [("(", ")"), ("[", "]"), ("{a = ", "}")][kind];
                let text = format!("x = {}1{}\n", open.repeat(depth), close.repeat(depth));
                let r = hcl::parse(&text);
                if depth > 128 {
                    prop_assert!(r.is_err());
                }
            }
        }
    }
}
