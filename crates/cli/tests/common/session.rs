//! The org admin's REST session on a started server, with the calls that tests of service
//! accounts and worker pools share: create an account, grant on a policy, read a pool, its
//! revisions and its logs.

use super::world::POOLS;
use super::{Api, Server};
use serde_json::{Value, json};

/// A server, a REST client for it and `admin@example.com`'s token. A test's own world wraps
/// one and derefs to it, so `w.api`, `w.admin` and these methods read the same everywhere.
pub struct Session {
    pub server: Server,
    pub api: Api,
    /// The org admin's access token.
    pub admin: String,
}

impl Session {
    pub fn new(server: Server) -> Session {
        let api = server.api();
        let admin = api.token("admin@example.com");
        Session { server, api, admin }
    }

    /// A server with the world `world_yaml` (`Server::start_with_world`).
    pub fn start(world_yaml: &str) -> Session {
        Session::new(Server::start_with_world(world_yaml))
    }

    /// Create the service account `id` in `project`; its email.
    pub fn create_sa(&self, project: &str, id: &str) -> String {
        let (s, body) = self.api.post(
            &self.admin,
            &format!("/v1/projects/{project}/serviceAccounts"),
            json!({"accountId": id}),
        );
        assert_eq!(s, 200, "{body}");
        body["email"].as_str().unwrap().to_string()
    }

    /// get → edit the bindings → set, on any resource with the IAM methods at `base`.
    pub fn edit_policy(&self, base: &str, edit: impl FnOnce(&mut Vec<Value>)) {
        // Cloud Run reads a pool's policy with GET; the other APIs with POST.
        let (s, mut policy) = if base.starts_with("/v2/") {
            self.api.get(&self.admin, &format!("{base}:getIamPolicy"))
        } else {
            self.api
                .post(&self.admin, &format!("{base}:getIamPolicy"), json!({}))
        };
        assert_eq!(s, 200, "{policy}");
        let mut bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
        edit(&mut bindings);
        policy["bindings"] = json!(bindings);
        let (s, body) = self.api.post(
            &self.admin,
            &format!("{base}:setIamPolicy"),
            json!({"policy": policy}),
        );
        assert_eq!(s, 200, "{body}");
    }

    /// Add a binding of `role` to `member` on the policy at `base`.
    pub fn grant(&self, base: &str, role: &str, member: &str) {
        self.edit_policy(base, |b| b.push(json!({"role": role, "members": [member]})));
    }

    /// Take `member` out of `role` on the policy at `base`.
    pub fn revoke(&self, base: &str, role: &str, member: &str) {
        self.edit_policy(base, |bindings| {
            for b in bindings.iter_mut() {
                if b["role"] == role
                    && let Some(m) = b["members"].as_array_mut()
                {
                    m.retain(|x| x != member);
                }
            }
            bindings.retain(|b| b["members"].as_array().is_some_and(|m| !m.is_empty()));
        });
    }

    /// Turn `iam.disableCrossProjectServiceAccountUsage` off on `parent` (`projects/P`,
    /// `folders/F`).
    pub fn disable_cross_project_constraint(&self, parent: &str) {
        let c = "iam.disableCrossProjectServiceAccountUsage";
        let (s, body) = self.api.post(
            &self.admin,
            &format!("/v2/{parent}/policies"),
            json!({"name": format!("{parent}/policies/{c}"), "spec": {"rules": [{"enforce": false}]}}),
        );
        assert_eq!(s, 200, "{body}");
    }

    /// Create the app-project pool `id` from `body`; the operation.
    pub fn deploy(&self, id: &str, body: Value) -> Value {
        let (s, op) = self
            .api
            .post(&self.admin, &format!("{POOLS}?workerPoolId={id}"), body);
        assert_eq!(s, 200, "deploy {id}: {op}");
        op
    }

    /// GET the app-project pool `id`.
    pub fn pool(&self, id: &str) -> (u16, Value) {
        self.api.get(&self.admin, &format!("{POOLS}/{id}"))
    }

    /// The pool's terminal condition (the pool must exist).
    pub fn condition(&self, id: &str) -> Value {
        let (s, p) = self.pool(id);
        assert_eq!(s, 200, "{p}");
        p["terminalCondition"].clone()
    }

    /// Wait for the pool's terminal condition to reach `state`; the condition.
    pub fn wait_condition(&self, id: &str, state: &str, secs: u64) -> Value {
        super::wait::wait_for(&format!("{id} terminalCondition {state}"), secs, || {
            let c = self.condition(id);
            if c["state"] == state {
                Ok(c)
            } else {
                Err(c.to_string())
            }
        })
    }

    /// How many revisions the pool has.
    pub fn revisions(&self, id: &str) -> usize {
        let (s, body) = self
            .api
            .get(&self.admin, &format!("{POOLS}/{id}/revisions"));
        assert_eq!(s, 200, "{body}");
        body["revisions"].as_array().map_or(0, Vec::len)
    }

    /// Every log entry of the app-project pool `id` (Cloud Logging `entries:list`), oldest
    /// first.
    pub fn log_entries(&self, id: &str) -> Vec<Value> {
        pool_log_entries(&self.api, &self.admin, id)
    }
}

/// Every log entry of the app-project pool `id`, read with `token`, oldest first.
pub fn pool_log_entries(api: &Api, token: &str, id: &str) -> Vec<Value> {
    let (s, body) = api.post(
        token,
        "/v2/entries:list",
        json!({
            "resourceNames": ["projects/app-project"],
            "filter": format!("resource.type=\"cloud_run_worker_pool\" AND resource.labels.worker_pool_name=\"{id}\""),
            "pageSize": 1000,
        }),
    );
    assert_eq!(s, 200, "entries:list: {body}");
    body["entries"].as_array().cloned().unwrap_or_default()
}

/// The IAM methods of the service account `email` (`/v1/projects/-/serviceAccounts/EMAIL`).
pub fn sa_base(email: &str) -> String {
    format!("/v1/projects/-/serviceAccounts/{email}")
}

/// Google's refusal of a call that needs `permission` on `resource`.
pub fn permission_denied(permission: &str, resource: &str) -> String {
    format!("Permission '{permission}' denied on resource '{resource}' (or it may not exist).")
}

/// Google's refusal of a deploy whose caller may not act as `email`.
pub fn act_as_denied(email: &str) -> String {
    format!(
        "Permission 'iam.serviceaccounts.actAs' denied on service account {email} (or it may not exist)."
    )
}

/// Make a test's own world, which keeps its session in the field `$field`, deref to that
/// session, so `w.api`, `w.admin`, `w.server` and the session's methods work on the world:
/// `deref_session!(World, session);`.
#[allow(unused_macros)] // not every test file has a world of its own
macro_rules! deref_session {
    ($world:ty, $field:tt) => {
        impl std::ops::Deref for $world {
            type Target = $crate::common::session::Session;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use deref_session;
