"""Pods and Services through CoreV1Api (no node agent: pods stay Pending)."""

import ipaddress

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import not_found, status_of, wait_until


def pod(name, labels=None, **spec):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="main", image="busybox:1.36", command=["sleep", "3600"])], **spec))


def test_pod_lifecycle_without_nodes(core, namespace):
    wait_until(lambda: not not_found(core.read_namespaced_service_account, "default", namespace),
               what="the default ServiceAccount")
    made = core.create_namespaced_pod(namespace, pod("p"))
    assert made.status.phase == "Pending"
    assert made.status.qos_class == "BestEffort"
    assert made.spec.service_account_name == "default"
    assert made.spec.node_name is None
    assert made.spec.restart_policy == "Always" and made.spec.dns_policy == "ClusterFirst"
    assert made.spec.enable_service_links is True
    assert {t.key for t in made.spec.tolerations} >= {"node.kubernetes.io/not-ready",
                                                       "node.kubernetes.io/unreachable"}

    listed = core.list_namespaced_pod(namespace, label_selector="app=p")
    assert [p.metadata.name for p in listed.items] == ["p"]
    assert core.read_namespaced_pod_status("p", namespace).status.phase == "Pending"
    assert [p.metadata.name for p in core.list_namespaced_pod(
        namespace, field_selector="status.phase=Pending").items] == ["p"]
    assert core.list_namespaced_pod(namespace, field_selector="spec.nodeName=nowhere").items == []

    # Most of a pod's spec is immutable once created.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("p", namespace, {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422
    # The image is not.
    out = core.patch_namespaced_pod("p", namespace, {"spec": {"containers": [
        {"name": "main", "image": "busybox:1.37"}]}})
    assert out.spec.containers[0].image == "busybox:1.37"

    # A pod never bound to a node goes at once; the answer is the pod itself.
    gone = core.delete_namespaced_pod("p", namespace)
    assert gone.kind == "Pod" and gone.metadata.name == "p"
    assert not_found(core.read_namespaced_pod, "p", namespace)


def test_pod_gets_service_account_token_volume(core, namespace):
    wait_until(lambda: not not_found(core.read_namespaced_service_account, "default", namespace),
               what="the default ServiceAccount")
    made = core.create_namespaced_pod(namespace, pod("sa"))
    vols = [v for v in made.spec.volumes or [] if v.name.startswith("kube-api-access-")]
    assert len(vols) == 1, made.spec.volumes
    sources = vols[0].projected.sources
    assert any(s.service_account_token and s.service_account_token.path == "token" for s in sources)
    assert any(s.config_map and s.config_map.name == "kube-root-ca.crt" for s in sources)
    mounts = made.spec.containers[0].volume_mounts or []
    assert [(m.name, m.mount_path, m.read_only) for m in mounts] == [
        (vols[0].name, "/var/run/secrets/kubernetes.io/serviceaccount", True)]

    opted_out = core.create_namespaced_pod(namespace, pod("no-sa", automount_service_account_token=False))
    assert not opted_out.spec.volumes


def test_pod_with_missing_service_account_is_refused(core, namespace):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, pod("lost", service_account_name="nope"))
    assert err.value.status == 403
    st = status_of(err.value)
    assert st["reason"] == "Forbidden"
    assert 'serviceaccount "nope" not found' in st["message"]


def test_invalid_pod(core, namespace):
    bad = pod("bad")
    bad.spec.containers[0].name = "Bad_Name"
    bad.spec.restart_policy = "Sometimes"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, bad)
    assert err.value.status == 422
    fields = {c["field"] for c in status_of(err.value)["details"]["causes"]}
    assert {"spec.containers[0].name", "spec.restartPolicy"} <= fields, fields


def test_service_gets_a_cluster_ip(core, namespace):
    svc = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"},
                                  ports=[client.V1ServicePort(name="http", port=80, target_port=8080)])))
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.session_affinity == "None"
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 8080
    ip = ipaddress.ip_address(svc.spec.cluster_ip)
    assert svc.spec.cluster_ips == [svc.spec.cluster_ip]
    assert svc.spec.ip_families == ["IPv4"] and ip.version == 4

    other = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="other"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=81)])))
    assert other.spec.cluster_ip and other.spec.cluster_ip != svc.spec.cluster_ip
    assert other.spec.ports[0].target_port == 81  # defaults to the port

    # The allocated address can't be changed.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_service("web", namespace, {"spec": {"clusterIP": other.spec.cluster_ip}})
    assert err.value.status == 422

    headless = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="headless"),
        spec=client.V1ServiceSpec(cluster_ip="None", ports=[client.V1ServicePort(port=80)])))
    assert headless.spec.cluster_ip == "None"


def test_kubernetes_service_in_default(core):
    svc = core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.type == "ClusterIP"
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [("https", 443, "TCP")]
    assert ipaddress.ip_address(svc.spec.cluster_ip)
