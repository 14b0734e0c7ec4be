"""memcached (#11): memcached_pass to Debian's memcached, keys set through its text protocol, beside
Debian's nginx on the same configuration: a hit (200, the stored bytes, Content-Type from the URI, the
length), a miss (404 and nginx's info line), a key that needs escaping, memcached_gzip_flag, HEAD, a
method other than GET/HEAD (405), $memcached_key unset (500 and nginx's line), 1 MiB values, and
memcached_next_upstream not_found to a second server. A scripted backend sends malformed replies."""
import os
import socket
import tempfile

import pytest

from conftest import (NGINX, WEIR, BackendProcess, ScriptedBackend, check_conf, free_port, http_get,
                      wait_for, weir_and_nginx)

MEMCACHED = "/usr/bin/memcached"


def memcached():
    if not os.path.exists(MEMCACHED):
        pytest.fail("memcached is not installed (make deps installs it)")
    d = tempfile.mkdtemp(prefix="weir-memcached-")
    os.chmod(d, 0o777)
    port = free_port()
    return BackendProcess([MEMCACHED, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "nobody",
                           "-m", "64", "-I", "4m"], port, None, d)


def store(port, key, value, flags=0):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value))
    assert c.recv(64) == b"STORED\r\n"
    c.close()


@pytest.fixture(scope="module")
def mc():
    m = memcached()
    store(m.port, b"/page.html", b"<p>cached page</p>")
    store(m.port, b"/big.bin", bytes(range(256)) * 4096)
    store(m.port, b"/z.txt", b"\x1f\x8bcompressed-looking", flags=2)
    store(m.port, b"/with%20space", b"escaped key")
    yield m
    m.stop()


CONF = r"""
server {
    listen 127.0.0.1:%%PORT%%;
    location / { set $memcached_key $uri; memcached_pass 127.0.0.1:MCPORT; memcached_gzip_flag 2; }
    location /nokey { memcached_pass 127.0.0.1:MCPORT; }
    location /fallback/ {
        set $memcached_key $uri;
        memcached_pass 127.0.0.1:MCPORT;
        error_page 404 = @origin;
    }
    location @origin { return 200 "from the origin\n"; }
}
"""


@pytest.fixture(scope="module")
def pair(mc):
    yield from weir_and_nginx(CONF.replace("MCPORT", str(mc.port)), {})


@pytest.mark.parametrize("method,path", [
    ("GET", "/page.html"), ("GET", "/missing"), ("GET", "/big.bin"), ("GET", "/z.txt"),
    ("GET", "/with%20space"), ("HEAD", "/page.html"), ("POST", "/page.html"), ("GET", "/nokey"),
    ("GET", "/fallback/x"),
])
def test_answers_as_nginx(pair, method, path):
    got = []
    for s in pair:
        r = http_get(s.port, path, method=method, body=b"x" if method == "POST" else None)
        ok = r.status == 200  # error pages name the server
        got.append((r.status, r.header("Content-Type"), r.header("Content-Length") if ok else None,
                    r.header("Content-Encoding"), r.body if ok else b""))
    assert got[0] == got[1]
    status, ctype, length, encoding, body = got[0]
    if path == "/page.html" and method == "GET":
        assert (status, ctype, body) == (200, "text/html", b"<p>cached page</p>")
    if path == "/big.bin":
        assert status == 200 and body == bytes(range(256)) * 4096
    if path == "/z.txt":
        assert encoding == "gzip"
    if path == "/with%20space":
        assert body == b"escaped key"
    if path in ("/missing", "/nokey") or method == "POST":
        assert status == {"/missing": 404, "/nokey": 500}.get(path, 405)
    if path == "/fallback/x":
        assert body == b"from the origin\n"


def test_log_lines_as_nginx(pair):
    for s in pair:
        http_get(s.port, "/absent-key")
        http_get(s.port, "/nokey")
        wait_for(lambda: 'key: "/absent-key" was not found by memcached' in s.error_log(), what="the miss")
        wait_for(lambda: 'the "$memcached_key" variable is not set' in s.error_log(), what="no key")


@pytest.mark.parametrize("answer,status,message", [
    (b"VALUE /k 0 5\r\nhello\r\nEND\r\n", 200, None),
    (b"SERVER_ERROR out of memory\r\n", 502, 'memcached sent invalid response: "SERVER_ERROR out of memory"'),
    (b"VALUE /other 0 5\r\nhello\r\nEND\r\n", 502, 'memcached sent invalid key in response'),
    (b"VALUE /k 0 x\r\n", 502, "memcached sent invalid length in response"),
    (b"VALUE /k 0 5\r\nhelloXXXXXXX", 200, "memcached sent invalid trailer"),
])
def test_malformed_replies(make_server, answer, status, message):
    def read_get(c):
        data = b""
        while not data.endswith(b"\r\n"):
            data += c.recv(4096)
        return data

    backend = ScriptedBackend(answer, read_get)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { set $memcached_key $uri; "
                        "memcached_pass 127.0.0.1:BACKEND; } }".replace("BACKEND", str(backend.port)))
        r = http_get(s.port, "/k")
        assert r.status == status and backend.requests[0] == b"get /k\r\n"
        if status == 200 and message is None:
            assert r.body == b"hello"
        if message:
            wait_for(lambda: message in s.error_log(), what=message)
    finally:
        backend.close()


@pytest.mark.parametrize("directive,message", [
    ("memcached_pass 127.0.0.1;", 'no port in upstream "127.0.0.1"'),
    ("memcached_next_upstream http_500;", 'invalid value "http_500"'),
    ("memcached_buffers 4 4k;", 'unknown directive "memcached_buffers"'),
])
def test_configuration_errors_as_nginx(directive, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { %s } }" % directive)
        assert rc == 1 and message in err, (binary, err)


def test_next_upstream_not_found(make_server, mc):
    """memcached_next_upstream not_found: a miss on the first server tries the second."""
    other = memcached()
    try:
        store(other.port, b"/only-there", b"second server")
        conf = ("upstream mcs { server 127.0.0.1:FIRST; server 127.0.0.1:SECOND; }"
                "server { listen 127.0.0.1:%%PORT%%; location / { set $memcached_key $uri;"
                " memcached_pass mcs; memcached_next_upstream not_found; } }")
        s = make_server(conf.replace("FIRST", str(mc.port)).replace("SECOND", str(other.port)))
        bodies = {http_get(s.port, "/only-there").body for _ in range(4)}
        assert bodies == {b"second server"}
    finally:
        other.stop()
