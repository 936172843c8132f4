"""Org Policy v2 through google-cloud-org-policy."""

import pytest
from google.api_core import exceptions
from google.cloud import orgpolicy_v2

from conftest import CROSS_PROJECT, rpc_status

AUTO_GRANTS = "iam.automaticIamGrantsForDefaultServiceAccounts"


def effective(client, parent, constraint):
    return client.get_effective_policy(name=f"{parent}/policies/{constraint}")


def enforce_values(policy):
    return [r.enforce for r in policy.spec.rules]


def test_list_constraints(orgpolicy, demo_project):
    constraints = list(orgpolicy.list_constraints(parent=demo_project.name))
    by_id = {c.name.rsplit("/", 1)[-1]: c for c in constraints}
    assert CROSS_PROJECT in by_id, sorted(by_id)
    assert AUTO_GRANTS in by_id
    c = by_id[CROSS_PROJECT]
    assert c.name.startswith("projects/") and c.name.endswith(f"/constraints/{CROSS_PROJECT}")
    assert c.display_name
    assert orgpolicy_v2.Constraint.pb(c).WhichOneof("constraint_type") == "boolean_constraint"


def test_list_constraints_on_organization(orgpolicy, org_name):
    names = {c.name for c in orgpolicy.list_constraints(parent=org_name)}
    assert f"{org_name}/constraints/{CROSS_PROJECT}" in names


def test_defaults_without_policies(orgpolicy, org_name, new_project):
    assert enforce_values(effective(orgpolicy, org_name, CROSS_PROJECT)) == [True]
    assert enforce_values(effective(orgpolicy, new_project.name, CROSS_PROJECT)) == [True]
    # not enforced by default: either an explicit enforce=false rule or no rule at all
    assert enforce_values(effective(orgpolicy, new_project.name, AUTO_GRANTS)) in ([False], [])


def test_policy_lifecycle_on_project(orgpolicy, org_name, new_project):
    parent = new_project.name
    name = f"{parent}/policies/{CROSS_PROJECT}"

    created = orgpolicy.create_policy(
        parent=parent,
        policy=orgpolicy_v2.Policy(name=name, spec={"rules": [{"enforce": False}]}),
    )
    assert created.name == name
    assert enforce_values(created) == [False]
    assert created.spec.etag
    assert created.spec.update_time.year >= 2000

    # creating it twice is a conflict
    with pytest.raises(exceptions.Conflict) as err:
        orgpolicy.create_policy(
            parent=parent,
            policy=orgpolicy_v2.Policy(name=name, spec={"rules": [{"enforce": False}]}),
        )
    assert rpc_status(err.value) == "ALREADY_EXISTS"

    got = orgpolicy.get_policy(name=name)
    assert got.name == name
    assert enforce_values(got) == [False]
    assert got.spec.etag == created.spec.etag

    listed = {p.name for p in orgpolicy.list_policies(parent=parent)}
    assert name in listed

    # effective: off on the project, still on at the organization
    assert enforce_values(effective(orgpolicy, parent, CROSS_PROJECT)) == [False]
    assert enforce_values(effective(orgpolicy, org_name, CROSS_PROJECT)) == [True]

    # read-modify-write with the policy as read succeeds and changes the etags
    modified = orgpolicy_v2.Policy(got)
    modified.spec.rules[0].enforce = True
    updated = orgpolicy.update_policy(policy=modified)
    assert enforce_values(updated) == [True]
    assert updated.spec.etag != got.spec.etag
    assert updated.etag != got.etag
    assert enforce_values(effective(orgpolicy, parent, CROSS_PROJECT)) == [True]

    # the same write from the stale read is aborted and changes nothing
    stale = orgpolicy_v2.Policy(got)
    stale.spec.rules[0].enforce = False
    # ABORTED / 409 (class Conflict, the parent of Aborted, under the REST transport)
    with pytest.raises(exceptions.Conflict) as err:
        orgpolicy.update_policy(policy=stale)
    assert err.value.code == 409
    assert rpc_status(err.value) == "ABORTED"
    still = orgpolicy.get_policy(name=name)
    assert enforce_values(still) == [True]
    assert still.spec.etag == updated.spec.etag

    # delete with a stale etag is aborted too (DeletePolicyRequest.etag)
    with pytest.raises(exceptions.Conflict) as err:
        orgpolicy.delete_policy(request={"name": name, "etag": got.etag})
    assert rpc_status(err.value) == "ABORTED"
    assert orgpolicy.get_policy(name=name).spec.etag == updated.spec.etag

    orgpolicy.delete_policy(request={"name": name, "etag": updated.etag})
    with pytest.raises(exceptions.NotFound):
        orgpolicy.get_policy(name=name)
    assert name not in {p.name for p in orgpolicy.list_policies(parent=parent)}
    assert enforce_values(effective(orgpolicy, parent, CROSS_PROJECT)) == [True]


def test_update_with_stale_spec_etag_is_aborted(orgpolicy, new_project):
    """PolicySpec.etag is "the version of the current policySpec to use when executing a
    read-modify-write loop" (orgpolicy.proto), and UpdatePolicy answers ABORTED "if the etag
    supplied in the request does not match the persisted etag of the policy"."""
    parent = new_project.name
    name = f"{parent}/policies/{CROSS_PROJECT}"
    created = orgpolicy.create_policy(
        parent=parent, policy={"name": name, "spec": {"rules": [{"enforce": False}]}}
    )
    orgpolicy.update_policy(
        policy={"name": name, "spec": {"etag": created.spec.etag, "rules": [{"enforce": True}]}}
    )
    with pytest.raises(exceptions.Conflict) as err:
        orgpolicy.update_policy(
            policy={"name": name, "spec": {"etag": created.spec.etag, "rules": [{"enforce": False}]}}
        )
    assert rpc_status(err.value) == "ABORTED"
    assert enforce_values(orgpolicy.get_policy(name=name)) == [True]


def test_effective_policy_has_no_etag(orgpolicy, new_project):
    parent = new_project.name
    orgpolicy.create_policy(
        parent=parent,
        policy={"name": f"{parent}/policies/{CROSS_PROJECT}", "spec": {"rules": [{"enforce": False}]}},
    )
    eff = effective(orgpolicy, parent, CROSS_PROJECT)
    assert enforce_values(eff) == [False]
    assert eff.spec.etag == ""
    assert eff.name.endswith(f"/policies/{CROSS_PROJECT}")


def test_get_missing_policy_is_not_found(orgpolicy, new_project):
    with pytest.raises(exceptions.NotFound):
        orgpolicy.get_policy(name=f"{new_project.name}/policies/{CROSS_PROJECT}")


def test_unknown_constraint_is_rejected(orgpolicy, new_project):
    # CreatePolicy: NOT_FOUND if the constraint does not exist (orgpolicy.proto).
    with pytest.raises(exceptions.NotFound):
        orgpolicy.create_policy(
            parent=new_project.name,
            policy=orgpolicy_v2.Policy(
                name=f"{new_project.name}/policies/no.suchConstraint",
                spec={"rules": [{"enforce": False}]},
            ),
        )
