"""Resource Manager v3 tags (google-cloud-resource-manager: TagKeysClient, TagValuesClient,
TagBindingsClient) and Org Policy v2 rules conditioned on them (google-cloud-org-policy)."""

import uuid

import pytest
from google.api_core import exceptions
from google.cloud import resourcemanager_v3

from conftest import CROSS_PROJECT, client_fixture, rpc_status

FULL = "//cloudresourcemanager.googleapis.com/"


keys = client_fixture(resourcemanager_v3.TagKeysClient)
values = client_fixture(resourcemanager_v3.TagValuesClient)
bindings = client_fixture(resourcemanager_v3.TagBindingsClient)


@pytest.fixture
def env_key(keys, values, org_name):
    """A fresh key under the organization with values dev and prod."""
    short = "env-" + uuid.uuid4().hex[:8]
    key = keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(parent=org_name, short_name=short)
    ).result(timeout=30)
    made = {}
    for v in ("dev", "prod"):
        made[v] = values.create_tag_value(
            tag_value=resourcemanager_v3.TagValue(parent=key.name, short_name=v)
        ).result(timeout=30)
    return key, made


def enforced_unless(name, expression):
    """A policy ``name`` of the boolean constraint: enforced, except where ``expression`` holds."""
    return {
        "name": name,
        "spec": {
            "rules": [
                {"enforce": True},
                {"enforce": False, "condition": {"expression": expression}},
            ]
        },
    }


def test_tag_key_and_value_lifecycle(keys, values, org_name):
    org_id = org_name.split("/")[1]
    key = keys.create_tag_key(
        tag_key=resourcemanager_v3.TagKey(
            parent=org_name, short_name="lifecycle", description="d"
        )
    ).result(timeout=30)
    assert key.name.startswith("tagKeys/")
    assert key.namespaced_name == f"{org_id}/lifecycle"
    assert keys.get_tag_key(name=key.name).description == "d"
    assert keys.get_namespaced_tag_key(name=f"{org_id}/lifecycle").name == key.name
    assert key.name in {k.name for k in keys.list_tag_keys(parent=org_name)}

    updated = keys.update_tag_key(
        tag_key=resourcemanager_v3.TagKey(name=key.name, description="new"),
        update_mask={"paths": ["description"]},
    ).result(timeout=30)
    assert updated.description == "new"

    value = values.create_tag_value(
        tag_value=resourcemanager_v3.TagValue(parent=key.name, short_name="v1")
    ).result(timeout=30)
    assert value.namespaced_name == f"{org_id}/lifecycle/v1"
    assert values.get_namespaced_tag_value(name=f"{org_id}/lifecycle/v1").name == value.name
    assert [v.name for v in values.list_tag_values(parent=key.name)] == [value.name]

    with pytest.raises(exceptions.Conflict) as err:
        keys.create_tag_key(
            tag_key=resourcemanager_v3.TagKey(parent=org_name, short_name="lifecycle")
        )
    assert rpc_status(err.value) == "ALREADY_EXISTS"

    values.delete_tag_value(name=value.name).result(timeout=30)
    keys.delete_tag_key(name=key.name).result(timeout=30)
    assert key.name not in {k.name for k in keys.list_tag_keys(parent=org_name)}


def test_bindings_and_effective_tags(bindings, env_key, new_project):
    key, made = env_key
    dev = made["dev"]
    parent = FULL + new_project.name
    created = bindings.create_tag_binding(
        tag_binding=resourcemanager_v3.TagBinding(parent=parent, tag_value=dev.name)
    ).result(timeout=30)
    assert created.parent == parent
    assert created.tag_value == dev.name
    assert [b.tag_value for b in bindings.list_tag_bindings(parent=parent)] == [dev.name]

    effective = list(bindings.list_effective_tags(parent=parent))
    assert [(t.tag_key, t.tag_value, t.inherited) for t in effective] == [
        (key.name, dev.name, False)
    ]
    assert effective[0].namespaced_tag_value == dev.namespaced_name

    # The client sends the binding's name as Google's: the parent percent-encoded.
    bindings.delete_tag_binding(name=created.name).result(timeout=30)
    assert list(bindings.list_tag_bindings(parent=parent)) == []


def test_a_conditional_rule_follows_the_tag(bindings, orgpolicy, env_key, new_project, demo_project):
    key, made = env_key
    name = f"{new_project.name}/policies/{CROSS_PROJECT}"
    # Written on the new project, conditioned on a tag it does not carry yet.
    orgpolicy.create_policy(
        parent=new_project.name,
        policy=enforced_unless(name, f"resource.matchTag('{key.namespaced_name}', 'dev')"),
    )

    def enforced():
        p = orgpolicy.get_effective_policy(name=name)
        assert [r.condition.expression for r in p.spec.rules] == [""]
        return [r.enforce for r in p.spec.rules]

    assert enforced() == [True]
    bindings.create_tag_binding(
        tag_binding=resourcemanager_v3.TagBinding(
            parent=FULL + new_project.name, tag_value=made["dev"].name
        )
    ).result(timeout=30)
    assert enforced() == [False]


def test_a_bad_condition_is_invalid_argument(orgpolicy, new_project):
    name = f"{new_project.name}/policies/{CROSS_PROJECT}"
    with pytest.raises(exceptions.BadRequest) as err:
        orgpolicy.create_policy(
            parent=new_project.name,
            policy=enforced_unless(name, "resource.matchTag('env')"),
        )
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    with pytest.raises(exceptions.NotFound):
        orgpolicy.get_policy(name=name)
