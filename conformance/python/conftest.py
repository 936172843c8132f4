"""Fixtures for the Python conformance suite.

One Runpool server is started per test session (``runpool serve --port 0
--ephemeral``) with a temporary ``RUNPOOL_CONFIG``; tests drive it with
Google's own client libraries, on the wire ``RUNPOOL_TRANSPORT`` names:

- ``rest`` (the default): the REST transport, with the server's endpoint as
  ``api_endpoint``;
- ``grpc``: each client's default transport (gRPC) and Google's own host names, with no
  endpoint option: the session exports what ``runpool env`` prints (the proxy, and the CA
  bundle gRPC reads), so the clients dial ``run.googleapis.com:443`` and the rest over TLS
  through the server's proxy, as an app written for Google Cloud would.

Tokens come from the ``runpool auth login`` / ``runpool auth print-access-token``
CLI (after ``runpool config set api_endpoint``); if the CLI fails, the fixture
falls back to ``POST /runpool/v1/tokens`` with the server's admin credential.

Set ``RUNPOOL_BIN`` to use another binary, and ``RUNPOOL_CONFORMANCE_LOG=1``
to log every HTTP request and response the clients exchange.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from google.api_core.client_options import ClientOptions
from google.cloud import orgpolicy_v2, resourcemanager_v3
from google.oauth2.credentials import Credentials

TRANSPORT = os.environ.get("RUNPOOL_TRANSPORT", "rest")
assert TRANSPORT in ("rest", "grpc"), f"RUNPOOL_TRANSPORT={TRANSPORT!r}: rest or grpc"
HERE = Path(__file__).resolve().parent
DEFAULT_BIN = (HERE / ".." / ".." / "target" / "debug" / "runpool").resolve()
ADMIN = "admin@example.com"
ALICE = "alice@example.com"

if os.environ.get("RUNPOOL_CONFORMANCE_LOG"):
    import http.client

    http.client.HTTPConnection.debuglevel = 1
    logging.basicConfig(level=logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)


@dataclasses.dataclass
class Server:
    endpoint: str
    token: str
    config_dir: str
    binary: str
    admin_credential_file: str
    token_source: str  # "cli" or "endpoint"
    # The session's server: its `runpool env` is this process's environment (grpc mode).
    exported: bool = False

    def client_options(self) -> ClientOptions:
        return ClientOptions(api_endpoint=self.endpoint)

    def credentials(self, token: str | None = None) -> Credentials:
        return Credentials(token=token or self.token)

    def client(self, cls, token: str | None = None, credentials=None):
        """A Google client class against this server, on the session's transport (see the
        module's docstring), with a bearer token (the admin's by default) or credentials."""
        credentials = credentials or self.credentials(token)
        if TRANSPORT == "grpc" and self.exported:
            return cls(credentials=credentials)
        if TRANSPORT == "grpc":
            # Another server of the session: one process's gRPC reads one proxy and one CA
            # bundle from the environment, so its channels name this server's proxy and CA
            # themselves; host, TLS and the rest are still the client's defaults.
            return cls(transport=cls.get_transport_class("grpc")(
                credentials=credentials, channel=self._grpc_channel))
        return cls(credentials=credentials, client_options=self.client_options(), transport="rest")

    def _grpc_channel(self, host, credentials=None, scopes=None, ssl_credentials=None,
                      options=(), **kwargs):
        import grpc
        from google.api_core import grpc_helpers

        with urllib.request.urlopen(self.endpoint + "/runpool/v1/ca", timeout=10) as r:
            ca = json.load(r)["pem"]
        return grpc_helpers.create_channel(
            host,
            credentials=credentials,
            scopes=scopes,
            ssl_credentials=grpc.ssl_channel_credentials(root_certificates=ca.encode()),
            options=[*(options or []), ("grpc.http_proxy", self.endpoint)],
            **kwargs,
        )

    def discovery(self, api: str, version: str, token: str | None = None):
        """A google-api-python-client (discovery, static document) client for this server."""
        from googleapiclient.discovery import build

        return build(
            api,
            version,
            credentials=self.credentials(token),
            client_options={"api_endpoint": self.endpoint + "/"},
            static_discovery=True,
            cache_discovery=False,
        )

    def mint_token(self, principal: str) -> str:
        """An access token for ``principal``: CLI first, else the admin endpoint."""
        if self.token_source == "cli":
            token = _cli_token(self, principal)
            if token:
                return token
        return _endpoint_token(self, principal)


def rpc_status(exc) -> str | None:
    """The google.rpc status name ("ABORTED", ...) behind a client exception.

    With the REST transport google-api-core picks the exception class from the HTTP
    status alone (409 -> Conflict, never Aborted; 403 -> Forbidden, never
    PermissionDenied), exactly as it would against Google. The gRPC status lives in
    the error body's "status" field, so tests read it from there; an error carried in
    a long-running Operation has it as grpc_status_code instead.
    """
    response = getattr(exc, "response", None)
    if hasattr(response, "json"):
        try:
            return response.json()["error"]["status"]
        except Exception:  # noqa: BLE001 - body is not Google's error JSON
            return None
    code = getattr(exc, "grpc_status_code", None)
    if code is not None:
        return code.name
    # googleapiclient.errors.HttpError
    content = getattr(exc, "content", None)
    if content:
        try:
            return json.loads(content)["error"]["status"]
        except Exception:  # noqa: BLE001
            return None
    return None


# A test of what only the REST wire shows (the HTTP session's URLs, the JSON of a request);
# the REST pass runs it.
rest_wire = pytest.mark.skipif(
    TRANSPORT == "grpc", reason="a fact of the REST wire, checked by the REST pass"
)


def error_message(exc) -> str:
    """Google's error message: the REST body's ``error.message`` (google-api-core prefixes its
    own ``exc.message`` with the request's method and URL), or gRPC's ``grpc-message``."""
    response = getattr(exc, "response", None)
    if hasattr(response, "json"):
        return response.json()["error"]["message"]
    return exc.message


def detail_types(exc) -> list[str]:
    """The type names of an error's google.rpc details (REST: JSON ``@type``s; gRPC: the
    messages google-api-core decoded from ``grpc-status-details-bin``)."""
    return [
        d["@type"].rsplit("/", 1)[-1] if isinstance(d, dict) else d.DESCRIPTOR.full_name
        for d in exc.details
    ]


def error_info(exc) -> dict:
    """The google.rpc.ErrorInfo detail of a client exception's error body (REST) or of its
    ``grpc-status-details-bin`` (gRPC, which google-api-core decodes into the exception)."""
    if not hasattr(getattr(exc, "response", None), "json"):
        assert exc.reason, exc
        return {"reason": exc.reason, "domain": exc.domain, "metadata": dict(exc.metadata)}
    infos = [
        d
        for d in exc.response.json()["error"].get("details", [])
        if d.get("@type") == "type.googleapis.com/google.rpc.ErrorInfo"
    ]
    assert infos, exc.response.json()
    return infos[0]


def _run(binary: str, config_dir: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RUNPOOL_CONFIG=config_dir)
    return subprocess.run(
        [binary, *args], env=env, capture_output=True, text=True, timeout=30
    )


def _cli_token(server: Server, principal: str) -> str | None:
    login = _run(server.binary, server.config_dir, "auth", "login", principal, "--no-activate")
    if login.returncode != 0:
        return None
    out = _run(server.binary, server.config_dir, "auth", "print-access-token", principal)
    token = out.stdout.strip()
    if out.returncode != 0 or not token or "\n" in token:
        return None
    return token


def _endpoint_token(server: Server, principal: str) -> str:
    with open(server.admin_credential_file) as f:
        admin_credential = f.read().strip()
    req = urllib.request.Request(
        server.endpoint + "/runpool/v1/tokens",
        data=json.dumps({"principal": principal}).encode(),
        headers={
            "Authorization": f"Bearer {admin_credential}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["access_token"]


def _drain(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


@contextlib.contextmanager
def started_server(world: str | None = None):
    """Run ``runpool serve --port 0 --ephemeral`` with a temporary ``RUNPOOL_CONFIG`` (and
    ``--world`` with the YAML ``world``, if given); yield its Server, with no token yet.

    On the way out the server gets SIGTERM, so it stops the worker pool instances it runs
    before it exits, and its config directory is removed.
    """
    binary = os.environ.get("RUNPOOL_BIN", str(DEFAULT_BIN))
    if not Path(binary).is_file():
        pytest.exit(
            f"runpool binary not found at {binary}: run `cargo build -p runpool-cli` "
            "or set RUNPOOL_BIN",
            returncode=2,
        )
    config_dir = tempfile.mkdtemp(prefix="runpool-conformance-")
    # The instances of test_runtime run this venv's Python (under /root on CI), which a user
    # of an instance's own cannot read: they run as the server's user. Isolation itself is
    # tested in crates/cli/tests/isolation.rs.
    args = [binary, "serve", "--port", "0", "--ephemeral", "--instance-isolation", "none"]
    # The PostgreSQL pass: each server its own new database on that PostgreSQL server.
    postgres = os.environ.get("RUNPOOL_CONFORMANCE_POSTGRES")
    name = None
    if postgres:
        name = "conformance_" + uuid.uuid4().hex[:16]
        subprocess.run(["psql", postgres, "-qc", f"CREATE DATABASE {name}"], check=True)
        args += ["--database", postgres.rsplit("/", 1)[0] + "/" + name]
    if world is not None:
        world_file = Path(config_dir) / "world.yaml"
        world_file.write_text(world)
        args += ["--world", str(world_file)]
    proc = subprocess.Popen(
        args,
        env=dict(os.environ, RUNPOOL_CONFIG=config_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr_lines: list[str] = []
    threading.Thread(target=_drain, args=(proc.stderr, stderr_lines), daemon=True).start()
    try:
        endpoint = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"Listening on (http://\S+)", line)
            if m:
                endpoint = m.group(1)
                break
        if endpoint is None:
            proc.kill()
            proc.wait()
            raise RuntimeError(
                "runpool serve did not print its address; stderr:\n" + "".join(stderr_lines)
            )
        threading.Thread(target=_drain, args=(proc.stdout, []), daemon=True).start()

        port = endpoint.rsplit(":", 1)[1]
        info_path = Path(config_dir) / "servers" / f"{port}.json"
        for _ in range(100):
            if info_path.is_file():
                break
            time.sleep(0.05)
        info = json.loads(info_path.read_text())

        yield Server(
            endpoint=endpoint,
            token="",
            config_dir=config_dir,
            binary=binary,
            admin_credential_file=info["adminCredentialFile"],
            token_source="endpoint",
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(config_dir, ignore_errors=True)
        if name:
            subprocess.run(["psql", postgres, "-qc", f"DROP DATABASE IF EXISTS {name}"])


@pytest.fixture(scope="session")
def server():
    with started_server() as srv:
        # Prefer the CLI; fall back to the admin endpoint if it does not work.
        binary, config_dir = srv.binary, srv.config_dir
        configured = _run(binary, config_dir, "config", "set", "api_endpoint", srv.endpoint)
        token = None
        if configured.returncode == 0:
            login = _run(binary, config_dir, "auth", "login", ADMIN)
            if login.returncode == 0:
                out = _run(binary, config_dir, "auth", "print-access-token")
                if out.returncode == 0 and out.stdout.strip():
                    token = out.stdout.strip()
                    srv.token_source = "cli"
        srv.token = token or _endpoint_token(srv, ADMIN)
        if TRANSPORT == "grpc":
            os.environ.update(exported_env(srv, ADMIN))
            srv.exported = True
        yield srv


@pytest.fixture(scope="session", autouse=True)
def _grpc_environment(request):
    """In grpc mode the session's server starts first, so that its environment is in place
    before gRPC reads it (the CA bundle is read once per process)."""
    if TRANSPORT == "grpc":
        request.getfixturevalue("server")


def exported_env(server, account: str) -> dict[str, str]:
    """What ``runpool --account ACCOUNT env`` exports."""
    import shlex

    out = _run(server.binary, server.config_dir, "--account", account, "env")
    assert out.returncode == 0, out.stderr
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0]
    assert env["HTTPS_PROXY"] == server.endpoint
    return env


@pytest.fixture(scope="session")
def token_for(server):
    """Mint (and cache) an access token for any simulated principal."""
    cache: dict[str, str] = {}

    def mint(principal: str) -> str:
        if principal not in cache:
            cache[principal] = server.mint_token(principal)
        return cache[principal]

    return mint


@pytest.fixture(scope="session")
def alice_token(token_for):
    return token_for(ALICE)


@pytest.fixture(scope="session")
def org_name(server):
    from google.cloud import resourcemanager_v3

    client = server.client(resourcemanager_v3.OrganizationsClient)
    orgs = list(client.search_organizations(request={"query": "domain:example.com"}))
    assert len(orgs) == 1, orgs
    return orgs[0].name


@pytest.fixture(scope="session")
def demo_project(server):
    from google.cloud import resourcemanager_v3

    client = server.client(resourcemanager_v3.ProjectsClient)
    return client.get_project(name="projects/demo-project")


@pytest.fixture
def unique_id():
    """A fresh, valid project/role id fragment."""
    return "t" + uuid.uuid4().hex[:12]


# The APIs a new project starts without (Google enables neither on one) that the tests use.
PROJECT_APIS = ["run.googleapis.com", "iam.googleapis.com"]


def create_project(server, parent: str, project_id: str, display_name: str):
    """Create a project as admin and enable Cloud Run and IAM on it (Service Usage's
    ``batchEnable``), as one does on Google before using them there."""
    import requests
    from google.cloud import resourcemanager_v3

    created = server.client(resourcemanager_v3.ProjectsClient).create_project(
        project=resourcemanager_v3.Project(
            project_id=project_id, display_name=display_name, parent=parent
        )
    ).result(timeout=30)
    r = requests.post(
        f"{server.endpoint}/v1/projects/{project_id}/services:batchEnable",
        json={"serviceIds": PROJECT_APIS},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return created


@pytest.fixture
def new_project(server, org_name, unique_id):
    """A fresh project under the organization, for tests that mutate its policies."""
    return create_project(server, org_name, f"p-{unique_id}", "conformance")


@pytest.fixture
def project(new_project):
    """A fresh project (admin is its owner), for tests that work in a project of their own."""
    return new_project


# --- clients (and a constraint) shared by the test modules ---------------------------------------

# The boolean constraint the tests set and read back; Runpool enforces it when a worker pool
# runs as a service account of another project.
CROSS_PROJECT = "iam.disableCrossProjectServiceAccountUsage"


def client_fixture(cls):
    """A module-scoped fixture: a ``cls`` client of the server, as admin. A test module names
    its clients with it (``keys = client_fixture(TagKeysClient)``)."""

    @pytest.fixture(scope="module")
    def client(server):
        return server.client(cls)

    return client


projects = client_fixture(resourcemanager_v3.ProjectsClient)
folders = client_fixture(resourcemanager_v3.FoldersClient)
organizations = client_fixture(resourcemanager_v3.OrganizationsClient)
orgpolicy = client_fixture(orgpolicy_v2.OrgPolicyClient)


# --- service accounts and keys (shared by test_service_accounts.py and test_credentials.py) -----

SA_DOMAIN = "iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def iam_v1(server):
    """IAM v1 through google-api-python-client's bundled discovery document, as admin."""
    return server.discovery("iam", "v1")


def create_service_account(iam, project_id: str, account_id: str, display_name: str = "conformance"):
    """``projects.serviceAccounts.create`` → the ServiceAccount JSON."""
    return (
        iam.projects()
        .serviceAccounts()
        .create(
            name=f"projects/{project_id}",
            body={"accountId": account_id, "serviceAccount": {"displayName": display_name}},
        )
        .execute()
    )


def create_key(iam, account_name: str):
    """``projects.serviceAccounts.keys.create`` → (ServiceAccountKey JSON, decoded key file dict)."""
    import base64

    key = iam.projects().serviceAccounts().keys().create(name=account_name, body={}).execute()
    keyfile = json.loads(base64.b64decode(key["privateKeyData"]))
    return key, keyfile


def grant_on_project(server, project_name: str, role: str, member: str):
    """Add ``member`` to ``role`` in a project's allow policy (read-modify-write, as admin)."""
    from google.cloud import resourcemanager_v3
    from google.iam.v1 import iam_policy_pb2

    client = server.client(resourcemanager_v3.ProjectsClient)
    policy = client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=project_name))
    policy.bindings.add(role=role, members=[member])
    return client.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=project_name, policy=policy)
    )


def grant_on_service_account(iam, account_name: str, role: str, member: str):
    """Add ``member`` to ``role`` in a service account's allow policy (as the discovery client's caller)."""
    accounts = iam.projects().serviceAccounts()
    policy = accounts.getIamPolicy(resource=account_name).execute()
    policy.setdefault("bindings", []).append({"role": role, "members": [member]})
    return accounts.setIamPolicy(resource=account_name, body={"policy": policy}).execute()
