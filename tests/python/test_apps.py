"""Deployments through AppsV1Api: defaults, scale subresource, image patches, selectors."""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import status_of, not_found


def deployment(name, labels, replicas=2, images=("nginx:1.25",)):
    containers = [client.V1Container(name=f"c{i}", image=img, ports=[client.V1ContainerPort(container_port=80 + i)])
                  for i, img in enumerate(images)]
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=containers))))


@pytest.fixture
def apps(api_client):
    return client.AppsV1Api(api_client)


def test_create_fills_defaults(apps, namespace):
    d = apps.create_namespaced_deployment(namespace, deployment("web", {"app": "web"}))
    assert (d.api_version, d.kind) == ("apps/v1", "Deployment")
    assert d.metadata.generation == 1
    assert d.spec.replicas == 2
    assert d.spec.strategy.type == "RollingUpdate"
    assert d.spec.strategy.rolling_update.max_surge == "25%"
    assert d.spec.strategy.rolling_update.max_unavailable == "25%"
    assert d.spec.revision_history_limit == 10
    assert d.spec.progress_deadline_seconds == 600
    pod = d.spec.template.spec
    assert pod.restart_policy == "Always" and pod.dns_policy == "ClusterFirst"
    assert pod.scheduler_name == "default-scheduler"
    assert pod.termination_grace_period_seconds == 30
    c = pod.containers[0]
    assert c.image_pull_policy == "IfNotPresent"  # tagged, not :latest
    assert c.termination_message_path == "/dev/termination-log"
    assert c.ports[0].protocol == "TCP"

    latest = apps.create_namespaced_deployment(namespace, deployment("latest", {"app": "latest"},
                                                                     images=("nginx",)))
    assert latest.spec.template.spec.containers[0].image_pull_policy == "Always"

    read = apps.read_namespaced_deployment("web", namespace)
    assert read.metadata.uid == d.metadata.uid and read.spec == d.spec


def test_scale_subresource(apps, namespace):
    apps.create_namespaced_deployment(namespace, deployment("scaled", {"app": "scaled"}, replicas=2))
    scale = apps.read_namespaced_deployment_scale("scaled", namespace)
    assert (scale.api_version, scale.kind) == ("autoscaling/v1", "Scale")
    assert scale.metadata.name == "scaled" and scale.metadata.namespace == namespace
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=scaled"

    patched = apps.patch_namespaced_deployment_scale("scaled", namespace, {"spec": {"replicas": 5}})
    assert patched.spec.replicas == 5
    d = apps.read_namespaced_deployment("scaled", namespace)
    assert d.spec.replicas == 5
    assert d.metadata.generation == 2

    # The Deployment controller writes the Deployment too (status, revision annotation): a
    # replace pinned to a resourceVersion is retried on conflict, as clients do.
    for _ in range(20):
        scale = apps.read_namespaced_deployment_scale("scaled", namespace)
        scale.spec.replicas = 1
        try:
            replaced = apps.replace_namespaced_deployment_scale("scaled", namespace, scale)
            break
        except ApiException as err:
            assert err.status == 409
    assert replaced.spec.replicas == 1
    assert apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 1

    # A stale resourceVersion on the Scale is a conflict too.
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("scaled", namespace, scale)
    assert err.value.status == 409

    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale("scaled", namespace, {"spec": {"replicas": -1}})
    assert err.value.status == 422

    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment_scale("missing", namespace)
    assert err.value.status == 404


def test_patch_image(apps, namespace):
    apps.create_namespaced_deployment(
        namespace, deployment("img", {"app": "img"}, images=("nginx:1.25", "redis:7")))
    # Strategic merge: containers merge by name, the other container is untouched.
    out = apps.patch_namespaced_deployment("img", namespace, {
        "spec": {"template": {"spec": {"containers": [{"name": "c0", "image": "nginx:1.27"}]}}}})
    images = {c.name: c.image for c in out.spec.template.spec.containers}
    assert images == {"c0": "nginx:1.27", "c1": "redis:7"}
    assert out.metadata.generation == 2
    assert out.spec.template.spec.containers[0].ports[0].container_port == 80

    # A JSON merge patch replaces the list as a whole.
    out = apps.patch_namespaced_deployment("img", namespace, {
        "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox:1"}]}}}},
        _content_type="application/merge-patch+json")
    assert [(c.name, c.image) for c in out.spec.template.spec.containers] == [("only", "busybox:1")]
    assert out.metadata.generation == 3

    # Metadata-only changes don't bump the generation.
    out = apps.patch_namespaced_deployment("img", namespace, {"metadata": {"annotations": {"a": "b"}}})
    assert out.metadata.generation == 3


def test_list_with_selectors(apps, namespace, api_client):
    for name, tier in (("fe-1", "frontend"), ("fe-2", "frontend"), ("be-1", "backend")):
        apps.create_namespaced_deployment(namespace, deployment(name, {"app": name, "tier": tier}))

    def names(**kw):
        return sorted(d.metadata.name for d in apps.list_namespaced_deployment(namespace, **kw).items)

    assert names() == ["be-1", "fe-1", "fe-2"]
    assert names(label_selector="tier=frontend") == ["fe-1", "fe-2"]
    assert names(label_selector="tier!=frontend") == ["be-1"]
    assert names(label_selector="tier in (backend,other)") == ["be-1"]
    assert names(label_selector="tier,app notin (fe-1)") == ["be-1", "fe-2"]
    assert names(label_selector="missing") == []
    assert names(field_selector="metadata.name=fe-2") == ["fe-2"]
    assert names(field_selector="metadata.name!=fe-2") == ["be-1", "fe-1"]
    assert names(field_selector=f"metadata.namespace={namespace}", label_selector="tier=backend") == ["be-1"]

    every = client.AppsV1Api(api_client).list_deployment_for_all_namespaces(label_selector="tier=frontend")
    assert sorted((d.metadata.namespace, d.metadata.name) for d in every.items) == [
        (namespace, "fe-1"), (namespace, "fe-2")]

    with pytest.raises(ApiException) as err:
        apps.list_namespaced_deployment(namespace, field_selector="spec.replicas=2")
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        apps.list_namespaced_deployment(namespace, label_selector="tier in (")
    assert err.value.status == 400


def test_invalid_deployments(apps, namespace):
    bad = deployment("mismatch", {"app": "a"})
    bad.spec.template.metadata.labels = {"app": "b"}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment(namespace, bad)
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["details"]["kind"] == "Deployment" and st["details"]["group"] == "apps"
    assert any(c["field"] == "spec.template.metadata.labels" for c in st["details"]["causes"]), st

    apps.create_namespaced_deployment(namespace, deployment("fixed", {"app": "fixed"}))
    # The selector of an apps/v1 Deployment is immutable.
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("fixed", namespace, {
            "spec": {"selector": {"matchLabels": {"app": "fixed", "x": "y"}},
                     "template": {"metadata": {"labels": {"app": "fixed", "x": "y"}}}}})
    assert err.value.status == 422
    assert any(c["field"] == "spec.selector" for c in status_of(err.value)["details"]["causes"])


def test_status_is_a_subresource(apps, namespace):
    apps.create_namespaced_deployment(namespace, deployment("st", {"app": "st"}))
    # The Deployment controller owns the counts; a condition type of our own it leaves alone.
    patched = {"conditions": [{"type": "Patched", "status": "True"}]}

    def has_patched(d):
        return any(c.type == "Patched" for c in (d.status.conditions or []))

    # Status written through the main resource is ignored ...
    out = apps.patch_namespaced_deployment("st", namespace, {"status": patched})
    assert not out.status or not has_patched(out)
    # ... and written through /status it sticks, without touching the spec or generation.
    out = apps.patch_namespaced_deployment_status("st", namespace, {
        "status": patched, "spec": {"replicas": 9}})
    assert has_patched(out)
    assert out.spec.replicas == 2 and out.metadata.generation == 1
    assert has_patched(apps.read_namespaced_deployment_status("st", namespace))


def test_delete_deployment(apps, namespace):
    apps.create_namespaced_deployment(namespace, deployment("bye", {"app": "bye"}))
    apps.delete_namespaced_deployment("bye", namespace, propagation_policy="Background")
    assert not_found(apps.read_namespaced_deployment, "bye", namespace)
