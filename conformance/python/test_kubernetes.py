"""The Kubernetes objects Runpool would run worker pool instances as (``docs/kubernetes.md``,
``GET /runpool/v1/kubernetes/manifests``), checked against the Kubernetes 1.37 OpenAPI
schema by ``kubernetes-validate`` in strict mode (unknown fields refused), and checked to map
the pool: a Deployment per serving revision with the pool's instance count, running as a
Kubernetes service account annotated with the pool's Google service account (GKE Workload
Identity's mapping), with Runpool's CA and proxy. No cluster is reachable here: nothing is
applied. One pass runs it; it involves no Google client.
"""

from __future__ import annotations

import kubernetes_validate
import pytest
import requests

from conftest import create_service_account, rest_wire

KUBERNETES = "1.37.0"


@rest_wire
def test_the_manifests_are_valid_kubernetes_and_map_the_pool(server, project, iam_v1):
    pid = project.project_id
    sa = create_service_account(iam_v1, pid, "kube-worker")["email"]
    auth = {"Authorization": f"Bearer {server.token}"}
    r = requests.post(
        f"{server.endpoint}/v2/projects/{pid}/locations/us-central1/workerPools?workerPoolId=kp",
        json={
            "template": {
                "serviceAccount": sa,
                "containers": [{
                    "image": "us-docker.pkg.dev/cloudrun/container/worker-pool",
                    "command": ["sh", "-c", "sleep 3600"],
                    "env": [{"name": "QUEUE", "value": "jobs"}],
                }],
            },
            "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 0},
        },
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["done"], r.text
    # Scaled to 2 once created (no instance of this test runs meanwhile: the count was 0).
    r = requests.patch(
        f"{server.endpoint}/v2/projects/{pid}/locations/us-central1/workerPools/kp?updateMask=scaling",
        json={"scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 2}},
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    revision = requests.get(
        f"{server.endpoint}/v2/projects/{pid}/locations/us-central1/workerPools/kp",
        headers=auth, timeout=30,
    ).json()["latestReadyRevision"].rsplit("/", 1)[1]

    admin = open(server.admin_credential_file).read().strip()
    got = requests.get(
        f"{server.endpoint}/runpool/v1/kubernetes/manifests",
        params={"endpoint": "http://runpool.runpool-system.svc:8484"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert got.status_code == 200, got.text
    items = got.json()["items"]
    for item in items:
        kubernetes_validate.validate(item, KUBERNETES, strict=True)

    ns = f"runpool-{pid}"
    by = {(i["kind"], i["metadata"].get("namespace"), i["metadata"]["name"]): i for i in items}
    deployment = by[("Deployment", ns, revision)]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    account = by[("ServiceAccount", ns, pod["serviceAccountName"])]
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": sa}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["QUEUE"] == "jobs" and env["CLOUD_RUN_REVISION"] == revision
    assert env["HTTPS_PROXY"] == "http://runpool.runpool-system.svc:8484"
    assert env["REQUESTS_CA_BUNDLE"] == "/etc/runpool/ca-bundle.pem"
    ca = requests.get(f"{server.endpoint}/runpool/v1/ca", timeout=30).json()["pem"]
    assert by[("ConfigMap", ns, "runpool-ca")]["data"]["ca-bundle.pem"] == ca
    assert ("DaemonSet", "runpool-system", "runpool-metadata") in by


def test_the_schema_check_is_real():
    """What the check above refuses: a field Kubernetes does not have, a wrong type."""
    good = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa-x"},
            "automountServiceAccountToken": False}
    kubernetes_validate.validate(good, KUBERNETES, strict=True)
    for bad in [dict(good, automountServiceAccountToken="no"), dict(good, annotations={})]:
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES, strict=True)


def test_the_manifests_need_the_admin_credential(server):
    r = requests.get(f"{server.endpoint}/runpool/v1/kubernetes/manifests",
                     headers={"Authorization": f"Bearer {server.token}"}, timeout=30)
    assert r.status_code in (401, 403), r.text
