"""Fixtures for the official Python client suite: a real maestro server per test module.

The server binary is `$MAESTRO_BIN` (or the workspace's target/debug/maestro). Each server gets a
free loopback port and its own data directory, runs control-plane only (`--no-agent`), and is
stopped by the PID this fixture started, on success and failure alike.
"""

import atexit
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
# How long to wait for the binary to appear (it may be being rebuilt) and for readiness.
BINARY_WAIT_SECONDS = 300
READY_WAIT_SECONDS = 60

_live = {}  # pid -> Popen, for the atexit safety net


def maestro_bin() -> Path:
    env = os.environ.get("MAESTRO_BIN")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "maestro"
        if candidate.exists():
            return candidate
    pytest.exit("maestro binary not found: set MAESTRO_BIN or build target/debug/maestro", 2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM, grace=10.0):
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    _live.pop(proc.pid, None)


@atexit.register
def _kill_leftovers():
    for proc in list(_live.values()):
        _stop(proc, signal.SIGKILL, grace=5)


class Server:
    """One maestro process with its data directory; restartable on the same data."""

    def __init__(self, data_dir: Path, extra_args=()):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.log_path = self.data_dir / "server.log"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def start(self):
        binary = maestro_bin()
        deadline = time.monotonic() + BINARY_WAIT_SECONDS
        while not binary.exists():  # being rebuilt: wait for it to come back
            if time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not appear")
            time.sleep(1)
        last_error = None
        for _attempt in range(5):  # a port can be taken between probing and binding
            self.port = self.port or free_port()
            try:
                self.kubeconfig.unlink()
            except FileNotFoundError:
                pass
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [str(binary), "server", "--data-dir", str(self.data_dir),
                     "--api-port", str(self.port), "--no-agent", *self.extra_args],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()
            _live[self.proc.pid] = self.proc
            try:
                self._wait_ready()
                return self
            except RuntimeError as e:
                last_error = e
                _stop(self.proc, signal.SIGKILL)
                if "Address already in use" in self.log_tail():
                    self.port = None
                    continue
                raise
        raise RuntimeError(f"maestro did not start: {last_error}")

    def _wait_ready(self):
        deadline = time.monotonic() + READY_WAIT_SECONDS
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"maestro exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.kubeconfig.exists():
                try:
                    with urllib.request.urlopen(
                        f"https://127.0.0.1:{self.port}/readyz", context=ctx, timeout=2
                    ) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"maestro not ready after {READY_WAIT_SECONDS}s:\n{self.log_tail()}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None:
            _stop(self.proc, sig)
            self.proc = None

    def restart(self):
        """Stop and start again on the same data directory and port."""
        self.stop()
        return self.start()

    def log_tail(self, n=40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    def api_client(self) -> client.ApiClient:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)


def _start_server(request, extra_args=()):
    data_dir = Path(tempfile.mkdtemp(prefix="maestro-py-"))
    server = Server(data_dir, extra_args)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return server, data_dir


def _finish(request, server, data_dir):
    server.stop()
    if getattr(request.node, "_maestro_failed", False):
        print(f"\nlast lines of the maestro log ({data_dir}):\n{server.log_tail(20)}")
    if os.environ.get("MAESTRO_KEEP_DATA"):
        print(f"\nmaestro data dir kept: {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item._maestro_failed = True
        if item.parent is not None:
            item.parent._maestro_failed = True


@pytest.fixture(scope="module")
def server(request):
    """A maestro server shared by the tests of one module."""
    srv, data_dir = _start_server(request)
    try:
        yield srv
    finally:
        _finish(request, srv, data_dir)


@pytest.fixture
def fresh_server(request):
    """A maestro server of this test's own (for tests that restart it or count writes)."""
    srv, data_dir = _start_server(request)
    try:
        yield srv
    finally:
        _finish(request, srv, data_dir)


@pytest.fixture(scope="module")
def api_client(server):
    api = server.api_client()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(api_client):
    """A namespace of this test's own on the module's server, deleted afterwards."""
    v1 = client.CoreV1Api(api_client)
    name = "py-" + uuid.uuid4().hex[:10]
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        v1.delete_namespace(name)
    except client.ApiException:
        pass
