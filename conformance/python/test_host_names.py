"""Google's clients, constructed with no endpoint option, reach Runpool by Google's own host
names: ``eval "$(runpool env)"`` sets the proxy (the server's port), a CA bundle with
Runpool's CA, and Application Default Credentials whose refresh token Runpool's
``oauth2.googleapis.com`` trades. Each program runs in a process of its own, with only what
``runpool env`` exported, so nothing in this test process points the clients anywhere.

The REST transport for now: gRPC through the proxy is not served yet."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from conftest import ADMIN, ALICE, _run


def env_of(server, account: str) -> dict[str, str]:
    """The environment ``runpool --account ACCOUNT env`` asks for."""
    out = _run(server.binary, server.config_dir, "--account", account, "env")
    assert out.returncode == 0, out.stderr
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and k != "GOOGLE_APPLICATION_CREDENTIALS"
    }
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0]
    assert env["HTTPS_PROXY"] == server.endpoint
    return env


def run_unchanged(server, account: str, program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", program],
        env=env_of(server, account),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_clients_with_no_options_reach_runpool_by_google_host_names(server, demo_project):
    _run(server.binary, server.config_dir, "auth", "login", ADMIN, "--no-activate")
    r = run_unchanged(
        server,
        ADMIN,
        """
from google.cloud import resourcemanager_v3, run_v2
p = resourcemanager_v3.ProjectsClient(transport="rest").get_project(name="projects/demo-project")
print(p.project_id)
pools = run_v2.WorkerPoolsClient(transport="rest").list_worker_pools(
    parent="projects/demo-project/locations/us-central1")
print("pools", len(list(pools)))
""",
    )
    assert r.returncode == 0, r.stderr
    project, pools, count = r.stdout.split()
    assert (project, pools) == ("demo-project", "pools")
    assert int(count) >= 0


def test_a_principal_without_the_permission_is_denied_by_google_host_names(server, demo_project):
    _run(server.binary, server.config_dir, "auth", "login", ALICE, "--no-activate")
    r = run_unchanged(
        server,
        ALICE,
        """
from google.api_core import exceptions
from google.cloud import run_v2
try:
    list(run_v2.WorkerPoolsClient(transport="rest").list_worker_pools(
        parent="projects/demo-project/locations/us-central1"))
except exceptions.Forbidden as e:
    print("denied", e.message)
""",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("denied"), r.stdout
    assert "run.workerpools.list" in r.stdout
