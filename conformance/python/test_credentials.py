"""Service-account credentials as google-auth uses them: key files, self-signed JWTs, the token
endpoint, impersonation (IAM Credentials API) and ID tokens.

Everything goes through google-auth 2.63 and Google's generated clients; the only local
knowledge is the server's address, handed over the way each library supports it:
``client_options`` for GAPIC clients, ``token_uri`` from the key file Runpool creates,
``iam_endpoint_override`` for impersonated credentials and ``certs_url`` for ID-token checks.
"""

import base64
import json
import time

import pytest
import requests
from google.api_core import exceptions
from google.auth import crypt, impersonated_credentials, jwt
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.cloud import iam_credentials_v1, resourcemanager_v3
from google.oauth2 import id_token, service_account
from google.protobuf import duration_pb2

from conftest import (
    ADMIN,
    ALICE,
    create_key,
    create_service_account,
    grant_on_project,
    grant_on_service_account,
    error_message,
    rest_wire,
    rpc_status,
)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
AUDIENCE = "https://worker.example.com"


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def sa(iam_v1, new_project, unique_id):
    """A fresh service account in a fresh project, with one user-managed key."""
    account = create_service_account(iam_v1, new_project.project_id, f"sa-{unique_id}")
    key, keyfile = create_key(iam_v1, account["name"])
    return dict(account=account, key=key, keyfile=keyfile, project=new_project)


@pytest.fixture
def second_sa(iam_v1, new_project, unique_id):
    account = create_service_account(iam_v1, new_project.project_id, f"sb-{unique_id}")
    key, keyfile = create_key(iam_v1, account["name"])
    return dict(account=account, key=key, keyfile=keyfile, project=new_project)


def projects_client(server, credentials):
    """resourcemanager_v3.ProjectsClient with arbitrary credentials."""
    return server.client(resourcemanager_v3.ProjectsClient, credentials=credentials)


def iamcredentials(server, credentials):
    return server.client(iam_credentials_v1.IAMCredentialsClient, credentials=credentials)


def sa_resource(email):
    return f"projects/-/serviceAccounts/{email}"


def generate_access_token_url(server, email):
    return f"{server.endpoint}/v1/{sa_resource(email)}:generateAccessToken"


def robot_certs(server, email):
    """The account's Google-managed public certificates, ``{kid: PEM}``."""
    resp = requests.get(f"{server.endpoint}/robot/v1/metadata/x509/{email}", timeout=10)
    resp.raise_for_status()
    return resp.json()


def wire_token(client):
    """The bearer token a GAPIC client last sent (its transport's own credentials copy)."""
    return client._transport._credentials.token


def unverified_claims(token):
    return jwt.decode(token, verify=False)


def unverified_header(token):
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


# --- service account key files: self-signed JWTs and the token endpoint -------------------------


@rest_wire
def test_key_file_self_signed_jwt_reads_project_once_granted_browser(server, sa):
    # Default key-file credentials: the GAPIC transport turns on always_use_jwt_access, so the
    # client signs its own JWT (aud = https://cloudresourcemanager.googleapis.com/) and never
    # calls token_uri.
    creds = service_account.Credentials.from_service_account_info(sa["keyfile"])
    client = projects_client(server, creds)
    project = sa["project"]
    with pytest.raises(exceptions.Forbidden) as err:
        client.get_project(name=project.name)
    assert rpc_status(err.value) == "PERMISSION_DENIED"

    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    got = client.get_project(name=project.name)
    assert got.project_id == project.project_id

    # what went on the wire was a self-signed JWT for the API host, signed with the key (the
    # transport holds its own copy of the credentials, made by with_always_use_jwt_access)
    sent = wire_token(client)
    claims = unverified_claims(sent)
    assert claims["iss"] == claims["sub"] == sa["account"]["email"]
    assert claims["aud"] == "https://cloudresourcemanager.googleapis.com/"
    assert unverified_header(sent)["kid"] == sa["keyfile"]["private_key_id"]


def test_key_file_self_signed_jwt_with_scope_claim(server, sa):
    # With explicit scopes google-auth puts a `scope` claim in the self-signed JWT instead of
    # `aud` (AIP-4111); Google accepts both forms.
    creds = service_account.Credentials.from_service_account_info(
        sa["keyfile"], scopes=[CLOUD_PLATFORM]
    )
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    client = projects_client(server, creds)
    got = client.get_project(name=project.name)
    assert got.project_id == project.project_id
    claims = unverified_claims(wire_token(client))
    assert claims["scope"] == CLOUD_PLATFORM
    assert "aud" not in claims


def test_key_file_token_endpoint_access_token(server, sa):
    # always_use_jwt_access=False: refresh() posts a JWT-bearer grant to the key file's
    # token_uri and gets an opaque access token back.
    creds = service_account.Credentials.from_service_account_info(
        sa["keyfile"], scopes=[CLOUD_PLATFORM], always_use_jwt_access=False
    )
    assert creds._token_uri == f"{server.endpoint}/token"
    creds.refresh(Request())
    assert creds.token
    assert creds.expiry is not None and creds.expiry.timestamp() > time.time() + 600
    with pytest.raises(ValueError):
        unverified_claims(creds.token)  # opaque, not a JWT

    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    # hand over the bare token (a GAPIC client would switch the key credentials to self-signed JWT)
    got = server.client(resourcemanager_v3.ProjectsClient, token=creds.token).get_project(
        name=project.name
    )
    assert got.project_id == project.project_id

    info = requests.get(
        f"{server.endpoint}/tokeninfo", params={"access_token": creds.token}, timeout=10
    ).json()
    # azp/aud name the OAuth client, which for a service account is its numeric unique id
    # (= oauth2ClientId), never its email
    assert info["azp"] == sa["account"]["uniqueId"]
    assert info["aud"] == sa["account"]["uniqueId"]
    if "sub" in info:
        assert info["sub"] == sa["account"]["uniqueId"]
    assert CLOUD_PLATFORM in info["scope"].split()
    assert int(info["expires_in"]) > 0


def test_deleted_key_is_unauthorized(server, iam_v1, sa):
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    creds = service_account.Credentials.from_service_account_info(sa["keyfile"])
    client = projects_client(server, creds)
    client.get_project(name=project.name)

    iam_v1.projects().serviceAccounts().keys().delete(name=sa["key"]["name"]).execute()
    # the very same self-signed JWT is now signed by a key Google no longer knows
    with pytest.raises(exceptions.Unauthorized) as err:
        client.get_project(name=project.name)
    assert rpc_status(err.value) == "UNAUTHENTICATED"

    # and the token endpoint refuses the grant
    token_creds = service_account.Credentials.from_service_account_info(
        sa["keyfile"], scopes=[CLOUD_PLATFORM], always_use_jwt_access=False
    )
    with pytest.raises(auth_exceptions.RefreshError) as refresh_err:
        token_creds.refresh(Request())
    assert "invalid_grant" in str(refresh_err.value)


def test_disabled_account_is_unauthorized_until_enabled(server, iam_v1, sa):
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    creds = service_account.Credentials.from_service_account_info(sa["keyfile"])
    client = projects_client(server, creds)
    token_creds = service_account.Credentials.from_service_account_info(
        sa["keyfile"], scopes=[CLOUD_PLATFORM], always_use_jwt_access=False
    )
    token_creds.refresh(Request())
    token_client = server.client(resourcemanager_v3.ProjectsClient, token=token_creds.token)
    token_client.get_project(name=project.name)

    accounts = iam_v1.projects().serviceAccounts()
    accounts.disable(name=sa["account"]["name"], body={}).execute()
    # Disabling is immediate: self-signed JWTs and tokens already issued stop working.
    with pytest.raises(exceptions.Unauthorized):
        client.get_project(name=project.name)
    # (a bare-token Credentials answers a 401 by trying to refresh, which it cannot do, so
    # google-auth raises RefreshError; the server's answer is checked on the wire instead)
    resp = requests.get(
        f"{server.endpoint}/v3/{project.name}",
        headers={"Authorization": f"Bearer {token_creds.token}"},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    # and no new token is issued for a disabled account
    with pytest.raises(auth_exceptions.RefreshError):
        service_account.Credentials.from_service_account_info(
            sa["keyfile"], scopes=[CLOUD_PLATFORM], always_use_jwt_access=False
        ).refresh(Request())

    accounts.enable(name=sa["account"]["name"], body={}).execute()
    assert client.get_project(name=project.name).project_id == project.project_id
    # enabling restores the tokens issued before
    assert token_client.get_project(name=project.name).project_id == project.project_id


def test_recreated_account_does_not_inherit_grants(server, iam_v1, sa):
    # Grants follow the unique id: an account re-created under the same email is a new
    # principal and starts with nothing.
    account = sa["account"]
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{account['email']}")
    iam_v1.projects().serviceAccounts().delete(name=account["name"]).execute()
    again = create_service_account(iam_v1, project.project_id, account["email"].split("@")[0])
    assert again["email"] == account["email"] and again["uniqueId"] != account["uniqueId"]
    _, keyfile = create_key(iam_v1, again["name"])
    client = projects_client(server, service_account.Credentials.from_service_account_info(keyfile))
    with pytest.raises(exceptions.Forbidden):
        client.get_project(name=project.name)


def test_uploaded_key_signs_self_signed_jwts(server, iam_v1, sa):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "uploaded")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    uploaded = (
        iam_v1.projects()
        .serviceAccounts()
        .keys()
        .upload(
            name=sa["account"]["name"],
            body={"publicKeyData": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()},
        )
        .execute()
    )
    keyfile = dict(
        sa["keyfile"],
        private_key_id=uploaded["name"].rsplit("/", 1)[1],
        private_key=private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{sa['account']['email']}")
    creds = service_account.Credentials.from_service_account_info(keyfile)
    assert projects_client(server, creds).get_project(name=project.name).project_id == project.project_id


@rest_wire
def test_key_file_with_iam_credentials_client_signs_own_blob(server, iam_v1, sa):
    # A key-file account calling IAM Credentials on itself (the signed-URL pattern): the GAPIC
    # client's self-signed JWT has aud https://iamcredentials.googleapis.com/.
    email = sa["account"]["email"]
    grant_on_service_account(iam_v1, sa["account"]["name"], TOKEN_CREATOR, f"serviceAccount:{email}")
    client = iamcredentials(server, service_account.Credentials.from_service_account_info(sa["keyfile"]))
    resp = client.sign_blob(name=sa_resource(email), payload=b"signed by myself")
    assert unverified_claims(wire_token(client))["aud"] == "https://iamcredentials.googleapis.com/"
    verifier = crypt.RSAVerifier.from_string(robot_certs(server, email)[resp.key_id])
    assert verifier.verify(b"signed by myself", resp.signed_blob)


def test_key_file_with_discovery_client(server, sa):
    # google-api-python-client's build() scopes key-file credentials (cloud-platform) and, by
    # default, refreshes them through the key file's token_uri.
    from googleapiclient.discovery import build

    project = sa["project"]
    grant_on_project(
        server, project.name, "roles/iam.serviceAccountViewer", f"serviceAccount:{sa['account']['email']}"
    )
    iam = build(
        "iam",
        "v1",
        credentials=service_account.Credentials.from_service_account_info(sa["keyfile"]),
        client_options={"api_endpoint": server.endpoint + "/"},
        static_discovery=True,
        cache_discovery=False,
    )
    listed = iam.projects().serviceAccounts().list(name=f"projects/{project.project_id}").execute()
    assert sa["account"]["email"] in {a["email"] for a in listed["accounts"]}


# --- impersonation (IAM Credentials generateAccessToken) ----------------------------------------
#
# google-auth builds the generateAccessToken URL from google.auth.iam._IAM_ENDPOINT
# ("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{}:generateAccessToken"),
# with "googleapis.com" replaced by the source credentials' universe domain; a universe domain
# cannot produce "http://127.0.0.1:PORT". The supported knob is the constructor's
# `iam_endpoint_override`: "the full IAM endpoint override with the target_principal embedded"
# (meant for regional endpoints). The tests pass the local URL through it.


def impersonate(server, source, email, delegates=None):
    return impersonated_credentials.Credentials(
        source_credentials=source,
        target_principal=email,
        target_scopes=[CLOUD_PLATFORM],
        delegates=delegates,
        iam_endpoint_override=generate_access_token_url(server, email),
    )


def test_user_impersonates_account_with_token_creator(server, iam_v1, sa, alice_token):
    email = sa["account"]["email"]
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{email}")
    target = impersonate(server, server.credentials(alice_token), email)

    with pytest.raises(auth_exceptions.RefreshError) as err:
        target.refresh(Request())
    assert "iam.serviceAccounts.getAccessToken" in str(err.value)

    grant_on_service_account(iam_v1, sa["account"]["name"], TOKEN_CREATOR, f"user:{ALICE}")
    target = impersonate(server, server.credentials(alice_token), email)
    got = projects_client(server, target).get_project(name=project.name)
    assert got.project_id == project.project_id
    assert target.token and target.expiry is not None


def test_admin_impersonates_once_granted(server, iam_v1, sa):
    # roles/owner has no iam.serviceAccounts.getAccessToken: even the administrator needs
    # Token Creator to mint tokens for an account.
    email = sa["account"]["email"]
    grant_on_service_account(iam_v1, sa["account"]["name"], TOKEN_CREATOR, f"user:{ADMIN}")
    target = impersonate(server, server.credentials(server.token), email)
    target.refresh(Request())
    assert target.token


def test_service_account_impersonates_service_account(server, iam_v1, sa, second_sa):
    source_email = sa["account"]["email"]
    target_email = second_sa["account"]["email"]
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{target_email}")
    # source: key-file credentials refreshed through the key file's token_uri
    source = service_account.Credentials.from_service_account_info(sa["keyfile"])

    with pytest.raises(auth_exceptions.RefreshError):
        impersonate(server, source, target_email).refresh(Request())

    grant_on_service_account(
        iam_v1, second_sa["account"]["name"], TOKEN_CREATOR, f"serviceAccount:{source_email}"
    )
    target = impersonate(server, source, target_email)
    assert projects_client(server, target).get_project(name=project.name).project_id == project.project_id


def test_self_signed_jwt_source_impersonates(server, iam_v1, sa, second_sa):
    # Source credentials with always_use_jwt_access: impersonated_credentials re-scopes them to
    # https://www.googleapis.com/auth/iam and sends a self-signed JWT with that `scope` claim.
    source_email = sa["account"]["email"]
    grant_on_service_account(
        iam_v1, second_sa["account"]["name"], TOKEN_CREATOR, f"serviceAccount:{source_email}"
    )
    source = service_account.Credentials.from_service_account_info(
        sa["keyfile"], always_use_jwt_access=True
    )
    target = impersonate(server, source, second_sa["account"]["email"])
    target.refresh(Request())
    assert target.token


def test_delegation_chain(server, iam_v1, sa, second_sa, alice_token):
    # alice -> sa (delegate) -> second_sa: each link needs Token Creator on the next
    middle = sa["account"]
    target = second_sa["account"]
    client = iamcredentials(server, server.credentials(alice_token))
    request = dict(
        name=sa_resource(target["email"]),
        delegates=[sa_resource(middle["email"])],
        scope=[CLOUD_PLATFORM],
    )
    grant_on_service_account(iam_v1, middle["name"], TOKEN_CREATOR, f"user:{ALICE}")
    with pytest.raises(exceptions.Forbidden):
        client.generate_access_token(**request)

    grant_on_service_account(iam_v1, target["name"], TOKEN_CREATOR, f"serviceAccount:{middle['email']}")
    assert client.generate_access_token(**request).access_token
    # alice alone still cannot mint for the target directly
    with pytest.raises(exceptions.Forbidden):
        client.generate_access_token(name=sa_resource(target["email"]), scope=[CLOUD_PLATFORM])


# --- IAM Credentials API through google-cloud-iam's IAMCredentialsClient (REST transport) -------


@pytest.fixture
def creator(server, iam_v1, sa, alice_token):
    """An IAMCredentialsClient for alice, who holds Token Creator on ``sa``."""
    grant_on_service_account(iam_v1, sa["account"]["name"], TOKEN_CREATOR, f"user:{ALICE}")
    return iamcredentials(server, server.credentials(alice_token))


def test_generate_access_token(server, creator, sa):
    email = sa["account"]["email"]
    project = sa["project"]
    grant_on_project(server, project.name, "roles/browser", f"serviceAccount:{email}")
    before = time.time()
    resp = creator.generate_access_token(
        name=sa_resource(email), scope=[CLOUD_PLATFORM], lifetime=duration_pb2.Duration(seconds=600)
    )
    assert resp.access_token
    assert before + 590 <= resp.expire_time.timestamp() <= time.time() + 610
    got = server.client(resourcemanager_v3.ProjectsClient, token=resp.access_token).get_project(
        name=project.name
    )
    assert got.project_id == project.project_id


def test_generate_access_token_denied_wire_format(server, sa, alice_token):
    client = iamcredentials(server, server.credentials(alice_token))
    with pytest.raises(exceptions.Forbidden) as err:
        client.generate_access_token(name=sa_resource(sa["account"]["email"]), scope=[CLOUD_PLATFORM])
    assert rpc_status(err.value) == "PERMISSION_DENIED"
    assert error_message(err.value) == (
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    )
    assert err.value.reason == "IAM_PERMISSION_DENIED"
    assert err.value.domain == "iam.googleapis.com"
    assert err.value.metadata["permission"] == "iam.serviceAccounts.getAccessToken"


def test_generate_access_token_lifetime_over_an_hour_is_invalid(creator, sa):
    # more than 3600s needs iam.allowServiceAccountCredentialLifetimeExtension for the account
    with pytest.raises(exceptions.BadRequest) as err:
        creator.generate_access_token(
            name=sa_resource(sa["account"]["email"]),
            scope=[CLOUD_PLATFORM],
            lifetime=duration_pb2.Duration(seconds=7200),
        )
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_generate_access_token_requires_scope(creator, sa):
    with pytest.raises(exceptions.BadRequest) as err:
        creator.generate_access_token(name=sa_resource(sa["account"]["email"]), scope=[])
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_iam_credentials_name_requires_dash_project(creator, sa):
    account = sa["account"]
    with pytest.raises(exceptions.BadRequest) as err:
        creator.generate_access_token(
            name=f"projects/{account['projectId']}/serviceAccounts/{account['email']}",
            scope=[CLOUD_PLATFORM],
        )
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_generate_access_token_by_unique_id(creator, sa):
    resp = creator.generate_access_token(
        name=sa_resource(sa["account"]["uniqueId"]), scope=[CLOUD_PLATFORM]
    )
    assert resp.access_token


def test_sign_blob_verifies_with_robot_cert(server, creator, sa):
    email = sa["account"]["email"]
    payload = b"conformance payload \x00\xff"
    resp = creator.sign_blob(name=sa_resource(email), payload=payload)
    certs = robot_certs(server, email)
    assert resp.key_id in certs
    verifier = crypt.RSAVerifier.from_string(certs[resp.key_id])
    assert verifier.verify(payload, resp.signed_blob)
    assert not verifier.verify(payload + b"x", resp.signed_blob)


def test_sign_jwt_verifies_with_robot_cert(server, creator, sa):
    email = sa["account"]["email"]
    now = int(time.time())
    claims = {"iss": email, "sub": email, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    resp = creator.sign_jwt(name=sa_resource(email), payload=json.dumps(claims))
    assert unverified_header(resp.signed_jwt)["kid"] == resp.key_id
    decoded = jwt.decode(resp.signed_jwt, certs=robot_certs(server, email), audience=AUDIENCE)
    assert decoded == claims


def test_sign_blob_denied_without_token_creator(server, sa, alice_token):
    client = iamcredentials(server, server.credentials(alice_token))
    with pytest.raises(exceptions.Forbidden) as err:
        client.sign_blob(name=sa_resource(sa["account"]["email"]), payload=b"x")
    assert err.value.metadata["permission"] == "iam.serviceAccounts.signBlob"


# --- ID tokens ----------------------------------------------------------------------------------


def check_id_token(server, token, account, include_email=True):
    claims = id_token.verify_token(
        token, Request(), audience=AUDIENCE, certs_url=f"{server.endpoint}/oauth2/v1/certs"
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == account["uniqueId"]
    assert claims["azp"] == account["uniqueId"]
    assert claims["exp"] - claims["iat"] == 3600
    if include_email:
        assert claims["email"] == account["email"]
        assert claims["email_verified"] is True
    header = unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"]
    # the same token verifies against the JWKS (v3) endpoint
    jwks_claims = id_token.verify_token(
        token, Request(), audience=AUDIENCE, certs_url=f"{server.endpoint}/oauth2/v3/certs"
    )
    assert jwks_claims == claims
    return claims


def test_id_token_from_key_file(server, sa):
    # service_account.IDTokenCredentials posts a JWT-bearer grant with `target_audience` to the
    # key file's token_uri and receives an `id_token`.
    creds = service_account.IDTokenCredentials.from_service_account_info(
        sa["keyfile"], target_audience=AUDIENCE
    )
    creds.refresh(Request())
    check_id_token(server, creds.token, sa["account"])


def test_id_token_from_impersonated_credentials(server, iam_v1, sa, alice_token, monkeypatch):
    # impersonated_credentials.IDTokenCredentials.refresh() builds its generateIdToken URL from
    # google.auth.iam._IAM_IDTOKEN_ENDPOINT and the universe domain only: it has no
    # endpoint override (the target credentials' iam_endpoint_override is not consulted). The
    # only way to point it at a local server is to patch that module constant, which this test
    # does for its own duration; the request the library then sends is unchanged.
    from google.auth import iam

    monkeypatch.setattr(
        iam,
        "_IAM_IDTOKEN_ENDPOINT",
        f"{server.endpoint}/v1/projects/-/serviceAccounts/{{}}:generateIdToken",
    )
    grant_on_service_account(iam_v1, sa["account"]["name"], TOKEN_CREATOR, f"user:{ALICE}")
    target = impersonate(server, server.credentials(alice_token), sa["account"]["email"])
    creds = impersonated_credentials.IDTokenCredentials(
        target, target_audience=AUDIENCE, include_email=True
    )
    creds.refresh(Request())
    check_id_token(server, creds.token, sa["account"])


def test_generate_id_token(server, creator, sa):
    account = sa["account"]
    resp = creator.generate_id_token(name=sa_resource(account["email"]), audience=AUDIENCE, include_email=True)
    check_id_token(server, resp.token, account)

    # without includeEmail the token carries no email claims
    resp = creator.generate_id_token(name=sa_resource(account["email"]), audience=AUDIENCE)
    claims = check_id_token(server, resp.token, account, include_email=False)
    assert "email" not in claims and "email_verified" not in claims


def test_id_token_wrong_audience_is_rejected(server, creator, sa):
    resp = creator.generate_id_token(name=sa_resource(sa["account"]["email"]), audience=AUDIENCE)
    with pytest.raises(ValueError):
        id_token.verify_token(
            resp.token,
            Request(),
            audience="https://someone-else.example.com",
            certs_url=f"{server.endpoint}/oauth2/v1/certs",
        )


def test_openid_configuration(server):
    conf = requests.get(f"{server.endpoint}/.well-known/openid-configuration", timeout=10).json()
    assert conf["issuer"] == "https://accounts.google.com"
    assert "RS256" in conf["id_token_signing_alg_values_supported"]
    assert conf["jwks_uri"]


# --- refresh-token grant ------------------------------------------------------------------------


def test_user_refresh_token_grant(server):
    # Runpool mints a simulated user's credentials (access + refresh token) with the admin
    # credential; google-auth's user Credentials then refreshes through the token endpoint.
    # (from_authorized_user_info always uses https://oauth2.googleapis.com/token, so the
    # constructor's token_uri is the supported way to name the local endpoint.)
    from google.oauth2.credentials import Credentials

    with open(server.admin_credential_file) as f:
        admin_credential = f.read().strip()
    minted = requests.post(
        f"{server.endpoint}/runpool/v1/tokens",
        json={"principal": ALICE},
        headers={"Authorization": f"Bearer {admin_credential}"},
        timeout=10,
    ).json()
    assert minted.get("refresh_token"), minted
    creds = Credentials(
        token=None,
        refresh_token=minted["refresh_token"],
        token_uri=f"{server.endpoint}/token",
        client_id="conformance",
        client_secret="conformance",
    )
    creds.refresh(Request())
    assert creds.token and creds.token != minted["access_token"]
    info = requests.get(
        f"{server.endpoint}/tokeninfo", params={"access_token": creds.token}, timeout=10
    ).json()
    assert info["email"] == ALICE

    bad = Credentials(
        token=None,
        refresh_token="not-a-refresh-token",
        token_uri=f"{server.endpoint}/token",
        client_id="conformance",
        client_secret="conformance",
    )
    with pytest.raises(auth_exceptions.RefreshError) as err:
        bad.refresh(Request())
    assert "invalid_grant" in str(err.value)
