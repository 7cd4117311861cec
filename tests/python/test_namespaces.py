"""Namespaces: creation, what appears in a new one, and the way out through Terminating."""

import base64

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from helpers import status_of, unique, wait_until, not_found


def meta(name, **kw):
    return client.V1ObjectMeta(name=name, **kw)


def test_create_and_list(core):
    name = unique("ns")
    created = core.create_namespace(client.V1Namespace(metadata=meta(name, labels={"team": "py"})))
    assert created.metadata.name == name
    assert created.metadata.uid and created.metadata.resource_version
    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]
    # The server labels every namespace with its own name.
    assert created.metadata.labels["kubernetes.io/metadata.name"] == name
    assert created.metadata.labels["team"] == "py"

    names = [n.metadata.name for n in core.list_namespace().items]
    for builtin in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert builtin in names
    assert name in names
    only = core.list_namespace(label_selector="team=py").items
    assert [n.metadata.name for n in only] == [name]
    assert [n.metadata.name for n in core.list_namespace(field_selector=f"metadata.name={name}").items] == [name]
    core.delete_namespace(name)


def test_new_namespace_gets_service_account_and_root_ca(core, server):
    name = unique("ns")
    core.create_namespace(client.V1Namespace(metadata=meta(name)))

    sa = wait_until(lambda: not not_found(core.read_namespaced_service_account, "default", name)
                    and core.read_namespaced_service_account("default", name),
                    what="the default ServiceAccount")
    assert sa.metadata.namespace == name

    cm = wait_until(lambda: not not_found(core.read_namespaced_config_map, "kube-root-ca.crt", name)
                    and core.read_namespaced_config_map("kube-root-ca.crt", name),
                    what="the kube-root-ca.crt ConfigMap")
    pem = cm.data["ca.crt"]
    assert pem.lstrip().startswith("-----BEGIN CERTIFICATE-----")
    # It is the CA that clients trust for this API server.
    kubeconfig = yaml.safe_load(server.kubeconfig.read_text())
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    assert ca.strip() in pem
    core.delete_namespace(name)


def test_delete_goes_through_terminating(core):
    name = unique("ns")
    core.create_namespace(client.V1Namespace(metadata=meta(name)))
    # A finalizer on a ConfigMap inside keeps the namespace Terminating until we let it go.
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=meta("held", finalizers=["example.com/hold"]), data={"a": "b"}))
    core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=meta("free")))

    core.delete_namespace(name)
    ns = core.read_namespace(name)
    assert ns.metadata.deletion_timestamp is not None
    assert ns.status.phase == "Terminating"

    # The namespace controller removes what it can; the held ConfigMap waits for its finalizer.
    wait_until(lambda: not_found(core.read_namespaced_config_map, "free", name),
               what="ConfigMap 'free' to be removed by the namespace controller")
    held = wait_until(lambda: core.read_namespaced_config_map("held", name).metadata.deletion_timestamp
                      and core.read_namespaced_config_map("held", name),
                      what="ConfigMap 'held' to be marked for deletion")
    assert held.metadata.finalizers == ["example.com/hold"]

    # Nothing new may be created in a terminating namespace.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=meta("late")))
    assert err.value.status == 403
    st = status_of(err.value)
    assert st["reason"] == "Forbidden"
    assert "because it is being terminated" in st["message"], st["message"]

    core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    wait_until(lambda: not_found(core.read_namespace, name), what="the namespace to be gone")
    assert name not in [n.metadata.name for n in core.list_namespace().items]


def test_terminating_namespace_reports_conditions(core):
    """The namespace controller explains in status.conditions what it is waiting for."""
    name = unique("ns")
    core.create_namespace(client.V1Namespace(metadata=meta(name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=meta("held", finalizers=["example.com/hold"])))
    core.delete_namespace(name)
    try:
        def condition(kind):
            conds = core.read_namespace(name).status.conditions or []
            return next((c for c in conds if c.type == kind and c.status == "True"), None)
        remaining = wait_until(lambda: condition("NamespaceFinalizersRemaining"),
                               what="condition NamespaceFinalizersRemaining=True", timeout=5)
        assert remaining.reason == "SomeFinalizersRemain"
        assert "example.com/hold" in remaining.message
        content = wait_until(lambda: condition("NamespaceContentRemaining"),
                             what="condition NamespaceContentRemaining=True", timeout=5)
        assert content.reason == "SomeResourcesRemain"
        assert "configmaps" in content.message
    finally:
        core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})
    wait_until(lambda: not_found(core.read_namespace, name), what="the namespace to be gone")


def test_system_namespaces_cannot_be_deleted(core):
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiException) as err:
            core.delete_namespace(name, dry_run="All")
        assert err.value.status == 403
        st = status_of(err.value)
        assert st["reason"] == "Forbidden"
        assert st["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        assert core.read_namespace(name).status.phase == "Active"


def test_invalid_namespace_name(core):
    with pytest.raises(ApiException) as err:
        core.create_namespace(client.V1Namespace(metadata=meta("Not.Valid")))
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["reason"] == "Invalid"
    assert st["details"]["kind"] == "Namespace"
    assert any(c["field"] == "metadata.name" for c in st["details"]["causes"])
