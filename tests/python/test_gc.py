"""Deletion propagation through ownerReferences: ConfigMap owners with ConfigMap dependents."""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import not_found, status_of, wait_until


def owner_ref(owner, block=None):
    return client.V1OwnerReference(api_version="v1", kind="ConfigMap", name=owner.metadata.name,
                                   uid=owner.metadata.uid, block_owner_deletion=block)


def make(core, namespace, name, owners=(), finalizers=None, block=None):
    return core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name=name, finalizers=finalizers,
        owner_references=[owner_ref(o, block) for o in owners] or None)))


def gone(core, namespace, name):
    return not_found(core.read_namespaced_config_map, name, namespace)


def test_background_deletes_dependents_after_owner(core, namespace):
    owner = make(core, namespace, "owner")
    for i in range(3):
        make(core, namespace, f"dep-{i}", [owner])
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    assert gone(core, namespace, "owner")  # the owner goes at once
    wait_until(lambda: all(gone(core, namespace, f"dep-{i}") for i in range(3)),
               what="dependents to be collected")


def test_default_propagation_for_configmaps_is_background(core, namespace):
    owner = make(core, namespace, "owner")
    make(core, namespace, "dep", [owner])
    core.delete_namespaced_config_map("owner", namespace)
    assert gone(core, namespace, "owner")
    wait_until(lambda: gone(core, namespace, "dep"), what="the dependent to be collected")


def test_foreground_waits_for_dependents(core, namespace):
    owner = make(core, namespace, "owner")
    make(core, namespace, "free", [owner], block=True)
    # A finalizer keeps this dependent, and so (blockOwnerDeletion) the owner, around.
    make(core, namespace, "stuck", [owner], finalizers=["example.com/hold"], block=True)

    data = core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")
    assert data["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in data["metadata"]["finalizers"]

    wait_until(lambda: gone(core, namespace, "free"), what="the free dependent to be deleted")
    stuck = wait_until(lambda: core.read_namespaced_config_map("stuck", namespace).metadata.deletion_timestamp
                       and core.read_namespaced_config_map("stuck", namespace),
                       what="the held dependent to be marked for deletion")
    assert stuck.metadata.finalizers == ["example.com/hold"]
    waiting = core.read_namespaced_config_map("owner", namespace)
    assert waiting.metadata.deletion_timestamp is not None
    assert waiting.metadata.finalizers == ["foregroundDeletion"]

    core.patch_namespaced_config_map("stuck", namespace, {"metadata": {"finalizers": None}})
    wait_until(lambda: gone(core, namespace, "stuck"), what="the held dependent to go")
    wait_until(lambda: gone(core, namespace, "owner"), what="the owner to go after its dependents")


def test_orphan_keeps_dependents_and_drops_the_reference(core, namespace):
    owner = make(core, namespace, "owner")
    other = make(core, namespace, "other-owner")
    make(core, namespace, "orphan-a", [owner])
    make(core, namespace, "orphan-b", [owner, other])

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")
    wait_until(lambda: gone(core, namespace, "owner"), what="the owner to go")

    def refs(name):
        return [r.uid for r in core.read_namespaced_config_map(name, namespace).metadata.owner_references or []]
    wait_until(lambda: refs("orphan-a") == [] and refs("orphan-b") == [other.metadata.uid],
               what="ownerReferences to the deleted owner to be removed")
    # They stay for good: nothing collects them later.
    core.delete_namespaced_config_map("other-owner", namespace, propagation_policy="Orphan")
    wait_until(lambda: gone(core, namespace, "other-owner") and refs("orphan-b") == [],
               what="the second owner to go, orphaning orphan-b")
    assert not gone(core, namespace, "orphan-a") and not gone(core, namespace, "orphan-b")


def test_orphan_via_delete_options_body(core, namespace):
    owner = make(core, namespace, "owner")
    make(core, namespace, "kept", [owner])
    core.delete_namespaced_config_map("owner", namespace,
                                      body=client.V1DeleteOptions(propagation_policy="Orphan"))
    wait_until(lambda: gone(core, namespace, "owner"), what="the owner to go")
    wait_until(lambda: not core.read_namespaced_config_map("kept", namespace).metadata.owner_references,
               what="the ownerReference to be removed")


def test_dependent_with_a_remaining_owner_survives(core, namespace):
    a = make(core, namespace, "owner-a")
    make(core, namespace, "owner-b")
    b = core.read_namespaced_config_map("owner-b", namespace)
    make(core, namespace, "shared", [a, b])
    make(core, namespace, "only-a", [a])
    core.delete_namespaced_config_map("owner-a", namespace, propagation_policy="Background")
    wait_until(lambda: gone(core, namespace, "only-a"), what="the sole dependent of owner-a to go")
    assert not gone(core, namespace, "shared"), "'shared' still has a live owner"
    core.delete_namespaced_config_map("owner-b", namespace)
    wait_until(lambda: gone(core, namespace, "shared"), what="'shared' to go with its last owner")


def test_dangling_owner_reference_is_removed(core, namespace):
    a = make(core, namespace, "owner-a")
    b = make(core, namespace, "owner-b")
    make(core, namespace, "shared", [a, b])
    core.delete_namespaced_config_map("owner-a", namespace, propagation_policy="Background")
    # The collector keeps 'shared' (owner-b lives) and drops the reference to owner-a.
    wait_until(lambda: [r.uid for r in core.read_namespaced_config_map("shared", namespace)
                        .metadata.owner_references or []] == [b.metadata.uid],
               timeout=5, what="the dangling ownerReference to owner-a to be removed")


def test_reference_to_a_missing_owner_is_collected(core, namespace):
    real = make(core, namespace, "real")
    # Same name as an existing object, different uid: that owner does not exist.
    impostor = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="real", uid="00000000-0000-0000-0000-000000000000"))
    make(core, namespace, "dangling", [impostor])
    make(core, namespace, "fine", [real])
    wait_until(lambda: gone(core, namespace, "dangling"), what="the dependent of a missing owner to go")
    assert not gone(core, namespace, "fine")
    assert not gone(core, namespace, "real")


def test_invalid_propagation_policy(core, namespace):
    make(core, namespace, "x")
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("x", namespace, propagation_policy="Sideways")
    # DeleteOptions are validated like an object: 422 Invalid.
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["details"]["kind"] == "DeleteOptions"
    assert [c["field"] for c in st["details"]["causes"]] == ["propagationPolicy"]
    assert not gone(core, namespace, "x")
