"""A CRD made with ApiextensionsV1Api, then its objects through CustomObjectsApi."""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from helpers import Raw, status_of, not_found, wait_until

GROUP = "stable.example.com"


def crd_body(plural, kind, scope="Namespaced"):
    schema = client.V1JSONSchemaProps(
        type="object",
        properties={
            "spec": client.V1JSONSchemaProps(
                type="object",
                required=["size"],
                properties={
                    "size": client.V1JSONSchemaProps(type="integer", minimum=1, maximum=10),
                    "color": client.V1JSONSchemaProps(type="string", enum=["red", "blue"],
                                                      default="red"),
                }),
            "status": client.V1JSONSchemaProps(
                type="object", properties={"ready": client.V1JSONSchemaProps(type="boolean")}),
        })
    return client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"{plural}.{GROUP}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=GROUP, scope=scope,
            names=client.V1CustomResourceDefinitionNames(
                plural=plural, singular=kind.lower(), kind=kind, short_names=[kind.lower()[:3]]),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema),
                subresources=client.V1CustomResourceSubresources(
                    status={},
                    scale=client.V1CustomResourceSubresourceScale(
                        spec_replicas_path=".spec.size", status_replicas_path=".status.size")))]))


def established(ext, name):
    crd = ext.read_custom_resource_definition(name)
    conds = {c.type: c.status for c in (crd.status.conditions or [])} if crd.status else {}
    return conds.get("Established") == "True" and conds.get("NamesAccepted") == "True" and crd


@pytest.fixture(scope="module")
def widgets(api_client):
    ext = client.ApiextensionsV1Api(api_client)
    created = ext.create_custom_resource_definition(crd_body("widgets", "Widget"))
    assert created.metadata.name == f"widgets.{GROUP}"
    crd = wait_until(lambda: established(ext, created.metadata.name), what="the CRD to be Established")
    assert crd.status.accepted_names.kind == "Widget"
    assert crd.status.stored_versions == ["v1"]
    # Discovery serves the new group as soon as the CRD is established.
    wait_until(lambda: any(g.name == GROUP for g in client.ApisApi(api_client).get_api_versions().groups),
               what=f"{GROUP} in /apis")
    return "widgets"


@pytest.fixture
def custom(api_client):
    return client.CustomObjectsApi(api_client)


def widget(name, size=3, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": dict(size=size, **spec)}


def test_discovery_of_the_crd(api_client, widgets):
    raw = Raw(api_client)
    code, _, body = raw.request("GET", f"/apis/{GROUP}/v1")
    assert code == 200
    by_name = {r["name"]: r for r in body["resources"]}
    assert by_name["widgets"]["kind"] == "Widget" and by_name["widgets"]["namespaced"] is True
    assert by_name["widgets"]["shortNames"] == ["wid"]
    assert "widgets/status" in by_name and "widgets/scale" in by_name


def test_round_trip(custom, widgets, namespace):
    made = custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets, widget("w1"))
    assert made["kind"] == "Widget" and made["apiVersion"] == f"{GROUP}/v1"
    assert made["metadata"]["namespace"] == namespace
    assert made["metadata"]["uid"] and made["metadata"]["generation"] == 1
    assert made["spec"] == {"size": 3, "color": "red"}  # schema default applied

    got = custom.get_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1")
    assert got["metadata"]["uid"] == made["metadata"]["uid"]

    custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets,
                                           dict(widget("w2", color="blue"), metadata={"name": "w2", "labels": {"c": "blue"}}))
    listed = custom.list_namespaced_custom_object(GROUP, "v1", namespace, widgets)
    assert listed["kind"] == "WidgetList"
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["w1", "w2"]
    blue = custom.list_namespaced_custom_object(GROUP, "v1", namespace, widgets, label_selector="c=blue")
    assert [i["metadata"]["name"] for i in blue["items"]] == ["w2"]

    # CustomObjectsApi patches with JSON merge patch.
    patched = custom.patch_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1",
                                                    {"spec": {"size": 5}})
    assert patched["spec"] == {"size": 5, "color": "red"}
    assert patched["metadata"]["generation"] == 2

    got["spec"]["size"] = 7
    with pytest.raises(ApiException) as err:  # `got` carries the old resourceVersion
        custom.replace_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1", got)
    assert err.value.status == 409
    fresh = custom.get_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1")
    fresh["spec"]["size"] = 7
    replaced = custom.replace_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1", fresh)
    assert replaced["spec"]["size"] == 7

    custom.delete_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1")
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(GROUP, "v1", namespace, widgets, "w1")
    assert err.value.status == 404
    assert status_of(err.value)["message"] == f'widgets.{GROUP} "w1" not found'


def test_schema_validation_and_pruning(custom, widgets, namespace, api_client):
    for body, field in ((widget("big", size=11), "spec.size"),
                        (widget("col", color="green"), "spec.color"),
                        ({"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "nospec"},
                          "spec": {}}, "spec.size")):
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets, body)
        assert err.value.status == 422, body
        st = status_of(err.value)
        assert st["reason"] == "Invalid" and st["details"]["kind"] == "Widget"
        assert any(c["field"] == field for c in st["details"]["causes"]), st

    # Unknown fields are pruned, or refused with Strict validation.
    pruned = custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets,
                                                    widget("prune", extra="x"))
    assert "extra" not in pruned["spec"]
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets,
                                               widget("strict", extra="x"), field_validation="Strict")
    assert err.value.status == 400
    assert 'unknown field "spec.extra"' in status_of(err.value)["message"]


def test_status_and_scale_subresources(custom, widgets, namespace):
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, widgets, widget("sub"))
    # status through the main resource is dropped
    out = custom.patch_namespaced_custom_object(GROUP, "v1", namespace, widgets, "sub",
                                                {"status": {"ready": True}})
    assert "status" not in out or not out["status"].get("ready")
    out = custom.patch_namespaced_custom_object_status(GROUP, "v1", namespace, widgets, "sub",
                                                       {"status": {"ready": True}, "spec": {"size": 9}})
    assert out["status"] == {"ready": True}
    assert out["spec"]["size"] == 3 and out["metadata"]["generation"] == 1

    scale = custom.get_namespaced_custom_object_scale(GROUP, "v1", namespace, widgets, "sub")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 3
    custom.patch_namespaced_custom_object_scale(GROUP, "v1", namespace, widgets, "sub",
                                                {"spec": {"replicas": 4}})
    assert custom.get_namespaced_custom_object(GROUP, "v1", namespace, widgets, "sub")["spec"]["size"] == 4


def test_cluster_scoped_and_crd_deletion(api_client, custom):
    ext = client.ApiextensionsV1Api(api_client)
    name = f"gadgets.{GROUP}"
    ext.create_custom_resource_definition(crd_body("gadgets", "Gadget", scope="Cluster"))
    wait_until(lambda: established(ext, name), what="the Gadget CRD to be Established")
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}}
    made = custom.create_cluster_custom_object(GROUP, "v1", "gadgets", body)
    assert "namespace" not in made["metadata"]
    assert custom.get_cluster_custom_object(GROUP, "v1", "gadgets", "g1")["spec"]["size"] == 1
    items = custom.list_cluster_custom_object(GROUP, "v1", "gadgets")["items"]
    assert [i["metadata"]["name"] for i in items] == ["g1"]

    # Deleting the CRD removes its objects, then the CRD, then the API.
    ext.delete_custom_resource_definition(name)
    wait_until(lambda: not_found(ext.read_custom_resource_definition, name), timeout=5,
               what="the CRD (which had one object) to be deleted")
    with pytest.raises(ApiException) as err:
        custom.get_cluster_custom_object(GROUP, "v1", "gadgets", "g1")
    assert err.value.status == 404


def test_terminating_crd_refuses_new_objects(api_client, custom, namespace):
    ext = client.ApiextensionsV1Api(api_client)
    name = f"gizmos.{GROUP}"
    ext.create_custom_resource_definition(crd_body("gizmos", "Gizmo"))
    wait_until(lambda: established(ext, name), what="the Gizmo CRD to be Established")
    held = {"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "spec": {"size": 1},
            "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, "gizmos", held)
    ext.delete_custom_resource_definition(name)
    try:
        crd = ext.read_custom_resource_definition(name)
        assert crd.metadata.deletion_timestamp is not None
        assert "customresourcecleanup.apiextensions.k8s.io" in crd.metadata.finalizers
        wait_until(lambda: custom.get_namespaced_custom_object(GROUP, "v1", namespace, "gizmos", "held")
                   ["metadata"].get("deletionTimestamp"), what="the held Gizmo to be marked for deletion")

        def terminating():
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Terminating" and c.status == "True" for c in conds)
        wait_until(terminating, timeout=5, what="condition Terminating=True on the CRD")
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(GROUP, "v1", namespace, "gizmos", {
                "apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": "late"}, "spec": {"size": 1}})
        assert err.value.status == 405
        st = status_of(err.value)
        assert st["reason"] == "MethodNotAllowed"
        assert st["message"] == "create not allowed while custom resource definition is terminating"
    finally:
        custom.patch_namespaced_custom_object(GROUP, "v1", namespace, "gizmos", "held",
                                              {"metadata": {"finalizers": None}})
    wait_until(lambda: not_found(ext.read_custom_resource_definition, name), timeout=5,
               what="the CRD to be deleted once its last object went")
