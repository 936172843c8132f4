//! Worlds for `runpool serve --world`, built from the pieces the tests share rather than
//! written out in each file: the organization `example.com` whose owner is
//! `admin@example.com`, `app-project` where the worker pools run, `identity-project` (in the
//! folder `shared`) whose accounts they may run as, the developer `dev@example.com`, and the
//! names that follow from them (the pools' collection, the Cloud Run service agent, the
//! default compute account).
//! `Org::new().admin(ORG_ADMIN).project(app_project().developer()).yaml()`, for instance.

/// The organization's id.
pub const ORG_ID: &str = "100000000001";
/// app-project's number.
pub const APP_NUMBER: &str = "300000000001";
/// The worker pools of app-project in us-central1 (Cloud Run Admin API v2).
pub const POOLS: &str = "/v2/projects/app-project/locations/us-central1/workerPools";
macro_rules! agent_email {
    () => {
        "service-300000000001@serverless-robot-prod.iam.gserviceaccount.com"
    };
}
/// app-project's Cloud Run service agent.
pub const AGENT_EMAIL: &str = agent_email!();
/// The service agent as an IAM member.
pub const AGENT: &str = concat!("serviceAccount:", agent_email!());
/// app-project's default compute account: a pool's identity when it names none.
pub const DEFAULT_SA: &str = "300000000001-compute@developer.gserviceaccount.com";
/// The image of the pools the tests deploy (the runtime runs their commands, not the image).
pub const IMG: &str = "us-docker.pkg.dev/cloudrun/container/worker-pool:latest";

// roles/owner holds no organization or folder permissions; these do.
pub const ORG_ADMIN: &str = "roles/resourcemanager.organizationAdmin";
pub const FOLDER_ADMIN: &str = "roles/resourcemanager.folderAdmin";
pub const POLICY_ADMIN: &str = "roles/orgpolicy.policyAdmin";

/// The organization `example.com` and what it holds.
pub struct Org {
    admin_roles: Vec<&'static str>,
    raw: String,
    /// The folders and projects right under the organization.
    top: Folder,
    after: String,
}

/// A folder: its display name, id, and what it holds.
pub struct Folder {
    name: String,
    id: String,
    folders: Vec<Folder>,
    projects: Vec<Project>,
}

/// A project: its id, number and IAM bindings.
pub struct Project {
    id: String,
    number: String,
    iam: Vec<Binding>,
}

struct Binding {
    role: String,
    member: String,
    /// (title, expression)
    condition: Option<(String, String)>,
}

impl Org {
    /// `example.com` (id `ORG_ID`) with `admin@example.com` holding roles/owner, and nothing
    /// in it yet.
    pub fn new() -> Org {
        Org {
            admin_roles: vec![],
            raw: String::new(),
            top: folder("", ""),
            after: String::new(),
        }
    }

    /// `admin@example.com` also holds `role` on the organization.
    pub fn admin(mut self, role: &'static str) -> Org {
        self.admin_roles.push(role);
        self
    }

    pub fn folder(self, folder: Folder) -> Org {
        let top = self.top.folder(folder);
        Org { top, ..self }
    }

    pub fn project(self, project: Project) -> Org {
        let top = self.top.project(project);
        Org { top, ..self }
    }

    /// More of the organization as YAML written out (its keys at the left margin), for what
    /// the builder does not know: tag keys, org policies, folders and projects with tags.
    pub fn raw(mut self, yaml: &str) -> Org {
        self.raw.push_str(yaml);
        self
    }

    /// Top-level YAML after the organizations (`groups:`, for instance).
    pub fn after(mut self, yaml: &str) -> Org {
        self.after.push_str(yaml);
        self
    }

    pub fn yaml(&self) -> String {
        let admin: Vec<Binding> = std::iter::once("roles/owner")
            .chain(self.admin_roles.iter().copied())
            .map(|role| Binding {
                role: role.into(),
                member: "user:admin@example.com".into(),
                condition: None,
            })
            .collect();
        let org = format!("domain: example.com\nid: \"{ORG_ID}\"\n")
            + &list("iam", &admin, Binding::yaml)
            + &self.raw
            + &self.top.contents();
        list("organizations", &[org], String::clone) + &self.after
    }
}

impl Default for Org {
    fn default() -> Org {
        Org::new()
    }
}

/// What the tests of cross-project service accounts run in: `admin@example.com` also
/// administers the organization and its policies, `shared` is the folder of the identity
/// projects (`shared_folder()`, perhaps with more), `app` the project the pools run in.
pub fn cross_project(shared: Folder, app: Project) -> Org {
    Org::new()
        .admin(ORG_ADMIN)
        .admin(POLICY_ADMIN)
        .folder(shared)
        .project(app)
}

pub fn folder(name: &str, id: &str) -> Folder {
    Folder {
        name: name.into(),
        id: id.into(),
        folders: vec![],
        projects: vec![],
    }
}

/// The folder `shared` (id 200000000001) holding `identity-project`.
pub fn shared_folder() -> Folder {
    folder("shared", "200000000001").project(identity_project())
}

impl Folder {
    pub fn folder(mut self, folder: Folder) -> Folder {
        self.folders.push(folder);
        self
    }

    pub fn project(mut self, project: Project) -> Folder {
        self.projects.push(project);
        self
    }
}

pub fn project(id: &str, number: &str) -> Project {
    Project {
        id: id.into(),
        number: number.into(),
        iam: vec![],
    }
}

/// `app-project` (number `APP_NUMBER`): where the worker pools run.
pub fn app_project() -> Project {
    project("app-project", APP_NUMBER)
}

/// `identity-project` (number 300000000002): where cross-project accounts live.
pub fn identity_project() -> Project {
    project("identity-project", "300000000002")
}

impl Project {
    pub fn grant(mut self, role: &str, member: &str) -> Project {
        self.iam.push(Binding {
            role: role.into(),
            member: member.into(),
            condition: None,
        });
        self
    }

    /// A binding with a condition (`title`, CEL `expression`).
    pub fn grant_if(mut self, role: &str, member: &str, title: &str, expression: &str) -> Project {
        self.iam.push(Binding {
            role: role.into(),
            member: member.into(),
            condition: Some((title.into(), expression.into())),
        });
        self
    }

    /// `dev@example.com` holds roles/run.developer on the project.
    pub fn developer(self) -> Project {
        self.grant("roles/run.developer", "user:dev@example.com")
    }
}

impl Binding {
    fn yaml(&self) -> String {
        let mut y = format!("role: {}\nmembers: [{}]\n", self.role, self.member);
        if let Some((title, expression)) = &self.condition {
            // A JSON string is a double-quoted YAML scalar.
            let expression = serde_json::to_string(expression).unwrap();
            y += &format!("condition:\n  title: {title}\n  expression: {expression}\n");
        }
        y
    }
}

impl Folder {
    /// `folders:` and `projects:` of what it holds.
    fn contents(&self) -> String {
        let folder =
            |f: &Folder| format!("displayName: {}\nid: \"{}\"\n", f.name, f.id) + &f.contents();
        let project = |p: &Project| {
            format!("projectId: {}\nnumber: \"{}\"\n", p.id, p.number)
                + &list("iam", &p.iam, Binding::yaml)
        };
        list("folders", &self.folders, folder) + &list("projects", &self.projects, project)
    }
}

/// `key:` and the block list of `items`, each written by `entry` (its keys at the left
/// margin); nothing at all when there are none.
fn list<T>(key: &str, items: &[T], entry: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut y = format!("{key}:\n");
    for item in items {
        for (i, line) in entry(item).lines().enumerate() {
            y += if i == 0 { "  - " } else { "    " };
            y += line;
            y += "\n";
        }
    }
    y
}
