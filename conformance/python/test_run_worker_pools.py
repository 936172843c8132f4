"""Cloud Run Admin API v2 worker pools through google-cloud-run (``run_v2``), REST transport.

Covers the WorkerPools surface (create/get/list/update/delete, IAM policy methods, the
operations mixin), worker-pool revisions through ``RevisionsClient`` (its REST transport has
the ``workerPools/*/revisions`` bindings), the wire encoding the client asks for
(``$alt=json;enum-encoding=int``), and the service-identity rules: actAs, disabled accounts,
the project's default compute account, and the three cross-project conditions.

google-cloud-run 0.16.2's ``WorkerPoolScaling`` has only ``manual_instance_count``
(``scaling_mode``/``min_instance_count``/``max_instance_count`` are absent from the public
proto), so the scaling round trip of those fields is done on the wire with ``requests``, as
Terraform and gcloud send them.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from google.api import launch_stage_pb2
from google.api_core import exceptions
from google.cloud import orgpolicy_v2, resourcemanager_v3, run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from conftest import (
    ALICE,
    CROSS_PROJECT,
    client_fixture,
    create_project,
    create_service_account,
    detail_types,
    error_info,
    error_message,
    grant_on_project,
    grant_on_service_account,
    rest_wire,
    rpc_status,
)

REGION = "us-central1"  # where the worker pools go, in each test's fresh project
IMAGE = "us-docker.pkg.dev/cloudrun/container/worker-pool"
IMAGE_2 = "us-docker.pkg.dev/cloudrun/container/worker-pool:v2"
ALICE_MEMBER = f"user:{ALICE}"
ACT_AS_DENIED = "Permission 'iam.serviceaccounts.actAs' denied on service account {} (or it may not exist)."
SERVICE_AGENT_DENIED = "Google Cloud Run Service Agent does not have permission to get access tokens"
WORKER_POOL_TYPE = "type.googleapis.com/google.cloud.run.v2.WorkerPool"


# --- helpers ------------------------------------------------------------------------------------


pools = client_fixture(run_v2.WorkerPoolsClient)
revisions = client_fixture(run_v2.RevisionsClient)


def number_of(project) -> str:
    return project.name.split("/", 1)[1]


def location(project) -> str:
    return f"projects/{project.project_id}/locations/{REGION}"


def pool_name(project, pool_id: str) -> str:
    return f"{location(project)}/workerPools/{pool_id}"


def new_pool_id() -> str:
    return "wp-" + uuid.uuid4().hex[:10]


def default_account(project) -> str:
    return f"{number_of(project)}-compute@developer.gserviceaccount.com"


def service_agent(project) -> str:
    return f"service-{number_of(project)}@serverless-robot-prod.iam.gserviceaccount.com"


def template(service_account: str | None = None, image: str = IMAGE) -> run_v2.WorkerPoolRevisionTemplate:
    # A command that runs: Runpool's process runtime starts every pool's instances, and a
    # container with no command would (rightly) turn the pool's Ready condition false.
    t = run_v2.WorkerPoolRevisionTemplate(containers=[run_v2.Container(image=image, command=["sleep", "3600"])])
    if service_account:
        t.service_account = service_account
    return t


def create(pools, project, pool_id=None, service_account=None, **fields) -> run_v2.WorkerPool:
    pool_id = pool_id or new_pool_id()
    op = pools.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template(service_account), **fields),
        worker_pool_id=pool_id,
    )
    return op.result(timeout=60)


def grant_on_pool(pools, name: str, role: str, member: str):
    policy = pools.get_iam_policy(request={"resource": name})
    policy.bindings.add(role=role, members=[member])
    return pools.set_iam_policy(request={"resource": name, "policy": policy})


body_message = error_message


def assert_absent(pools, project, pool_id):
    with pytest.raises(exceptions.NotFound):
        pools.get_worker_pool(name=pool_name(project, pool_id))
    assert pool_name(project, pool_id) not in {
        p.name for p in pools.list_worker_pools(parent=location(project))
    }


# --- create / get / list ------------------------------------------------------------------------


def test_create_returns_done_operation_with_the_pool(pools, project):
    pool_id = new_pool_id()
    name = pool_name(project, pool_id)
    op = pools.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(
            template=template(), labels={"team": "conformance"}, description="made by a test"
        ),
        worker_pool_id=pool_id,
    )
    assert op.operation.name.startswith(f"{location(project)}/operations/")
    pool = op.result(timeout=60)
    assert op.done()
    # the metadata is the WorkerPool too (operation_info metadata_type)
    assert op.operation.metadata.type_url == WORKER_POOL_TYPE
    assert op.operation.response.type_url == WORKER_POOL_TYPE
    assert isinstance(op.metadata, run_v2.WorkerPool)
    assert op.metadata.name == name

    assert pool.name == name
    assert pool.uid and len(pool.uid) == 36
    assert pool.generation == 1
    assert pool.observed_generation == 1
    assert pool.creator == "admin@example.com"
    assert pool.last_modifier == "admin@example.com"
    assert pool.create_time.year >= 2000 and pool.update_time >= pool.create_time
    assert pool.etag
    assert pool.labels == {"team": "conformance"}
    assert pool.description == "made by a test"
    assert pool.reconciling is False
    assert pool.latest_created_revision.startswith(f"{name}/revisions/{pool_id}-")
    assert pool.latest_ready_revision == pool.latest_created_revision
    assert [(s.type_, s.percent) for s in pool.instance_splits] == [
        (run_v2.InstanceSplitAllocationType.INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST, 100)
    ]
    assert len(pool.instance_split_statuses) == 1
    status = pool.instance_split_statuses[0]
    assert status.percent == 100
    assert status.revision == pool.latest_ready_revision.rsplit("/", 1)[1]
    assert pool.template.containers[0].image == IMAGE
    assert pool.template.service_account == default_account(project)


@rest_wire
def test_enums_parse_from_int_encoding(pools, project, server):
    """The client asks for ``$alt=json;enum-encoding=int``; the enums must decode."""
    sent: list[str] = []
    session = pools._transport._session
    hook = lambda response, *args, **kwargs: sent.append(response.request.url)  # noqa: E731
    session.hooks["response"].append(hook)
    try:
        pool = create(pools, project)
        got = pools.get_worker_pool(name=pool.name)
    finally:
        session.hooks["response"].remove(hook)
    assert sent and all("%24alt=json%3Benum-encoding%3Dint" in url for url in sent), sent

    assert got.terminal_condition.type_ == "Ready"
    assert got.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert got.launch_stage == launch_stage_pb2.GA
    assert got.instance_splits[0].type_ == (
        run_v2.InstanceSplitAllocationType.INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST
    )

    # the same answer on the wire: integers when asked for, names otherwise
    url = f"{server.endpoint}/v2/{pool.name}"
    headers = {"Authorization": f"Bearer {server.token}"}
    as_int = requests.get(url, params={"$alt": "json;enum-encoding=int"}, headers=headers).json()
    assert as_int["terminalCondition"]["state"] == 4
    assert as_int["launchStage"] == 4
    assert as_int["instanceSplits"][0]["type"] == 1
    as_name = requests.get(url, headers=headers).json()
    assert as_name["terminalCondition"]["state"] == "CONDITION_SUCCEEDED"
    assert as_name["launchStage"] == "GA"
    assert as_name["instanceSplits"][0]["type"] == "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST"
    assert isinstance(as_name["generation"], str)  # int64 as a JSON string


def test_launch_stage_beta_round_trips(pools, project):
    pool = create(pools, project, launch_stage=launch_stage_pb2.BETA)
    assert pool.launch_stage == launch_stage_pb2.BETA
    assert pools.get_worker_pool(name=pool.name).launch_stage == launch_stage_pb2.BETA


def test_get_by_project_number(pools, project):
    pool = create(pools, project)
    by_number = pools.get_worker_pool(
        name=f"projects/{number_of(project)}/locations/{REGION}/workerPools/{pool.name.rsplit('/', 1)[1]}"
    )
    assert by_number.uid == pool.uid


def test_create_duplicate_is_conflict(pools, project):
    pool = create(pools, project)
    with pytest.raises(exceptions.Conflict) as err:
        create(pools, project, pool_id=pool.name.rsplit("/", 1)[1])
    assert rpc_status(err.value) == "ALREADY_EXISTS"


@pytest.mark.parametrize("pool_id", ["1starts-with-digit", "ends-with-hyphen-", "Upper", "x" * 50])
def test_create_invalid_id_is_invalid_argument(pools, project, pool_id):
    with pytest.raises(exceptions.BadRequest) as err:
        create(pools, project, pool_id=pool_id)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_create_in_unknown_region_is_refused(pools, project):
    pool_id = new_pool_id()
    with pytest.raises(exceptions.ClientError):
        pools.create_worker_pool(
            parent=f"projects/{project.project_id}/locations/us-nowhere9",
            worker_pool=run_v2.WorkerPool(template=template()),
            worker_pool_id=pool_id,
        ).result(timeout=60)


def test_get_missing_is_not_found(pools, project):
    with pytest.raises(exceptions.NotFound) as err:
        pools.get_worker_pool(name=pool_name(project, "no-such-pool"))
    assert err.value.code == 404
    assert rpc_status(err.value) == "NOT_FOUND"


def test_list_pages_newest_first(pools, project):
    created = [create(pools, project).name for _ in range(3)]
    pager = pools.list_worker_pools(request={"parent": location(project), "page_size": 2})
    pages = list(pager.pages)
    assert [len(p.worker_pools) for p in pages] == [2, 1]
    assert pages[0].next_page_token and not pages[-1].next_page_token
    listed = [p.name for page in pages for p in page.worker_pools]
    # "Results are sorted by creation time, descending." (ListWorkerPools, worker_pool.proto)
    assert listed == list(reversed(created))
    assert all(p.template.containers for page in pages for p in page.worker_pools)


# --- update -------------------------------------------------------------------------------------


def test_update_allow_missing_creates(pools, project):
    pool_id = new_pool_id()
    name = pool_name(project, pool_id)
    op = pools.update_worker_pool(
        request={
            "worker_pool": run_v2.WorkerPool(name=name, template=template()),
            "allow_missing": True,
        }
    )
    pool = op.result(timeout=60)
    assert pool.name == name
    assert pool.generation == 1
    assert pool.latest_created_revision
    assert pools.get_worker_pool(name=name).uid == pool.uid


def test_update_missing_without_allow_missing_is_not_found(pools, project):
    name = pool_name(project, new_pool_id())
    with pytest.raises(exceptions.NotFound):
        pools.update_worker_pool(
            worker_pool=run_v2.WorkerPool(name=name, template=template())
        ).result(timeout=60)
    assert_absent(pools, project, name.rsplit("/", 1)[1])


def test_scaling_change_makes_no_revision(pools, revisions, project):
    pool = create(pools, project, scaling=run_v2.WorkerPoolScaling(manual_instance_count=1))
    changed = run_v2.WorkerPool(
        name=pool.name, scaling=run_v2.WorkerPoolScaling(manual_instance_count=3)
    )
    updated = pools.update_worker_pool(
        worker_pool=changed,
        update_mask=field_mask_pb2.FieldMask(paths=["scaling.manual_instance_count"]),
    ).result(timeout=60)
    assert updated.scaling.manual_instance_count == 3
    assert updated.latest_created_revision == pool.latest_created_revision
    assert updated.latest_ready_revision == pool.latest_ready_revision
    assert updated.generation > pool.generation
    assert updated.etag != pool.etag
    # the masked update left the template alone
    assert updated.template.containers[0].image == IMAGE
    assert updated.template.service_account == pool.template.service_account
    assert len(list(revisions.list_revisions(parent=pool.name))) == 1


def test_container_change_makes_a_revision(pools, revisions, project):
    pool = create(pools, project)
    changed = run_v2.WorkerPool(name=pool.name, template=template(image=IMAGE_2))
    updated = pools.update_worker_pool(
        worker_pool=changed,
        update_mask=field_mask_pb2.FieldMask(paths=["template.containers"]),
    ).result(timeout=60)
    assert updated.template.containers[0].image == IMAGE_2
    assert updated.latest_created_revision != pool.latest_created_revision
    assert updated.latest_ready_revision == updated.latest_created_revision
    assert updated.instance_split_statuses[0].revision == updated.latest_ready_revision.rsplit("/", 1)[1]
    assert updated.generation == pool.generation + 1
    assert updated.observed_generation == updated.generation
    assert updated.uid == pool.uid
    assert updated.create_time == pool.create_time

    listed = {r.name for r in revisions.list_revisions(parent=pool.name)}
    assert listed == {pool.latest_created_revision, updated.latest_created_revision}
    new_rev = revisions.get_revision(name=updated.latest_created_revision)
    assert new_rev.containers[0].image == IMAGE_2
    assert new_rev.service_account == default_account(project)
    old_rev = revisions.get_revision(name=pool.latest_created_revision)
    assert old_rev.containers[0].image == IMAGE


def test_force_new_revision(pools, project):
    pool = create(pools, project)
    again = pools.update_worker_pool(
        request={
            "worker_pool": run_v2.WorkerPool(name=pool.name, template=template()),
            "force_new_revision": True,
        }
    ).result(timeout=60)
    assert again.latest_created_revision != pool.latest_created_revision


def test_update_with_stale_etag_is_refused(pools, project):
    pool = create(pools, project)
    pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template(), description="one")
    ).result(timeout=60)
    with pytest.raises(exceptions.ClientError):
        pools.update_worker_pool(
            worker_pool=run_v2.WorkerPool(
                name=pool.name, template=template(), description="two", etag=pool.etag
            )
        ).result(timeout=60)
    assert pools.get_worker_pool(name=pool.name).description == "one"


# --- delete, revisions, operations --------------------------------------------------------------


def test_delete_returns_the_pool(pools, project):
    pool = create(pools, project)
    op = pools.delete_worker_pool(name=pool.name)
    deleted = op.result(timeout=60)
    assert deleted.name == pool.name
    assert deleted.uid == pool.uid
    # "deleteTime: ... only populated as a response to a Delete request" (worker_pool.proto)
    assert deleted.delete_time.year >= 2000
    assert_absent(pools, project, pool.name.rsplit("/", 1)[1])
    with pytest.raises(exceptions.NotFound):
        pools.delete_worker_pool(name=pool.name).result(timeout=60)


def test_delete_with_stale_etag_is_refused(pools, project):
    pool = create(pools, project)
    current = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template(), description="changed")
    ).result(timeout=60)
    with pytest.raises(exceptions.ClientError):
        pools.delete_worker_pool(request={"name": pool.name, "etag": pool.etag}).result(timeout=60)
    assert pools.get_worker_pool(name=pool.name).uid == pool.uid
    pools.delete_worker_pool(request={"name": pool.name, "etag": current.etag}).result(timeout=60)
    assert_absent(pools, project, pool.name.rsplit("/", 1)[1])


def test_revisions_list_get_delete(pools, revisions, project):
    pool = create(pools, project)
    first = pool.latest_created_revision
    updated = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template(image=IMAGE_2))
    ).result(timeout=60)
    second = updated.latest_created_revision

    got = revisions.get_revision(name=first)
    assert got.name == first
    assert got.uid and got.create_time.year >= 2000
    assert got.service_account == default_account(project)

    revisions.delete_revision(name=first).result(timeout=60)
    assert [r.name for r in revisions.list_revisions(parent=pool.name)] == [second]
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=first)


def test_operations_get_list_wait(pools, project):
    op = pools.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template()),
        worker_pool_id=new_pool_id(),
    )
    op.result(timeout=60)
    name = op.operation.name
    got = pools.get_operation(request={"name": name})
    assert got.name == name and got.done
    assert got.response.type_url == WORKER_POOL_TYPE
    listed = pools.list_operations(request={"name": location(project)})
    assert name in {o.name for o in listed.operations}
    waited = pools.wait_operation(request={"name": name})
    if isinstance(waited, bytes):
        # google-cloud-run's gRPC transport builds its wait_operation stub with no response
        # deserializer, so the caller gets the Operation's bytes.
        waited = operations_pb2.Operation.FromString(waited)
    assert waited.done and waited.name == name
    pools.delete_operation(request={"name": name})
    with pytest.raises(exceptions.NotFound):
        pools.get_operation(request={"name": name})


# --- validate_only ------------------------------------------------------------------------------


def test_validate_only_leaves_nothing_behind(pools, project):
    pool_id = new_pool_id()
    pools.create_worker_pool(
        request={
            "parent": location(project),
            "worker_pool": run_v2.WorkerPool(template=template()),
            "worker_pool_id": pool_id,
            "validate_only": True,
        }
    )
    assert_absent(pools, project, pool_id)

    # allow_missing upsert, validate only: still nothing
    pools.update_worker_pool(
        request={
            "worker_pool": run_v2.WorkerPool(name=pool_name(project, pool_id), template=template()),
            "allow_missing": True,
            "validate_only": True,
        }
    )
    assert_absent(pools, project, pool_id)

    pool = create(pools, project)
    pools.update_worker_pool(
        request={
            "worker_pool": run_v2.WorkerPool(name=pool.name, template=template(image=IMAGE_2)),
            "validate_only": True,
        }
    )
    unchanged = pools.get_worker_pool(name=pool.name)
    assert unchanged.etag == pool.etag
    assert unchanged.latest_created_revision == pool.latest_created_revision
    assert unchanged.template.containers[0].image == IMAGE

    pools.delete_worker_pool(request={"name": pool.name, "validate_only": True})
    assert pools.get_worker_pool(name=pool.name).etag == pool.etag


def test_validate_only_still_checks_act_as(server, pools, project, token_for):
    user = f"wp-{uuid.uuid4().hex[:8]}@example.com"
    grant_on_project(server, project.name, "roles/run.developer", f"user:{user}")
    theirs = server.client(run_v2.WorkerPoolsClient, token_for(user))
    pool_id = new_pool_id()
    with pytest.raises(exceptions.Forbidden):
        theirs.create_worker_pool(
            request={
                "parent": location(project),
                "worker_pool": run_v2.WorkerPool(template=template()),
                "worker_pool_id": pool_id,
                "validate_only": True,
            }
        )


# --- IAM on a pool ------------------------------------------------------------------------------


def test_pool_iam_policy(server, pools, project, alice_token):
    pool = create(pools, project)
    before = pools.get_iam_policy(request={"resource": pool.name})
    assert before.etag
    assert not any(ALICE_MEMBER in b.members for b in before.bindings)

    theirs = server.client(run_v2.WorkerPoolsClient, alice_token)
    with pytest.raises(exceptions.Forbidden):
        theirs.get_worker_pool(name=pool.name)
    assert list(
        theirs.test_iam_permissions(
            request={"resource": pool.name, "permissions": ["run.workerpools.get"]}
        ).permissions
    ) == []

    returned = grant_on_pool(pools, pool.name, "roles/run.viewer", ALICE_MEMBER)
    assert ALICE_MEMBER in [m for b in returned.bindings if b.role == "roles/run.viewer" for m in b.members]
    assert returned.etag != before.etag
    after = pools.get_iam_policy(request={"resource": pool.name})
    assert after.etag == returned.etag

    allowed = theirs.test_iam_permissions(
        request={
            "resource": pool.name,
            "permissions": ["run.workerpools.get", "run.workerpools.update", "run.workerpools.delete"],
        }
    )
    assert list(allowed.permissions) == ["run.workerpools.get"]
    assert theirs.get_worker_pool(name=pool.name).uid == pool.uid
    with pytest.raises(exceptions.Forbidden):
        theirs.delete_worker_pool(name=pool.name).result(timeout=60)

    # a stale etag on setIamPolicy is aborted (409)
    stale = policy_pb2.Policy()
    stale.CopyFrom(before)
    stale.bindings.add(role="roles/run.admin", members=[ALICE_MEMBER])
    with pytest.raises(exceptions.Conflict) as err:
        pools.set_iam_policy(request={"resource": pool.name, "policy": stale})
    assert rpc_status(err.value) == "ABORTED"


def test_pool_iam_on_missing_pool_is_not_found(pools, project):
    with pytest.raises(exceptions.NotFound):
        pools.get_iam_policy(
            request=iam_policy_pb2.GetIamPolicyRequest(resource=pool_name(project, "no-such-pool"))
        )


# --- identity rules -----------------------------------------------------------------------------


@pytest.fixture
def deployer(server, project, token_for):
    """A fresh user with roles/run.developer on the project and nothing on any account."""
    user = f"dep-{uuid.uuid4().hex[:8]}@example.com"
    grant_on_project(server, project.name, "roles/run.developer", f"user:{user}")
    return user, server.client(run_v2.WorkerPoolsClient, token_for(user))


def test_default_account_when_none_given(pools, project):
    pool = create(pools, project)
    assert pool.template.service_account == default_account(project)
    rev = pools.get_worker_pool(name=pool.name).template.service_account
    assert rev == default_account(project)


def test_without_create_permission_is_forbidden(server, project, token_for):
    user = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    theirs = server.client(run_v2.WorkerPoolsClient, token_for(user))
    pool_id = new_pool_id()
    with pytest.raises(exceptions.Forbidden) as err:
        theirs.create_worker_pool(
            parent=location(project),
            worker_pool=run_v2.WorkerPool(template=template()),
            worker_pool_id=pool_id,
        ).result(timeout=60)
    assert err.value.code == 403
    assert rpc_status(err.value) == "PERMISSION_DENIED"
    assert "run.workerpools.create" in body_message(err.value)


def test_no_act_as_is_forbidden_with_google_text(iam_v1, pools, project, deployer, unique_id):
    user, theirs = deployer
    account = create_service_account(iam_v1, project.project_id, f"sa-{unique_id}")
    email = account["email"]
    pool_id = new_pool_id()
    with pytest.raises(exceptions.Forbidden) as err:
        theirs.create_worker_pool(
            parent=location(project),
            worker_pool=run_v2.WorkerPool(template=template(email)),
            worker_pool_id=pool_id,
        ).result(timeout=60)
    exc = err.value
    assert exc.code == 403
    assert rpc_status(exc) == "PERMISSION_DENIED"
    assert body_message(exc) == ACT_AS_DENIED.format(email)
    assert exc.message.endswith(ACT_AS_DENIED.format(email))
    info = error_info(exc)
    assert info["reason"] == "IAM_PERMISSION_DENIED"
    assert exc.reason == "IAM_PERMISSION_DENIED"  # google-api-core reads the ErrorInfo too
    assert detail_types(exc)[:1] == ["google.rpc.ErrorInfo"]
    assert_absent(pools, project, pool_id)

    # the default compute account is an account like any other: no actAs, no pool
    with pytest.raises(exceptions.Forbidden) as err:
        theirs.create_worker_pool(
            parent=location(project),
            worker_pool=run_v2.WorkerPool(template=template()),
            worker_pool_id=pool_id,
        ).result(timeout=60)
    assert body_message(err.value) == ACT_AS_DENIED.format(default_account(project))

    # granted serviceAccountUser on the account itself: deployed
    grant_on_service_account(iam_v1, account["name"], "roles/iam.serviceAccountUser", f"user:{user}")
    pool = theirs.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template(email)),
        worker_pool_id=pool_id,
    ).result(timeout=60)
    assert pool.template.service_account == email
    assert pool.creator == user


def test_act_as_inherited_from_project(server, pools, project, deployer):
    user, theirs = deployer
    grant_on_project(server, project.name, "roles/iam.serviceAccountUser", f"user:{user}")
    pool = theirs.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template()),
        worker_pool_id=new_pool_id(),
    ).result(timeout=60)
    assert pool.template.service_account == default_account(project)


def test_patch_without_update_permission_is_forbidden(server, pools, project, token_for):
    pool = create(pools, project)
    viewer = f"view-{uuid.uuid4().hex[:8]}@example.com"
    grant_on_project(server, project.name, "roles/run.viewer", f"user:{viewer}")
    theirs = server.client(run_v2.WorkerPoolsClient, token_for(viewer))
    assert theirs.get_worker_pool(name=pool.name).uid == pool.uid
    with pytest.raises(exceptions.Forbidden) as err:
        theirs.update_worker_pool(
            worker_pool=run_v2.WorkerPool(name=pool.name, template=template(), description="no")
        ).result(timeout=60)
    assert rpc_status(err.value) == "PERMISSION_DENIED"
    assert "run.workerpools.update" in body_message(err.value)
    assert pools.get_worker_pool(name=pool.name).etag == pool.etag


def test_patch_checks_act_as_on_the_new_account(iam_v1, pools, project, deployer, unique_id):
    user, theirs = deployer
    mine = create_service_account(iam_v1, project.project_id, f"mi-{unique_id}")
    not_mine = create_service_account(iam_v1, project.project_id, f"nm-{unique_id}")
    grant_on_service_account(iam_v1, mine["name"], "roles/iam.serviceAccountUser", f"user:{user}")
    pool = theirs.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template(mine["email"])),
        worker_pool_id=new_pool_id(),
    ).result(timeout=60)
    with pytest.raises(exceptions.Forbidden) as err:
        theirs.update_worker_pool(
            worker_pool=run_v2.WorkerPool(name=pool.name, template=template(not_mine["email"]))
        ).result(timeout=60)
    assert body_message(err.value) == ACT_AS_DENIED.format(not_mine["email"])
    assert error_info(err.value)["reason"] == "IAM_PERMISSION_DENIED"
    after = pools.get_worker_pool(name=pool.name)
    assert after.template.service_account == mine["email"]
    assert after.etag == pool.etag

    # allow_missing upsert of a new pool follows the same rule
    missing_id = new_pool_id()
    with pytest.raises(exceptions.Forbidden):
        theirs.update_worker_pool(
            request={
                "worker_pool": run_v2.WorkerPool(
                    name=pool_name(project, missing_id), template=template(not_mine["email"])
                ),
                "allow_missing": True,
            }
        ).result(timeout=60)
    assert_absent(pools, project, missing_id)


def test_disabled_account_is_failed_precondition(iam_v1, pools, project, unique_id):
    account = create_service_account(iam_v1, project.project_id, f"sd-{unique_id}")
    iam_v1.projects().serviceAccounts().disable(name=account["name"], body={}).execute()
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        create(pools, project, pool_id=pool_id, service_account=account["email"])
    assert err.value.code == 400
    assert rpc_status(err.value) == "FAILED_PRECONDITION"
    assert_absent(pools, project, pool_id)

    # enabled again: deployed
    iam_v1.projects().serviceAccounts().enable(name=account["name"], body={}).execute()
    pool = create(pools, project, pool_id=pool_id, service_account=account["email"])
    assert pool.template.service_account == account["email"]


def test_missing_account_is_refused(pools, project):
    email = f"nobody-here@{project.project_id}.iam.gserviceaccount.com"
    pool_id = new_pool_id()
    with pytest.raises(exceptions.ClientError) as err:
        create(pools, project, pool_id=pool_id, service_account=email)
    # for an owner of the project the answer is the same as for missing actAs: Google does not
    # say whether the account exists ("... (or it may not exist).")
    assert email in body_message(err.value)
    assert_absent(pools, project, pool_id)


# --- cross-project identity ---------------------------------------------------------------------


@pytest.fixture
def other_project(server, org_name):
    return create_project(server, org_name, f"o-{uuid.uuid4().hex[:12]}", "account home")


@pytest.fixture
def cross(server, iam_v1, project, other_project, deployer):
    """A deployer with run.developer in ``project`` and an account living in ``other_project``."""
    user, theirs = deployer
    account = create_service_account(iam_v1, other_project.project_id, f"x-{uuid.uuid4().hex[:10]}")
    return dict(user=user, client=theirs, account=account, email=account["email"])


def allow_cross_project(server, other_project):
    orgpolicy = server.client(orgpolicy_v2.OrgPolicyClient)
    orgpolicy.create_policy(
        parent=other_project.name,
        policy=orgpolicy_v2.Policy(
            name=f"{other_project.name}/policies/{CROSS_PROJECT}",
            spec={"rules": [{"enforce": False}]},
        ),
    )


def give_act_as(iam_v1, cross):
    grant_on_service_account(
        iam_v1, cross["account"]["name"], "roles/iam.serviceAccountUser", f"user:{cross['user']}"
    )


def give_service_agent(iam_v1, cross, project):
    grant_on_service_account(
        iam_v1,
        cross["account"]["name"],
        "roles/iam.serviceAccountTokenCreator",
        f"serviceAccount:{service_agent(project)}",
    )


def deploy(cross, project, pool_id):
    return cross["client"].create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template(cross["email"])),
        worker_pool_id=pool_id,
    ).result(timeout=60)


def test_cross_project_without_act_as(server, iam_v1, pools, project, other_project, cross):
    allow_cross_project(server, other_project)
    give_service_agent(iam_v1, cross, project)
    pool_id = new_pool_id()
    with pytest.raises(exceptions.Forbidden) as err:
        deploy(cross, project, pool_id)
    assert body_message(err.value) == ACT_AS_DENIED.format(cross["email"])
    assert error_info(err.value)["reason"] == "IAM_PERMISSION_DENIED"
    assert_absent(pools, project, pool_id)


def test_cross_project_with_constraint_enforced(iam_v1, pools, project, cross):
    give_act_as(iam_v1, cross)
    give_service_agent(iam_v1, cross, project)
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        deploy(cross, project, pool_id)
    assert err.value.code == 400
    assert rpc_status(err.value) == "FAILED_PRECONDITION"
    assert CROSS_PROJECT in body_message(err.value)
    assert_absent(pools, project, pool_id)


def test_cross_project_without_service_agent_grant(server, iam_v1, pools, project, other_project, cross):
    allow_cross_project(server, other_project)
    give_act_as(iam_v1, cross)
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        deploy(cross, project, pool_id)
    assert err.value.code == 400
    assert rpc_status(err.value) == "FAILED_PRECONDITION"
    message = body_message(err.value)
    assert message.startswith(SERVICE_AGENT_DENIED), message
    assert cross["email"] in message
    assert service_agent(project) in message
    assert "iam.serviceAccounts.getAccessToken" in message
    assert_absent(pools, project, pool_id)


def test_cross_project_with_all_three_deploys(server, iam_v1, pools, project, other_project, cross):
    allow_cross_project(server, other_project)
    give_act_as(iam_v1, cross)
    give_service_agent(iam_v1, cross, project)
    pool = deploy(cross, project, new_pool_id())
    assert pool.template.service_account == cross["email"]
    assert pool.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    got = pools.get_worker_pool(name=pool.name)
    assert got.template.service_account == cross["email"]


# --- scaling fields beyond the public proto (wire only) -----------------------------------------


def test_scaling_mode_and_bounds_round_trip_on_the_wire(server, project):
    """scalingMode/minInstanceCount/maxInstanceCount are sent by gcloud and Terraform but are
    not in google-cloud-run 0.16.2's WorkerPoolScaling, so this round trip uses requests."""
    assert "scaling_mode" not in run_v2.WorkerPoolScaling.meta.fields
    pool_id = new_pool_id()
    headers = {"Authorization": f"Bearer {server.token}"}
    body = {
        "template": {"containers": [{"image": IMAGE}]},
        "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 2, "minInstanceCount": 1, "maxInstanceCount": 4},
    }
    r = requests.post(
        f"{server.endpoint}/v2/{location(project)}/workerPools",
        params={"workerPoolId": pool_id},
        json=body,
        headers=headers,
    )
    assert r.status_code == 200, r.text
    got = requests.get(f"{server.endpoint}/v2/{pool_name(project, pool_id)}", headers=headers).json()
    assert got["scaling"]["manualInstanceCount"] == 2
    assert got["scaling"]["scalingMode"] == "MANUAL"
    assert got["scaling"]["minInstanceCount"] == 1
    assert got["scaling"]["maxInstanceCount"] == 4


# --- input validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"labels": {"run.googleapis.com/x": "y"}},
        {"annotations": {"run.googleapis.com/x": "y"}},
        {"labels": {"serving.knative.dev/x": "y"}},
        {"description": "d" * 513},
    ],
    ids=["run-label", "run-annotation", "knative-label", "long-description"],
)
def test_invalid_pool_fields_are_invalid_argument(pools, project, fields):
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        create(pools, project, pool_id=pool_id, **fields)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    assert_absent(pools, project, pool_id)


def test_template_is_required(pools, project):
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        pools.create_worker_pool(
            parent=location(project), worker_pool=run_v2.WorkerPool(), worker_pool_id=pool_id
        ).result(timeout=60)
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    assert_absent(pools, project, pool_id)


def test_list_without_permission_is_forbidden(server, project, token_for):
    theirs = server.client(run_v2.WorkerPoolsClient, token_for(f"n-{uuid.uuid4().hex[:8]}@example.com"))
    with pytest.raises(exceptions.Forbidden) as err:
        list(theirs.list_worker_pools(parent=location(project)))
    assert rpc_status(err.value) == "PERMISSION_DENIED"


# --- grants inherited down the hierarchy --------------------------------------------------------


def test_act_as_inherited_from_organization(server, iam_v1, pools, project, deployer, org_name, unique_id):
    user, theirs = deployer
    account = create_service_account(iam_v1, project.project_id, f"so-{unique_id}")
    orgs = server.client(resourcemanager_v3.OrganizationsClient)
    policy = orgs.get_iam_policy(request={"resource": org_name})
    policy.bindings.add(role="roles/iam.serviceAccountUser", members=[f"user:{user}"])
    orgs.set_iam_policy(request={"resource": org_name, "policy": policy})
    pool = theirs.create_worker_pool(
        parent=location(project),
        worker_pool=run_v2.WorkerPool(template=template(account["email"])),
        worker_pool_id=new_pool_id(),
    ).result(timeout=60)
    assert pool.template.service_account == account["email"]


def test_cross_project_grants_and_policy_inherited(server, iam_v1, pools, project, org_name, deployer):
    """All three cross-project conditions met through the hierarchy instead of on the account:
    actAs and the service agent's token creator role on the account's project, and the
    constraint turned off on a folder above it."""
    user, theirs = deployer
    folder = server.client(resourcemanager_v3.FoldersClient).create_folder(
        folder=resourcemanager_v3.Folder(parent=org_name, display_name=f"F {uuid.uuid4().hex[:8]}")
    ).result(timeout=30)
    home = create_project(server, folder.name, f"h-{uuid.uuid4().hex[:12]}", "account home")
    account = create_service_account(iam_v1, home.project_id, f"h-{uuid.uuid4().hex[:10]}")
    grant_on_project(server, home.name, "roles/iam.serviceAccountUser", f"user:{user}")
    grant_on_project(
        server, home.name, "roles/iam.serviceAccountTokenCreator", f"serviceAccount:{service_agent(project)}"
    )

    pool_id = new_pool_id()
    body = run_v2.WorkerPool(template=template(account["email"]))
    with pytest.raises(exceptions.BadRequest) as err:  # constraint still enforced (default)
        theirs.create_worker_pool(parent=location(project), worker_pool=body, worker_pool_id=pool_id).result(timeout=60)
    assert rpc_status(err.value) == "FAILED_PRECONDITION"
    assert CROSS_PROJECT in body_message(err.value)

    server.client(orgpolicy_v2.OrgPolicyClient).create_policy(
        parent=folder.name,
        policy=orgpolicy_v2.Policy(
            name=f"{folder.name}/policies/{CROSS_PROJECT}", spec={"rules": [{"enforce": False}]}
        ),
    )
    pool = theirs.create_worker_pool(
        parent=location(project), worker_pool=body, worker_pool_id=pool_id
    ).result(timeout=60)
    assert pool.template.service_account == account["email"]


def test_cross_project_constraint_is_read_on_the_accounts_project(server, iam_v1, pools, project, other_project, cross):
    """Turning the constraint off on the *pool's* project does not help: it is evaluated on the
    project that owns the account."""
    give_act_as(iam_v1, cross)
    give_service_agent(iam_v1, cross, project)
    allow_cross_project(server, project)
    pool_id = new_pool_id()
    with pytest.raises(exceptions.BadRequest) as err:
        deploy(cross, project, pool_id)
    assert rpc_status(err.value) == "FAILED_PRECONDITION"
    assert CROSS_PROJECT in body_message(err.value)
    assert_absent(pools, project, pool_id)


# --- a service account as the deployer (key file, self-signed JWT) ------------------------------


def test_service_account_deployer_with_key_file(server, iam_v1, pools, project, unique_id):
    from google.oauth2 import service_account

    from conftest import create_key

    deployer_sa = create_service_account(iam_v1, project.project_id, f"dp-{unique_id}")
    runtime_sa = create_service_account(iam_v1, project.project_id, f"rt-{unique_id}")
    _, keyfile = create_key(iam_v1, deployer_sa["name"])
    member = f"serviceAccount:{deployer_sa['email']}"
    grant_on_project(server, project.name, "roles/run.developer", member)

    client = server.client(
        run_v2.WorkerPoolsClient,
        credentials=service_account.Credentials.from_service_account_info(keyfile),
    )
    pool_id = new_pool_id()
    body = run_v2.WorkerPool(template=template(runtime_sa["email"]))
    with pytest.raises(exceptions.Forbidden) as err:
        client.create_worker_pool(parent=location(project), worker_pool=body, worker_pool_id=pool_id).result(timeout=60)
    assert body_message(err.value) == ACT_AS_DENIED.format(runtime_sa["email"])

    grant_on_service_account(iam_v1, runtime_sa["name"], "roles/iam.serviceAccountUser", member)
    pool = client.create_worker_pool(
        parent=location(project), worker_pool=body, worker_pool_id=pool_id
    ).result(timeout=60)
    assert pool.creator == deployer_sa["email"]
    assert pool.template.service_account == runtime_sa["email"]


# --- revisions named and pinned -----------------------------------------------------------------


def test_named_revision_and_split_pinned_to_it(pools, revisions, project):
    pool_id = new_pool_id()
    first = template()
    first.revision = f"{pool_id}-first"
    pool = pools.create_worker_pool(
        parent=location(project), worker_pool=run_v2.WorkerPool(template=first), worker_pool_id=pool_id
    ).result(timeout=60)
    assert pool.latest_created_revision == f"{pool.name}/revisions/{pool_id}-first"

    # pin the split to the first revision, then roll a new one: it is created but takes nothing
    pinned = [
        run_v2.InstanceSplit(
            type_=run_v2.InstanceSplitAllocationType.INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION,
            revision=f"{pool_id}-first",
            percent=100,
        )
    ]
    updated = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template(image=IMAGE_2), instance_splits=pinned)
    ).result(timeout=60)
    assert updated.latest_created_revision != pool.latest_created_revision
    assert [(s.revision, s.percent) for s in updated.instance_split_statuses] == [(f"{pool_id}-first", 100)]

    third = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template(), instance_splits=pinned)
    ).result(timeout=60)
    assert third.latest_created_revision not in (pool.latest_created_revision, updated.latest_created_revision)

    # a revision that still takes instances cannot be deleted; one neither serving nor latest can
    # (whether the latest, unpinned revision may be deleted is not asserted)
    with pytest.raises(exceptions.ClientError):
        revisions.delete_revision(name=pool.latest_created_revision).result(timeout=60)
    assert revisions.get_revision(name=pool.latest_created_revision).name == pool.latest_created_revision
    revisions.delete_revision(name=updated.latest_created_revision).result(timeout=60)
    with pytest.raises(exceptions.NotFound):
        revisions.get_revision(name=updated.latest_created_revision)


def test_update_without_mask_replaces_the_pool(pools, project):
    """UpdateWorkerPool without an update_mask writes the whole resource: fields left out are
    cleared (gcloud and Terraform always send the full object)."""
    pool = create(pools, project, labels={"a": "b"}, description="before")
    updated = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, template=template())
    ).result(timeout=60)
    assert dict(updated.labels) == {}
    assert updated.description == ""
    assert updated.uid == pool.uid
    assert updated.creator == pool.creator


def test_update_mask_on_labels_only(pools, project):
    pool = create(pools, project, labels={"a": "b"}, description="kept")
    updated = pools.update_worker_pool(
        worker_pool=run_v2.WorkerPool(name=pool.name, labels={"c": "d"}),
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    ).result(timeout=60)
    assert dict(updated.labels) == {"c": "d"}
    assert updated.description == "kept"
    assert updated.template.containers[0].image == IMAGE
    assert updated.latest_created_revision == pool.latest_created_revision
