"""Jobs and CronJobs through BatchV1Api."""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import status_of, not_found, wait_until


def pod_template(restart="Never", labels=None):
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(restart_policy=restart, containers=[
            client.V1Container(name="work", image="busybox:1.36", command=["sh", "-c", "echo hi"])]))


def job(name, **spec):
    return client.V1Job(metadata=client.V1ObjectMeta(name=name),
                        spec=client.V1JobSpec(template=pod_template(), **spec))


@pytest.fixture
def batch(api_client):
    return client.BatchV1Api(api_client)


def test_job_defaults_and_generated_selector(batch, namespace):
    j = batch.create_namespaced_job(namespace, job("pi"))
    assert (j.api_version, j.kind) == ("batch/v1", "Job")
    uid = j.metadata.uid
    assert j.spec.completions == 1 and j.spec.parallelism == 1
    assert j.spec.backoff_limit == 6
    assert j.spec.completion_mode == "NonIndexed"
    assert j.spec.suspend is False
    assert j.spec.manual_selector is None
    # The server generates a selector on the Job's uid and labels the template to match.
    assert j.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = j.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    assert labels["controller-uid"] == uid
    assert labels["batch.kubernetes.io/job-name"] == "pi" and labels["job-name"] == "pi"
    assert j.spec.template.spec.restart_policy == "Never"

    read = batch.read_namespaced_job("pi", namespace)
    assert read.metadata.uid == uid and read.spec.selector == j.spec.selector
    assert [x.metadata.name for x in batch.list_namespaced_job(namespace).items] == ["pi"]


def test_job_template_is_immutable_but_suspend_is_not(batch, namespace):
    batch.create_namespaced_job(namespace, job("imm", suspend=True))
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job("imm", namespace, {"spec": {"template": {"spec": {
            "containers": [{"name": "work", "image": "busybox:1.37"}]}}}})
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["details"]["kind"] == "Job" and st["details"]["group"] == "batch"
    assert any(c["field"] == "spec.template" for c in st["details"]["causes"]), st

    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job("imm", namespace, {"spec": {"completions": 3}})
    assert err.value.status == 422

    out = batch.patch_namespaced_job("imm", namespace, {"spec": {"suspend": False}})
    assert out.spec.suspend is False
    out = batch.patch_namespaced_job("imm", namespace, {"spec": {"parallelism": 3}})
    assert out.spec.parallelism == 3


def test_invalid_jobs(batch, namespace):
    bad = job("always")
    bad.spec.template.spec.restart_policy = "Always"
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(namespace, bad)
    assert err.value.status == 422
    assert any(c["field"] == "spec.template.spec.restartPolicy"
               for c in status_of(err.value)["details"]["causes"])

    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(namespace, job("neg", backoff_limit=-1))
    assert err.value.status == 422
    assert any(c["field"] == "spec.backoffLimit" for c in status_of(err.value)["details"]["causes"])
    assert not_found(batch.read_namespaced_job, "neg", namespace)


def test_indexed_job(batch, namespace):
    j = batch.create_namespaced_job(namespace, job("idx", completions=3, parallelism=2,
                                                   completion_mode="Indexed"))
    assert j.spec.completion_mode == "Indexed" and j.spec.completions == 3
    # The completion mode can't change once set.
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job("idx", namespace, {"spec": {"completionMode": "NonIndexed"}})
    assert err.value.status == 422
    assert any(c["field"] == "spec.completionMode" for c in status_of(err.value)["details"]["causes"])


def cronjob(name, schedule="*/5 * * * *", **spec):
    return client.V1CronJob(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CronJobSpec(schedule=schedule, job_template=client.V1JobTemplateSpec(
            spec=client.V1JobSpec(template=pod_template("OnFailure"))), **spec))


def test_cronjob_crud(batch, namespace):
    c = batch.create_namespaced_cron_job(namespace, cronjob("tick"))
    assert (c.api_version, c.kind) == ("batch/v1", "CronJob")
    assert c.spec.concurrency_policy == "Allow"
    assert c.spec.suspend is False
    assert c.spec.successful_jobs_history_limit == 3
    assert c.spec.failed_jobs_history_limit == 1
    assert c.spec.job_template.spec.template.spec.restart_policy == "OnFailure"

    out = batch.patch_namespaced_cron_job("tick", namespace, {"spec": {"suspend": True, "schedule": "@hourly"}})
    assert out.spec.suspend is True and out.spec.schedule == "@hourly"

    read = batch.read_namespaced_cron_job("tick", namespace)
    read.spec.concurrency_policy = "Forbid"
    out = batch.replace_namespaced_cron_job("tick", namespace, read)
    assert out.spec.concurrency_policy == "Forbid"
    assert int(out.metadata.resource_version) > int(read.metadata.resource_version)

    names = [x.metadata.name for x in batch.list_namespaced_cron_job(namespace).items]
    assert names == ["tick"]

    status = batch.patch_namespaced_cron_job_status("tick", namespace, {
        "status": {"lastScheduleTime": "2025-01-01T00:00:00Z"}})
    assert status.status.last_schedule_time.year == 2025

    batch.delete_namespaced_cron_job("tick", namespace)
    assert not_found(batch.read_namespaced_cron_job, "tick", namespace)


def test_invalid_cronjobs(batch, namespace):
    for name, kw, field in (
        ("bad-schedule", {"schedule": "not a cron"}, "spec.schedule"),
        ("bad-policy", {"concurrency_policy": "Sometimes"}, "spec.concurrencyPolicy"),
        ("bad-tz", {"time_zone": "Mars/Olympus_Mons"}, "spec.timeZone"),
    ):
        with pytest.raises(ApiException) as err:
            batch.create_namespaced_cron_job(namespace, cronjob(name, **kw))
        assert err.value.status == 422, name
        st = status_of(err.value)
        assert st["details"]["kind"] == "CronJob"
        assert any(c["field"] == field for c in st["details"]["causes"]), (name, st)
    ok = batch.create_namespaced_cron_job(namespace, cronjob("tz", time_zone="Europe/Paris"))
    assert ok.spec.time_zone == "Europe/Paris"
