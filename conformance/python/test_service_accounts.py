"""IAM v1 service accounts and their keys.

Driven with google-api-python-client's discovery client (``build("iam", "v1")`` from its
bundled static discovery document): google-cloud-iam's ``iam_admin_v1.IAMClient`` is
gRPC-only (see test_iam_roles.py), and Runpool serves REST.
"""

import base64
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from googleapiclient.errors import HttpError

from conftest import (
    ALICE,
    SA_DOMAIN,
    create_key,
    create_service_account,
    grant_on_service_account,
    rpc_status,
)


@pytest.fixture
def accounts(iam_v1):
    return iam_v1.projects().serviceAccounts()


@pytest.fixture
def keys(accounts):
    return accounts.keys()


@pytest.fixture
def account(iam_v1, new_project, unique_id):
    return create_service_account(iam_v1, new_project.project_id, f"sa-{unique_id}")


def list_accounts(accounts, parent, page_size=None):
    """Every account from a paged serviceAccounts.list call, and the number of pages."""
    found, pages = [], 0
    request = accounts.list(name=parent, pageSize=page_size) if page_size else accounts.list(name=parent)
    while request is not None:
        response = request.execute()
        pages += 1
        found.extend(response.get("accounts", []))
        request = accounts.list_next(request, response)
    return found, pages


def http_error(call):
    with pytest.raises(HttpError) as err:
        call.execute()
    return err.value


# --- accounts -----------------------------------------------------------------------------------


def test_create_returns_google_shaped_account(account, new_project, unique_id):
    project_id = new_project.project_id
    email = f"sa-{unique_id}@{project_id}.{SA_DOMAIN}"
    assert account["email"] == email
    assert account["name"] == f"projects/{project_id}/serviceAccounts/{email}"
    assert account["projectId"] == project_id
    assert account["displayName"] == "conformance"
    assert re.fullmatch(r"\d{21}", account["uniqueId"]), account["uniqueId"]
    assert account["oauth2ClientId"] == account["uniqueId"]
    assert not account.get("disabled", False)


def test_get_by_email_and_by_unique_id(accounts, account):
    by_email = accounts.get(name=account["name"]).execute()
    assert by_email["uniqueId"] == account["uniqueId"]
    # `-` for the project and the numeric unique id instead of the email
    by_id = accounts.get(name=f"projects/-/serviceAccounts/{account['uniqueId']}").execute()
    assert by_id["email"] == account["email"]
    assert by_id["name"] == account["name"]


def test_project_has_default_compute_account(accounts, new_project):
    number = new_project.name.split("/")[1]
    found, _ = list_accounts(accounts, f"projects/{new_project.project_id}")
    emails = {a["email"] for a in found}
    assert f"{number}-compute@developer.gserviceaccount.com" in emails


def test_list_pages(iam_v1, accounts, new_project, unique_id):
    project_id = new_project.project_id
    created = {
        create_service_account(iam_v1, project_id, f"page{i}-{unique_id}")["email"] for i in range(5)
    }
    everything, _ = list_accounts(accounts, f"projects/{project_id}")
    paged, pages = list_accounts(accounts, f"projects/{project_id}", page_size=2)
    assert created <= {a["email"] for a in paged}
    assert pages >= 3
    # pages neither repeat nor lose accounts
    assert sorted(a["email"] for a in paged) == sorted(a["email"] for a in everything)
    first = accounts.list(name=f"projects/{project_id}", pageSize=2).execute()
    assert len(first["accounts"]) == 2
    assert first["nextPageToken"]


def test_create_duplicate_is_already_exists(iam_v1, account, new_project, unique_id):
    err = http_error(
        iam_v1.projects()
        .serviceAccounts()
        .create(name=f"projects/{new_project.project_id}", body={"accountId": f"sa-{unique_id}"})
    )
    assert err.resp.status == 409
    assert rpc_status(err) == "ALREADY_EXISTS"


@pytest.mark.parametrize("account_id", ["abc", "1starts-with-digit", "Upper-case-id", "ends-with-dash-"])
def test_create_invalid_account_id_is_invalid_argument(accounts, new_project, account_id):
    err = http_error(
        accounts.create(name=f"projects/{new_project.project_id}", body={"accountId": account_id})
    )
    assert err.resp.status == 400
    assert rpc_status(err) == "INVALID_ARGUMENT"


def test_get_missing_account(accounts, new_project):
    missing = f"nobody-here@{new_project.project_id}.{SA_DOMAIN}"
    err = http_error(accounts.get(name=f"projects/{new_project.project_id}/serviceAccounts/{missing}"))
    assert err.resp.status == 404
    assert rpc_status(err) == "NOT_FOUND"
    # with the `-` wildcard project Google answers 403, not 404
    err = http_error(accounts.get(name=f"projects/-/serviceAccounts/{missing}"))
    assert err.resp.status == 403
    assert rpc_status(err) == "PERMISSION_DENIED"


def test_patch_display_name_and_description(accounts, account):
    patched = accounts.patch(
        name=account["name"],
        body={
            "serviceAccount": {"displayName": "Renamed", "description": "patched by conformance"},
            "updateMask": "displayName,description",
        },
    ).execute()
    assert patched["displayName"] == "Renamed"
    assert patched["description"] == "patched by conformance"
    got = accounts.get(name=account["name"]).execute()
    assert got["displayName"] == "Renamed"
    assert got["description"] == "patched by conformance"
    assert got["uniqueId"] == account["uniqueId"]

    # only the masked field changes
    accounts.patch(
        name=account["name"],
        body={"serviceAccount": {"displayName": "Again", "description": "ignored"}, "updateMask": "displayName"},
    ).execute()
    got = accounts.get(name=account["name"]).execute()
    assert got["displayName"] == "Again"
    assert got["description"] == "patched by conformance"


def test_disable_and_enable(accounts, account):
    assert accounts.disable(name=account["name"], body={}).execute() == {}
    assert accounts.get(name=account["name"]).execute()["disabled"] is True
    assert accounts.enable(name=account["name"], body={}).execute() == {}
    assert not accounts.get(name=account["name"]).execute().get("disabled", False)


def test_delete_and_undelete_by_unique_id(accounts, account):
    assert accounts.delete(name=account["name"]).execute() == {}
    err = http_error(accounts.get(name=account["name"]))
    assert err.resp.status == 404
    assert rpc_status(err) == "NOT_FOUND"
    assert account["email"] not in {
        a["email"] for a in list_accounts(accounts, f"projects/{account['projectId']}")[0]
    }

    restored = accounts.undelete(
        name=f"projects/-/serviceAccounts/{account['uniqueId']}", body={}
    ).execute()
    assert restored["restoredAccount"]["email"] == account["email"]
    assert restored["restoredAccount"]["uniqueId"] == account["uniqueId"]
    assert accounts.get(name=account["name"]).execute()["uniqueId"] == account["uniqueId"]


def test_recreated_account_gets_a_new_unique_id(iam_v1, accounts, account, new_project, unique_id):
    accounts.delete(name=account["name"]).execute()
    again = create_service_account(iam_v1, new_project.project_id, f"sa-{unique_id}")
    assert again["email"] == account["email"]
    assert again["uniqueId"] != account["uniqueId"]


def test_account_iam_policy_and_test_permissions(server, accounts, account, alice_token):
    resource = account["name"]
    policy = grant_on_service_account(
        server.discovery("iam", "v1"), resource, "roles/iam.serviceAccountUser", f"user:{ALICE}"
    )
    assert policy["etag"]
    assert {"role": "roles/iam.serviceAccountUser", "members": [f"user:{ALICE}"]} in [
        {"role": b["role"], "members": b["members"]} for b in policy["bindings"]
    ]
    as_alice = server.discovery("iam", "v1", token=alice_token).projects().serviceAccounts()
    allowed = as_alice.testIamPermissions(
        resource=resource,
        body={"permissions": ["iam.serviceAccounts.actAs", "iam.serviceAccounts.getAccessToken"]},
    ).execute()
    assert allowed.get("permissions", []) == ["iam.serviceAccounts.actAs"]


def test_alice_cannot_create_service_account(server, alice_token, new_project, unique_id):
    as_alice = server.discovery("iam", "v1", token=alice_token).projects().serviceAccounts()
    err = http_error(
        as_alice.create(name=f"projects/{new_project.project_id}", body={"accountId": f"al-{unique_id}"})
    )
    assert err.resp.status == 403
    assert rpc_status(err) == "PERMISSION_DENIED"
    assert "iam.serviceAccounts.create" in json.loads(err.content)["error"]["message"]


# --- keys ---------------------------------------------------------------------------------------


def test_key_create_returns_google_key_file(server, iam_v1, account):
    key, keyfile = create_key(iam_v1, account["name"])
    key_id = key["name"].rsplit("/", 1)[1]
    assert key["name"] == f"{account['name']}/keys/{key_id}"
    assert re.fullmatch(r"[0-9a-f]{40}", key_id), key_id
    assert key["privateKeyType"] == "TYPE_GOOGLE_CREDENTIALS_FILE"
    assert key["keyAlgorithm"] == "KEY_ALG_RSA_2048"
    assert key["validAfterTime"] and key["validBeforeTime"]

    assert keyfile["type"] == "service_account"
    assert keyfile["project_id"] == account["projectId"]
    assert keyfile["private_key_id"] == key_id
    assert keyfile["client_email"] == account["email"]
    assert keyfile["client_id"] == account["uniqueId"]
    assert keyfile["token_uri"] == f"{server.endpoint}/token"
    assert keyfile["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_key_list_get_delete(iam_v1, keys, account):
    key, keyfile = create_key(iam_v1, account["name"])

    listed = keys.list(name=account["name"], keyTypes="USER_MANAGED").execute()["keys"]
    assert [k["name"] for k in listed] == [key["name"]]
    assert all("privateKeyData" not in k for k in listed)
    assert listed[0]["keyType"] == "USER_MANAGED"

    got = keys.get(name=key["name"], publicKeyType="TYPE_X509_PEM_FILE").execute()
    assert got["name"] == key["name"]
    assert "privateKeyData" not in got
    # publicKeyData is the base64 of an X.509 PEM certificate holding the key file's public key
    cert = x509.load_pem_x509_certificate(base64.b64decode(got["publicKeyData"]))
    private = serialization.load_pem_private_key(keyfile["private_key"].encode(), password=None)
    assert cert.public_key().public_numbers() == private.public_key().public_numbers()

    assert keys.delete(name=key["name"]).execute() == {}
    err = http_error(keys.get(name=key["name"]))
    assert err.resp.status == 404
    assert rpc_status(err) == "NOT_FOUND"
    remaining = keys.list(name=account["name"], keyTypes="USER_MANAGED").execute().get("keys", [])
    assert key["name"] not in {k["name"] for k in remaining}


def test_key_disable_and_enable(iam_v1, keys, account):
    key, _ = create_key(iam_v1, account["name"])
    assert keys.disable(name=key["name"], body={}).execute() == {}
    assert keys.get(name=key["name"]).execute()["disabled"] is True
    assert keys.enable(name=key["name"], body={}).execute() == {}
    assert not keys.get(name=key["name"]).execute().get("disabled", False)


def test_key_upload(keys, account):
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformance")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    uploaded = keys.upload(
        name=account["name"], body={"publicKeyData": base64.b64encode(pem).decode()}
    ).execute()
    assert uploaded["name"].startswith(account["name"] + "/keys/")
    assert "privateKeyData" not in uploaded
    assert uploaded["keyOrigin"] == "USER_PROVIDED"
    listed = keys.list(name=account["name"], keyTypes="USER_MANAGED").execute()["keys"]
    assert uploaded["name"] in {k["name"] for k in listed}


def test_alice_cannot_create_key(server, alice_token, account):
    as_alice = server.discovery("iam", "v1", token=alice_token).projects().serviceAccounts().keys()
    err = http_error(as_alice.create(name=account["name"], body={}))
    assert err.resp.status == 403
    assert rpc_status(err) == "PERMISSION_DENIED"
    assert "iam.serviceAccountKeys.create" in json.loads(err.content)["error"]["message"]


def test_deleted_account_shows_as_deleted_member_until_undeleted(server, accounts, account, new_project):
    from google.cloud import resourcemanager_v3
    from google.iam.v1 import iam_policy_pb2

    from conftest import grant_on_project

    member = f"serviceAccount:{account['email']}"
    grant_on_project(server, new_project.name, "roles/browser", member)
    projects = server.client(resourcemanager_v3.ProjectsClient)

    def browsers():
        policy = projects.get_iam_policy(
            request=iam_policy_pb2.GetIamPolicyRequest(resource=new_project.name)
        )
        return {m for b in policy.bindings if b.role == "roles/browser" for m in b.members}

    assert member in browsers()
    accounts.delete(name=account["name"]).execute()
    assert browsers() == {f"deleted:{member}?uid={account['uniqueId']}"}
    accounts.undelete(name=f"projects/-/serviceAccounts/{account['uniqueId']}", body={}).execute()
    assert browsers() == {member}
