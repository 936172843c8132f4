"""Resource Manager v3 (projects, folders, organizations) through google-cloud-resource-manager."""

import re

import pytest
from google.api_core import exceptions
from google.cloud import resourcemanager_v3
from google.protobuf import field_mask_pb2

from conftest import rpc_status

State = resourcemanager_v3.Project.State
FolderState = resourcemanager_v3.Folder.State


# --- organizations -----------------------------------------------------------------------------


def test_search_organizations_finds_the_default_org(organizations):
    orgs = list(organizations.search_organizations(request={}))
    assert len(orgs) == 1
    org = orgs[0]
    assert re.fullmatch(r"organizations/\d+", org.name), org.name
    assert org.display_name == "example.com"
    assert org.state == resourcemanager_v3.Organization.State.ACTIVE
    assert org.directory_customer_id


def test_search_organizations_by_domain(organizations, org_name):
    found = list(organizations.search_organizations(query="domain:example.com"))
    assert [o.name for o in found] == [org_name]
    missing = list(organizations.search_organizations(query="domain:nowhere.invalid"))
    assert missing == []


def test_get_organization(organizations, org_name):
    org = organizations.get_organization(name=org_name)
    assert org.name == org_name
    assert org.display_name == "example.com"
    assert org.state == resourcemanager_v3.Organization.State.ACTIVE
    assert org.create_time is not None and org.create_time.year >= 2000
    assert org.etag


def test_get_unknown_organization_is_permission_denied(organizations):
    # Google answers 403 for an organization the caller cannot see (it does not reveal existence).
    # (REST transport: google-api-core raises Forbidden, the parent of PermissionDenied.)
    with pytest.raises(exceptions.Forbidden) as err:
        organizations.get_organization(name="organizations/999999999999")
    assert rpc_status(err.value) == "PERMISSION_DENIED"


# --- projects ------------------------------------------------------------------------------------


def test_get_project_by_id(projects, org_name):
    p = projects.get_project(name="projects/demo-project")
    assert re.fullmatch(r"projects/\d+", p.name), p.name
    assert p.project_id == "demo-project"
    assert p.state == State.ACTIVE
    assert p.parent == org_name
    assert p.etag
    assert p.create_time.year >= 2000


def test_get_project_by_number_matches_by_id(projects, demo_project):
    by_number = projects.get_project(name=demo_project.name)
    assert by_number.project_id == "demo-project"
    assert by_number.name == demo_project.name


def test_get_missing_project_is_permission_denied(projects):
    # Google never reveals whether a project exists to a caller without access: 403.
    with pytest.raises(exceptions.Forbidden) as err:
        projects.get_project(name="projects/no-such-project-xyz")
    assert rpc_status(err.value) == "PERMISSION_DENIED"


def test_search_projects(projects, demo_project):
    all_ids = {p.project_id for p in projects.search_projects(request={})}
    assert "demo-project" in all_ids
    by_id = list(projects.search_projects(query="id:demo-project"))
    assert [p.name for p in by_id] == [demo_project.name]


def test_create_project_returns_operation(projects, org_name, unique_id):
    project_id = f"c-{unique_id}"
    op = projects.create_project(
        project=resourcemanager_v3.Project(
            project_id=project_id,
            display_name="Created by conformance",
            parent=org_name,
            labels={"env": "test"},
        )
    )
    created = op.result(timeout=30)
    assert isinstance(created, resourcemanager_v3.Project)
    assert re.fullmatch(r"projects/\d+", created.name), created.name
    assert created.project_id == project_id
    assert created.parent == org_name
    assert created.display_name == "Created by conformance"
    assert created.labels["env"] == "test"
    assert created.state == State.ACTIVE

    fetched = projects.get_project(name=f"projects/{project_id}")
    assert fetched.name == created.name


def test_create_project_with_taken_id_fails(projects, org_name):
    # ALREADY_EXISTS (409), either on the call or in the returned Operation's error.
    with pytest.raises(exceptions.Conflict) as err:
        projects.create_project(
            project=resourcemanager_v3.Project(project_id="demo-project", parent=org_name)
        ).result(timeout=30)
    assert rpc_status(err.value) == "ALREADY_EXISTS"


def test_update_project_honours_field_mask(projects, new_project):
    before = new_project
    op = projects.update_project(
        project=resourcemanager_v3.Project(
            name=before.name, display_name="Renamed", labels={"ignored": "yes"}
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
    )
    updated = op.result(timeout=30)
    assert updated.display_name == "Renamed"
    # labels were not in the mask: untouched
    assert "ignored" not in updated.labels
    fetched = projects.get_project(name=before.name)
    assert fetched.display_name == "Renamed"
    assert "ignored" not in fetched.labels
    assert fetched.etag != before.etag


def test_list_projects_under_org(projects, org_name, demo_project):
    listed = list(projects.list_projects(parent=org_name))
    names = {p.name for p in listed}
    assert demo_project.name in names
    assert all(p.parent == org_name for p in listed)


def test_delete_and_undelete_project(projects, new_project, org_name):
    name = new_project.name
    deleted = projects.delete_project(name=name).result(timeout=30)
    assert deleted.state == State.DELETE_REQUESTED
    assert deleted.delete_time.year >= 2000

    assert projects.get_project(name=name).state == State.DELETE_REQUESTED
    assert name not in {p.name for p in projects.list_projects(parent=org_name)}
    with_deleted = {
        p.name for p in projects.list_projects(request={"parent": org_name, "show_deleted": True})
    }
    assert name in with_deleted

    restored = projects.undelete_project(name=name).result(timeout=30)
    assert restored.state == State.ACTIVE
    assert projects.get_project(name=name).state == State.ACTIVE
    assert name in {p.name for p in projects.list_projects(parent=org_name)}


# --- folders -------------------------------------------------------------------------------------


def test_folder_create_get_list_and_move_project_into_it(folders, projects, org_name, new_project):
    op = folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name="Conformance Folder")
    )
    folder = op.result(timeout=30)
    assert re.fullmatch(r"folders/\d+", folder.name), folder.name
    assert folder.parent == org_name
    assert folder.display_name == "Conformance Folder"
    assert folder.state == FolderState.ACTIVE

    got = folders.get_folder(name=folder.name)
    assert got.name == folder.name
    assert got.display_name == "Conformance Folder"

    listed = {f.name for f in folders.list_folders(parent=org_name)}
    assert folder.name in listed

    moved = projects.move_project(
        name=new_project.name, destination_parent=folder.name
    ).result(timeout=30)
    assert moved.parent == folder.name
    assert projects.get_project(name=new_project.name).parent == folder.name
    in_folder = {p.name for p in projects.list_projects(parent=folder.name)}
    assert new_project.name in in_folder
    assert new_project.name not in {p.name for p in projects.list_projects(parent=org_name)}


def test_folder_display_names_are_unique_under_a_parent(folders, org_name, unique_id):
    display = f"Dup {unique_id}"
    folders.create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=display)
    ).result(timeout=30)
    # Google: "The folder operation violates display name uniqueness within the parent.",
    # FAILED_PRECONDITION (HTTP 400), on the call or in the Operation's error.
    with pytest.raises(exceptions.GoogleAPICallError) as err:
        folders.create_folder(
            folder=resourcemanager_v3.Folder(parent=org_name, display_name=display)
        ).result(timeout=30)
    assert rpc_status(err.value) == "FAILED_PRECONDITION", err.value
    assert err.value.code == 400
