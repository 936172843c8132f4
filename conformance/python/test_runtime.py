"""Google's own libraries inside a worker pool instance, constructed with no options.

The instance is a Python process started by Runpool's process runtime. With nothing but
what the runtime gives every instance (the metadata server, found through
``GCE_METADATA_HOST``/``GCE_METADATA_IP``; ``HTTPS_PROXY`` and the CA bundle, as
``runpool env`` gives a shell), ``google.auth.default()`` yields Compute Engine
credentials for the pool's service identity, and ``run_v2.WorkerPoolsClient()`` and
``resourcemanager_v3.ProjectsClient()`` dial ``run.googleapis.com`` and
``cloudresourcemanager.googleapis.com`` on their default transport (gRPC, over TLS)
through the server's proxy, as that account. An ID token from the metadata server's
``identity`` endpoint verifies against this server's certificates. The test reads what the
worker saw from the pool's logs (Cloud Logging ``entries:list``). The worker does the same
whichever pass runs, so the REST pass alone runs it.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

import pytest
from google.cloud import run_v2

from conftest import TRANSPORT, create_service_account, grant_on_project

WORKER = r'''
import os, time
import google.auth
from google.auth.transport.requests import Request
from google.cloud import resourcemanager_v3, run_v2
from google.oauth2 import id_token

creds, project = google.auth.default()
print("IDENTITY", type(creds).__module__, project, flush=True)
token = id_token.fetch_id_token(Request(), "https://worker.example")
claims = id_token.verify_token(
    token, Request(), audience="https://worker.example",
    certs_url=os.environ["RUNPOOL_ENDPOINT"] + "/oauth2/v1/certs",
)
print("IDTOKEN", claims["email"], flush=True)
pools = run_v2.WorkerPoolsClient()
projects = resourcemanager_v3.ProjectsClient()
print("TRANSPORT", type(pools.transport).__name__, type(projects.transport).__name__, flush=True)
def call(f):
    try:
        return f()
    except Exception as e:
        return f"{type(e).__name__}:{getattr(e, 'code', '')}"


# One line a round, so the log shows each round's two answers together.
while True:
    read = call(lambda: projects.get_project(name=f"projects/{project}").project_id)
    listed = call(lambda: ",".join(sorted(
        p.name.rsplit("/", 1)[1]
        for p in pools.list_worker_pools(parent=f"projects/{project}/locations/us-central1")
    )))
    print(f"CALLS project={read} pools={listed}", flush=True)
    time.sleep(0.3)
'''


def log_lines(server, pool_id: str) -> list[str]:
    body = json.dumps(
        {
            "resourceNames": ["projects/demo-project"],
            "filter": f'resource.type="cloud_run_worker_pool" AND resource.labels.worker_pool_name="{pool_id}"',
            "pageSize": 1000,
        }
    ).encode()
    req = urllib.request.Request(
        server.endpoint + "/v2/entries:list",
        data=body,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return [e.get("textPayload", "") for e in json.load(r).get("entries", [])]


def wait_for(server, pool_id: str, predicate, what: str, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = log_lines(server, pool_id)
        if any(predicate(l) for l in lines):
            return lines
        time.sleep(0.3)
    raise AssertionError(f"never saw {what} in the pool's logs; last lines: {lines[-20:]}")


@pytest.mark.skipif(TRANSPORT != "rest", reason="the worker's wire is its own: one pass runs it")
def test_google_libraries_in_an_instance_act_as_its_service_identity(server, iam_v1, unique_id, tmp_path):
    short = unique_id.replace("-", "")[:10]
    account = create_service_account(iam_v1, "demo-project", f"rt-{short}")
    email = account["email"]
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    pools = server.client(run_v2.WorkerPoolsClient)
    pool_id = f"rt-{short}"
    pool = run_v2.WorkerPool(
        template=run_v2.WorkerPoolRevisionTemplate(
            service_account=email,
            containers=[run_v2.Container(image="local/python-worker", command=[sys.executable, str(worker)])],
        ),
        scaling=run_v2.WorkerPoolScaling(manual_instance_count=1),
    )
    pools.create_worker_pool(
        parent="projects/demo-project/locations/us-central1", worker_pool=pool, worker_pool_id=pool_id
    ).result()
    try:
        # Without any grant the account may neither read the project nor list its pools.
        denied = "CALLS project=PermissionDenied:403 pools=PermissionDenied:403"
        lines = wait_for(server, pool_id, lambda l: l.startswith("CALLS"), "the worker's calls")
        assert "TRANSPORT WorkerPoolsGrpcTransport ProjectsGrpcTransport" in lines, lines
        assert any(l == "IDENTITY google.auth.compute_engine.credentials demo-project" for l in lines), lines
        assert f"IDTOKEN {email}" in lines, lines
        assert [l for l in lines if l.startswith("CALLS")] == [denied] * len(
            [l for l in lines if l.startswith("CALLS")]
        ), lines

        # Each grant shows in the running worker's next calls, with no redeploy: the
        # project first (listing pools still refused), then the pools.
        grant_on_project(server, "projects/demo-project", "roles/browser", f"serviceAccount:{email}")
        wait_for(
            server, pool_id,
            lambda l: l == "CALLS project=demo-project pools=PermissionDenied:403",
            "the project read, the pools still refused",
        )
        grant_on_project(server, "projects/demo-project", "roles/run.viewer", f"serviceAccount:{email}")
        wait_for(
            server, pool_id,
            lambda l: l.startswith("CALLS project=demo-project pools=") and pool_id in l.split("=")[-1].split(","),
            "its own pool listed",
        )
    finally:
        pools.delete_worker_pool(name=f"projects/demo-project/locations/us-central1/workerPools/{pool_id}").result()
