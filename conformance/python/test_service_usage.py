"""Service Usage v1 through Google's Python client (google-cloud-service-usage,
``service_usage_v1``) on the session's transport: services list, get, batchGet, enable and
disable with their operations, Google's refusal of a service it does not know, and Cloud
Run refusing a project that has not enabled it (403 ``SERVICE_DISABLED``, with the
``ErrorInfo`` Google's front end sends) on the same transport.
"""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import run_v2, service_usage_v1

from conftest import PROJECT_APIS, client_fixture, error_info

usage = client_fixture(service_usage_v1.ServiceUsageClient)
pools = client_fixture(run_v2.WorkerPoolsClient)

ENABLED = service_usage_v1.State.ENABLED
DISABLED = service_usage_v1.State.DISABLED


def enabled(usage, project_id: str) -> set[str]:
    return {
        s.config.name
        for s in usage.list_services(
            request={"parent": f"projects/{project_id}", "filter": "state:ENABLED"}
        )
    }


def test_a_new_project_has_googles_defaults_and_the_apis_it_enabled(usage, project):
    names = enabled(usage, project.project_id)
    # Google enables these on every new project; the fixture enabled Cloud Run and IAM.
    for api in ["serviceusage.googleapis.com", "bigquery.googleapis.com", *PROJECT_APIS]:
        assert api in names, names
    assert "recommender.googleapis.com" not in names, names


def test_enable_and_disable_are_operations_and_get_reads_the_state(usage, project):
    name = f"projects/{project.project_id}/services/recommender.googleapis.com"
    assert usage.get_service(request={"name": name}).state == DISABLED
    done = usage.enable_service(request={"name": name}).result(timeout=30)
    assert done.service.state == ENABLED
    assert done.service.config.title == "Recommender API"
    got = usage.get_service(request={"name": name})
    assert got.state == ENABLED
    # Named by number, as Google answers.
    assert got.name.startswith("projects/") and got.parent.split("/")[1].isdigit(), got
    usage.disable_service(request={"name": name}).result(timeout=30)
    assert usage.get_service(request={"name": name}).state == DISABLED

    both = usage.batch_get_services(
        request={
            "parent": f"projects/{project.project_id}",
            "names": [name, f"projects/{project.project_id}/services/run.googleapis.com"],
        }
    )
    assert [s.state for s in both.services] == [DISABLED, ENABLED]


def test_a_service_google_does_not_know_is_refused_in_its_words(usage, project):
    with pytest.raises(exceptions.Forbidden) as e:
        usage.enable_service(
            request={"name": f"projects/{project.project_id}/services/nosuch.googleapis.com"}
        ).result(timeout=30)
    assert "Not found or permission denied for service(s): nosuch.googleapis.com." in str(e.value)
    assert "nosuch.googleapis.com" not in enabled(usage, project.project_id)


def test_cloud_run_refuses_a_project_that_disabled_it(usage, pools, project):
    name = f"projects/{project.project_id}/services/run.googleapis.com"
    parent = f"projects/{project.project_id}/locations/us-central1"
    assert list(pools.list_worker_pools(parent=parent)) == []
    usage.disable_service(request={"name": name}).result(timeout=30)
    with pytest.raises(exceptions.Forbidden) as e:
        list(pools.list_worker_pools(parent=parent))
    info = error_info(e.value)
    assert info["reason"] == "SERVICE_DISABLED", info
    assert info["domain"] == "googleapis.com", info
    assert info["metadata"]["service"] == "run.googleapis.com", info
    assert info["metadata"]["consumer"].startswith("projects/"), info
    assert "Cloud Run Admin API has not been used in project" in str(e.value)
    usage.enable_service(request={"name": name}).result(timeout=30)
    assert list(pools.list_worker_pools(parent=parent)) == []
