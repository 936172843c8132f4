"""IAM v1 roles (predefined and custom).

google-cloud-iam's ``iam_admin_v1.IAMClient`` ships only gRPC transports (no ``rest``
transport exists in google-cloud-iam 2.27.0: ``IAMClient(transport="rest")`` raises
``KeyError: 'rest'``), and Runpool serves REST. So these tests drive the IAM v1 REST
surface with Google's other official Python client, google-api-python-client
(``googleapiclient.discovery.build("iam", "v1")`` from its bundled static discovery
document), which sends plain ``alt=json`` requests with string enums.
"""

import json

import pytest
from googleapiclient.errors import HttpError

from conftest import rpc_status


@pytest.fixture(scope="module")
def iam(server):
    return server.discovery("iam", "v1")


def list_all(collection, **kwargs):
    """Every role from a paged roles.list call."""
    roles = []
    request = collection.list(**kwargs)
    while request is not None:
        response = request.execute()
        roles.extend(response.get("roles", []))
        request = collection.list_next(request, response)
    return roles


def test_list_predefined_roles_basic_view_omits_permissions(iam):
    roles = {r["name"]: r for r in list_all(iam.roles())}
    for name in ("roles/owner", "roles/editor", "roles/viewer", "roles/run.admin"):
        assert name in roles, name
    assert roles["roles/run.admin"]["title"]
    # BASIC (the default view) omits includedPermissions
    assert "includedPermissions" not in roles["roles/run.admin"]
    # predefined roles are named roles/..., never under a project or organization
    assert all(n.startswith("roles/") for n in roles)


def test_list_predefined_roles_full_view(iam):
    roles = {r["name"]: r for r in list_all(iam.roles(), view="FULL")}
    assert "run.workerpools.create" in roles["roles/run.admin"]["includedPermissions"]
    assert "iam.serviceAccounts.actAs" in roles["roles/iam.serviceAccountUser"]["includedPermissions"]


def test_list_roles_pages(iam):
    first = iam.roles().list(pageSize=5).execute()
    assert len(first["roles"]) == 5
    assert first.get("nextPageToken")
    second = iam.roles().list(pageSize=5, pageToken=first["nextPageToken"]).execute()
    assert second["roles"]
    assert not {r["name"] for r in first["roles"]} & {r["name"] for r in second["roles"]}


def test_get_predefined_role(iam):
    role = iam.roles().get(name="roles/run.admin").execute()
    assert role["name"] == "roles/run.admin"
    assert role["title"]
    assert role["etag"]
    assert "run.workerpools.create" in role["includedPermissions"]
    assert "run.workerpools.delete" in role["includedPermissions"]


def test_get_unknown_predefined_role_is_not_found(iam):
    with pytest.raises(HttpError) as err:
        iam.roles().get(name="roles/no.suchRole").execute()
    assert err.value.resp.status == 404
    assert rpc_status(err.value) == "NOT_FOUND"


def test_custom_project_role_lifecycle(iam, unique_id):
    roles = iam.projects().roles()
    parent = "projects/demo-project"
    role_id = f"conformance_{unique_id}"
    name = f"{parent}/roles/{role_id}"
    permissions = ["run.workerpools.get", "run.workerpools.list"]

    created = roles.create(
        parent=parent,
        body={
            "roleId": role_id,
            "role": {
                "title": "Conformance Role",
                "description": "made by the conformance suite",
                "includedPermissions": permissions,
                "stage": "GA",
            },
        },
    ).execute()
    assert created["name"] == name
    assert created["title"] == "Conformance Role"
    assert sorted(created["includedPermissions"]) == permissions
    assert created["stage"] == "GA"
    assert created["etag"]
    assert not created.get("deleted", False)

    got = roles.get(name=name).execute()
    assert got["name"] == name
    assert got["description"] == "made by the conformance suite"
    assert sorted(got["includedPermissions"]) == permissions

    assert name in {r["name"] for r in list_all(roles, parent=parent)}

    with pytest.raises(HttpError) as err:
        roles.create(
            parent=parent,
            body={"roleId": role_id, "role": {"title": "again", "includedPermissions": permissions}},
        ).execute()
    assert err.value.resp.status == 409
    assert rpc_status(err.value) == "ALREADY_EXISTS"

    updated = roles.patch(
        name=name, updateMask="title", body={"title": "Renamed Role", "etag": got["etag"]}
    ).execute()
    assert updated["title"] == "Renamed Role"
    assert sorted(updated["includedPermissions"]) == permissions
    assert updated["etag"] != got["etag"]

    deleted = roles.delete(name=name, etag=updated["etag"]).execute()
    assert deleted["name"] == name
    assert deleted["deleted"] is True

    # soft delete: still readable, flagged deleted, hidden from list unless showDeleted
    assert roles.get(name=name).execute()["deleted"] is True
    assert name not in {r["name"] for r in list_all(roles, parent=parent)}
    assert name in {r["name"] for r in list_all(roles, parent=parent, showDeleted=True)}

    restored = roles.undelete(name=name, body={}).execute()
    assert not restored.get("deleted", False)
    assert not roles.get(name=name).execute().get("deleted", False)


def test_custom_role_rejects_unknown_permission(iam, unique_id):
    with pytest.raises(HttpError) as err:
        iam.projects().roles().create(
            parent="projects/demo-project",
            body={
                "roleId": f"bad_{unique_id}",
                "role": {"title": "bad", "includedPermissions": ["no.such.permission"]},
            },
        ).execute()
    assert err.value.resp.status == 400
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_custom_organization_role(iam, org_name, unique_id):
    roles = iam.organizations().roles()
    role_id = f"orgrole_{unique_id}"
    created = roles.create(
        parent=org_name,
        body={"roleId": role_id, "role": {"title": "Org Role", "includedPermissions": ["run.workerpools.get"]}},
    ).execute()
    assert created["name"] == f"{org_name}/roles/{role_id}"
    assert roles.get(name=created["name"]).execute()["title"] == "Org Role"


def test_alice_cannot_create_custom_role(server, alice_token, unique_id):
    iam_as_alice = server.discovery("iam", "v1", token=alice_token)
    with pytest.raises(HttpError) as err:
        iam_as_alice.projects().roles().create(
            parent="projects/demo-project",
            body={"roleId": f"alice_{unique_id}", "role": {"title": "x", "includedPermissions": ["run.workerpools.get"]}},
        ).execute()
    assert err.value.resp.status == 403
    assert rpc_status(err.value) == "PERMISSION_DENIED"
    body = json.loads(err.value.content)
    assert "iam.roles.create" in body["error"]["message"]
