"""IAM v2 deny policies through google-cloud-iam's ``iam_v2.PoliciesClient`` (REST).

The default world's admin holds ``roles/iam.denyAdmin`` on the organization (owners
cannot manage deny policies, as on Google). A deny rule wins over the admin's grants.
"""

from __future__ import annotations

import urllib.parse

import pytest
from google.api_core import exceptions
from google.cloud import iam_v2, resourcemanager_v3
from google.type import expr_pb2

from conftest import grant_on_project, rpc_status


def parent_of(project_id: str) -> str:
    point = urllib.parse.quote(
        f"cloudresourcemanager.googleapis.com/projects/{project_id}", safe=""
    )
    return f"policies/{point}/denypolicies"


def deny(principal: str, permission: str, **extra) -> iam_v2.PolicyRule:
    return iam_v2.PolicyRule(
        deny_rule=iam_v2.DenyRule(
            denied_principals=[principal], denied_permissions=[permission], **extra
        )
    )


def test_create_get_list_update_delete_and_the_rule_wins(server, project, token_for):
    client = server.client(iam_v2.PoliciesClient)
    parent = parent_of(project.project_id)
    grant_on_project(server, project.name, "roles/editor", "user:dora@example.com")
    dora = token_for("dora@example.com")
    projects_as_dora = server.client(resourcemanager_v3.ProjectsClient, dora)
    assert projects_as_dora.get_project(name=project.name).project_id == project.project_id

    op = client.create_policy(
        parent=parent,
        policy_id="no-reads",
        policy=iam_v2.Policy(
            display_name="dora may not read",
            rules=[
                deny(
                    "principal://goog/subject/dora@example.com",
                    "cloudresourcemanager.googleapis.com/projects.get",
                )
            ],
        ),
    )
    created = op.result(timeout=30)
    number = project.name.split("/")[1]
    assert created.name == (
        f"policies/cloudresourcemanager.googleapis.com%2Fprojects%2F{number}/denypolicies/no-reads"
    )
    assert created.kind == "DenyPolicy"
    assert created.uid and created.etag and created.create_time

    with pytest.raises(exceptions.Forbidden):
        projects_as_dora.get_project(name=project.name)

    got = client.get_policy(name=created.name)
    assert got.rules[0].deny_rule.denied_permissions == [
        "cloudresourcemanager.googleapis.com/projects.get"
    ]
    listed = list(client.list_policies(parent=parent))
    assert [p.name for p in listed] == [created.name]

    got.rules[0].deny_rule.exception_principals.append(
        "principal://goog/subject/dora@example.com"
    )
    updated = client.update_policy(request=iam_v2.UpdatePolicyRequest(policy=got)).result(timeout=30)
    assert updated.etag != got.etag
    assert projects_as_dora.get_project(name=project.name).project_id == project.project_id

    # The etag read before the update is stale now.
    got.display_name = "stale"
    with pytest.raises(exceptions.Conflict) as err:
        client.update_policy(request=iam_v2.UpdatePolicyRequest(policy=got)).result(timeout=30)
    assert rpc_status(err.value) == "ABORTED"

    client.delete_policy(name=created.name).result(timeout=30)
    with pytest.raises(exceptions.NotFound):
        client.get_policy(name=created.name)


def test_bad_rules_are_refused(server, project):
    client = server.client(iam_v2.PoliciesClient)
    parent = parent_of(project.project_id)
    bad = [
        deny("user:dora@example.com", "cloudresourcemanager.googleapis.com/projects.get"),
        deny("principal://goog/subject/dora@example.com", "resourcemanager.projects.get"),
        deny(
            "principal://goog/subject/dora@example.com",
            "cloudresourcemanager.googleapis.com/projects.get",
            denial_condition=expr_pb2.Expr(expression="request.time > timestamp('2020-01-01T00:00:00Z')"),
        ),
    ]
    for i, rule in enumerate(bad):
        with pytest.raises(exceptions.BadRequest):
            client.create_policy(
                parent=parent, policy_id=f"bad-{i}", policy=iam_v2.Policy(rules=[rule])
            )
    assert list(client.list_policies(parent=parent)) == []


def test_owners_cannot_manage_deny_policies(server, project, token_for):
    grant_on_project(server, project.name, "roles/owner", "user:olga@example.com")
    client = server.client(iam_v2.PoliciesClient, token_for("olga@example.com"))
    with pytest.raises(exceptions.Forbidden) as err:
        client.create_policy(
            parent=parent_of(project.project_id),
            policy_id="mine",
            policy=iam_v2.Policy(
                rules=[
                    deny(
                        "principal://goog/subject/dora@example.com",
                        "cloudresourcemanager.googleapis.com/projects.get",
                    )
                ]
            ),
        )
    assert "iam.denypolicies.create" in str(err.value)
