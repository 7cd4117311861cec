"""kubernetes.watch.Watch over list_namespaced_config_map."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from helpers import Raw

SEL = "suite=watch"


def cm(name, data=None, labels=None):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels or {"suite": "watch"}),
                              data=data)


def collect(core, namespace, until, timeout=5, **kw):
    """Watch ConfigMaps until `until(events)` is true; return [(type, object)]."""
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=timeout,
                       _request_timeout=timeout + 5, **kw):
        events.append((ev["type"], ev["object"]))
        if until(events):
            w.stop()
    return events, w


def names_and_types(events):
    return [(t, o.metadata.name) for t, o in events]


def test_added_modified_deleted_in_order(core, namespace):
    rv0 = core.list_namespaced_config_map(namespace, label_selector=SEL).metadata.resource_version
    created = core.create_namespaced_config_map(namespace, cm("w", {"v": "1"}))
    patched = core.patch_namespaced_config_map("w", namespace, {"data": {"v": "2"}})
    patched.data = {"v": "3"}
    replaced = core.replace_namespaced_config_map("w", namespace, patched)
    core.delete_namespaced_config_map("w", namespace)

    events, w = collect(core, namespace, lambda ev: ev[-1][0] == "DELETED",
                        resource_version=rv0, label_selector=SEL)
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert all(o.metadata.name == "w" and o.metadata.uid == created.metadata.uid for _, o in events)
    assert [o.data for _, o in events] == [{"v": "1"}, {"v": "2"}, {"v": "3"}, {"v": "3"}]
    rvs = [o.metadata.resource_version for _, o in events]
    # Each event carries the resourceVersion of the write that caused it...
    assert rvs[:3] == [created.metadata.resource_version, patched.metadata.resource_version,
                       replaced.metadata.resource_version]
    # ... and they only go up; the deletion has one of its own.
    assert [int(r) for r in rvs] == sorted(int(r) for r in rvs) and len(set(rvs)) == 4
    assert int(rvs[0]) > int(rv0)
    # The watcher remembers where it stopped.
    assert w.resource_version == rvs[-1]

    # Resuming from any event's resourceVersion replays exactly what came after it.
    resumed, _ = collect(core, namespace, lambda ev: ev[-1][0] == "DELETED",
                         resource_version=rvs[1], label_selector=SEL)
    assert [(t, o.metadata.resource_version) for t, o in resumed] == [
        ("MODIFIED", rvs[2]), ("DELETED", rvs[3])]


def test_watch_from_list_sees_only_later_events(core, namespace):
    core.create_namespaced_config_map(namespace, cm("a"))
    core.create_namespaced_config_map(namespace, cm("b"))
    listed = core.list_namespaced_config_map(namespace, label_selector=SEL)
    assert sorted(i.metadata.name for i in listed.items) == ["a", "b"]

    core.create_namespaced_config_map(namespace, cm("c"))
    core.patch_namespaced_config_map("a", namespace, {"data": {"x": "y"}})
    core.delete_namespaced_config_map("b", namespace)
    core.create_namespaced_config_map(namespace, cm("sentinel"))

    events, _ = collect(core, namespace, lambda ev: ev[-1][1].metadata.name == "sentinel",
                        resource_version=listed.metadata.resource_version, label_selector=SEL)
    assert names_and_types(events) == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b"),
                                       ("ADDED", "sentinel")]


def test_watch_without_version_starts_with_current_state(core, namespace):
    core.create_namespaced_config_map(namespace, cm("one"))
    core.create_namespaced_config_map(namespace, cm("two"))
    w = watch.Watch()
    events = []
    for ev in w.stream(core.list_namespaced_config_map, namespace, label_selector=SEL, timeout_seconds=5,
                       _request_timeout=10):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 2:
            # The synthetic ADDED events for what exists came first; now a live change.
            core.patch_namespaced_config_map("one", namespace, {"data": {"live": "yes"}})
        if len(events) == 3:
            w.stop()
    assert sorted(events[:2]) == [("ADDED", "one"), ("ADDED", "two")]
    assert events[2] == ("MODIFIED", "one")


def test_timeout_seconds_ends_the_stream(core, namespace):
    rv = core.list_namespaced_config_map(namespace, label_selector=SEL).metadata.resource_version
    w = watch.Watch()
    start = time.monotonic()
    events = list(w.stream(core.list_namespaced_config_map, namespace, label_selector=SEL,
                           resource_version=rv, timeout_seconds=1, _request_timeout=10))
    elapsed = time.monotonic() - start
    assert events == []
    assert 0.9 <= elapsed < 4, elapsed


def test_label_selector_transitions(core, namespace):
    rv = core.list_namespaced_config_map(namespace, label_selector=SEL).metadata.resource_version
    core.create_namespaced_config_map(namespace, cm("flip", labels={"suite": "other"}))
    core.patch_namespaced_config_map("flip", namespace, {"metadata": {"labels": {"suite": "watch"}}})
    core.patch_namespaced_config_map("flip", namespace, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("flip", namespace, {"metadata": {"labels": {"suite": "other"}}})
    core.patch_namespaced_config_map("flip", namespace, {"data": {"k": "unseen"}})
    core.create_namespaced_config_map(namespace, cm("sentinel"))

    events, _ = collect(core, namespace, lambda ev: ev[-1][1].metadata.name == "sentinel",
                        resource_version=rv, label_selector=SEL)
    # Entering the selection looks like ADDED, leaving it like DELETED.
    assert names_and_types(events) == [("ADDED", "flip"), ("MODIFIED", "flip"), ("DELETED", "flip"),
                                       ("ADDED", "sentinel")]
    assert events[1][1].data == {"k": "v"}


def test_watch_one_object_by_name(core, namespace):
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, cm("other"))
    core.create_namespaced_config_map(namespace, cm("mine"))
    core.patch_namespaced_config_map("other", namespace, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("mine", namespace)
    events, _ = collect(core, namespace, lambda ev: ev[-1][0] == "DELETED",
                        resource_version=rv, field_selector="metadata.name=mine")
    assert names_and_types(events) == [("ADDED", "mine"), ("DELETED", "mine")]


def expect_gone(api, namespace, rv):
    """A watch from `rv` fails with 410 Expired, as an ERROR event on a 200 stream."""
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                  resource_version=rv, timeout_seconds=2, _request_timeout=10))
    assert err.value.status == 410
    assert err.value.reason.startswith("Expired: too old resource version"), err.value.reason

    code, _, body = Raw(api).request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps",
        query={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "2"})
    events = [json.loads(line) for line in body.splitlines()] if isinstance(body, str) else [body]
    assert code == 200, (code, body)
    assert events[0]["type"] == "ERROR"
    st = events[0]["object"]
    assert (st["kind"], st["status"], st["code"], st["reason"]) == ("Status", "Failure", 410, "Expired")


def test_watch_from_before_a_restart_is_gone(fresh_server):
    api = fresh_server.api_client()
    core = client.CoreV1Api(api)
    old = core.create_namespaced_config_map("default", cm("before")).metadata.resource_version
    core.patch_namespaced_config_map("before", "default", {"data": {"x": "1"}})
    api.close()

    fresh_server.restart()
    api = fresh_server.api_client()
    try:
        core = client.CoreV1Api(api)
        current = core.list_namespaced_config_map("default").metadata.resource_version
        assert int(current) >= int(old)
        expect_gone(api, "default", old)
        # A watch from the current state works, and sees new writes.
        core.patch_namespaced_config_map("before", "default", {"data": {"x": "2"}})
        events, _ = collect(core, "default", lambda ev: True, resource_version=current)
        assert names_and_types(events) == [("MODIFIED", "before")]
    finally:
        api.close()


def test_watch_from_beyond_the_event_window_is_gone(fresh_server):
    """The server keeps about 10,000 events; a watch from before them gets 410."""
    api = fresh_server.api_client()
    try:
        core = client.CoreV1Api(api)
        old = core.create_namespaced_config_map("default", cm("anchor")).metadata.resource_version
        writers = 8
        for i in range(writers):
            core.create_namespaced_config_map("default", cm(f"load-{i}", labels={"suite": "load"}))
        raw = Raw(api)

        def write(k, n=10_100 // writers + 1):
            for i in range(n):
                code, _, body = raw.request("PATCH", f"/api/v1/namespaces/default/configmaps/load-{k}",
                                            {"data": {"n": str(i)}},
                                            content_type="application/merge-patch+json")
                assert code == 200, body
        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))

        expect_gone(api, "default", old)
        # A recent resourceVersion is still inside the window.
        recent = core.patch_namespaced_config_map("anchor", "default", {"data": {"a": "1"}})
        core.patch_namespaced_config_map("anchor", "default", {"data": {"a": "2"}})
        events, _ = collect(core, "default", lambda ev: True,
                            resource_version=recent.metadata.resource_version,
                            field_selector="metadata.name=anchor")
        assert [(t, o.data) for t, o in events] == [("MODIFIED", {"a": "2"})]
    finally:
        api.close()
