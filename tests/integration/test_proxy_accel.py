"""The X-Accel-* response headers through proxy_pass, and proxy_ignore_headers: X-Accel-Redirect
(URI with %XX and arguments, named location, unsafe targets, the headers it keeps, the method turned
to GET, the first of two) answers exactly as Debian's nginx does on the same configuration and backend;
X-Accel-Buffering turns buffering off and on, X-Accel-Limit-Rate paces a buffered response (a non-buffered one
runs at the upstream's pace, as nginx), and each is
ignored when proxy_ignore_headers names it."""
import os
import time

from backend import Backend, response
from conftest import NGINX, http_get, slow_get

FILES = {"files/a b.txt": "space file\n", "files/a%20b.txt": "percent file\n"}


def conf(port):
    return r"""
    proxy_temp_path %%%%DIR%%%%/proxy_temp;
    server {
        listen 127.0.0.1:%%%%PORT%%%% sndbuf=32k;  # the kernel does not take a whole body
        location / { proxy_pass http://127.0.0.1:%d; }
        location /files/ { internal; }
        location @named { return 200 "named $uri $args\n"; }
        location /again/ { proxy_pass http://127.0.0.1:%d; }
        location /ignored/ { proxy_pass http://127.0.0.1:%d;
                             proxy_ignore_headers X-Accel-Redirect X-Accel-Buffering
                                                  X-Accel-Limit-Rate; }
        location /small/ { proxy_pass http://127.0.0.1:%d; proxy_buffers 2 4k;
                           proxy_busy_buffers_size 4k; proxy_temp_file_write_size 4k; }
        location /off/ { proxy_pass http://127.0.0.1:%d; proxy_buffering off; }
    }
""" % ((port,) * 5)


CASES = [
    ("/a", "GET", {"X-Accel-Redirect": "/files/a%20b.txt", "Content-Type": "application/x-up",
                   "X-Other": "1", "Set-Cookie": "c=1", "Cache-Control": "max-age=5"}, 200),
    ("/b", "GET", {"X-Accel-Redirect": "/files/a b.txt"}, 200),
    ("/c?k=v", "GET", {"X-Accel-Redirect": "@named"}, 404),
    ("/d", "POST", {"X-Accel-Redirect": "/again/z?q=1"}, 200),
    ("/e", "GET", {"X-Accel-Redirect": "/files/../etc"}, 200),
    ("/f", "GET", {"X-Accel-Redirect": "files/x"}, 200),
    ("/g", "GET", {"X-Accel-Redirect": "/files/a b.txt", "Location": "/zz"}, 302),
    # Sent twice: the first counts (a dict keeps both when their case differs).
    ("/h", "GET", {"X-Accel-Redirect": "/files/a%20b.txt", "x-accel-redirect": "@named"}, 200),
    ("/a", "HEAD", None, None),
]


def answers(server, backend):
    out = []
    for path, method, _, _ in CASES:
        n = len(backend.requests)
        r = http_get(server.port, path, method=method, body=b"x" if method == "POST" else None)
        skip = ("date", "server", "last-modified", "etag")
        if r.status >= 400:
            skip += ("content-length",)  # error pages name the server
        headers = sorted((k.lower(), v) for k, v in r.headers if k.lower() not in skip)
        body = r.body if r.status < 400 else b""
        upstream = [req[:2] for req in backend.requests[n:]]
        out.append((path, method, r.status, headers, body, upstream))
    return out


def test_x_accel_redirect_as_nginx(make_server):
    with Backend() as b:
        for path, _, headers, status in CASES:
            if headers is not None:
                b.script(path.split("?")[0], [response(status, "upstream body", headers)])
        weir = make_server(conf(b.port), files=FILES)
        got = answers(weir, b)
        nginx = make_server(conf(b.port), files=FILES, binary=NGINX)
        want = answers(nginx, b)
    for g, w in zip(got, want):
        assert g == w
    by_path = {(g[0], g[1]): g for g in got}
    assert by_path[("/a", "GET")][4] == b"space file\n"  # %20 decoded
    assert by_path[("/c?k=v", "GET")][4] == b"named /c k=v\n"
    assert by_path[("/d", "POST")][5] == [("POST", "/d"), ("GET", "/again/z?q=1")]
    assert by_path[("/e", "GET")][2] == 404
    assert by_path[("/h", "GET")][4] == b"space file\n"
    assert 'unsafe URI "/files/../etc" was detected' in weir.error_log()


def test_ignored_x_accel_redirect(make_server):
    with Backend() as b:
        b.script("/ignored/r", [response(200, "own body", {"X-Accel-Redirect": "/files/a b.txt"})])
        s = make_server(conf(b.port), files=FILES)
        r = http_get(s.port, "/ignored/r")
        assert r.status == 200 and r.body == b"own body"
        assert r.header("X-Accel-Redirect") is None  # hidden by default


def test_x_accel_buffering_and_limit_rate(make_server):
    big = os.urandom(200000)
    with Backend() as b:
        b.script("/small/no", [response(200, big, {"X-Accel-Buffering": "no"})])
        b.script("/small/yes", [response(200, big, {"X-Accel-Buffering": "yes"})])
        b.script("/off/yes", [response(200, big, {"X-Accel-Buffering": "yes"})])
        b.script("/ignored/no", [response(200, big, {"X-Accel-Buffering": "no"})])
        b.script("/rate", [response(200, b"r" * 150000, {"X-Accel-Limit-Rate": "50000"})])
        b.script("/off/rate", [response(200, b"r" * 150000, {"X-Accel-Limit-Rate": "50000"})])
        b.script("/ignored/rate", [response(200, b"r" * 150000, {"X-Accel-Limit-Rate": "50000"})])
        s = make_server(conf(b.port))
        spill = "buffered to a temporary file"

        def spilled(path):
            before = s.error_log().count(spill)
            r = slow_get(s.port, path)  # the pipe fills its two buffers and spills
            assert r.status == 200 and r.body == big, path
            return s.error_log().count(spill) > before

        assert not spilled("/small/no")  # non-buffered: one buffer, never a temp file
        assert spilled("/small/yes")
        assert spilled("/off/yes")  # "yes" turns buffering on despite proxy_buffering off
        r = http_get(s.port, "/ignored/no")
        assert r.body == big
        start = time.time()
        r = http_get(s.port, "/rate")
        # 150 kB at 50 kB/s, the first second's worth at once.
        assert r.body == b"r" * 150000 and time.time() - start > 1.5
        # Ignored, and (as nginx) a non-buffered relay runs at the upstream's pace.
        for path in ("/ignored/rate", "/off/rate"):
            start = time.time()
            r = http_get(s.port, path)
            assert r.body == b"r" * 150000 and time.time() - start < 1.0, path
