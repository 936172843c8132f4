"""Google's clients, constructed with no endpoint option, reach Runpool by Google's own host
names: ``eval "$(runpool env)"`` sets the proxy (the server's port), a CA bundle with
Runpool's CA, and Application Default Credentials whose refresh token Runpool's
``oauth2.googleapis.com`` trades. Each program runs in a process of its own, with only what
``runpool env`` exported, so nothing in this test process points the clients anywhere.

Each on the clients' default transport (gRPC, over TLS and HTTP/2 through the proxy's
tunnel) and on REST."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ADMIN, ALICE, _run, exported_env


def env_of(server, account: str) -> dict[str, str]:
    """This process's environment, with only what ``runpool --account ACCOUNT env`` exports
    pointing anywhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and k != "GOOGLE_APPLICATION_CREDENTIALS"
    }
    return env | exported_env(server, account)


def run_unchanged(server, account: str, program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", program],
        env=env_of(server, account),
        capture_output=True,
        text=True,
        timeout=60,
    )


# The clients' own default (gRPC), and REST.
TRANSPORTS = pytest.mark.parametrize("options", ["", 'transport="rest"'], ids=["grpc", "rest"])


@TRANSPORTS
def test_clients_with_no_options_reach_runpool_by_google_host_names(server, demo_project, options):
    _run(server.binary, server.config_dir, "auth", "login", ADMIN, "--no-activate")
    r = run_unchanged(
        server,
        ADMIN,
        f"""
from google.cloud import resourcemanager_v3, run_v2
p = resourcemanager_v3.ProjectsClient({options}).get_project(name="projects/demo-project")
print(p.project_id)
pools = run_v2.WorkerPoolsClient({options}).list_worker_pools(
    parent="projects/demo-project/locations/us-central1")
print("pools", len(list(pools)))
""",
    )
    assert r.returncode == 0, r.stderr
    project, pools, count = r.stdout.split()
    assert (project, pools) == ("demo-project", "pools")
    assert int(count) >= 0


def test_the_iam_admin_client_which_has_only_grpc_reaches_runpool(server, demo_project):
    _run(server.binary, server.config_dir, "auth", "login", ADMIN, "--no-activate")
    r = run_unchanged(
        server,
        ADMIN,
        """
from google.cloud import iam_admin_v1
for a in iam_admin_v1.IAMClient().list_service_accounts(name="projects/demo-project"):
    print(a.email)
""",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() and all(
        e.endswith(".gserviceaccount.com") for e in r.stdout.split()
    ), r.stdout


@TRANSPORTS
def test_a_principal_without_the_permission_is_denied_by_google_host_names(
    server, demo_project, options
):
    _run(server.binary, server.config_dir, "auth", "login", ALICE, "--no-activate")
    r = run_unchanged(
        server,
        ALICE,
        f"""
from google.api_core import exceptions
from google.cloud import run_v2
try:
    list(run_v2.WorkerPoolsClient({options}).list_worker_pools(
        parent="projects/demo-project/locations/us-central1"))
except exceptions.Forbidden as e:
    print("denied", type(e).__name__, e.message)
""",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("denied PermissionDenied" if not options else "denied"), r.stdout
    assert "Permission 'run.workerpools.list' denied on resource" in r.stdout
