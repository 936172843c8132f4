"""The resource hierarchy: folder lifecycle, and IAM and org policy inherited through folders."""

import pytest
from google.api_core import exceptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import orgpolicy_v2, resourcemanager_v3
from google.iam.v1 import iam_policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from conftest import ALICE, CROSS_PROJECT, rpc_status


@pytest.fixture
def folder(folders, org_name, unique_id):
    return folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=f"F {unique_id}")
    ).result(timeout=30)


def grant(client, resource, role, member):
    policy = client.get_iam_policy(request={"resource": resource})
    policy.bindings.add(role=role, members=[member])
    return client.set_iam_policy(request={"resource": resource, "policy": policy})


def test_folder_patch_delete_undelete(folders, folder, unique_id):
    renamed = folders.update_folder(
        folder=resourcemanager_v3.Folder(name=folder.name, display_name=f"R {unique_id}"),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    ).result(timeout=30)
    assert renamed.display_name == f"R {unique_id}"
    assert folders.get_folder(name=folder.name).display_name == f"R {unique_id}"

    deleted = folders.delete_folder(name=folder.name).result(timeout=30)
    assert deleted.state == resourcemanager_v3.Folder.State.DELETE_REQUESTED
    assert folders.get_folder(name=folder.name).state == resourcemanager_v3.Folder.State.DELETE_REQUESTED

    restored = folders.undelete_folder(name=folder.name).result(timeout=30)
    assert restored.state == resourcemanager_v3.Folder.State.ACTIVE


def test_search_folders(folders, org_name, unique_id):
    a = folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=f"S{unique_id}a")
    ).result(timeout=30)
    b = folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=a.name, display_name=f"S{unique_id}b")
    ).result(timeout=30)
    assert {f.name for f in folders.search_folders(query=f"displayName=S{unique_id}*")} == {a.name, b.name}
    assert [f.name for f in folders.search_folders(query=f"displayName=S{unique_id}b")] == [b.name]
    assert [f.name for f in folders.search_folders(query=f"parent={a.name} AND state=ACTIVE")] == [b.name]


def test_search_folders_by_quoted_display_name(folders, org_name, unique_id):
    # SearchFoldersRequest.query: values with whitespace are quoted, e.g. displayName=\"Test String\"
    display = f"Q {unique_id}"
    f = folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=display)
    ).result(timeout=30)
    found = list(folders.search_folders(query=f'displayName="{display}"'))
    assert [x.name for x in found] == [f.name]


def test_deleting_a_non_empty_folder_fails(folders, projects, folder, new_project):
    projects.move_project(name=new_project.name, destination_parent=folder.name).result(timeout=30)
    # Google: the folder must have no active children: FAILED_PRECONDITION (HTTP 400)
    with pytest.raises(exceptions.GoogleAPICallError) as err:
        folders.delete_folder(name=folder.name).result(timeout=30)
    assert rpc_status(err.value) == "FAILED_PRECONDITION", err.value
    assert folders.get_folder(name=folder.name).state == resourcemanager_v3.Folder.State.ACTIVE


def test_move_folder_into_folder(folders, folder, org_name, unique_id):
    child = folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=f"C {unique_id}")
    ).result(timeout=30)
    moved = folders.move_folder(name=child.name, destination_parent=folder.name).result(timeout=30)
    assert moved.parent == folder.name
    assert child.name in {f.name for f in folders.list_folders(parent=folder.name)}


def test_operation_can_be_fetched(projects, org_name, unique_id):
    op = projects.create_project(
        project=resourcemanager_v3.Project(project_id=f"o-{unique_id}", parent=org_name)
    )
    created = op.result(timeout=30)
    fetched = projects.get_operation(request=operations_pb2.GetOperationRequest(name=op.operation.name))
    assert fetched.name == op.operation.name
    assert fetched.done
    assert fetched.response.type_url == "type.googleapis.com/google.cloud.resourcemanager.v3.Project"
    project = resourcemanager_v3.Project.deserialize(fetched.response.value)
    assert project.name == created.name


def test_iam_grant_on_folder_is_inherited_by_its_projects(
    server, projects, folders, folder, new_project, alice_token
):
    alice = server.client(resourcemanager_v3.ProjectsClient, token=alice_token)
    projects.move_project(name=new_project.name, destination_parent=folder.name).result(timeout=30)
    with pytest.raises(exceptions.Forbidden):
        alice.get_project(name=new_project.name)

    grant(folders, folder.name, "roles/browser", f"user:{ALICE}")

    assert alice.get_project(name=new_project.name).project_id == new_project.project_id
    allowed = alice.test_iam_permissions(
        request=iam_policy_pb2.TestIamPermissionsRequest(
            resource=new_project.name,
            permissions=["resourcemanager.projects.get", "resourcemanager.projects.delete"],
        )
    )
    assert list(allowed.permissions) == ["resourcemanager.projects.get"]
    # the grant shows on the folder's policy, not on the project's
    project_policy = projects.get_iam_policy(request={"resource": new_project.name})
    assert not any(f"user:{ALICE}" in b.members for b in project_policy.bindings)
    # and alice sees the folder in a search, the project in hers
    assert new_project.name in {p.name for p in alice.search_projects(request={})}


def test_org_policy_on_folder_is_inherited_and_overridden(
    orgpolicy, projects, folder, new_project, org_name
):
    projects.move_project(name=new_project.name, destination_parent=folder.name).result(timeout=30)
    orgpolicy.create_policy(
        parent=folder.name,
        policy={"name": f"{folder.name}/policies/{CROSS_PROJECT}", "spec": {"rules": [{"enforce": False}]}},
    )

    def enforced(parent):
        return [r.enforce for r in orgpolicy.get_effective_policy(name=f"{parent}/policies/{CROSS_PROJECT}").spec.rules]

    assert enforced(org_name) == [True]
    assert enforced(folder.name) == [False]
    assert enforced(new_project.name) == [False]

    # a policy on the project itself wins over the folder's
    orgpolicy.create_policy(
        parent=new_project.name,
        policy={"name": f"{new_project.name}/policies/{CROSS_PROJECT}", "spec": {"rules": [{"enforce": True}]}},
    )
    assert enforced(new_project.name) == [True]
    assert enforced(folder.name) == [False]


def test_alice_cannot_set_org_policy(server, alice_token, new_project):
    alice = server.client(orgpolicy_v2.OrgPolicyClient, token=alice_token)
    with pytest.raises(exceptions.Forbidden) as err:
        alice.create_policy(
            parent=new_project.name,
            policy={
                "name": f"{new_project.name}/policies/{CROSS_PROJECT}",
                "spec": {"rules": [{"enforce": False}]},
            },
        )
    assert rpc_status(err.value) == "PERMISSION_DENIED"


def test_enum_encoding_int_is_honoured(server):
    """The clients send $alt=json;enum-encoding=int and the server must answer enums as ints."""
    from google.oauth2.credentials import Credentials

    session = AuthorizedSession(Credentials(token=server.token))
    url = f"{server.endpoint}/v3/projects/demo-project"
    as_int = session.get(url, params={"$alt": "json;enum-encoding=int"})
    assert as_int.status_code == 200
    assert as_int.json()["state"] == 1
    plain = session.get(url)
    assert plain.json()["state"] == "ACTIVE"
