"""Upgraded connections (WebSocket and any Upgrade) through proxy_pass: a 101 from the upstream to a
request that asked for it turns both connections into a tunnel, bytes flowing both ways as they come
(early bytes of either side included); either side closing ends it, proxy_read_timeout ends a silent
one, and a 101 nobody asked for is a 502."""
import socket
import time

from backend import Backend, Echo, Send
from conftest import http_get, read_to_end, wait_for

SWITCH = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def conf(port):
    return r"""
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        proxy_read_timeout 1s;
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
""" % port


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def open_tunnel(port, extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(UPGRADE + extra)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    return s, head.decode("latin-1")


def recv_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(min(65536, n - len(out)))
        assert chunk, len(out)
        out += chunk
    return out


def test_websocket_tunnel_both_ways(make_server):
    with Backend() as b:
        b.script("/ws", [Send(SWITCH), Echo()])
        s = make_server(conf(b.port))
        c, head = open_tunnel(s.port, extra=b"early")
        assert head.startswith("HTTP/1.1 101 ")
        lines = head.lower().split("\r\n")
        assert "connection: upgrade" in lines and "upgrade: websocket" in lines
        assert not any(l.startswith(("content-length", "transfer-encoding")) for l in lines)
        method, target, headers, _ = b.requests[-1]
        assert headers["upgrade"] == "websocket" and headers["connection"] == "upgrade"
        assert recv_exactly(c, 5) == b"early"  # sent with the request header
        c.sendall(b"hello")
        assert recv_exactly(c, 5) == b"hello"
        # More than both buffers hold: flow control, not loss.
        big = bytes(range(256)) * 1200
        c.sendall(big)
        assert recv_exactly(c, len(big)) == big
        c.close()
        wait_for(lambda: b.echo_closed, what="the upstream side closed")
        wait_for(lambda: " 101 " in s.access_log(), what="the access log line")


def test_upstream_close_and_early_upstream_bytes(make_server):
    with Backend() as b:
        b.script("/ws", [Send(SWITCH + "server-first")])  # then it closes
        s = make_server(conf(b.port))
        c, head = open_tunnel(s.port)
        assert head.startswith("HTTP/1.1 101 ")
        assert read_to_end(c) == b"server-first"


def test_silent_tunnel_times_out(make_server):
    with Backend() as b:
        b.script("/ws", [Send(SWITCH), Echo()])
        s = make_server(conf(b.port))
        c, _ = open_tunnel(s.port)
        start = time.time()
        c.settimeout(10)
        assert c.recv(10) == b""  # closed by proxy_read_timeout, 1s
        assert 0.8 < time.time() - start < 5
        c.close()
        wait_for(lambda: "upstream timed out" in s.error_log(), what="the timeout in the error log")


def test_unasked_101_is_502(make_server):
    with Backend() as b:
        b.script("/ws", [Send(SWITCH)])
        s = make_server(conf(b.port))
        r = http_get(s.port, "/ws")
        assert r.status == 502
        assert '"101 Switching Protocols" to a request without "Upgrade"' in s.error_log()
