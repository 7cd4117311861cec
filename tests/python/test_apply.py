"""Server-side apply, through the DynamicClient and through a raw apply patch."""

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client import ApiException

from helpers import Raw, status_of, not_found


@pytest.fixture
def configmaps(api_client):
    return dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")


def manifest(name, data, labels=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def entries(obj):
    return {(m["manager"], m["operation"]): m for m in obj["metadata"].get("managedFields", [])}


def test_apply_creates_and_records_ownership(api_client, configmaps, namespace):
    dyn = dynamic.DynamicClient(api_client)
    out = dyn.server_side_apply(configmaps, body=manifest("ssa", {"a": "1", "b": "2"}, {"app": "x"}),
                                namespace=namespace, field_manager="alice").to_dict()
    assert out["data"] == {"a": "1", "b": "2"} and out["metadata"]["labels"] == {"app": "x"}
    mine = entries(out)[("alice", "Apply")]
    assert mine["apiVersion"] == "v1" and mine["fieldsType"] == "FieldsV1"
    assert mine["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}},
                                "f:metadata": {"f:labels": {"f:app": {}}}}

    # Applying the same configuration again changes nothing.
    again = dyn.server_side_apply(configmaps, body=manifest("ssa", {"a": "1", "b": "2"}, {"app": "x"}),
                                  namespace=namespace, field_manager="alice").to_dict()
    assert again["metadata"]["resourceVersion"] == out["metadata"]["resourceVersion"]

    # Dropping a field from the applied configuration removes it from the object.
    out = dyn.server_side_apply(configmaps, body=manifest("ssa", {"a": "1"}, {"app": "x"}),
                                namespace=namespace, field_manager="alice").to_dict()
    assert out["data"] == {"a": "1"}


def test_apply_conflicts_and_force(api_client, configmaps, namespace):
    dyn = dynamic.DynamicClient(api_client)
    dyn.server_side_apply(configmaps, body=manifest("shared", {"a": "1"}), namespace=namespace,
                          field_manager="alice")
    with pytest.raises(ApiException) as err:
        dyn.server_side_apply(configmaps, body=manifest("shared", {"a": "2"}), namespace=namespace,
                              field_manager="bob")
    assert err.value.status == 409
    st = status_of(err.value)
    assert st["reason"] == "Conflict"
    # Exactly one field is in dispute: data.a, held by alice.
    assert st["message"] == 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.a'
    assert [(c["reason"], c["field"]) for c in st["details"]["causes"]] == [
        ("FieldManagerConflict", ".data.a")]
    assert st["details"]["causes"][0]["message"] == 'conflict with "alice" using v1'

    # A manager may apply a field nobody else owns without conflict.
    out = dyn.server_side_apply(configmaps, body=manifest("shared", {"b": "bob"}), namespace=namespace,
                                field_manager="bob").to_dict()
    assert out["data"] == {"a": "1", "b": "bob"}

    out = dyn.server_side_apply(configmaps, body=manifest("shared", {"a": "2", "b": "bob"}),
                                namespace=namespace, field_manager="bob", force_conflicts=True).to_dict()
    assert out["data"] == {"a": "2", "b": "bob"}
    owners = entries(out)
    assert owners[("bob", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    # Alice lost her only field, and with it her entry.
    assert ("alice", "Apply") not in owners


def test_apply_after_update_shares_ownership(core, configmaps, api_client, namespace):
    dyn = dynamic.DynamicClient(api_client)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="mixed"), data={"u": "1"}), field_manager="editor")
    obj = core.read_namespaced_config_map("mixed", namespace)
    upd = [m for m in obj.metadata.managed_fields if m.manager == "editor"]
    assert len(upd) == 1 and upd[0].operation == "Update"
    assert upd[0].fields_v1 == {"f:data": {".": {}, "f:u": {}}}

    # Applying a value an Update wrote conflicts, too.
    with pytest.raises(ApiException) as err:
        dyn.server_side_apply(configmaps, body=manifest("mixed", {"u": "2"}), namespace=namespace,
                              field_manager="applier")
    assert err.value.status == 409
    # Applying the same value is shared ownership, not a conflict.
    out = dyn.server_side_apply(configmaps, body=manifest("mixed", {"u": "1", "v": "2"}),
                                namespace=namespace, field_manager="applier").to_dict()
    assert out["data"] == {"u": "1", "v": "2"}
    assert entries(out)[("applier", "Apply")]["fieldsV1"] == {"f:data": {"f:u": {}, "f:v": {}}}


def test_raw_apply_patch(api_client, core, namespace):
    raw = Raw(api_client)
    path = f"/api/v1/namespaces/{namespace}/configmaps/rawapply"
    body = yaml.safe_dump(manifest("rawapply", {"k": "v"}))
    code, _, out = raw.request("PATCH", path, body, content_type="application/apply-patch+yaml",
                               query={"fieldManager": "raw"})
    assert code == 201, out
    assert out["data"] == {"k": "v"}
    code, _, out = raw.request("PATCH", path, yaml.safe_dump(manifest("rawapply", {"k": "w"})),
                               content_type="application/apply-patch+yaml", query={"fieldManager": "raw"})
    assert code == 200 and out["data"] == {"k": "w"}

    # The typed client can send an apply patch too, given the content type.
    out = core.patch_namespaced_config_map("rawapply", namespace, manifest("rawapply", {"k": "x"}),
                                           field_manager="raw", _content_type="application/apply-patch+yaml")
    assert out.data == {"k": "x"}

    # Apply refuses a body for another object.
    code, _, st = raw.request("PATCH", path, yaml.safe_dump(manifest("other-name", {"k": "v"})),
                              content_type="application/apply-patch+yaml", query={"fieldManager": "raw"})
    assert code == 400 and st["reason"] == "BadRequest", st


def test_apply_needs_a_field_manager(api_client, namespace):
    """PatchOptions are validated like an object: 422 Invalid naming fieldManager."""
    raw = Raw(api_client)
    code, _, st = raw.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/nomanager",
                              yaml.safe_dump(manifest("nomanager", {"k": "v"})),
                              content_type="application/apply-patch+yaml")
    assert code == 422, st
    assert st["reason"] == "Invalid"
    assert (st["details"]["group"], st["details"]["kind"]) == ("meta.k8s.io", "PatchOptions")
    assert [(c["reason"], c["field"]) for c in st["details"]["causes"]] == [
        ("FieldValueRequired", "fieldManager")]
    assert st["message"] == ('PatchOptions.meta.k8s.io "" is invalid: '
                             'fieldManager: Required value: is required for apply patch')


def test_apply_dry_run(api_client, configmaps, core, namespace):
    dyn = dynamic.DynamicClient(api_client)
    out = dyn.server_side_apply(configmaps, body=manifest("dry", {"a": "1"}), namespace=namespace,
                                field_manager="m", dry_run="All").to_dict()
    assert out["data"] == {"a": "1"}
    assert not_found(core.read_namespaced_config_map, "dry", namespace)
