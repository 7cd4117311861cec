"""list_namespaced_* with limit/continue: only what Kubernetes promises.

A server may ignore `limit` and return everything (then without a continue token). When it
does paginate, pages hold at most `limit` items, following `continue` yields the rest of one
consistent snapshot, and remainingItemCount (when given) counts what is left.
"""

import pytest
from kubernetes import client
from kubernetes.client import ApiException

LABEL = "suite=paging"


def make(core, namespace, names):
    for n in names:
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=n, labels={"suite": "paging"})))


def pages(core, namespace, limit, **kw):
    out, token = [], None
    for _ in range(50):
        page = core.list_namespaced_config_map(namespace, limit=limit, _continue=token, **kw)
        out.append(page)
        token = page.metadata._continue
        if not token:
            return out
    raise AssertionError("continue tokens never ran out")


def test_limit_and_continue(core, namespace):
    names = [f"cm-{i:02d}" for i in range(7)]
    make(core, namespace, names)
    full = core.list_namespaced_config_map(namespace, label_selector=LABEL)
    assert sorted(i.metadata.name for i in full.items) == names
    assert not full.metadata._continue

    got = pages(core, namespace, 3, label_selector=LABEL)
    seen = [i.metadata.name for p in got for i in p.items]
    assert sorted(seen) == names and len(seen) == len(set(seen))
    if len(got) == 1:  # limit ignored: everything at once
        assert len(got[0].items) == len(names)
        return
    for i, page in enumerate(got):
        assert len(page.items) <= 3
        if page.metadata._continue:
            assert page.items, "a page with a continue token should not be empty"
            left = page.metadata.remaining_item_count
            if left is not None:
                assert left == len(names) - sum(len(p.items) for p in got[:i + 1])
    # All pages come from the snapshot the first one was taken at.
    assert len({p.metadata.resource_version for p in got}) == 1
    # A server that issues continue tokens rejects made-up ones.
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map(namespace, limit=3, _continue="not-a-token")
    assert err.value.status == 400


def test_continue_is_a_consistent_snapshot(core, namespace):
    make(core, namespace, [f"snap-{i}" for i in range(4)])
    first = core.list_namespaced_config_map(namespace, limit=2, label_selector=LABEL)
    if not first.metadata._continue:
        assert len(first.items) == 4  # the server ignores limit; nothing more is promised
        return
    assert len(first.items) <= 2
    # Changes after the first page don't show up in later pages.
    make(core, namespace, ["snap-9"])
    core.delete_namespaced_config_map("snap-3", namespace)
    rest, token = [], first.metadata._continue
    while token:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token, label_selector=LABEL)
        assert page.metadata.resource_version == first.metadata.resource_version
        rest += page.items
        token = page.metadata._continue
    assert sorted(i.metadata.name for i in first.items + rest) == [f"snap-{i}" for i in range(4)]


def test_limit_on_other_resources(core, namespace, api_client):
    # A namespace-scoped list and a cluster-wide list accept the same parameters.
    listed = core.list_namespace(limit=1)
    assert len(listed.items) == 1 or not listed.metadata._continue
    if listed.metadata._continue:
        nxt = core.list_namespace(limit=1, _continue=listed.metadata._continue)
        assert nxt.items and nxt.items[0].metadata.name != listed.items[0].metadata.name
    every = client.CoreV1Api(api_client).list_config_map_for_all_namespaces(limit=2)
    assert len(every.items) <= 2 or not every.metadata._continue
