"""Small helpers shared by the test modules."""

import json
import time
import urllib.parse
import uuid

from kubernetes.client import ApiException


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll `predicate` until it returns a truthy value and return that value.

    Fails with the last value (or exception) seen when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except ApiException as e:  # keep polling through transient API errors
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def status_of(exc: ApiException) -> dict:
    """The Status object an ApiException carries in its body."""
    assert exc.body, f"no body in {exc}"
    body = json.loads(exc.body)
    assert body.get("kind") == "Status", body
    assert body.get("apiVersion") == "v1", body
    assert body.get("status") == "Failure", body
    assert body.get("code") == exc.status, body
    return body


def not_found(fn, *args, **kwargs) -> bool:
    """True when the call fails with 404."""
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


class Raw:
    """Requests the typed API can't express (unknown fields, duplicate keys, odd content types).

    Goes through the ApiClient's own connection pool and credentials.
    """

    def __init__(self, api_client):
        self.api = api_client

    def request(self, method, path, body=None, content_type="application/json", query=None,
                accept="application/json", timeout=30):
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
            if not isinstance(body, (str, bytes)):
                body = json.dumps(body)
        self.api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        url = self.api.configuration.host + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        resp = self.api.rest_client.pool_manager.request(
            method, url, body=body, headers=headers, preload_content=True, timeout=timeout
        )
        data = resp.data.decode()
        try:
            parsed = json.loads(data) if data else None
        except json.JSONDecodeError:
            parsed = data
        return resp.status, resp.headers, parsed
