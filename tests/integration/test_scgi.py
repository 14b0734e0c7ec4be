"""SCGI (#11): scgi_pass to Debian's uWSGI speaking SCGI (--scgi-socket, the WSGI app of test_uwsgi.py),
beside Debian's nginx on the same configuration with the repository's scgi_params: the same answers for
the environ, bodies (small and from the temp file), 1 MiB buffered and not, an app's own status, HEAD, a
unix socket and scgi_param's inheritance. A scripted backend checks the netstring (CONTENT_LENGTH first,
as nginx writes it) and answers with a CGI header (Status:), an HTTP/1.x status line, and broken ones."""
import os

import pytest

from conftest import NGINX, ROOT, WEIR, ScriptedBackend, check_conf, http_get, wait_for, weir_and_nginx
from test_uwsgi import REQUESTS, uwsgi

PARAMS = os.path.join(ROOT, "conf", "scgi_params")

CONF = r"""
client_body_buffer_size 8k;
scgi_param LEVEL http;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { scgi_pass 127.0.0.1:APPPORT; include PARAMS; scgi_param LEVEL location;
                 scgi_param PATH_INFO $uri; }
    location /nobuf/ { scgi_pass 127.0.0.1:APPPORT; scgi_buffering off; include PARAMS;
                       scgi_param PATH_INFO /big; }
    location /unix/ { scgi_pass unix:SOCKET; include PARAMS; scgi_param PATH_INFO $uri; }
    location /inherit/ { scgi_pass 127.0.0.1:APPPORT; }
    location /noheaders/ { scgi_pass 127.0.0.1:APPPORT; include PARAMS; scgi_pass_request_headers off; }
}
"""


@pytest.fixture(scope="module")
def app():
    a = uwsgi("--scgi-socket")
    yield a
    a.stop()


@pytest.fixture(scope="module")
def pair(app):
    conf = CONF.replace("APPPORT", str(app.port)).replace("PARAMS", PARAMS).replace("SOCKET", app.socket)
    yield from weir_and_nginx(conf, {})


@pytest.mark.parametrize("method,path,body,headers", REQUESTS,
                         ids=["%s %s" % (r[0], r[1]) for r in REQUESTS])
def test_responses_as_nginx(pair, method, path, body, headers):
    got = []
    for s in pair:
        r = http_get(s.port, path, method=method, body=body, headers=headers)
        fields = {k: r.header(k) for k in ("Content-Type", "X-App", "X-Kind", "Content-Length")}
        got.append((r.status, r.reason, fields, r.header_list("Set-Cookie"),
                    r.body.replace(str(s.port).encode(), b"PORT")))
    assert got[0] == got[1]
    status, reason, fields, cookies, text = got[0]
    if path == "/a/b?x=1":
        assert b"QUERY_STRING=x=1\n" in text and b"HTTP_X_CUSTOM=custom" in text and b"LEVEL=location" in text
    if path == "/upload":
        assert b"body=%d %d\n" % (len(body), sum(body) % 65521) in text
    if "n=1048576" in path:
        assert len(text) == 1048576
    if path == "/teapot":
        assert (status, fields["X-Kind"], cookies) == (418, "teapot", ["a=1", "b=2"])
    if path == "/inherit/":
        assert b"LEVEL=http" in text


def read_scgi_request(c):
    """An SCGI request: (the netstring's names and values, the body of CONTENT_LENGTH bytes)."""
    data = b""
    while b":" not in data or len(data) < netstring_end(data):
        data += c.recv(65536)
    end = netstring_end(data)
    fields = data[data.index(b":") + 1:end - 1].split(b"\0")[:-1]
    headers = dict(zip(fields[0::2], fields[1::2]))
    want = end + int(headers[b"CONTENT_LENGTH"])
    while len(data) < want:
        data += c.recv(65536)
    return fields, data[end:]


def netstring_end(data):
    n, _, _ = data.partition(b":")
    return len(n) + 1 + int(n) + 1


def test_the_netstring(make_server):
    backend = ScriptedBackend(b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-Cgi: yes\r\n\r\nmade",
                              read_scgi_request)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { scgi_pass 127.0.0.1:BACKEND;"
                        " scgi_param SCGI 1; scgi_param EMPTY $http_x_none if_not_empty; } }"
                        .replace("BACKEND", str(backend.port)))
        r = http_get(s.port, "/p", method="POST", body=b"0123456789", headers={"X-Custom-Field": "v"})
        assert (r.status, r.header("X-Cgi"), r.body) == (201, "yes", b"made")
        fields, body = backend.requests[0]
        # CONTENT_LENGTH first, as the protocol wants; then the params, then the client's fields.
        assert fields[:4] == [b"CONTENT_LENGTH", b"10", b"SCGI", b"1"] and body == b"0123456789"
        assert b"HTTP_X_CUSTOM_FIELD" in fields and b"EMPTY" not in fields
        r = http_get(s.port, "/g")
        assert r.status == 201 and backend.requests[1][0][:2] == [b"CONTENT_LENGTH", b"0"]
    finally:
        backend.close()


@pytest.mark.parametrize("answer,status,message", [
    (b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope", 404, None),
    (b"Location: http://example.com/x\r\n\r\n", 302, None),
    (b"Content-Type: text/plain\r\n\r\nplain", 200, None),
    (b"Status: abc\r\n\r\n", 502, 'upstream sent invalid status "abc"'),
    (b"HTTP/9 x\r\n\r\n", 502, "upstream sent invalid status line"),
    (b"Content-Type: text/plain\r\n", 502, "upstream prematurely closed connection"),
])
def test_answers(make_server, answer, status, message):
    backend = ScriptedBackend(answer, read_scgi_request)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { scgi_pass 127.0.0.1:BACKEND; } }"
                        .replace("BACKEND", str(backend.port)))
        r = http_get(s.port, "/")
        assert r.status == status
        if status == 200:
            assert r.body == b"plain"
        if message:
            wait_for(lambda: message in s.error_log(), what=message)
    finally:
        backend.close()


@pytest.mark.parametrize("directive,message", [
    ("scgi_pass 127.0.0.1;", 'no port in upstream "127.0.0.1"'),
    ("scgi_pass nosuch;", 'no port in upstream "nosuch"'),
    ("scgi_param A b c;", 'invalid parameter "c"'),
])
def test_configuration_errors_as_nginx(directive, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { %s } }" % directive)
        assert rc == 1 and message in err, (binary, err)


CACHE_CONF = r"""
scgi_cache_path %%DIR%%/scache levels=2 keys_zone=scgi:1m;
add_header X-Cache $upstream_cache_status always;
server {
    listen 127.0.0.1:%%PORT%%;
    location / {
        scgi_pass 127.0.0.1:APPPORT;
        include PARAMS;
        scgi_cache scgi;
        scgi_cache_key $scheme$host$request_uri;
        scgi_cache_valid 10m;
    }
}
"""


def test_scgi_cache_beside_nginx(app):
    """scgi_cache: the answers are kept and sent again whole, where nginx keeps them."""
    conf = CACHE_CONF.replace("APPPORT", str(app.port)).replace("PARAMS", PARAMS)
    servers = weir_and_nginx(conf, {})
    try:
        for s in next(servers):
            for path in ("/big?n=300000", "/sized", "/a?x=1"):
                first, second = (http_get(s.port, path) for _ in range(2))
                assert (first.header("X-Cache"), second.header("X-Cache")) == ("MISS", "HIT"), \
                    (s.name, path)
                assert first.status == second.status == 200 and first.body == second.body
    finally:
        for _ in servers:  # stops both, checks weir clean
            pass
