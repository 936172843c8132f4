"""gRPC itself: what only the gRPC pass can show.

- ``iam_admin_v1.IAMClient``, which has no REST transport at all, on its default one: an
  account, a key, a policy on the account, and a denial in Google's words.
- gRPC's own error shape: ``grpc-status``, ``grpc-message`` and ``grpc-status-details-bin``
  holding the same ``google.rpc.Status`` (and ``ErrorInfo``) as the REST body.
- Plaintext HTTP/2 (h2c) on the API port, for a client given an insecure channel.
- Bad input on the wire (malformed protobuf, an unknown method, an oversized message, a
  missing or forged token): Google's gRPC status, nothing written, the server still up.
- The TLS is real: a program whose gRPC does not trust Runpool's CA cannot connect, and a
  host Runpool does not serve is refused by its proxy.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import grpc
import pytest
import requests
from google.api_core import exceptions
from google.cloud import iam_admin_v1, run_v2
from google.iam.v1 import iam_policy_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status as grpc_rpc_status

from conftest import ALICE, TRANSPORT, exported_env, grant_on_project

pytestmark = pytest.mark.skipif(TRANSPORT != "grpc", reason="the gRPC pass runs it")



@pytest.fixture(scope="module")
def iam(server):
    return server.client(iam_admin_v1.IAMClient)


@pytest.fixture
def h2c(server):
    """A channel to the API port in plaintext HTTP/2, as ``grpc.insecure_channel`` makes."""
    channel = grpc.insecure_channel(server.endpoint.removeprefix("http://"))
    yield channel
    channel.close()


def raw(channel, path: str):
    """A method by its gRPC path, sending and receiving bytes as they are."""
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def account_emails(server, project_id: str) -> set[str]:
    r = requests.get(
        f"{server.endpoint}/v1/projects/{project_id}/serviceAccounts",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    r.raise_for_status()
    return {a["email"] for a in r.json().get("accounts", [])}


def test_iam_admin_client_on_its_default_transport(server, iam, project, unique_id, token_for):
    assert iam._transport.kind == "grpc"
    account = iam.create_service_account(
        name=project.name,
        account_id=f"g-{unique_id}",
        service_account=iam_admin_v1.ServiceAccount(display_name="over gRPC"),
    )
    assert account.email == f"g-{unique_id}@{project.project_id}.iam.gserviceaccount.com"
    assert account.display_name == "over gRPC"
    assert iam.get_service_account(name=account.name).unique_id == account.unique_id

    key = iam.create_service_account_key(name=account.name)
    keyfile = json.loads(key.private_key_data)
    assert keyfile["client_email"] == account.email
    assert key.name.rsplit("/", 1)[1] == keyfile["private_key_id"]
    assert key.name in {k.name for k in iam.list_service_account_keys(name=account.name).keys}

    policy = iam.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=account.name))
    policy.bindings.add(role="roles/iam.serviceAccountUser", members=[f"user:{ALICE}"])
    set_ = iam.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=account.name, policy=policy)
    )
    assert [(b.role, list(b.members)) for b in set_.bindings] == [
        ("roles/iam.serviceAccountUser", [f"user:{ALICE}"])
    ]
    assert set_.etag and set_.etag != policy.etag

    theirs = server.client(iam_admin_v1.IAMClient, token=token_for(ALICE))
    with pytest.raises(exceptions.PermissionDenied) as err:
        theirs.create_service_account(name=project.name, account_id=f"h-{unique_id}")
    assert err.value.message == (
        f"Permission 'iam.serviceAccounts.create' denied on resource '{project.name}'"
        " (or it may not exist)."
    )
    assert err.value.reason == "IAM_PERMISSION_DENIED"
    assert err.value.domain == "iam.googleapis.com"
    assert err.value.metadata["permission"] == "iam.serviceAccounts.create"
    assert f"h-{unique_id}@{project.project_id}.iam.gserviceaccount.com" not in account_emails(
        server, project.project_id
    )


def test_the_status_details_are_the_rest_bodys(server, h2c, project, token_for):
    """The same denial on both wires: code, message and ErrorInfo alike."""
    parent = f"{project.name}/locations/us-central1"
    rest = requests.get(
        f"{server.endpoint}/v2/{parent}/workerPools",
        headers={"Authorization": f"Bearer {token_for(ALICE)}"},
        timeout=10,
    ).json()["error"]
    request = run_v2.ListWorkerPoolsRequest(parent=parent)
    with pytest.raises(grpc.RpcError) as err:
        raw(h2c, "/google.cloud.run.v2.WorkerPools/ListWorkerPools")(
            run_v2.ListWorkerPoolsRequest.serialize(request), metadata=bearer(token_for(ALICE))
        )
    call = err.value
    assert call.code() == grpc.StatusCode.PERMISSION_DENIED
    assert call.details() == rest["message"]
    status = grpc_rpc_status.from_call(call)
    assert status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert status.message == rest["message"]
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    rest_info = next(d for d in rest["details"] if d["@type"].endswith("google.rpc.ErrorInfo"))
    assert (info.reason, info.domain, dict(info.metadata)) == (
        rest_info["reason"],
        rest_info["domain"],
        rest_info["metadata"],
    )


def test_h2c_on_the_api_port_serves_googles_clients(server, project):
    """A client given an insecure channel to the API port (as for an emulator)."""
    transport = run_v2.services.worker_pools.transports.WorkerPoolsGrpcTransport(
        channel=grpc.insecure_channel(server.endpoint.removeprefix("http://"))
    )
    client = run_v2.WorkerPoolsClient(transport=transport)
    parent = f"{project.name}/locations/us-central1"
    pools = client.list_worker_pools(parent=parent, metadata=bearer(server.token))
    assert list(pools) == []
    with pytest.raises(exceptions.Unauthenticated):
        list(client.list_worker_pools(parent=parent))


def test_bad_input_gets_googles_status_and_writes_nothing(server, h2c, project, unique_id):
    create = raw(h2c, "/google.iam.admin.v1.IAM/CreateServiceAccount")
    before = account_emails(server, project.project_id)

    # Bytes that are not a CreateServiceAccountRequest (a field tag with a truncated length).
    with pytest.raises(grpc.RpcError) as err:
        create(b"\x0a\xff\xff\xff\x0f", metadata=bearer(server.token))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "google.iam.admin.v1.CreateServiceAccountRequest" in err.value.details()

    # A method the service does not have, and a service Runpool does not serve.
    for path in ("/google.iam.admin.v1.IAM/Frobnicate", "/google.cloud.storage.v2.Storage/GetBucket"):
        with pytest.raises(grpc.RpcError) as err:
            raw(h2c, path)(b"", metadata=bearer(server.token))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
        assert err.value.details() == f"Method not found: {path[1:]}"

    # A message over the 10 MB Google's front end takes.
    big = iam_admin_v1.CreateServiceAccountRequest(
        name=project.name,
        account_id=f"big-{unique_id}",
        service_account=iam_admin_v1.ServiceAccount(description="x" * (11 * 1024 * 1024)),
    )
    with pytest.raises(grpc.RpcError) as err:
        create(iam_admin_v1.CreateServiceAccountRequest.serialize(big), metadata=bearer(server.token))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details().startswith("Received message larger than max (")

    # No token, an opaque token Runpool never issued, a JWT signed by a key it does not know.
    good = iam_admin_v1.CreateServiceAccountRequest(name=project.name, account_id=f"t-{unique_id}")
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
    claims = base64.urlsafe_b64encode(
        json.dumps({"iss": "a@b.iam.gserviceaccount.com", "exp": 9999999999}).encode()
    ).rstrip(b"=").decode()
    for metadata in ([], bearer("ya29.forged"), bearer(f"{header}.{claims}.c2lnbmF0dXJl")):
        with pytest.raises(grpc.RpcError) as err:
            create(iam_admin_v1.CreateServiceAccountRequest.serialize(good), metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata

    assert account_emails(server, project.project_id) == before
    status = requests.get(
        f"{server.endpoint}/runpool/v1/status",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert status.status_code == 200


def run_with(env: dict[str, str], program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )


CALL_RUN = """
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2
try:
    run_v2.WorkerPoolsClient(credentials=AnonymousCredentials()).get_worker_pool(
        name="projects/p/locations/l/workerPools/w", timeout=10,
        retry=None)
except exceptions.GoogleAPICallError as e:
    print(type(e).__name__, e.message)
"""


def test_a_client_that_does_not_trust_runpools_ca_cannot_connect(server):
    env = {k: v for k, v in exported_env(server, "admin@example.com").items()}
    env.pop("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    env["PATH"] = "/usr/bin:/bin"
    r = run_with(env, CALL_RUN)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ServiceUnavailable"), r.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in r.stdout


def test_a_host_runpool_does_not_serve_is_refused_by_its_proxy(server):
    env = dict(exported_env(server, "admin@example.com"), PATH="/usr/bin:/bin")
    program = CALL_RUN.replace(
        "WorkerPoolsClient(credentials=AnonymousCredentials())",
        'WorkerPoolsClient(credentials=AnonymousCredentials(), client_options={"api_endpoint": "storage.googleapis.com"})',
    )
    r = run_with(env, program)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ServiceUnavailable"), r.stdout
