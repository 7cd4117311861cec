"""Version and discovery through the generated API classes."""

from kubernetes import client


def test_version(api_client):
    info = client.VersionApi(api_client).get_code()
    assert info.major == "1"
    assert info.minor.rstrip("+") == "33"
    assert info.git_version.startswith("v1.33."), info.git_version
    assert info.platform and "/" in info.platform
    assert info.build_date and info.compiler


def test_core_api_versions(api_client):
    versions = client.CoreApi(api_client).get_api_versions()
    assert versions.kind == "APIVersions"
    assert versions.versions == ["v1"]
    assert versions.server_address_by_client_cidrs, "serverAddressByClientCIDRs is required"


def test_api_groups(api_client):
    groups = client.ApisApi(api_client).get_api_versions()
    assert groups.kind == "APIGroupList"
    by_name = {g.name: g for g in groups.groups}
    for name in ("apps", "batch", "apiextensions.k8s.io", "autoscaling", "rbac.authorization.k8s.io",
                 "coordination.k8s.io", "networking.k8s.io", "policy"):
        assert name in by_name, f"group {name} missing from /apis: {sorted(by_name)}"
    assert "" not in by_name, "the legacy core group is served at /api, not /apis"
    for g in groups.groups:
        offered = [v.group_version for v in g.versions]
        assert offered, g.name
        assert all(gv.startswith(g.name + "/") for gv in offered), (g.name, offered)
        assert g.preferred_version.group_version in offered, (g.name, offered)
    assert by_name["apps"].preferred_version.group_version == "apps/v1"
    assert by_name["batch"].preferred_version.version == "v1"

    apps = client.AppsApi(api_client).get_api_group()
    assert apps.name == "apps"
    assert apps.preferred_version.group_version == "apps/v1"


def test_core_v1_resources(api_client):
    resources = client.CoreV1Api(api_client).get_api_resources()
    assert resources.group_version == "v1"
    by_name = {r.name: r for r in resources.resources}
    cm = by_name["configmaps"]
    assert cm.kind == "ConfigMap" and cm.namespaced and cm.singular_name == "configmap"
    assert "cm" in (cm.short_names or [])
    assert set(cm.verbs) >= {"create", "delete", "deletecollection", "get", "list", "patch",
                             "update", "watch"}
    ns = by_name["namespaces"]
    assert ns.kind == "Namespace" and not ns.namespaced
    assert "namespaces/status" in by_name and "namespaces/finalize" in by_name
    assert by_name["pods/status"].kind == "Pod"
    assert by_name["secrets"].namespaced


def test_apps_and_batch_resources(api_client):
    apps = {r.name: r for r in client.AppsV1Api(api_client).get_api_resources().resources}
    assert apps["deployments"].kind == "Deployment" and apps["deployments"].namespaced
    assert "deploy" in (apps["deployments"].short_names or [])
    scale = apps["deployments/scale"]
    assert (scale.group, scale.version, scale.kind) == ("autoscaling", "v1", "Scale")
    assert "deployments/status" in apps

    batch = {r.name: r for r in client.BatchV1Api(api_client).get_api_resources().resources}
    assert batch["jobs"].kind == "Job"
    assert batch["cronjobs"].kind == "CronJob" and "cj" in (batch["cronjobs"].short_names or [])
