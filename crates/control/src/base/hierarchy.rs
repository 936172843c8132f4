//! The resource hierarchy every service names things in: organizations, folders and
//! projects, resolved from the names callers give to the canonical names the store keys.

use crate::base::error::{Error, Result};
use crate::base::state::State;
use crate::{Control, Target};

pub const SERVICE: &str = "cloudresourcemanager.googleapis.com";

/// The three kinds of node in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Organization,
    Folder,
    Project,
}

impl Kind {
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Organization => "organizations",
            Kind::Folder => "folders",
            Kind::Project => "projects",
        }
    }
    pub fn resource_type(self) -> &'static str {
        match self {
            Kind::Organization => "cloudresourcemanager.googleapis.com/Organization",
            Kind::Folder => "cloudresourcemanager.googleapis.com/Folder",
            Kind::Project => "cloudresourcemanager.googleapis.com/Project",
        }
    }
    /// `resourcemanager.projects.VERB`
    pub fn permission(self, verb: &str) -> String {
        format!("resourcemanager.{}.{verb}", self.collection())
    }
    pub fn of(name: &str) -> Option<Kind> {
        match name.split('/').next()? {
            "organizations" => Some(Kind::Organization),
            "folders" => Some(Kind::Folder),
            "projects" => Some(Kind::Project),
            _ => None,
        }
    }
}

/// A hierarchy node named by a caller, resolved to its canonical name.
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    /// `projects/123456789012`
    pub name: String,
    /// As the caller wrote it, e.g. `projects/demo-project`.
    pub shown: String,
}

impl Node {
    pub fn target(&self) -> Target<'_> {
        Target {
            name: &self.name,
            shown: &self.shown,
            resource_type: self.kind.resource_type(),
            service: SERVICE,
        }
    }
}

impl State {
    /// Resolve `organizations/N`, `folders/N`, `projects/ID` or `projects/NUMBER`.
    pub fn resolve(&self, name: &str) -> Option<Node> {
        let kind = Kind::of(name)?;
        let (_, id) = name.split_once('/')?;
        let canonical = match kind {
            Kind::Project => {
                if self.projects.contains_key(name) {
                    name.to_string()
                } else {
                    self.project_ids.get(id)?.clone()
                }
            }
            Kind::Folder => self.folders.contains_key(name).then(|| name.to_string())?,
            Kind::Organization => self
                .organizations
                .contains_key(name)
                .then(|| name.to_string())?,
        };
        Some(Node {
            kind,
            name: canonical,
            shown: name.to_string(),
        })
    }
}

impl Control {
    /// Resolve a caller-given node name. A name that does not exist is answered exactly like
    /// one the caller may not see: Google's 403 naming `permission` (so existence does not
    /// leak).
    pub fn node(&self, name: &str, permission: &str) -> Result<Node> {
        if Kind::of(name).is_none() {
            return Err(Error::invalid(format!("Invalid resource name: '{name}'.")));
        }
        self.read()
            .resolve(name)
            .ok_or_else(|| Error::permission_denied(permission, name, SERVICE))
    }
}

/// What a service adds to a project as the project is created, as Google's services do when
/// they come up in it: resources of its own (a default service account) and grants for the
/// project's first allow policy (a service agent's role).
#[derive(Default)]
pub struct Provision {
    pub changes: Vec<crate::base::state::Change>,
    /// `(role, member)`
    pub grants: Vec<(String, String)>,
}

/// One service's part in a new project. The crate root lists them
/// ([`crate::PROJECT_PROVISIONERS`]), so Resource Manager creates projects without knowing
/// the services that live in them.
pub type Provisioner = fn(&State, &google_cloud_resourcemanager_v3::model::Project) -> Provision;
