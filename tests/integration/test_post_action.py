"""post_action: once a response is done (or has failed), the request runs on in the location it
names - a URI or a named location - with nothing more sent to the client; the usual use tells a
tracker that a download finished. Compared with Debian's nginx on the same configuration: what the
client gets on a keep-alive connection, what the tracker is asked, and the access log's lines."""
import socket

import pytest

from backend import Backend
from conftest import NGINX, WEIR, Client, Server, wait_for

CONF = """
    log_format pa '$request|$uri|$status|$body_bytes_sent';
    upstream tracker { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        access_log %%%%DIR%%%%/logs/pa.log pa;
        location /dl/ { post_action @track; }
        location /gone/ { post_action @track; return 410 "gone\n"; }
        location /uri/ { alias %%%%DIR%%%%/html/dl/; post_action /done; }
        location = /done { proxy_pass http://tracker/finished; proxy_set_header X-Uri $request_uri; }
        location @track {
            proxy_pass http://tracker;
            proxy_set_header X-Status $status;
            proxy_set_header X-Sent $body_bytes_sent;
        }
        location /plain/ { alias %%%%DIR%%%%/html/dl/; }
    }
"""
FILES = {"dl/a.txt": b"first file\n", "dl/b.bin": b"x" * 100000, "dl/big.bin": b"y" * (8 << 20)}


@pytest.fixture(scope="module")
def pair():
    backends = [Backend().__enter__() for _ in range(2)]
    servers = [Server(CONF % b.port, files=FILES, binary=binary)
               for b, binary in zip(backends, (WEIR, NGINX))]
    for s in servers:
        s.start()
    yield list(zip(servers, backends))
    for s in servers:
        s.stop()
    servers[0].check_clean()
    for s in servers:
        s.cleanup()
    for b in backends:
        b.__exit__(None, None, None)


def exchange(s, paths):
    """The responses to paths sent at once on one keep-alive connection, then one more request on it:
    a byte the post action let out would break the answers that follow."""
    c = Client(s.port)
    c.send("".join("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths + ["/plain/a.txt"]))
    out = [c.response() for _ in paths + [None]]
    c.close()
    assert out[-1].status == 200 and out[-1].body == FILES["dl/a.txt"]
    return [(r.status, r.body) for r in out[:-1]]


def asked(backend, n):
    wait_for(lambda: len(backend.requests) >= n, what="the tracker's requests")
    return [(m, t, {k: v for k, v in h.items() if k.lower() in ("x-status", "x-sent", "x-uri", "host")})
            for m, t, h, _ in backend.requests[:n]]


def asked_all(backend, n):
    wait_for(lambda: len(backend.requests) >= n, what="the tracker's requests")
    return backend.requests[:n]


def logged(s, n):
    def lines():
        with open(s.path("logs/pa.log")) as f:
            return f.read().splitlines()
    wait_for(lambda: len(lines()) >= n, what="the access log's lines")
    return lines()


@pytest.mark.parametrize("paths", [
    ["/dl/a.txt", "/dl/b.bin"],
    ["/gone/x", "/dl/a.txt"],
    ["/uri/a.txt"],
], ids=["named", "after-return", "uri"])
def test_post_action_as_nginx(pair, paths):
    got = []
    for s, b in pair:
        before_req, before_log = len(b.requests), len(logged(s, 0))
        answers = exchange(s, paths)
        tracker = asked(b, before_req + len(paths))[before_req:]
        log = logged(s, before_log + len(paths) + 1)[before_log:]
        got.append((answers, tracker, log))
    assert got[0] == got[1]
    answers, tracker, _ = got[0]
    assert answers[0][0] in (200, 410) and len(tracker) == len(paths)


def test_a_download_cut_short_still_runs_the_post_action(pair):
    # The client resets the connection after a little of a large file: the post action runs on the
    # error path (nginx's), and the tracker hears what was sent - less than the file.
    heard = []
    for s, b in pair:
        before = len(b.requests)
        c = socket.create_connection(("127.0.0.1", s.port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sendall(b"GET /dl/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(1000).startswith(b"HTTP/1.1 200")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        ((method, target, headers),) = [(m, t, h) for m, t, h, _ in asked_all(b, before + 1)[before:]]
        heard.append((method, target, headers["x-status"]))
        assert 0 < int(headers["x-sent"]) < len(FILES["dl/big.bin"])
    assert heard[0] == heard[1] == ("GET", "/dl/big.bin", "200")
    assert pair[0][0].get("/plain/a.txt").body == FILES["dl/a.txt"]
