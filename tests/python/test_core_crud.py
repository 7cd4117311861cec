"""ConfigMap and Secret round trips with the typed models, updates and patches."""

import base64

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import status_of, unique, not_found


def cm(name, data=None, **meta):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, **meta), data=data)


def test_create_with_and_without_type_meta(core, namespace):
    bare = core.create_namespaced_config_map(namespace, cm("bare", {"a": "1"}))
    typed = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(api_version="v1", kind="ConfigMap",
                                      metadata=client.V1ObjectMeta(name="typed"), data={"a": "1"}))
    for obj, name in ((bare, "bare"), (typed, "typed")):
        assert (obj.api_version, obj.kind) == ("v1", "ConfigMap")
        assert obj.metadata.name == name and obj.metadata.namespace == namespace
        assert obj.metadata.uid and obj.metadata.creation_timestamp
        assert int(obj.metadata.resource_version) > 0
        assert obj.data == {"a": "1"}
    assert bare.metadata.uid != typed.metadata.uid

    # A body of another kind is refused.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(api_version="v1", kind="Secret",
                                          metadata=client.V1ObjectMeta(name="wrong")))
    assert err.value.status == 400
    assert status_of(err.value)["reason"] == "BadRequest"


def test_read_replace_and_conflict(core, namespace):
    created = core.create_namespaced_config_map(namespace, cm("conf", {"k": "v1"}, labels={"x": "1"}))
    read = core.read_namespaced_config_map("conf", namespace)
    assert read.metadata.resource_version == created.metadata.resource_version
    assert read.metadata.uid == created.metadata.uid
    assert read.data == {"k": "v1"} and read.metadata.labels == {"x": "1"}

    read.data["k"] = "v2"
    updated = core.replace_namespaced_config_map("conf", namespace, read)
    assert updated.data == {"k": "v2"}
    assert int(updated.metadata.resource_version) > int(read.metadata.resource_version)
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp

    # Replacing with the resourceVersion read before the update is a conflict.
    read.data["k"] = "stale"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("conf", namespace, read)
    assert err.value.status == 409
    st = status_of(err.value)
    assert st["reason"] == "Conflict"
    assert st["message"] == ('Operation cannot be fulfilled on configmaps "conf": the object has been '
                             'modified; please apply your changes to the latest version and try again')
    assert st["details"] == {"name": "conf", "kind": "configmaps"}
    assert core.read_namespaced_config_map("conf", namespace).data == {"k": "v2"}

    # Without a resourceVersion, a ConfigMap update is unconditional.
    fresh = cm("conf", {"k": "v3"})
    done = core.replace_namespaced_config_map("conf", namespace, fresh)
    assert done.data == {"k": "v3"}
    assert done.metadata.labels is None  # replace is a whole-object update

    # The name in the body must be the one in the URL.
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("conf", namespace, cm("other", {"k": "v4"}))
    assert err.value.status == 400
    assert status_of(err.value)["reason"] == "BadRequest"


def test_patches(core, namespace):
    core.create_namespaced_config_map(namespace, cm("p", {"a": "1", "b": "2"}, labels={"keep": "yes"}))

    # A dict body goes out as a strategic merge patch: keys merge, null deletes.
    out = core.patch_namespaced_config_map("p", namespace, {"data": {"c": "3", "a": None}})
    assert out.data == {"b": "2", "c": "3"}
    assert out.metadata.labels == {"keep": "yes"}

    # JSON merge patch, asked for explicitly.
    out = core.patch_namespaced_config_map("p", namespace, {"metadata": {"labels": {"new": "1"}}},
                                           _content_type="application/merge-patch+json")
    assert out.metadata.labels == {"keep": "yes", "new": "1"}

    # A list body goes out as a JSON patch.
    out = core.patch_namespaced_config_map("p", namespace, [
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "two"},
        {"op": "remove", "path": "/metadata/labels/new"},
    ])
    assert out.data == {"b": "two", "c": "3"}
    assert out.metadata.labels == {"keep": "yes"}

    # A failed JSON patch test operation changes nothing and is unprocessable.
    before = core.read_namespaced_config_map("p", namespace)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("p", namespace, [
            {"op": "test", "path": "/data/b", "value": "nope"},
            {"op": "replace", "path": "/data/b", "value": "x"},
        ])
    assert err.value.status == 422
    after = core.read_namespaced_config_map("p", namespace)
    assert after.data == before.data
    assert after.metadata.resource_version == before.metadata.resource_version

    # A patch carrying a stale resourceVersion is a conflict.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(
            "p", namespace, {"metadata": {"resourceVersion": "1"}, "data": {"z": "z"}})
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "Conflict"

    # Patching something that does not exist is NotFound.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("absent", namespace, {"data": {"a": "b"}})
    assert err.value.status == 404


def test_delete_answers_status(core, namespace):
    created = core.create_namespaced_config_map(namespace, cm("gone", {"a": "b"}))
    # An immediate delete answers with a Status naming what went (the client hands back a dict).
    st = core.delete_namespaced_config_map("gone", namespace)
    assert not_found(core.read_namespaced_config_map, "gone", namespace)
    assert st["kind"] == "Status" and st["apiVersion"] == "v1", st
    assert st["status"] == "Success"
    assert st["details"]["name"] == "gone" and st["details"]["kind"] == "configmaps"
    assert st["details"]["uid"] == created.metadata.uid


def test_delete(core, namespace):
    core.create_namespaced_config_map(namespace, cm("gone", {"a": "b"}))
    core.delete_namespaced_config_map("gone", namespace)
    assert not_found(core.read_namespaced_config_map, "gone", namespace)

    # A uid precondition that does not match keeps the object.
    other = core.create_namespaced_config_map(namespace, cm("guarded"))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map(
            "guarded", namespace,
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid")))
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "Conflict"
    core.delete_namespaced_config_map(
        "guarded", namespace,
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=other.metadata.uid)))
    assert not_found(core.read_namespaced_config_map, "guarded", namespace)

    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("gone", namespace)
    assert err.value.status == 404


def test_delete_deferred_by_finalizer(core, namespace):
    core.create_namespaced_config_map(namespace, cm("held", finalizers=["example.com/hold"]))
    data, code, _headers = core.delete_namespaced_config_map_with_http_info("held", namespace)
    # Deletion waits for the finalizer: the answer is the object, marked, with 200 OK
    # (202 is only for orphanDependents=false).
    assert data["kind"] == "ConfigMap"
    assert data["metadata"]["deletionTimestamp"]
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.deletion_grace_period_seconds == 0
    # Deleting again changes nothing; removing the finalizer lets it go.
    again = core.delete_namespaced_config_map("held", namespace)
    assert again["metadata"]["resourceVersion"] == held.metadata.resource_version
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    assert not_found(core.read_namespaced_config_map, "held", namespace)
    assert code == 200


def test_delete_collection(core, namespace):
    for i in range(3):
        core.create_namespaced_config_map(namespace, cm(f"bulk-{i}", labels={"bulk": "yes"}))
    core.create_namespaced_config_map(namespace, cm("stay"))
    core.delete_collection_namespaced_config_map(namespace, label_selector="bulk=yes")
    names = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
    assert not any(n.startswith("bulk-") for n in names)
    assert "stay" in names


def test_binary_data_round_trip(core, namespace):
    blob = bytes(range(256))
    created = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="bin"), binary_data={"blob": base64.b64encode(blob).decode()}))
    assert base64.b64decode(created.binary_data["blob"]) == blob
    read = core.read_namespaced_config_map("bin", namespace)
    assert base64.b64decode(read.binary_data["blob"]) == blob
    assert not read.data

    # The same key may not be in data and binaryData.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="both"), data={"k": "v"}, binary_data={"k": "AA=="}))
    assert err.value.status == 422


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def test_secret_string_data_is_folded_into_data(core, namespace):
    created = core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="sd"),
        string_data={"user": "admin", "both": "from-string-data"},
        data={"pass": b64(b"hunter2"), "both": b64(b"from-data")}))
    assert created.string_data is None
    assert {k: base64.b64decode(v) for k, v in created.data.items()} == {
        "user": b"admin", "pass": b"hunter2", "both": b"from-string-data"}
    read = core.read_namespaced_secret("sd", namespace)
    assert read.string_data is None and read.data == created.data

    read.string_data = {"user": "root"}
    updated = core.replace_namespaced_secret("sd", namespace, read)
    assert updated.string_data is None
    assert base64.b64decode(updated.data["user"]) == b"root"


def test_secret_crud(core, namespace):
    created = core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="s"),
        data={"user": b64(b"admin"), "pass": b64(b"hunter2")}))
    assert created.type == "Opaque"
    assert base64.b64decode(created.data["user"]) == b"admin"
    assert base64.b64decode(created.data["pass"]) == b"hunter2"

    read = core.read_namespaced_secret("s", namespace)
    assert read.data == created.data and read.type == "Opaque"

    read.data["user"] = b64(b"root")
    updated = core.replace_namespaced_secret("s", namespace, read)
    assert base64.b64decode(updated.data["user"]) == b"root"

    patched = core.patch_namespaced_secret("s", namespace, {"data": {"pass": None}})
    assert set(patched.data) == {"user"}

    # Data must be base64: a body that doesn't decode is a bad request.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="bad64"), data={"bad": "not base64!"}))
    assert err.value.status == 400
    assert not_found(core.read_namespaced_secret, "bad64", namespace)
    # A patch that would make it so is refused and changes nothing.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_secret("s", namespace, {"data": {"bad": "not base64!"}})
    assert err.value.status in (400, 422)
    assert set(core.read_namespaced_secret("s", namespace).data) == {"user"}

    # Type is immutable.
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_secret("s", namespace, {"type": "kubernetes.io/tls"})
    assert err.value.status == 422
    assert any(c["field"] == "type" for c in status_of(err.value)["details"]["causes"])

    # A typed secret must carry its keys.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="tls"), type="kubernetes.io/tls", string_data={"x": "y"}))
    assert err.value.status == 422

    core.delete_namespaced_secret("s", namespace)
    assert not_found(core.read_namespaced_secret, "s", namespace)


def test_immutable_configmap(core, namespace):
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="frozen"), data={"a": "1"}, immutable=True))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("frozen", namespace, {"data": {"a": "2"}})
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["reason"] == "Invalid"
    assert any(c["field"] == "data" for c in st["details"]["causes"]), st
    # Metadata stays mutable; immutability can't be lifted.
    out = core.patch_namespaced_config_map("frozen", namespace, {"metadata": {"labels": {"l": "1"}}})
    assert out.metadata.labels == {"l": "1"} and out.data == {"a": "1"}
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("frozen", namespace, {"immutable": False})
    assert err.value.status == 422


def test_generate_name(core, namespace):
    made = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(generate_name="gen-")))
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == len("gen-") + 5
    assert made.metadata.generate_name == "gen-"
    again = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(generate_name="gen-")))
    assert again.metadata.name != made.metadata.name
