"""Google's own libraries inside a worker pool instance.

The instance is a Python process started by Runpool's process runtime. With no
configuration beyond what Cloud Run provides (the metadata server, found through
``GCE_METADATA_HOST``/``GCE_METADATA_IP``), ``google.auth.default()`` yields Compute
Engine credentials for the pool's service identity, ``google-cloud-resource-manager``
calls this server's API as that account, and an ID token from the metadata server's
``identity`` endpoint verifies against this server's certificates. The test reads what
the worker saw from the pool's logs (Cloud Logging ``entries:list``).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

from google.cloud import run_v2

from conftest import create_service_account, grant_on_project

WORKER = r'''
import os, time
import google.auth
from google.api_core.client_options import ClientOptions
from google.auth.transport.requests import Request
from google.cloud import resourcemanager_v3
from google.oauth2 import id_token

endpoint = os.environ["RUNPOOL_ENDPOINT"]
creds, project = google.auth.default()
print("IDENTITY", type(creds).__module__, project, flush=True)
token = id_token.fetch_id_token(Request(), "https://worker.example")
claims = id_token.verify_token(
    token, Request(), audience="https://worker.example", certs_url=endpoint + "/oauth2/v1/certs"
)
print("IDTOKEN", claims["email"], flush=True)
client = resourcemanager_v3.ProjectsClient(
    credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
)
while True:
    try:
        print("ALLOWED", client.get_project(name=f"projects/{project}").project_id, flush=True)
    except Exception as e:
        print("DENIED", type(e).__name__, getattr(e, "code", ""), flush=True)
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
        # Without any grant the account may not read the project.
        lines = wait_for(server, pool_id, lambda l: l.startswith("DENIED"), "a denial")
        assert any(l.startswith("DENIED") and "403" in l for l in lines), lines
        assert any(l == "IDENTITY google.auth.compute_engine.credentials demo-project" for l in lines), lines
        assert f"IDTOKEN {email}" in lines, lines
        assert not any(l.startswith("ALLOWED") for l in lines), lines

        grant_on_project(server, "projects/demo-project", "roles/browser", f"serviceAccount:{email}")
        lines = wait_for(server, pool_id, lambda l: l == "ALLOWED demo-project", "an allowed call")
    finally:
        pools.delete_worker_pool(name=f"projects/demo-project/locations/us-central1/workerPools/{pool_id}").result()
