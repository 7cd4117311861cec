"""Error statuses as the client sees them, field validation and dry runs."""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import Raw, status_of, not_found


def cm(name, data=None, namespace=None):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=namespace), data=data)


def test_not_found(core, namespace):
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("x", namespace)
    e = err.value
    assert e.status == 404
    assert isinstance(e, client.exceptions.NotFoundException)
    st = status_of(e)
    assert st["reason"] == "NotFound"
    assert st["message"] == 'configmaps "x" not found'
    assert st["details"] == {"name": "x", "kind": "configmaps"}

    # A missing namespace, and a missing object in another group.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("no-such-namespace", cm("a"))
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'namespaces "no-such-namespace" not found'
    with pytest.raises(ApiException) as err:
        client.AppsV1Api(core.api_client).read_namespaced_deployment("nope", namespace)
    st = status_of(err.value)
    assert st["message"] == 'deployments.apps "nope" not found'
    assert st["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_already_exists(core, namespace):
    core.create_namespaced_config_map(namespace, cm("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("dup"))
    assert err.value.status == 409
    st = status_of(err.value)
    assert st["reason"] == "AlreadyExists"
    assert st["message"] == 'configmaps "dup" already exists'
    assert st["details"] == {"name": "dup", "kind": "configmaps"}


def test_invalid_name(core, namespace):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("Not_Valid"))
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["reason"] == "Invalid"
    assert st["message"].startswith('ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"')
    assert st["details"]["name"] == "Not_Valid" and st["details"]["kind"] == "ConfigMap"
    causes = st["details"]["causes"]
    assert [c["field"] for c in causes] == ["metadata.name"]
    assert causes[0]["reason"] == "FieldValueInvalid"
    assert "RFC 1123" in causes[0]["message"]

    # No name at all.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm(None))
    assert err.value.status == 422
    causes = status_of(err.value)["details"]["causes"]
    assert any(c["field"] == "metadata.name" and c["reason"] == "FieldValueRequired" for c in causes)

    # Invalid data keys are reported by their path.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("ok-name", {"bad key!": "v"}) )
    assert err.value.status == 422
    causes = status_of(err.value)["details"]["causes"]
    assert any(c["field"] == "data[bad key!]" for c in causes), causes


def test_namespace_mismatch(core, namespace):
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("m", namespace="elsewhere"))
    assert err.value.status == 400
    st = status_of(err.value)
    assert st["reason"] == "BadRequest"
    assert "does not match the namespace" in st["message"]


def test_field_validation(core, namespace):
    raw = Raw(core.api_client)
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"},
            "data": {"a": "b"}, "bogus": 1}

    code, _, st = raw.request("POST", path, body, query={"fieldValidation": "Strict"})
    assert code == 400, st
    assert st["reason"] == "BadRequest"
    assert 'unknown field "bogus"' in st["message"]
    assert not_found(core.read_namespaced_config_map, "strict", namespace)

    # The typed client can't send unknown fields; the dynamic client can.
    from kubernetes import dynamic
    cms = dynamic.DynamicClient(core.api_client).resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(ApiException) as err:
        cms.create(body=body, namespace=namespace, query_params=[("fieldValidation", "Strict")])
    assert err.value.status == 400

    code, headers, obj = raw.request("POST", path, dict(body, metadata={"name": "warn"}),
                                     query={"fieldValidation": "Warn"})
    assert code == 201
    assert 'unknown field \\"bogus\\"' in headers.get("Warning", ""), headers
    assert "bogus" not in obj

    code, headers, obj = raw.request("POST", path, dict(body, metadata={"name": "ignore"}),
                                     query={"fieldValidation": "Ignore"})
    assert code == 201 and "Warning" not in headers

    # Strict also rejects a field given twice.
    dup = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"twice"},'
           '"data":{"a":"1"},"data":{"b":"2"}}')
    code, _, st = raw.request("POST", path, dup, query={"fieldValidation": "Strict"})
    assert code == 400, st
    assert 'duplicate field "data"' in st["message"]
    assert not_found(core.read_namespaced_config_map, "twice", namespace)


def test_unsupported_media_type(core, namespace):
    raw = Raw(core.api_client)
    core.create_namespaced_config_map(namespace, cm("mt", {"a": "b"}))
    code, _, st = raw.request("PATCH", f"/api/v1/namespaces/{namespace}/configmaps/mt",
                              {"data": {"a": "c"}}, content_type="text/plain")
    assert code == 415
    assert st["reason"] == "UnsupportedMediaType"


def test_dry_run(core, namespace):
    made = core.create_namespaced_config_map(namespace, cm("dry", {"a": "1"}), dry_run="All")
    assert made.metadata.name == "dry" and made.data == {"a": "1"}
    assert made.metadata.uid and made.metadata.creation_timestamp
    assert not_found(core.read_namespaced_config_map, "dry", namespace)

    # Validation still runs.
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("Dry_Bad"), dry_run="All")
    assert err.value.status == 422

    real = core.create_namespaced_config_map(namespace, cm("dry", {"a": "1"}))
    out = core.patch_namespaced_config_map("dry", namespace, {"data": {"a": "2"}}, dry_run="All")
    assert out.data == {"a": "2"}
    after = core.read_namespaced_config_map("dry", namespace)
    assert after.data == {"a": "1"}
    assert after.metadata.resource_version == real.metadata.resource_version

    after.data = {"a": "3"}
    out = core.replace_namespaced_config_map("dry", namespace, after, dry_run="All")
    assert out.data == {"a": "3"}
    assert core.read_namespaced_config_map("dry", namespace).data == {"a": "1"}

    core.delete_namespaced_config_map("dry", namespace, dry_run="All")
    assert core.read_namespaced_config_map("dry", namespace).data == {"a": "1"}


def test_invalid_request_options(core, namespace):
    """Bad query options are validated like an object: 422 Invalid on CreateOptions."""
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("x"), dry_run="Some")
    assert err.value.status == 422
    st = status_of(err.value)
    assert st["reason"] == "Invalid"
    assert st["details"]["kind"] == "CreateOptions" and st["details"]["group"] == "meta.k8s.io"
    assert [c["field"] for c in st["details"]["causes"]] == ["dryRun"]

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, cm("x"), field_validation="Bogus")
    assert err.value.status == 422
    assert [c["field"] for c in status_of(err.value)["details"]["causes"]] == ["fieldValidation"]
    assert not_found(core.read_namespaced_config_map, "x", namespace)

    # `force` belongs to apply patches only.
    core.create_namespaced_config_map(namespace, cm("y", {"a": "1"}))
    code, _, st = Raw(core.api_client).request(
        "PATCH", f"/api/v1/namespaces/{namespace}/configmaps/y", {"data": {"a": "2"}},
        content_type="application/merge-patch+json", query={"force": "true"})
    assert code == 422, st
    assert st["details"]["kind"] == "PatchOptions"
    assert [(c["reason"], c["field"]) for c in st["details"]["causes"]] == [("FieldValueForbidden", "force")]
    assert core.read_namespaced_config_map("y", namespace).data == {"a": "1"}
