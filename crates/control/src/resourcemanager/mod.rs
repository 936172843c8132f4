//! Resource Manager v3: organizations, folders and projects, the hierarchy every allow policy
//! and org policy is inherited down.

pub mod orgpolicy;
pub mod tags;

use crate::base::allow::PolicyCheck;
use crate::base::error::{Error, Result};
use crate::base::state::{Change, State};
use crate::{Caller, Control};
use google_cloud_iam_v1::model::Binding;
use google_cloud_longrunning::model::Operation;
use google_cloud_resourcemanager_v3::model::{Folder, Organization, Project, folder, project};

pub use crate::base::hierarchy::{Kind, Node, SERVICE};
use crate::base::ids::new_number;
use crate::base::operation::done_operation;
use crate::base::time::now;

/// Folders' and projects' etags are weak: `W/"…"`.
fn weak_etag() -> String {
    crate::base::ids::etag("W/\"", "\"")
}

/// The changes that bring a new project into being: the project, what each service adds to
/// it ([`crate::PROJECT_PROVISIONERS`]), and its allow policy: the creator as owner (as Google
/// grants the creator), the services' grants, then `extra` bindings (a declared world's own).
pub(crate) fn project_changes(
    st: &State,
    project: &Project,
    creator: Option<&str>,
    extra: Vec<Binding>,
) -> Vec<Change> {
    let grant = |role: &str, member: &str| {
        let mut b = Binding::new();
        b.role = role.to_string();
        b.members = vec![member.to_string()];
        b
    };
    let mut changes = vec![Change::Project(project.clone())];
    let mut bindings: Vec<Binding> = creator
        .map(|c| grant("roles/owner", c))
        .into_iter()
        .collect();
    for provision in crate::PROJECT_PROVISIONERS {
        let p = provision(st, project);
        changes.extend(p.changes);
        bindings.extend(p.grants.iter().map(|(role, member)| grant(role, member)));
    }
    bindings.extend(extra);
    changes.push(Change::IamPolicy(
        project.name.clone(),
        crate::base::allow::new_policy(bindings),
    ));
    changes
}

/// Validate a project id as Google does: 6–30 characters, lowercase letters, digits and
/// hyphens, starting with a letter, not ending with a hyphen.
pub fn valid_project_id(id: &str) -> bool {
    let b = id.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// Split a search query into `key:value` / `key=value` terms joined by whitespace or `AND`;
/// a value may be double-quoted to hold spaces (`displayName="Test String"`).
fn query_terms(query: &str) -> Result<Vec<(String, String)>> {
    let mut tokens = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for ch in query.chars() {
        match ch {
            '"' => quoted = !quoted,
            // gcloud wraps its terms in parentheses (`lifecycleState:ACTIVE AND (id:x)`).
            c if (c.is_whitespace() || c == '(' || c == ')') && !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(Error::invalid(format!(
            "Invalid query '{query}': unbalanced quotes."
        )));
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
        .into_iter()
        .filter(|t| !t.eq_ignore_ascii_case("AND"))
        .map(|t| {
            if t == "OR" || t == "NOT" {
                return Err(Error::invalid(format!(
                    "Invalid query '{query}': only terms joined by AND are supported."
                )));
            }
            let (k, v) = t
                .split_once(':')
                .or_else(|| t.split_once('='))
                .ok_or_else(|| {
                    Error::invalid(format!("Invalid query term '{t}': expected key:value."))
                })?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

impl State {
    /// Whether a node and all its ancestors are active (not pending deletion).
    fn active(&self, name: &str) -> bool {
        if let Some(f) = self.folders.get(name) {
            return f.state == folder::State::Active;
        }
        if let Some(p) = self.projects.get(name) {
            return p.state == project::State::Active;
        }
        self.organizations.contains_key(name)
    }
}

impl Control {
    /// Resolve and authorize in one step.
    fn authorized_node(&self, caller: &Caller, name: &str, verb: &str) -> Result<Node> {
        let kind = Kind::of(name)
            .ok_or_else(|| Error::invalid(format!("Invalid resource name: '{name}'.")))?;
        let perm = kind.permission(verb);
        let node = self.node(name, &perm)?;
        self.authorize(caller, &perm, &node.target())?;
        Ok(node)
    }

    pub fn get_organization(&self, caller: &Caller, name: &str) -> Result<Organization> {
        let node = self.authorized_node(caller, name, "get")?;
        Ok(self.read().organizations[&node.name].clone())
    }

    /// Organizations the caller may get (Google's `organizations.search`).
    pub fn search_organizations(&self, caller: &Caller, query: &str) -> Vec<Organization> {
        let domain = query.strip_prefix("domain:").map(str::to_lowercase);
        let orgs: Vec<_> = self.read().organizations.values().cloned().collect();
        orgs.into_iter()
            .filter(|o| domain.as_ref().is_none_or(|d| o.display_name == *d))
            .filter(|o| {
                let node = Node {
                    kind: Kind::Organization,
                    name: o.name.clone(),
                    shown: o.name.clone(),
                };
                self.allowed(caller, "resourcemanager.organizations.get", &node.target())
            })
            .collect()
    }

    pub fn get_folder(&self, caller: &Caller, name: &str) -> Result<Folder> {
        let node = self.authorized_node(caller, name, "get")?;
        Ok(self.read().folders[&node.name].clone())
    }

    pub fn get_project(&self, caller: &Caller, name: &str) -> Result<Project> {
        let node = self.authorized_node(caller, name, "get")?;
        Ok(self.read().projects[&node.name].clone())
    }

    /// The project and its ancestors, nearest first, up to its organization (v1's
    /// `getAncestry`, which needs the project's `get`). v1 names the project by its id
    /// (`projects/my-project`), its ancestors by number.
    pub fn project_ancestry(&self, caller: &Caller, name: &str) -> Result<Vec<String>> {
        let node = self.authorized_node(caller, name, "get")?;
        let st = self.read();
        let mut chain = vec![format!("projects/{}", st.projects[&node.name].project_id)];
        let mut cursor = st.parent_of(&node.name);
        while let Some(parent) = cursor {
            chain.push(parent.to_string());
            cursor = st.parent_of(parent);
        }
        Ok(chain)
    }

    /// The direct children of `parent` of one kind, for `folders.list` / `projects.list`.
    pub fn list_children(
        &self,
        caller: &Caller,
        kind: Kind,
        parent: &str,
        show_deleted: bool,
    ) -> Result<(Vec<Folder>, Vec<Project>)> {
        if parent.is_empty() {
            return Err(Error::invalid(
                "parent is required, e.g. organizations/123 or folders/456.",
            ));
        }
        let perm = kind.permission("list");
        let node = self.node(parent, &perm)?;
        self.authorize(caller, &perm, &node.target())?;
        let st = self.read();
        let folders = st
            .folders
            .values()
            .filter(|f| kind == Kind::Folder && f.parent == node.name)
            .filter(|f| show_deleted || f.state == folder::State::Active)
            .cloned()
            .collect();
        let projects = st
            .projects
            .values()
            .filter(|p| kind == Kind::Project && p.parent == node.name)
            .filter(|p| show_deleted || p.state == project::State::Active)
            .cloned()
            .collect();
        Ok((folders, projects))
    }

    /// Every folder or project the caller may get, filtered by a simple `key:value` query
    /// (`parent:`, `id:`/`projectId:`, `displayName:`/`name:`, `state:`), terms AND-ed.
    pub fn search(
        &self,
        caller: &Caller,
        kind: Kind,
        query: &str,
    ) -> Result<(Vec<Folder>, Vec<Project>)> {
        let terms = query_terms(query)?;
        let perm = kind.permission("get");
        let st = self.read();
        let visible = |name: &str| {
            let node = Node {
                kind,
                name: name.to_string(),
                shown: name.to_string(),
            };
            self.allowed(caller, &perm, &node.target())
        };
        // A term matches a field exactly, or by prefix when it ends with `*` (`labels.k:*`:
        // the label is there). Field names are case-insensitive.
        let matches = |field: &dyn Fn(&str) -> Option<String>| {
            terms.iter().all(|(k, v)| {
                field(&k.to_ascii_lowercase()).is_some_and(|fv| {
                    *fv == **v || (v.ends_with('*') && fv.starts_with(v.trim_end_matches('*')))
                })
            })
        };
        let mut folders = vec![];
        let mut projects = vec![];
        match kind {
            Kind::Folder => {
                for f in st.folders.values() {
                    let field = |k: &str| -> Option<String> {
                        Some(match k {
                            "parent" => f.parent.clone(),
                            "displayname" => f.display_name.clone(),
                            "state" | "lifecyclestate" => {
                                f.state.name().unwrap_or_default().to_string()
                            }
                            _ => return None,
                        })
                    };
                    if matches(&field) && visible(&f.name) {
                        folders.push(f.clone());
                    }
                }
            }
            Kind::Project => {
                for p in st.projects.values() {
                    // v3's query and v1's filter name the same fields (`name` is the display
                    // name in both; v1 says `lifecycleState` and `parent.type`/`parent.id`).
                    let (parent_type, parent_id) = p.parent.split_once('/').unwrap_or_default();
                    let field = |k: &str| -> Option<String> {
                        Some(match k {
                            "parent" => p.parent.clone(),
                            "parent.type" => parent_type.trim_end_matches('s').to_string(),
                            "parent.id" => parent_id.to_string(),
                            "id" | "projectid" => p.project_id.clone(),
                            "displayname" | "name" => p.display_name.clone(),
                            "state" | "lifecyclestate" => {
                                p.state.name().unwrap_or_default().to_string()
                            }
                            _ => p.labels.get(k.strip_prefix("labels.")?)?.clone(),
                        })
                    };
                    if matches(&field) && visible(&p.name) {
                        projects.push(p.clone());
                    }
                }
            }
            Kind::Organization => {}
        }
        Ok((folders, projects))
    }

    /// The parent a new folder or project goes under: it must exist, be active, and the
    /// caller must be allowed to create `kind` there.
    fn creation_parent(&self, caller: &Caller, kind: Kind, parent: &str) -> Result<Node> {
        let perm = kind.permission("create");
        let node = self.node(parent, &perm)?;
        if node.kind == Kind::Project {
            return Err(Error::invalid(format!(
                "Invalid parent '{parent}': must be an organization or a folder."
            )));
        }
        self.authorize(caller, &perm, &node.target())?;
        if !self.read().active(&node.name) {
            return Err(Error::failed_precondition(format!(
                "Parent {parent} is not active."
            )));
        }
        Ok(node)
    }

    pub fn create_folder(&self, caller: &Caller, mut folder: Folder) -> Result<Operation> {
        if folder.display_name.trim().is_empty() || folder.display_name.chars().count() > 30 {
            return Err(Error::invalid("display_name must be 1 to 30 characters."));
        }
        let parent = self.creation_parent(caller, Kind::Folder, &folder.parent)?;
        self.write(|st| {
            let taken = st.folders.values().any(|f| {
                f.parent == parent.name
                    && f.display_name == folder.display_name
                    && f.state == folder::State::Active
            });
            if taken {
                // Google answers a folder constraint violation with FAILED_PRECONDITION.
                return Err(Error::failed_precondition(
                    "The folder operation violates display name uniqueness within the parent.",
                ));
            }
            folder.name = format!("folders/{}", new_number(st));
            folder.parent = parent.name.clone();
            folder.state = folder::State::Active;
            folder.create_time = Some(now());
            folder.update_time = folder.create_time;
            folder.delete_time = None;
            folder.etag = weak_etag();
            let op = done_operation("cf", &folder)?;
            Ok((
                vec![
                    Change::Folder(folder.clone()),
                    Change::Operation(op.clone()),
                ],
                op,
            ))
        })
    }

    /// `projects.create`: the creator becomes the project's owner, and the Cloud Run service
    /// agent is granted its role, as when Google creates a project and enables the API.
    pub fn create_project(&self, caller: &Caller, mut project: Project) -> Result<Operation> {
        if !valid_project_id(&project.project_id) {
            return Err(Error::invalid(format!(
                "Project id '{}' is invalid: it must be 6 to 30 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen.",
                project.project_id
            )));
        }
        let parent = if project.parent.is_empty() {
            None
        } else {
            Some(self.creation_parent(caller, Kind::Project, &project.parent)?)
        };
        self.write(|st| {
            if st.project_ids.contains_key(&project.project_id) {
                return Err(Error::already_exists(format!(
                    "Requested entity already exists: project '{}'.",
                    project.project_id
                )));
            }
            let number = new_number(st);
            project.name = format!("projects/{number}");
            project.parent = parent.as_ref().map(|p| p.name.clone()).unwrap_or_default();
            project.state = project::State::Active;
            project.create_time = Some(now());
            project.update_time = project.create_time;
            project.delete_time = None;
            project.etag = weak_etag();
            let mut changes = project_changes(st, &project, Some(caller.member.as_str()), vec![]);
            let op = done_operation("cp", &project)?;
            changes.push(Change::Operation(op.clone()));
            Ok((changes, op))
        })
    }

    /// `patch` of display name and labels (the mutable fields).
    pub fn update_project(
        &self,
        caller: &Caller,
        name: &str,
        patch: Project,
        mask: &[String],
    ) -> Result<Operation> {
        let node = self.authorized_node(caller, name, "update")?;
        self.write(|st| {
            let mut p = st.projects[&node.name].clone();
            let all = mask.is_empty();
            for f in mask {
                if !matches!(f.as_str(), "display_name" | "displayName" | "labels") {
                    return Err(Error::invalid(format!("Field '{f}' cannot be updated.")));
                }
            }
            if all
                || mask
                    .iter()
                    .any(|f| f == "display_name" || f == "displayName")
            {
                p.display_name = patch.display_name.clone();
            }
            if all || mask.iter().any(|f| f == "labels") {
                p.labels = patch.labels.clone();
            }
            p.update_time = Some(now());
            p.etag = weak_etag();
            let op = done_operation("up", &p)?;
            Ok((vec![Change::Project(p), Change::Operation(op.clone())], op))
        })
    }

    pub fn update_folder(&self, caller: &Caller, name: &str, patch: Folder) -> Result<Operation> {
        let node = self.authorized_node(caller, name, "update")?;
        self.write(|st| {
            let mut f = st.folders[&node.name].clone();
            if patch.display_name.trim().is_empty() {
                return Err(Error::invalid("display_name must be 1 to 30 characters."));
            }
            f.display_name = patch.display_name.clone();
            f.update_time = Some(now());
            f.etag = weak_etag();
            let op = done_operation("uf", &f)?;
            Ok((vec![Change::Folder(f), Change::Operation(op.clone())], op))
        })
    }

    /// Delete (mark `DELETE_REQUESTED`) or undelete (back to `ACTIVE`) a folder or project.
    pub fn set_deleted(&self, caller: &Caller, name: &str, deleted: bool) -> Result<Operation> {
        let node =
            self.authorized_node(caller, name, if deleted { "delete" } else { "undelete" })?;
        self.write(|st| {
            let ts = deleted.then(now);
            match node.kind {
                Kind::Project => {
                    let mut p = st.projects[&node.name].clone();
                    let want = if deleted { project::State::DeleteRequested } else { project::State::Active };
                    if p.state == want {
                        return Err(Error::failed_precondition(format!(
                            "Project {} is already {}.",
                            node.shown,
                            want.name().unwrap_or_default()
                        )));
                    }
                    p.state = want;
                    p.delete_time = ts;
                    p.update_time = Some(now());
                    p.etag = weak_etag();
                    let op = done_operation(if deleted { "dp" } else { "ud" }, &p)?;
                    Ok((vec![Change::Project(p), Change::Operation(op.clone())], op))
                }
                Kind::Folder => {
                    let mut f = st.folders[&node.name].clone();
                    if deleted {
                        let has_children = st.folders.values().any(|c| c.parent == f.name && c.state == folder::State::Active)
                            || st.projects.values().any(|c| c.parent == f.name && c.state == project::State::Active);
                        if has_children {
                            return Err(Error::failed_precondition(format!(
                                "Folder {} is not empty: delete or move its folders and projects first.",
                                node.shown
                            )));
                        }
                    }
                    let want = if deleted { folder::State::DeleteRequested } else { folder::State::Active };
                    if f.state == want {
                        return Err(Error::failed_precondition(format!(
                            "Folder {} is already {}.",
                            node.shown,
                            want.name().unwrap_or_default()
                        )));
                    }
                    f.state = want;
                    f.delete_time = ts;
                    f.update_time = Some(now());
                    f.etag = weak_etag();
                    let op = done_operation(if deleted { "df" } else { "uf" }, &f)?;
                    Ok((vec![Change::Folder(f), Change::Operation(op.clone())], op))
                }
                Kind::Organization => Err(Error::invalid("Organizations cannot be deleted.")),
            }
        })
    }

    /// Move a folder or project under another organization or folder: `move` on the node
    /// and `create` on the destination.
    pub fn move_node(&self, caller: &Caller, name: &str, destination: &str) -> Result<Operation> {
        let node = self.authorized_node(caller, name, "move")?;
        let dest = self.creation_parent(caller, node.kind, destination)?;
        self.write(|st| {
            // A folder cannot move below itself.
            let mut cursor = Some(dest.name.clone());
            while let Some(c) = cursor {
                if c == node.name {
                    return Err(Error::failed_precondition(
                        "A folder cannot be moved below itself.",
                    ));
                }
                cursor = st.parent_of(&c).map(str::to_string);
            }
            match node.kind {
                Kind::Project => {
                    let mut p = st.projects[&node.name].clone();
                    p.parent = dest.name.clone();
                    p.update_time = Some(now());
                    p.etag = weak_etag();
                    let op = done_operation("mp", &p)?;
                    Ok((vec![Change::Project(p), Change::Operation(op.clone())], op))
                }
                Kind::Folder => {
                    let mut f = st.folders[&node.name].clone();
                    f.parent = dest.name.clone();
                    f.update_time = Some(now());
                    f.etag = weak_etag();
                    let op = done_operation("mf", &f)?;
                    Ok((vec![Change::Folder(f), Change::Operation(op.clone())], op))
                }
                Kind::Organization => Err(Error::invalid("Organizations cannot be moved.")),
            }
        })
    }

    pub fn get_operation(&self, name: &str) -> Result<Operation> {
        self.read()
            .operations
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Operation '{name}' not found.")))
    }

    fn node_for_iam(&self, name: &str, verb: &str) -> Result<(Node, String)> {
        let kind = Kind::of(name)
            .ok_or_else(|| Error::invalid(format!("Invalid resource name: '{name}'.")))?;
        let perm = kind.permission(verb);
        Ok((self.node(name, &perm)?, perm))
    }

    pub fn node_get_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        version: i32,
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let (node, perm) = self.node_for_iam(name, "getIamPolicy")?;
        self.get_iam_policy(caller, &node.target(), &perm, version)
    }

    pub fn node_set_iam_policy(
        &self,
        caller: &Caller,
        name: &str,
        policy: google_cloud_iam_v1::model::Policy,
        mask: &[String],
    ) -> Result<google_cloud_iam_v1::model::Policy> {
        let (node, perm) = self.node_for_iam(name, "setIamPolicy")?;
        let extra: Option<PolicyCheck> = (node.kind == Kind::Project)
            .then_some(crate::base::allow::no_public_members as PolicyCheck);
        self.set_iam_policy(caller, &node.target(), &perm, policy, mask, extra)
    }

    pub fn node_test_iam_permissions(
        &self,
        caller: &Caller,
        name: &str,
        permissions: &[String],
    ) -> Result<Vec<String>> {
        let (node, _) = self.node_for_iam(name, "get")?;
        self.test_iam_permissions(caller, &node.target(), permissions)
    }
}
