"""getIamPolicy / setIamPolicy / testIamPermissions on a project (google.iam.v1 types)."""

import pytest
from google.api_core import exceptions
from google.cloud import resourcemanager_v3
from google.iam.v1 import iam_policy_pb2, options_pb2, policy_pb2
from google.type import expr_pb2

from conftest import ALICE, rpc_status

ALICE_MEMBER = f"user:{ALICE}"
CONDITION = expr_pb2.Expr(
    title="expires-2099",
    description="temporary access",
    expression='request.time < timestamp("2099-01-01T00:00:00Z")',
)


@pytest.fixture
def alice_projects(server, alice_token):
    return server.client(resourcemanager_v3.ProjectsClient, token=alice_token)


def get_policy(client, resource, version=None):
    req = iam_policy_pb2.GetIamPolicyRequest(resource=resource)
    if version is not None:
        req.options.CopyFrom(options_pb2.GetPolicyOptions(requested_policy_version=version))
    return client.get_iam_policy(request=req)


def set_policy(client, resource, policy):
    return client.set_iam_policy(
        request=iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=policy)
    )


def members_of(policy, role):
    return {m for b in policy.bindings if b.role == role for m in b.members}


def test_creator_is_owner_of_new_project(projects, new_project):
    policy = get_policy(projects, new_project.name)
    assert policy.etag
    assert any(b.role == "roles/owner" for b in policy.bindings), policy


def test_add_binding_changes_etag(projects, new_project):
    resource = new_project.name
    before = get_policy(projects, resource)
    assert ALICE_MEMBER not in members_of(before, "roles/viewer")

    updated = policy_pb2.Policy()
    updated.CopyFrom(before)
    updated.bindings.add(role="roles/viewer", members=[ALICE_MEMBER])
    returned = set_policy(projects, resource, updated)

    assert ALICE_MEMBER in members_of(returned, "roles/viewer")
    assert returned.etag and returned.etag != before.etag
    after = get_policy(projects, resource)
    assert ALICE_MEMBER in members_of(after, "roles/viewer")
    assert after.etag == returned.etag
    # the bindings that were there are still there
    for b in before.bindings:
        assert set(b.members) <= members_of(after, b.role)


def test_set_with_stale_etag_is_aborted_and_changes_nothing(projects, new_project):
    resource = new_project.name
    original = get_policy(projects, resource)

    first = policy_pb2.Policy()
    first.CopyFrom(original)
    first.bindings.add(role="roles/viewer", members=[ALICE_MEMBER])
    current = set_policy(projects, resource, first)
    assert current.etag != original.etag

    stale = policy_pb2.Policy()
    stale.CopyFrom(original)  # carries the old etag
    stale.bindings.add(role="roles/editor", members=[ALICE_MEMBER])
    # ABORTED / 409. (REST transport: google-api-core maps by HTTP status, so the class is
    # Conflict, the parent of Aborted, as it would be against Google.)
    with pytest.raises(exceptions.Conflict) as err:
        set_policy(projects, resource, stale)
    assert err.value.code == 409
    assert rpc_status(err.value) == "ABORTED"
    assert "concurrent policy changes" in err.value.message

    unchanged = get_policy(projects, resource)
    assert unchanged.etag == current.etag
    assert ALICE_MEMBER not in members_of(unchanged, "roles/editor")
    assert ALICE_MEMBER in members_of(unchanged, "roles/viewer")


def test_conditional_binding_round_trips_at_version_3(projects, new_project):
    resource = new_project.name
    policy = get_policy(projects, resource, version=3)
    # no conditional binding yet: the answer is version 1 even though 3 was asked for
    assert policy.version == 1
    policy.version = 3
    policy.bindings.add(role="roles/browser", members=[ALICE_MEMBER], condition=CONDITION)
    set_policy(projects, resource, policy)

    v3 = get_policy(projects, resource, version=3)
    assert v3.version == 3
    conditional = [b for b in v3.bindings if b.role == "roles/browser"]
    assert len(conditional) == 1
    assert list(conditional[0].members) == [ALICE_MEMBER]
    assert conditional[0].condition.expression == CONDITION.expression
    assert conditional[0].condition.title == CONDITION.title
    assert conditional[0].condition.description == CONDITION.description

    v1 = get_policy(projects, resource)  # no options: version 1
    assert v1.version == 1
    withcond = [b for b in v1.bindings if b.role.startswith("roles/browser_withcond_")]
    assert len(withcond) == 1, [b.role for b in v1.bindings]
    assert list(withcond[0].members) == [ALICE_MEMBER]
    assert not withcond[0].HasField("condition")
    assert not any(b.role == "roles/browser" for b in v1.bindings)

    # writing the version-1 view back (a read-modify-write by a v1 client) is refused:
    # "Specified policy version (1) cannot be less than the existing policy version (3)."
    v1.bindings.add(role="roles/viewer", members=[ALICE_MEMBER])
    with pytest.raises(exceptions.BadRequest) as err:
        set_policy(projects, resource, v1)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    again = get_policy(projects, resource, version=3)
    assert again.etag == v3.etag
    assert [b.condition.expression for b in again.bindings if b.role == "roles/browser"] == [
        CONDITION.expression
    ]


def test_conditional_binding_requires_version_3(projects, new_project):
    resource = new_project.name
    policy = get_policy(projects, resource)
    policy.version = 1
    policy.bindings.add(role="roles/browser", members=[ALICE_MEMBER], condition=CONDITION)
    with pytest.raises(exceptions.BadRequest) as err:
        set_policy(projects, resource, policy)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    assert not members_of(get_policy(projects, resource, version=3), "roles/browser")


def test_test_iam_permissions_before_and_after_grant(projects, alice_projects, new_project):
    resource = new_project.name
    asked = [
        "resourcemanager.projects.get",
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
        "resourcemanager.projects.delete",
    ]

    def allowed():
        resp = alice_projects.test_iam_permissions(
            request=iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=asked)
        )
        return set(resp.permissions)

    assert allowed() == set()

    policy = get_policy(projects, resource)
    policy.bindings.add(role="roles/viewer", members=[ALICE_MEMBER])
    set_policy(projects, resource, policy)

    assert allowed() == {
        "resourcemanager.projects.get",
        "resourcemanager.projects.getIamPolicy",
    }

    # the admin (owner through the organization) holds all four
    resp = projects.test_iam_permissions(
        request=iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=asked)
    )
    assert set(resp.permissions) == set(asked)


def test_alice_without_role_cannot_set_policy(projects, alice_projects, new_project):
    resource = new_project.name
    before = get_policy(projects, resource)

    attempt = policy_pb2.Policy()
    attempt.CopyFrom(before)
    attempt.bindings.add(role="roles/editor", members=[ALICE_MEMBER])
    # PERMISSION_DENIED / 403 (class Forbidden under the REST transport).
    with pytest.raises(exceptions.Forbidden) as err:
        set_policy(alice_projects, resource, attempt)
    assert err.value.code == 403
    assert rpc_status(err.value) == "PERMISSION_DENIED"

    after = get_policy(projects, resource)
    assert after.etag == before.etag
    assert ALICE_MEMBER not in members_of(after, "roles/editor")


def test_viewer_can_read_but_not_set_policy(projects, alice_projects, new_project):
    resource = new_project.name
    policy = get_policy(projects, resource)
    policy.bindings.add(role="roles/viewer", members=[ALICE_MEMBER])
    set_policy(projects, resource, policy)

    seen = get_policy(alice_projects, resource)
    assert ALICE_MEMBER in members_of(seen, "roles/viewer")
    seen.bindings.add(role="roles/editor", members=[ALICE_MEMBER])
    with pytest.raises(exceptions.Forbidden) as err:
        set_policy(alice_projects, resource, seen)
    assert rpc_status(err.value) == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    "role,member",
    [
        # projects.setIamPolicy: "Project does not support allUsers and allAuthenticatedUsers"
        ("roles/viewer", "allUsers"),
        ("roles/viewer", "allAuthenticatedUsers"),
        # a member needs its type prefix
        ("roles/viewer", "alice@example.com"),
        # an unknown role
        ("roles/no.suchRole", ALICE_MEMBER),
    ],
)
def test_invalid_bindings_are_rejected(projects, new_project, role, member):
    resource = new_project.name
    before = get_policy(projects, resource)
    policy = policy_pb2.Policy()
    policy.CopyFrom(before)
    policy.bindings.add(role=role, members=[member])
    with pytest.raises(exceptions.BadRequest) as err:
        set_policy(projects, resource, policy)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    assert get_policy(projects, resource).etag == before.etag


def test_organization_policy_holds_the_default_grants(server, org_name):
    orgs = server.client(resourcemanager_v3.OrganizationsClient)
    policy = orgs.get_iam_policy(request={"resource": org_name})
    assert "user:admin@example.com" in members_of(policy, "roles/resourcemanager.organizationAdmin")
    assert "domain:example.com" in members_of(policy, "roles/resourcemanager.projectCreator")
