"""Recommender v1 through google-cloud-recommender (``recommender_v1``), REST transport.

Two recommenders are served:

- ``google.iam.policy.Recommender`` (location ``global``) with its insight type
  ``google.iam.policy.Insight``: per binding of a project's allow policy, ``REMOVE_ROLE`` when
  the member used none of the role's permissions, ``REPLACE_ROLE`` with smaller predefined
  roles when it used some of them, computed from the audit log's usage;
- ``google.run.service.IdentityRecommender`` (location = a Cloud Run region): a dedicated
  service account for a worker pool that runs as the project's default compute account.

A permission is "used" by calling an API with the member's token. Each test works in a fresh
project so the recommendations it sees are its own. The client asks for
``$alt=json;enum-encoding=int``; enum names on the plain-JSON wire are checked with
``requests``.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
import requests
from google.api_core import exceptions
from google.cloud import recommender_v1, run_v2
from google.iam.v1 import iam_policy_pb2

from conftest import error_info, error_message, grant_on_project, rpc_status

IAM_RECOMMENDER = "google.iam.policy.Recommender"
IAM_INSIGHT = "google.iam.policy.Insight"
RUN_IDENTITY_RECOMMENDER = "google.run.service.IdentityRecommender"
REGION = "us-central1"
IMAGE = "us-docker.pkg.dev/cloudrun/container/worker-pool"
State = recommender_v1.RecommendationStateInfo.State


@pytest.fixture(scope="module")
def rec(server):
    return server.client(recommender_v1.RecommenderClient)


def iam_parent(project) -> str:
    return f"projects/{project.project_id}/locations/global/recommenders/{IAM_RECOMMENDER}"


def insight_parent(project) -> str:
    return f"projects/{project.project_id}/locations/global/insightTypes/{IAM_INSIGHT}"


def project_resource(project) -> str:
    return f"//cloudresourcemanager.googleapis.com/projects/{project.project_id}"


def new_user() -> str:
    return f"user:u{uuid.uuid4().hex[:10]}@example.com"


def new_reviewer(server, project) -> str:
    """A fresh member granted roles/iam.securityReviewer on the project (and using none of it)."""
    member = new_user()
    grant_on_project(server, project.name, "roles/iam.securityReviewer", member)
    return member


def for_member(recommendations, member: str, role: str | None = None):
    """The recommendations whose overview names ``member`` (and ``role``, if given)."""
    return [
        r
        for r in recommendations
        if r.content.overview.get("member") == member
        and (role is None or r.content.overview.get("removedRole") == role)
    ]


def one_for(rec, project, member: str, role: str | None = None, **request):
    found = for_member(
        rec.list_recommendations(request={"parent": iam_parent(project), **request}), member, role
    )
    assert len(found) == 1, found
    return found[0]


def in_state(list_method, parent: str, state: str) -> list:
    """What a list method returns under ``parent`` filtered to ``stateInfo.state = state``."""
    return list(list_method(request={"parent": parent, "filter": f"stateInfo.state = {state}"}))


def names_in_state(rec, project, state: str) -> list[str]:
    """The names of the project's IAM recommendations in ``state``."""
    return [x.name for x in in_state(rec.list_recommendations, iam_parent(project), state)]


def assert_mark_refused(mark, r, etag: str, exc_class, status: str):
    """``mark`` (a ``mark_recommendation_*`` method) on ``r`` with ``etag`` fails: ``status``."""
    with pytest.raises(exc_class) as err:
        mark(request={"name": r.name, "etag": etag})
    assert rpc_status(err.value) == status


def role_permissions(server, role: str) -> list[str]:
    return server.discovery("iam", "v1").roles().get(name=role).execute()["includedPermissions"]


def same(a, b) -> bool:
    """Equal but for ``last_refresh_time`` (each computation stamps its own)."""
    def plain(m):
        return type(m).to_dict(m) | {"last_refresh_time": None}

    return plain(a) == plain(b)


# --- google.iam.policy.Recommender -------------------------------------------------------------


def test_unused_grant_gets_remove_role(server, rec, project):
    member = new_reviewer(server, project)

    r = one_for(rec, project, member)
    assert r.name.startswith(
        f"{project.name}/locations/global/recommenders/{IAM_RECOMMENDER}/recommendations/"
    )
    assert r.recommender_subtype == "REMOVE_ROLE"
    assert r.description
    assert r.priority == recommender_v1.Recommendation.Priority.P4
    assert r.state_info.state == State.ACTIVE
    assert r.etag
    assert r.last_refresh_time.timestamp() > 0
    assert r.target_resources == [f"//cloudresourcemanager.googleapis.com/{project.name}"]

    impact = r.primary_impact
    assert impact.category == recommender_v1.Impact.Category.SECURITY
    revoked = impact.security_projection.details["revokedIamPermissionsCount"]
    assert revoked == len(role_permissions(server, "roles/iam.securityReviewer"))

    assert len(r.content.operation_groups) == 1
    (op,) = r.content.operation_groups[0].operations
    assert op.action == "remove"
    assert op.resource_type == "cloudresourcemanager.googleapis.com/Project"
    assert op.resource == project_resource(project)
    assert op.path == "/iamPolicy/bindings/*/members/*"
    assert dict(op.path_filters) == {
        "/iamPolicy/bindings/*/role": "roles/iam.securityReviewer",
        "/iamPolicy/bindings/*/members/*": member,
        "/iamPolicy/bindings/*/condition/expression": "",
    }
    overview = r.content.overview
    assert overview["removedRole"] == "roles/iam.securityReviewer"
    assert list(overview["addedRoles"]) == []
    assert overview["resource"] == project_resource(project)

    # get by the name the list gave, and by the project id: the same recommendation
    assert same(rec.get_recommendation(name=r.name), r)
    by_id = f"{iam_parent(project)}/recommendations/{r.name.rsplit('/', 1)[1]}"
    assert rec.get_recommendation(name=by_id).etag == r.etag

    (link,) = r.associated_insights
    assert link.insight.startswith(
        f"{project.name}/locations/global/insightTypes/{IAM_INSIGHT}/insights/"
    )


def test_basic_role_of_default_compute_account_is_high_priority(rec, project):
    number = project.name.split("/", 1)[1]
    member = f"serviceAccount:{number}-compute@developer.gserviceaccount.com"
    r = one_for(rec, project, member, "roles/editor")
    assert r.recommender_subtype == "REMOVE_ROLE"
    # basic roles are the broadest grants: ranked above predefined ones
    assert r.priority == recommender_v1.Recommendation.Priority.P2


def test_partly_used_role_gets_replace_role(server, token_for, rec, project):
    member = new_user()
    email = member.split(":", 1)[1]
    grant_on_project(server, project.name, "roles/run.admin", member)
    # use one permission of roles/run.admin: run.workerpools.list
    pools = server.client(run_v2.WorkerPoolsClient, token=token_for(email))
    list(pools.list_worker_pools(parent=f"projects/{project.project_id}/locations/{REGION}"))

    r = one_for(rec, project, member)
    assert r.recommender_subtype == "REPLACE_ROLE"
    assert r.priority == recommender_v1.Recommendation.Priority.P4
    admin = role_permissions(server, "roles/run.admin")
    viewer = role_permissions(server, "roles/run.viewer")
    assert "run.workerpools.list" in viewer and set(viewer) < set(admin)
    details = r.primary_impact.security_projection.details
    assert details["revokedIamPermissionsCount"] == len(admin) - len(viewer)

    add, remove = r.content.operation_groups[0].operations
    assert add.action == "add"
    assert add.resource == project_resource(project)
    assert add.path == "/iamPolicy/bindings/*/members/-"
    assert add.value == member
    assert dict(add.path_filters) == {
        "/iamPolicy/bindings/*/role": "roles/run.viewer",
        "/iamPolicy/bindings/*/condition/expression": "",
    }
    assert remove.action == "remove"
    assert remove.path == "/iamPolicy/bindings/*/members/*"
    assert remove.path_filters["/iamPolicy/bindings/*/role"] == "roles/run.admin"
    assert remove.path_filters["/iamPolicy/bindings/*/members/*"] == member
    assert list(r.content.overview["addedRoles"]) == ["roles/run.viewer"]
    assert r.content.overview["removedRole"] == "roles/run.admin"

    # the insight behind it names the exercised permission and links back
    (link,) = r.associated_insights
    insight = rec.get_insight(name=link.insight)
    assert insight.name == link.insight
    assert insight.insight_subtype == "PERMISSIONS_USAGE"
    assert insight.category == recommender_v1.Insight.Category.SECURITY
    assert insight.severity != recommender_v1.Insight.Severity.SEVERITY_UNSPECIFIED
    assert insight.state_info.state == recommender_v1.InsightStateInfo.State.ACTIVE
    assert insight.observation_period == datetime.timedelta(days=90)
    assert insight.content["role"] == "roles/run.admin"
    assert insight.content["member"] == member
    exercised = [p["permission"] for p in insight.content["exercisedPermissions"]]
    assert exercised == ["run.workerpools.list"]
    assert insight.content["currentTotalPermissionsCount"] == str(len(admin))
    assert [a.recommendation for a in insight.associated_recommendations] == [r.name]
    assert insight.etag


def test_used_role_without_smaller_cover_gets_no_recommendation(server, token_for, rec, project):
    member = new_reviewer(server, project)
    email = member.split(":", 1)[1]
    assert one_for(rec, project, member).recommender_subtype == "REMOVE_ROLE"

    # exercise resourcemanager.projects.getIamPolicy, which roles/iam.securityReviewer grants
    from google.cloud import resourcemanager_v3

    projects = server.client(resourcemanager_v3.ProjectsClient, token=token_for(email))
    projects.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=project.name))

    # used: no REMOVE_ROLE any more, and no predefined role inside roles/iam.securityReviewer
    # covers getIamPolicy, so no REPLACE_ROLE either
    recs = rec.list_recommendations(parent=iam_parent(project))
    assert for_member(recs, member) == []
    insights = [
        i for i in rec.list_insights(parent=insight_parent(project)) if i.content["member"] == member
    ]
    assert len(insights) == 1
    exercised = [p["permission"] for p in insights[0].content["exercisedPermissions"]]
    assert exercised == ["resourcemanager.projects.getIamPolicy"]
    assert list(insights[0].associated_recommendations) == []


def test_mark_claimed_then_succeeded(server, rec, project):
    member = new_reviewer(server, project)
    r = one_for(rec, project, member)

    assert_mark_refused(rec.mark_recommendation_claimed, r, '"stale"', exceptions.Conflict, "ABORTED")

    claimed = rec.mark_recommendation_claimed(
        request={"name": r.name, "etag": r.etag, "state_metadata": {"ticket": "SEC-1"}}
    )
    assert claimed.name == r.name
    assert claimed.state_info.state == State.CLAIMED
    assert dict(claimed.state_info.state_metadata) == {"ticket": "SEC-1"}
    assert claimed.etag != r.etag
    assert claimed.content == r.content  # marking freezes the content, it does not change it
    assert rec.get_recommendation(name=r.name).state_info.state == State.CLAIMED

    # the pre-claim etag is stale now
    assert_mark_refused(rec.mark_recommendation_succeeded, r, r.etag, exceptions.Conflict, "ABORTED")

    done = rec.mark_recommendation_succeeded(
        request={"name": r.name, "etag": claimed.etag, "state_metadata": {"ticket": "SEC-1"}}
    )
    assert done.state_info.state == State.SUCCEEDED

    active = in_state(rec.list_recommendations, iam_parent(project), "ACTIVE")
    assert r.name not in {x.name for x in active}
    assert all(x.state_info.state == State.ACTIVE for x in active)
    assert names_in_state(rec, project, "SUCCEEDED") == [r.name]

    # only an ACTIVE recommendation can be dismissed
    assert_mark_refused(
        rec.mark_recommendation_dismissed, r, done.etag, exceptions.BadRequest, "FAILED_PRECONDITION"
    )


def test_mark_dismissed(server, rec, project):
    member = new_reviewer(server, project)
    r = one_for(rec, project, member)

    assert_mark_refused(rec.mark_recommendation_dismissed, r, '"stale"', exceptions.Conflict, "ABORTED")

    dismissed = rec.mark_recommendation_dismissed(request={"name": r.name, "etag": r.etag})
    assert dismissed.state_info.state == State.DISMISSED
    assert rec.get_recommendation(name=r.name).state_info.state == State.DISMISSED
    assert names_in_state(rec, project, "DISMISSED") == [r.name]
    # a dismissed recommendation cannot be claimed
    assert_mark_refused(
        rec.mark_recommendation_claimed, r, dismissed.etag, exceptions.BadRequest, "FAILED_PRECONDITION"
    )


def test_list_filters_by_subtype_and_priority(server, rec, project):
    member = new_reviewer(server, project)
    parent = iam_parent(project)

    both = rec.list_recommendations(
        request={
            "parent": parent,
            "filter": "stateInfo.state = ACTIVE AND recommenderSubtype = REMOVE_ROLE",
        }
    )
    assert for_member(both, member)
    assert all(x.recommender_subtype == "REMOVE_ROLE" for x in both)
    p1 = rec.list_recommendations(request={"parent": parent, "filter": "priority = P1"})
    assert list(p1) == []
    with pytest.raises(exceptions.BadRequest) as err:
        list(rec.list_recommendations(request={"parent": parent, "filter": "nonsense"}))
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_list_and_get_insights(server, rec, project):
    member = new_reviewer(server, project)
    r = one_for(rec, project, member)

    insights = list(rec.list_insights(parent=insight_parent(project)))
    mine = [i for i in insights if i.content["member"] == member]
    assert len(mine) == 1
    insight = mine[0]
    assert insight.name == r.associated_insights[0].insight
    assert insight.content["role"] == "roles/iam.securityReviewer"
    assert list(insight.content["exercisedPermissions"]) == []
    assert insight.target_resources == [f"//cloudresourcemanager.googleapis.com/{project.name}"]
    assert [a.recommendation for a in insight.associated_recommendations] == [r.name]
    assert same(rec.get_insight(name=insight.name), insight)

    # filters compare enum names (stateInfo.state = ACTIVE), as Google's documented filters do
    active = in_state(rec.list_insights, insight_parent(project), "ACTIVE")
    assert insight.name in {i.name for i in active}
    assert in_state(rec.list_insights, insight_parent(project), "DISMISSED") == []

    with pytest.raises(exceptions.NotFound):
        rec.get_insight(name=f"{insight_parent(project)}/insights/{uuid.uuid4()}")


def test_unknown_recommendation_recommender_and_location(rec, project):
    with pytest.raises(exceptions.NotFound) as err:
        rec.get_recommendation(name=f"{iam_parent(project)}/recommendations/{uuid.uuid4()}")
    assert rpc_status(err.value) == "NOT_FOUND"
    with pytest.raises(exceptions.BadRequest) as err:
        list(
            rec.list_recommendations(
                parent=f"projects/{project.project_id}/locations/global/recommenders/google.no.Such"
            )
        )
    assert rpc_status(err.value) == "INVALID_ARGUMENT"
    with pytest.raises(exceptions.BadRequest) as err:
        list(
            rec.list_recommendations(
                parent=f"projects/{project.project_id}/locations/{REGION}/recommenders/{IAM_RECOMMENDER}"
            )
        )
    assert rpc_status(err.value) == "INVALID_ARGUMENT"


def test_permission_denied_without_recommender_permissions(server, token_for, rec, project):
    member = new_reviewer(server, project)
    r = one_for(rec, project, member)

    outsider_email = f"o{uuid.uuid4().hex[:8]}@example.com"
    outsider = server.client(recommender_v1.RecommenderClient, token=token_for(outsider_email))
    calls = {
        "recommender.iamPolicyRecommendations.list": lambda: list(
            outsider.list_recommendations(parent=iam_parent(project))
        ),
        "recommender.iamPolicyRecommendations.get": lambda: outsider.get_recommendation(name=r.name),
        "recommender.iamPolicyRecommendations.update": lambda: outsider.mark_recommendation_claimed(
            request={"name": r.name, "etag": r.etag}
        ),
        "recommender.iamPolicyInsights.list": lambda: list(
            outsider.list_insights(parent=insight_parent(project))
        ),
        "recommender.iamPolicyInsights.get": lambda: outsider.get_insight(
            name=r.associated_insights[0].insight
        ),
    }
    for permission, call in calls.items():
        with pytest.raises(exceptions.Forbidden) as err:
            call()
        assert rpc_status(err.value) == "PERMISSION_DENIED", permission
        info = error_info(err.value)
        assert info["reason"] == "IAM_PERMISSION_DENIED"
        assert info["metadata"]["permission"] == permission
        assert permission in error_message(err.value)

    # roles/recommender.iamViewer reads but may not mark
    viewer_email = f"v{uuid.uuid4().hex[:8]}@example.com"
    grant_on_project(server, project.name, "roles/recommender.iamViewer", f"user:{viewer_email}")
    viewer = server.client(recommender_v1.RecommenderClient, token=token_for(viewer_email))
    assert viewer.get_recommendation(name=r.name).etag == r.etag
    with pytest.raises(exceptions.Forbidden) as err:
        viewer.mark_recommendation_dismissed(request={"name": r.name, "etag": r.etag})
    permission = error_info(err.value)["metadata"]["permission"]
    assert permission == "recommender.iamPolicyRecommendations.update"
    # nothing changed
    assert rec.get_recommendation(name=r.name).state_info.state == State.ACTIVE


def test_enum_names_on_the_plain_json_wire(server, project):
    member = new_reviewer(server, project)
    headers = {"Authorization": f"Bearer {server.token}"}
    body = requests.get(
        f"{server.endpoint}/v1/{iam_parent(project)}/recommendations", headers=headers, timeout=30
    ).json()
    (r,) = [x for x in body["recommendations"] if x["content"]["overview"]["member"] == member]
    assert r["priority"] == "P4"
    assert r["stateInfo"]["state"] == "ACTIVE"
    assert r["primaryImpact"]["category"] == "SECURITY"
    assert r["recommenderSubtype"] == "REMOVE_ROLE"
    assert r["content"]["operationGroups"][0]["operations"][0]["pathFilters"][
        "/iamPolicy/bindings/*/members/*"
    ] == member

    body = requests.get(
        f"{server.endpoint}/v1/{insight_parent(project)}/insights", headers=headers, timeout=30
    ).json()
    (i,) = [x for x in body["insights"] if x["content"]["member"] == member]
    assert i["stateInfo"]["state"] == "ACTIVE"
    assert i["category"] == "SECURITY"
    assert i["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
    assert i["observationPeriod"] == "7776000s"


# --- google.run.service.IdentityRecommender ----------------------------------------------------


def test_identity_recommender_for_pool_on_default_account(server, rec, project):
    pools = server.client(run_v2.WorkerPoolsClient)
    pool_id = "wp-" + uuid.uuid4().hex[:10]
    location = f"projects/{project.project_id}/locations/{REGION}"
    pools.create_worker_pool(
        parent=location,
        worker_pool=run_v2.WorkerPool(
            template=run_v2.WorkerPoolRevisionTemplate(
                containers=[run_v2.Container(image=IMAGE, command=["sleep", "3600"])]
            ),
            scaling=run_v2.WorkerPoolScaling(manual_instance_count=0),
        ),
        worker_pool_id=pool_id,
    ).result(timeout=60)
    try:
        parent = f"{location}/recommenders/{RUN_IDENTITY_RECOMMENDER}"
        recs = [
            r
            for r in rec.list_recommendations(parent=parent)
            if r.target_resources == [f"//run.googleapis.com/{location}/workerPools/{pool_id}"]
        ]
        assert len(recs) == 1, recs
        r = recs[0]
        assert r.name.startswith(
            f"{project.name}/locations/{REGION}/recommenders/{RUN_IDENTITY_RECOMMENDER}/recommendations/"
        )
        assert r.recommender_subtype == "CREATE_DEDICATED_SERVICE_ACCOUNT"
        assert r.priority == recommender_v1.Recommendation.Priority.P2
        assert r.state_info.state == State.ACTIVE
        assert r.primary_impact.category == recommender_v1.Impact.Category.SECURITY
        assert r.primary_impact.security_projection.details["revokedIamPermissionsCount"] > 0

        number = project.name.split("/", 1)[1]
        overview = r.content.overview
        assert overview["currentServiceAccount"] == f"{number}-compute@developer.gserviceaccount.com"
        assert overview["reason"] == "DEFAULT_SERVICE_ACCOUNT"
        new_email = overview["recommendedServiceAccount"]
        assert new_email.endswith(f"@{project.project_id}.iam.gserviceaccount.com")

        ops = list(r.content.operation_groups[0].operations)
        create = ops[0]
        assert create.action == "add"
        assert create.resource_type == "iam.googleapis.com/ServiceAccount"
        assert create.resource == (
            f"//iam.googleapis.com/projects/{project.project_id}/serviceAccounts/{new_email}"
        )
        assert create.path == "/"
        switch = ops[-1]
        assert switch.action == "replace"
        assert switch.resource_type == "run.googleapis.com/WorkerPool"
        assert switch.path == "/template/serviceAccount"
        assert switch.value == new_email
        # the deployer (admin created the pool) may act as the new account
        act_as = [
            o
            for o in ops
            if o.resource_type == "iam.googleapis.com/ServiceAccount"
            and o.path_filters.get("/iamPolicy/bindings/*/role") == "roles/iam.serviceAccountUser"
        ]
        assert [o.value for o in act_as] == ["user:admin@example.com"]

        assert same(rec.get_recommendation(name=r.name), r)
        claimed = rec.mark_recommendation_claimed(request={"name": r.name, "etag": r.etag})
        assert claimed.state_info.state == State.CLAIMED

        # the IAM recommender's location is not this one's
        with pytest.raises(exceptions.BadRequest) as err:
            global_parent = f"projects/{project.project_id}/locations/global"
            list(
                rec.list_recommendations(
                    parent=f"{global_parent}/recommenders/{RUN_IDENTITY_RECOMMENDER}"
                )
            )
        assert rpc_status(err.value) == "INVALID_ARGUMENT"
    finally:
        pools.delete_worker_pool(name=f"{location}/workerPools/{pool_id}").result(timeout=60)
