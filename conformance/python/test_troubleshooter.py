"""Policy Troubleshooter through Google's two Python clients, REST transport:

- v3, google-cloud-policytroubleshooter-iam (``policytroubleshooter_iam_v3``,
  ``POST /v3/iam:troubleshoot``);
- v1, google-cloud-policy-troubleshooter (``policytroubleshooter_v1``,
  ``POST /v1/iam:troubleshoot``).

Group membership can only be declared in a world file (Runpool serves no Cloud Identity
API), so this module starts its own server with ``serve --world`` declaring nested groups
(lena is in leads, leads is in devs, devs holds roles/run.viewer on the project). The
conditional bindings are set through Resource Manager (policy version 3) by the tests'
fixture. The admin holds roles/resourcemanager.organizationAdmin, so it may read every
policy on the path; a caller that may not read them gets UNKNOWN_INFO (v3) /
UNKNOWN_INFO_DENIED (v1).
"""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions
from google.cloud import policytroubleshooter_iam_v3 as v3
from google.cloud import policytroubleshooter_v1 as v1
from google.cloud import resourcemanager_v3
from google.iam.v1 import iam_policy_pb2, options_pb2, policy_pb2
from google.type import expr_pb2

from conftest import Server, _endpoint_token, rpc_status, started_server

PROJECT_ID = "ts-project"
RESOURCE = f"//cloudresourcemanager.googleapis.com/projects/{PROJECT_ID}"
DEVS = "group:devs@example.com"
CAROL = "user:carol@example.com"
LENA = "lena@example.com"  # in leads@, which is in devs@
EVE = "eve@example.com"  # granted nothing
DAVE = "dave@example.com"  # roles/run.admin under a condition that is false
FRANK = "frank@example.com"  # roles/run.admin under a condition that is true
PAST = "request.time < timestamp('2020-01-01T00:00:00Z')"
SINCE = "request.time > timestamp('2020-01-01T00:00:00Z')"

WORLD = f"""
organizations:
  - domain: example.com
    iam:
      - role: roles/owner
        members: [user:admin@example.com]
      - role: roles/resourcemanager.organizationAdmin
        members: [user:admin@example.com]
    projects:
      - projectId: {PROJECT_ID}
        iam:
          - role: roles/run.viewer
            members: [{CAROL}, {DEVS}]
groups:
  - email: devs@example.com
    members: [group:leads@example.com]
  - email: leads@example.com
    members: [user:{LENA}]
"""


@pytest.fixture(scope="module")
def world_server():
    """A server of its own, started with the world above (admin token as ``token``)."""
    with started_server(world=WORLD) as srv:
        srv.token = _endpoint_token(srv, "admin@example.com")
        _set_conditional_bindings(srv)
        yield srv


def _set_conditional_bindings(srv: Server):
    projects = srv.client(resourcemanager_v3.ProjectsClient)
    name = f"projects/{PROJECT_ID}"
    policy = projects.get_iam_policy(
        request=iam_policy_pb2.GetIamPolicyRequest(
            resource=name, options=options_pb2.GetPolicyOptions(requested_policy_version=3)
        )
    )
    policy.version = 3
    for who, expression, title in ((DAVE, PAST, "expired"), (FRANK, SINCE, "current")):
        policy.bindings.append(
            policy_pb2.Binding(
                role="roles/run.admin",
                members=[f"user:{who}"],
                condition=expr_pb2.Expr(expression=expression, title=title),
            )
        )
    projects.set_iam_policy(request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=policy))


@pytest.fixture(scope="module")
def v3_client(world_server):
    return world_server.client(v3.PolicyTroubleshooterClient)


@pytest.fixture(scope="module")
def v1_client(world_server):
    return world_server.client(v1.IamCheckerClient)


def troubleshoot(client, principal: str, permission: str, resource: str = RESOURCE):
    """``troubleshoot_iam_policy``: the v1 and v3 clients take the same AccessTuple fields."""
    return client.troubleshoot_iam_policy(
        request={
            "access_tuple": {
                "principal": principal,
                "full_resource_name": resource,
                "permission": permission,
            }
        }
    )


def troubleshoot_as_carol(world_server, client_class):
    """Eve's ``run.workerpools.list``, asked by carol, who holds roles/run.viewer only: she may
    read neither the project's nor the org's policy."""
    client = world_server.client(client_class, token=_endpoint_token(world_server, "carol@example.com"))
    return troubleshoot(client, EVE, "run.workerpools.list")


def troubleshoot_plain_json(server, version: str, principal: str, permission: str) -> dict:
    """``POST /{version}/iam:troubleshoot`` with ``requests``: the plain-JSON wire, enum names."""
    return requests.post(
        f"{server.endpoint}/{version}/iam:troubleshoot",
        headers={"Authorization": f"Bearer {server.token}"},
        json={
            "accessTuple": {
                "principal": principal,
                "fullResourceName": RESOURCE,
                "permission": permission,
            }
        },
        timeout=30,
    ).json()


def project_policy(explained_policies):
    """The explained policy of the project (the first: the checked resource itself)."""
    first = explained_policies[0]
    assert first.full_resource_name.startswith("//cloudresourcemanager.googleapis.com/projects/")
    return first


def binding(policy, role: str, condition: str | None = None):
    """The explanation of the policy's one binding of ``role`` (under ``condition``, if given),
    which the explained policy itself must hold."""
    assert any(b.role == role for b in policy.policy.bindings)
    found = [
        b
        for b in policy.binding_explanations
        if b.role == role and (condition is None or b.condition.expression == condition)
    ]
    assert len(found) == 1, [b.role for b in policy.binding_explanations]
    return found[0]


# --- v3 ---------------------------------------------------------------------------------------

Overall = v3.TroubleshootIamPolicyResponse.OverallAccessState
Allow = v3.AllowAccessState
Membership3 = v3.MembershipMatchingState
Relevance3 = v3.HeuristicRelevance


def test_v3_granted_through_nested_group(v3_client):
    r = troubleshoot(v3_client, LENA, "run.workerpools.list")
    assert r.overall_access_state == Overall.CAN_ACCESS
    assert r.access_tuple.principal == LENA
    assert r.access_tuple.full_resource_name == RESOURCE
    assert r.access_tuple.permission == "run.workerpools.list"

    allow = r.allow_policy_explanation
    assert allow.allow_access_state == Allow.ALLOW_ACCESS_STATE_GRANTED
    # the project's policy and the organization's, nearest first
    assert len(allow.explained_policies) == 2
    assert allow.explained_policies[1].full_resource_name.startswith(
        "//cloudresourcemanager.googleapis.com/organizations/"
    )
    policy = project_policy(allow.explained_policies)
    assert policy.allow_access_state == Allow.ALLOW_ACCESS_STATE_GRANTED
    assert policy.relevance == Relevance3.HEURISTIC_RELEVANCE_HIGH

    b = binding(policy, "roles/run.viewer")
    assert b.allow_access_state == Allow.ALLOW_ACCESS_STATE_GRANTED
    assert b.role_permission == v3.RolePermissionInclusionState.ROLE_PERMISSION_INCLUDED
    assert b.combined_membership.membership == Membership3.MEMBERSHIP_MATCHED
    assert b.memberships[DEVS].membership == Membership3.MEMBERSHIP_MATCHED
    assert b.memberships[DEVS].relevance == Relevance3.HEURISTIC_RELEVANCE_HIGH
    assert b.memberships[CAROL].membership == Membership3.MEMBERSHIP_NOT_MATCHED
    assert b.relevance == Relevance3.HEURISTIC_RELEVANCE_HIGH
    assert not b.condition.expression

    deny = r.deny_policy_explanation
    assert deny.deny_access_state == v3.DenyAccessState.DENY_ACCESS_STATE_NOT_DENIED


def test_v3_not_granted(v3_client):
    r = troubleshoot(v3_client, EVE, "run.workerpools.list")
    assert r.overall_access_state == Overall.CANNOT_ACCESS
    allow = r.allow_policy_explanation
    assert allow.allow_access_state == Allow.ALLOW_ACCESS_STATE_NOT_GRANTED
    assert all(
        p.allow_access_state == Allow.ALLOW_ACCESS_STATE_NOT_GRANTED for p in allow.explained_policies
    )
    b = binding(project_policy(allow.explained_policies), "roles/run.viewer")
    assert b.allow_access_state == Allow.ALLOW_ACCESS_STATE_NOT_GRANTED
    assert b.role_permission == v3.RolePermissionInclusionState.ROLE_PERMISSION_INCLUDED
    assert b.combined_membership.membership == Membership3.MEMBERSHIP_NOT_MATCHED
    # the role has the permission, so that eve is not a member is what matters
    assert b.combined_membership.relevance == Relevance3.HEURISTIC_RELEVANCE_HIGH
    assert all(m.membership == Membership3.MEMBERSHIP_NOT_MATCHED for m in b.memberships.values())


def test_v3_role_without_the_permission(v3_client):
    r = troubleshoot(v3_client, LENA, "run.workerpools.create")
    assert r.overall_access_state == Overall.CANNOT_ACCESS
    b = binding(project_policy(r.allow_policy_explanation.explained_policies), "roles/run.viewer")
    assert b.role_permission == v3.RolePermissionInclusionState.ROLE_PERMISSION_NOT_INCLUDED
    assert b.role_permission_relevance == Relevance3.HEURISTIC_RELEVANCE_HIGH
    assert b.combined_membership.membership == Membership3.MEMBERSHIP_MATCHED
    assert b.allow_access_state == Allow.ALLOW_ACCESS_STATE_NOT_GRANTED


def test_v3_conditional_binding_whose_condition_is_false(v3_client):
    r = troubleshoot(v3_client, DAVE, "run.workerpools.create")
    assert r.overall_access_state == Overall.CANNOT_ACCESS
    b = binding(project_policy(r.allow_policy_explanation.explained_policies), "roles/run.admin", PAST)
    assert b.role_permission == v3.RolePermissionInclusionState.ROLE_PERMISSION_INCLUDED
    assert b.memberships[f"user:{DAVE}"].membership == Membership3.MEMBERSHIP_MATCHED
    assert b.condition.title == "expired"
    assert b.condition_explanation.value is False
    assert b.allow_access_state == Allow.ALLOW_ACCESS_STATE_NOT_GRANTED


def test_v3_conditional_binding_whose_condition_is_true(v3_client):
    r = troubleshoot(v3_client, FRANK, "run.workerpools.create")
    assert r.overall_access_state == Overall.CAN_ACCESS
    b = binding(project_policy(r.allow_policy_explanation.explained_policies), "roles/run.admin", SINCE)
    assert b.condition_explanation.value is True
    assert b.allow_access_state == Allow.ALLOW_ACCESS_STATE_GRANTED


def test_v3_policies_the_caller_may_not_read_are_unknown(world_server):
    r = troubleshoot_as_carol(world_server, v3.PolicyTroubleshooterClient)
    assert r.overall_access_state == Overall.UNKNOWN_INFO
    allow = r.allow_policy_explanation
    assert allow.allow_access_state == Allow.ALLOW_ACCESS_STATE_UNKNOWN_INFO
    for p in allow.explained_policies:
        assert p.allow_access_state == Allow.ALLOW_ACCESS_STATE_UNKNOWN_INFO
        assert not p.policy.bindings
        assert not p.binding_explanations


def test_v3_bad_requests(v3_client):
    with pytest.raises(exceptions.BadRequest) as err:
        troubleshoot(v3_client, LENA, "")
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    with pytest.raises(exceptions.BadRequest) as err:
        troubleshoot(v3_client, LENA, "run.workerpools.list", RESOURCE.replace(PROJECT_ID, "no-such"))
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_v3_enum_names_on_the_plain_json_wire(world_server):
    body = troubleshoot_plain_json(world_server, "v3", LENA, "run.workerpools.list")
    assert body["overallAccessState"] == "CAN_ACCESS"
    allow = body["allowPolicyExplanation"]
    assert allow["allowAccessState"] == "ALLOW_ACCESS_STATE_GRANTED"
    bindings = allow["explainedPolicies"][0]["bindingExplanations"]
    (b,) = [b for b in bindings if b["role"] == "roles/run.viewer"]
    assert b["rolePermission"] == "ROLE_PERMISSION_INCLUDED"
    assert b["combinedMembership"]["membership"] == "MEMBERSHIP_MATCHED"
    assert b["memberships"][DEVS] == {
        "membership": "MEMBERSHIP_MATCHED",
        "relevance": "HEURISTIC_RELEVANCE_HIGH",
    }
    assert body["denyPolicyExplanation"]["denyAccessState"] == "DENY_ACCESS_STATE_NOT_DENIED"


# --- v1 ---------------------------------------------------------------------------------------

Access = v1.AccessState
Membership1 = v1.BindingExplanation.Membership
Relevance1 = v1.HeuristicRelevance


def test_v1_granted_through_nested_group(v1_client):
    r = troubleshoot(v1_client, LENA, "run.workerpools.list")
    assert r.access == Access.GRANTED
    assert list(r.errors) == []
    assert len(r.explained_policies) == 2
    policy = project_policy(r.explained_policies)
    assert policy.access == Access.GRANTED
    assert policy.relevance == Relevance1.HIGH

    b = binding(policy, "roles/run.viewer")
    assert b.access == Access.GRANTED
    assert b.role_permission == v1.BindingExplanation.RolePermission.ROLE_PERMISSION_INCLUDED
    assert b.role_permission_relevance == Relevance1.NORMAL
    assert b.memberships[DEVS].membership == Membership1.MEMBERSHIP_INCLUDED
    assert b.memberships[DEVS].relevance == Relevance1.HIGH
    assert b.memberships[CAROL].membership == Membership1.MEMBERSHIP_NOT_INCLUDED
    assert b.relevance == Relevance1.HIGH


def test_v1_not_granted(v1_client):
    r = troubleshoot(v1_client, EVE, "run.workerpools.list")
    assert r.access == Access.NOT_GRANTED
    assert all(p.access == Access.NOT_GRANTED for p in r.explained_policies)
    b = binding(project_policy(r.explained_policies), "roles/run.viewer")
    assert b.access == Access.NOT_GRANTED
    assert b.role_permission == v1.BindingExplanation.RolePermission.ROLE_PERMISSION_INCLUDED
    assert all(m.membership == Membership1.MEMBERSHIP_NOT_INCLUDED for m in b.memberships.values())

    r = troubleshoot(v1_client, LENA, "run.workerpools.create")
    b = binding(project_policy(r.explained_policies), "roles/run.viewer")
    assert b.role_permission == v1.BindingExplanation.RolePermission.ROLE_PERMISSION_NOT_INCLUDED
    assert b.role_permission_relevance == Relevance1.HIGH
    assert b.access == Access.NOT_GRANTED


def test_v1_conditional_bindings(v1_client):
    r = troubleshoot(v1_client, DAVE, "run.workerpools.create")
    assert r.access == Access.NOT_GRANTED
    b = binding(project_policy(r.explained_policies), "roles/run.admin", PAST)
    assert b.condition.title == "expired"
    assert b.memberships[f"user:{DAVE}"].membership == Membership1.MEMBERSHIP_INCLUDED
    assert b.access == Access.NOT_GRANTED

    r = troubleshoot(v1_client, FRANK, "run.workerpools.create")
    assert r.access == Access.GRANTED
    b = binding(project_policy(r.explained_policies), "roles/run.admin", SINCE)
    assert b.condition.expression == SINCE
    assert b.access == Access.GRANTED


def test_v1_policies_the_caller_may_not_read(world_server):
    r = troubleshoot_as_carol(world_server, v1.IamCheckerClient)
    assert r.access == Access.UNKNOWN_INFO_DENIED
    assert r.explained_policies
    for p in r.explained_policies:
        # v1 omits all but the access state of a policy the caller may not read
        assert p.access == Access.UNKNOWN_INFO_DENIED
        assert p.full_resource_name == ""
        assert not p.policy.bindings
        assert not p.binding_explanations


def test_v1_bad_request(v1_client):
    with pytest.raises(exceptions.BadRequest) as err:
        troubleshoot(v1_client, LENA, "run.workerpools.list", "//example.com/no/such/thing")
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_v1_enum_names_on_the_plain_json_wire(world_server):
    body = troubleshoot_plain_json(world_server, "v1", LENA, "run.workerpools.list")
    assert body["access"] == "GRANTED"
    policy = body["explainedPolicies"][0]
    assert policy["access"] == "GRANTED"
    assert policy["relevance"] == "HIGH"
    (b,) = [b for b in policy["bindingExplanations"] if b["role"] == "roles/run.viewer"]
    assert b["access"] == "GRANTED"
    assert b["rolePermission"] == "ROLE_PERMISSION_INCLUDED"
    assert b["rolePermissionRelevance"] == "NORMAL"
    assert b["memberships"][DEVS] == {"membership": "MEMBERSHIP_INCLUDED", "relevance": "HIGH"}
    assert b["memberships"][CAROL] == {"membership": "MEMBERSHIP_NOT_INCLUDED", "relevance": "NORMAL"}
    assert b["relevance"] == "HIGH"
