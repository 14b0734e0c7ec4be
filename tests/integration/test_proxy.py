"""proxy_pass through the upstream lifecycle, against the scripted backend over real sockets: the
buffered (event pipe, temp-file spill) and non-buffered relays, chunked and Content-Length bodies, the
request weir builds, and the upstream faults that must answer 502/504."""
import os

from backend import Backend, Close, Reset, Send, Sleep, chunked, response
from conftest import http_get


def conf(port, extra=""):
    return r"""
    upstream back { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        proxy_read_timeout 1s;
        location / { proxy_pass http://127.0.0.1:%d; }
        location /nb/ { proxy_pass http://back/; proxy_buffering off; }
        location /small/ { proxy_pass http://back/; proxy_buffers 2 4k; proxy_busy_buffers_size 4k;
                           proxy_max_temp_file_size 1m; proxy_temp_file_write_size 4k; }
        %s
    }
""" % (port, port, extra)


def test_buffered_and_non_buffered_bodies(make_server):
    big = os.urandom(300000)
    with Backend() as b:
        b.script("/big", [response(200, big, {"X-Up": "1"})])
        b.script("/chunks", chunked(["ab", "c" * 5000, "d"]))
        s = make_server(conf(b.port))
        r = http_get(s.port, "/big")
        assert r.status == 200 and r.body == big and r.header("X-Up") == "1"
        assert r.header("Server").startswith("weir")  # the upstream's own Server is hidden
        r = http_get(s.port, "/chunks")
        assert r.status == 200 and r.body == b"ab" + b"c" * 5000 + b"d"
    with Backend() as b:
        b.script("/big", [response(200, big)])
        b.script("/chunks", chunked(["x" * 10, "y"]))
        s2 = make_server(conf(b.port))
        for path in ("/nb/big", "/small/big"):
            r = http_get(s2.port, path)
            assert r.status == 200 and r.body == big, path
        r = http_get(s2.port, "/nb/chunks")
        assert r.status == 200 and r.body == b"x" * 10 + b"y"
        assert "buffered to a temporary file" in s2.error_log()


def test_request_line_and_headers(make_server):
    with Backend() as b:
        s = make_server(conf(b.port))
        r = http_get(s.port, "/nb/q?a=1", headers={"X-Client": "c", "Connection": "keep-alive, X-Hop",
                                                   "X-Hop": "secret"})
        assert r.status == 200
        method, target, headers, body = b.requests[-1]
        assert method == "GET" and target == "/q?a=1"  # the location's prefix replaced by "/"
        h = {k.lower(): v for k, v in headers.items()}
        assert h["host"] == "back"  # $proxy_host
        assert h["connection"] == "close" and h["x-client"] == "c"
        assert "x-hop" not in h  # named by the client's Connection header: hop-by-hop
        r = http_get(s.port, "/p", method="POST", body=b"payload")
        assert r.status == 200 and b.requests[-1][3] == b"payload"


def test_upstream_faults(make_server):
    with Backend() as b:
        b.script("/garbage", [Send("NOT HTTP AT ALL\r\n\r\n")])
        b.script("/reset", [Reset()])
        b.script("/slow", [Sleep(3), response(200, "late")])
        b.script("/big-header", [Send("HTTP/1.1 200 OK\r\nX-Big: " + "a" * 8000 + "\r\n\r\n")])
        b.script("/extra", [Send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"), Close()])
        s = make_server(conf(b.port))
        assert http_get(s.port, "/garbage").status == 502
        assert http_get(s.port, "/reset").status == 502
        assert http_get(s.port, "/slow").status == 504
        assert http_get(s.port, "/big-header").status == 502
        r = http_get(s.port, "/extra")
        assert r.status == 200 and r.body == b"abc"
        log = s.error_log()
        assert "upstream sent invalid status line" in log
        assert "upstream timed out" in log and "upstream sent too big header" in log
    s2 = make_server(conf(1))  # nothing listens on port 1
    assert http_get(s2.port, "/x").status == 502
    assert "connect() failed" in s2.error_log() and "Connection refused" in s2.error_log()
