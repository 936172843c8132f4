//! The Kubernetes objects that would run the worker pools' instances as pods, as
//! `docs/kubernetes.md` designs it: generated from the same [`PoolSpec`]s the process and OCI
//! runtimes run, so the two can never disagree about which revision runs how many instances
//! as whom. Nothing applies them yet; `GET /runpool/v1/kubernetes/manifests` shows them, and the
//! conformance suite checks them against the Kubernetes schema.

use crate::Control;
use crate::run::instances::{PoolSpec, RevisionSpec};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The namespace of the cluster-wide parts (the metadata agent).
pub const SYSTEM_NAMESPACE: &str = "runpool-system";
/// Where each pod finds the CA bundle, as the OCI runtime mounts it.
pub const CA_PATH: &str = "/etc/runpool/ca-bundle.pem";
/// GKE Workload Identity's annotation naming a Kubernetes account's Google service account.
const GSA_ANNOTATION: &str = "iam.gke.io/gcp-service-account";

/// A project's namespace.
fn namespace(project_id: &str) -> String {
    format!("runpool-{project_id}")
}

/// The Kubernetes service account standing for Google service account `email`: its local
/// part (a DNS label already) and a short digest of the whole address, so that two projects'
/// accounts of one name stay apart; at most 63 characters.
pub fn service_account_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let digest = hex::encode(&Sha256::digest(email.as_bytes())[..4]);
    let local: String = local.chars().take(63 - 4 - digest.len()).collect();
    format!("sa-{local}-{digest}")
}

fn labels(pool: &PoolSpec, rev: Option<&RevisionSpec>) -> Value {
    let mut l = json!({
        "app.kubernetes.io/managed-by": "runpool",
        "runpool.dev/pool": pool.id,
        "runpool.dev/location": pool.region,
    });
    if let Some(r) = rev {
        l["runpool.dev/revision"] = json!(r.revision);
    }
    l
}

fn deployment(pool: &PoolSpec, rev: &RevisionSpec, proxy: &[(&str, String)]) -> Value {
    let mut env: Vec<Value> = rev
        .env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    env.extend(
        rev.cloud_run_env(pool)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .chain(proxy.iter().cloned())
            .map(|(k, v)| json!({"name": k, "value": v})),
    );
    let mut container = json!({
        "name": "worker",
        "image": rev.image,
        "env": env,
        "volumeMounts": [{"name": "runpool-ca", "mountPath": CA_PATH, "subPath": "ca-bundle.pem", "readOnly": true}],
    });
    if !rev.command.is_empty() {
        container["command"] = json!(rev.command);
    }
    if !rev.args.is_empty() {
        container["args"] = json!(rev.args);
    }
    if !rev.working_dir.is_empty() {
        container["workingDir"] = json!(rev.working_dir);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": rev.revision,
            "namespace": namespace(&pool.project_id),
            "labels": labels(pool, Some(rev)),
        },
        "spec": {
            "replicas": rev.instances,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"runpool.dev/revision": rev.revision}},
            "template": {
                "metadata": {"labels": labels(pool, Some(rev))},
                "spec": {
                    "serviceAccountName": service_account_name(&rev.service_account),
                    "automountServiceAccountToken": false,
                    "restartPolicy": "Always",
                    "containers": [container],
                    "volumes": [{"name": "runpool-ca", "configMap": {"name": "runpool-ca"}}],
                },
            },
        },
    })
}

/// The objects for `pools`: per project with pools a namespace, the CA's ConfigMap and a
/// service account per Google account its revisions run as; per revision that runs
/// instances a Deployment; and the metadata agent's namespace and DaemonSet. `proxy`: the
/// variables that send a pod's programs to Runpool (`runtime::proxy_env`'s, naming
/// [`CA_PATH`]), `endpoint` the API's address from the cluster.
pub fn manifests(
    pools: &[PoolSpec],
    ca_pem: &str,
    endpoint: &str,
    proxy: &[(&str, String)],
) -> Vec<Value> {
    let mut items = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "runpool-metadata", "namespace": SYSTEM_NAMESPACE},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "runpool-metadata"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "runpool-metadata"}},
                    "spec": {
                        "hostNetwork": true,
                        "containers": [{
                            "name": "agent",
                            "image": format!("runpool:{}", env!("CARGO_PKG_VERSION")),
                            "command": ["runpool", "metadata-agent"],
                            "env": [{"name": "RUNPOOL_ENDPOINT", "value": endpoint}],
                            "ports": [{"containerPort": 80, "hostPort": 80, "protocol": "TCP"}],
                        }],
                    },
                },
            },
        }),
    ];
    let mut projects: Vec<&str> = pools.iter().map(|p| p.project_id.as_str()).collect();
    projects.sort();
    projects.dedup();
    for project in projects {
        let ns = namespace(project);
        let mine: Vec<&PoolSpec> = pools.iter().filter(|p| p.project_id == project).collect();
        let number = &mine[0].project_number;
        items.push(json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"runpool.dev/project-number": number}},
        }));
        items.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "runpool-ca", "namespace": ns},
            "data": {"ca-bundle.pem": ca_pem},
        }));
        let mut accounts: Vec<&str> = mine
            .iter()
            .flat_map(|p| &p.revisions)
            .map(|r| r.service_account.as_str())
            .collect();
        accounts.sort();
        accounts.dedup();
        for email in accounts {
            items.push(json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": service_account_name(email),
                    "namespace": ns,
                    "annotations": {GSA_ANNOTATION: email},
                },
                "automountServiceAccountToken": false,
            }));
        }
        for pool in mine {
            for rev in pool.revisions.iter().filter(|r| r.instances > 0) {
                items.push(deployment(pool, rev, proxy));
            }
        }
    }
    items
}

impl Control {
    /// [`manifests`] for every pool as it stands.
    pub fn kubernetes_manifests(
        &self,
        ca_pem: &str,
        endpoint: &str,
        proxy: &[(&str, String)],
    ) -> Vec<Value> {
        manifests(&self.desired_pools(), ca_pem, endpoint, proxy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_dns_labels_that_keep_projects_apart() {
        let a = service_account_name("worker@app-project.iam.gserviceaccount.com");
        let b = service_account_name("worker@other-project.iam.gserviceaccount.com");
        assert!(a.starts_with("sa-worker-") && a != b, "{a} {b}");
        let long = service_account_name(&format!("{}@p.iam.gserviceaccount.com", "a".repeat(30)));
        assert!(long.len() <= 63, "{long}");
    }
}
