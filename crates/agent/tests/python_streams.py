"""The official Python client's own streaming code against the agent (run by tests/streams.rs).

The client's `stream()` and `portforward()` build API-server paths, so this drives the classes
underneath them (`WSClient`, `PortForward`, `create_websocket`) at the agent's paths instead:
the framing, subprotocol offer and flag spelling are the client's own.

Usage: python_streams.py https://127.0.0.1:PORT TOKEN
"""

import sys

from kubernetes.client import Configuration
from kubernetes.stream import ws_client

base, token = sys.argv[1], sys.argv[2]
conf = Configuration()
conf.verify_ssl = False
headers = {"authorization": "Bearer " + token}


def url(path, query):
    return ws_client.get_websocket_url(base + path, query)


# exec: output per stream and the exit code from the error channel's Status. The flags go out
# as the client renders Python booleans.
client = ws_client.WSClient(
    conf,
    url(
        "/exec/default/web",
        [
            ("command", ["sh", "-c", "echo out; echo err >&2; exit 3"]),
            ("stderr", True),
            ("stdout", True),
        ],
    ),
    headers,
    capture_all=True,
)
client.run_forever(timeout=20)
assert client.subprotocol in ("v5.channel.k8s.io", "v4.channel.k8s.io"), client.subprotocol
assert client.read_stdout() == "out\n"
assert client.read_stderr() == "err\n"
assert client.returncode == 3, client.returncode

# exec with stdin, closed the v5 way.
client = ws_client.WSClient(
    conf,
    url(
        "/exec/default/web",
        [("command", ["cat"]), ("stdin", True), ("stdout", True), ("stderr", True)],
    ),
    headers,
    capture_all=True,
)
client.write_stdin("through cat\n")
client.close_channel(ws_client.STDIN_CHANNEL)
client.run_forever(timeout=20)
# The exit status first: read_all() also drops the error channel's buffer.
assert client.returncode == 0
got = client.read_all()
assert got == "through cat\n", repr(got)

# port-forward: an HTTP request through a socket of the client's, and a refused port's error.
pf = ws_client.PortForward(
    ws_client.create_websocket(
        conf, url("/portForward/default/web", [("ports", "8080,9001")]), headers
    ),
    [8080, 9001],
)
sock = pf.socket(8080)
sock.setblocking(True)
sock.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
response = b""
while True:
    data = sock.recv(4096)
    if not data:
        break
    response += data
sock.close()
assert response.startswith(b"HTTP/1.1 200 OK"), response
assert response.endswith(b"hello from the pod\n"), response
error = pf.error(9001)
assert error and "error forwarding port 9001" in error and "refused" in error, error
print("python client: exec and port-forward ok")
