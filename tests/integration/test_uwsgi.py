"""uwsgi (#11): uwsgi_pass to Debian's uWSGI (its python3 plugin, a WSGI application), beside Debian's nginx
on the same configuration with the repository's uwsgi_params: the same status, fields and body for
requests that read the WSGI environ, bodies (small, and read from the client body's temp file), a
streamed 1 MiB answer (buffered and not), an application's own status and fields, HEAD, a unix socket,
uwsgi_param's inheritance and uwsgi_pass_request_headers; uwsgi over TLS (suwsgi://, with variables,
uwsgi_ssl_verify against the name). A scripted backend checks the packet weir sends
(header, modifiers, vars, uwsgi_string, body) and answers with broken HTTP."""
import os
import shutil
import struct
import tempfile

import pytest

from conftest import (NGINX, ROOT, WEIR, BackendProcess, ScriptedBackend, check_conf, free_port,
                      http_get, make_certificate, parity_answer, wait_for, weir_and_nginx)

UWSGI = shutil.which("uwsgi") or "/usr/bin/uwsgi"
PARAMS = os.path.join(ROOT, "conf", "uwsgi_params")

APP = r'''
def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    body = environ["wsgi.input"].read()
    if path.startswith("/big"):
        n = int(environ.get("QUERY_STRING", "n=0").split("=")[1])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunk = b"0123456789abcdef" * 4096
        return (chunk[:min(len(chunk), n - i)] for i in range(0, n, len(chunk)))
    if path == "/sized":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"sized\n"]
    if path == "/teapot":
        start_response("418 I'm a teapot", [("Content-Type", "text/plain"), ("X-Kind", "teapot"),
                                            ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        return [b"short and stout\n"]
    keys = ["REQUEST_METHOD", "REQUEST_URI", "PATH_INFO", "QUERY_STRING", "CONTENT_LENGTH",
            "CONTENT_TYPE", "HTTP_X_CUSTOM", "HTTP_HOST", "SERVER_PROTOCOL", "LEVEL"]
    out = "".join("%s=%s\n" % (k, environ.get(k, "(unset)")) for k in keys).encode()
    out += b"body=%d %d\n" % (len(body), sum(body) % 65521)
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "wsgi")])
    return [out]
'''


def app_dir():
    """A directory the workers (nobody) may read, holding APP: (directory, app.py)."""
    if not os.path.exists(UWSGI):
        pytest.fail("uwsgi is not installed (make deps installs uwsgi-core and uwsgi-plugin-python3)")
    d = tempfile.mkdtemp(prefix="weir-uwsgi-")
    os.chmod(d, 0o755)
    app = os.path.join(d, "app.py")
    with open(app, "w") as f:
        f.write(APP)
    os.chmod(app, 0o644)
    return d, app


def uwsgi(option="--socket"):
    """Debian's uWSGI serving APP on 127.0.0.1 and on a unix socket, its workers run as nobody; option
    names the protocol (--socket: uwsgi, --scgi-socket: SCGI)."""
    d, app = app_dir()
    port = free_port()
    # uWSGI binds its unix socket after it has become nobody: a directory nobody may write to.
    sockets = os.path.join(d, "sockets")
    os.mkdir(sockets)
    os.chmod(sockets, 0o777)
    sock = os.path.join(sockets, "uwsgi.sock")
    return BackendProcess(
        [UWSGI, "--plugin", "python3", option, "127.0.0.1:%d" % port, option, sock,
         "--chmod-socket=666", "--wsgi-file", app, "--master", "--processes", "2", "--uid", "nobody",
         "--gid", "nogroup", "--die-on-term", "--disable-logging"], port, sock, d)


@pytest.fixture(scope="module")
def app():
    a = uwsgi()
    yield a
    a.stop()


CONF = r"""
client_body_buffer_size 8k;
uwsgi_param LEVEL http;
server {
    listen 127.0.0.1:%%PORT%%;
    location / { uwsgi_pass 127.0.0.1:APPPORT; include PARAMS; uwsgi_param LEVEL location; }
    location /nobuf/ { uwsgi_pass uwsgi://127.0.0.1:APPPORT; uwsgi_buffering off; include PARAMS;
                       uwsgi_param PATH_INFO /big; }
    location /unix/ { uwsgi_pass unix:SOCKET; include PARAMS; }
    location /inherit/ { uwsgi_pass 127.0.0.1:APPPORT; }
    location /noheaders/ { uwsgi_pass 127.0.0.1:APPPORT; include PARAMS; uwsgi_pass_request_headers off; }
}
"""


@pytest.fixture(scope="module")
def pair(app):
    conf = CONF.replace("APPPORT", str(app.port)).replace("PARAMS", PARAMS).replace("SOCKET", app.socket)
    yield from weir_and_nginx(conf, {})


REQUESTS = [
    ("GET", "/a/b?x=1", None, {"X-Custom": "custom"}),
    ("POST", "/form", b"name=value", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/upload", bytes(range(256)) * 1200, {"Content-Type": "application/octet-stream"}),
    ("GET", "/big?n=1048576", None, None),
    ("GET", "/nobuf/x?n=1048576", None, None),
    ("GET", "/teapot", None, None),
    ("HEAD", "/a", None, None),
    # The application's Content-Length reaches the client (not chunked).
    ("GET", "/sized", None, None),
    ("HEAD", "/sized", None, None),
    ("GET", "/unix/path", None, None),
    ("GET", "/inherit/", None, {"X-Custom": "c"}),
    ("GET", "/noheaders/", None, {"X-Custom": "c"}),
]


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
        assert b"PATH_INFO=/a/b\nQUERY_STRING=x=1\n" in text and b"HTTP_X_CUSTOM=custom" in text
        assert b"LEVEL=location" in text
    if path == "/upload":
        assert b"body=%d %d\n" % (len(body), sum(body) % 65521) in text
    if "n=1048576" in path:
        assert len(text) == 1048576
    if path == "/teapot":
        assert (status, reason, fields["X-Kind"], cookies) == (418, "I'm a teapot", "teapot", ["a=1", "b=2"])
    if path == "/inherit/":
        assert b"LEVEL=http" in text and b"REQUEST_METHOD=(unset)" in text
    if path == "/noheaders/":
        assert b"HTTP_X_CUSTOM=(unset)" in text


def read_uwsgi_request(c):
    """A uwsgi packet and what follows it: uwsgi_string (the EXTRA var says its length) and the body
    (CONTENT_LENGTH)."""
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack("<H", data[1:3])[0]:
        data += c.recv(65536)
    size = struct.unpack("<H", data[1:3])[0]
    vars_ = parse_vars(data[4:4 + size])
    want = 4 + size + len(vars_.get(b"EXTRA", b"")) + int(vars_.get(b"CONTENT_LENGTH") or 0)
    while len(data) < want:
        more = c.recv(65536)
        if not more:
            break
        data += more
    return data


def parse_vars(data):
    out = {}
    while data:
        klen = struct.unpack("<H", data[:2])[0]
        key = data[2:2 + klen]
        vlen = struct.unpack("<H", data[2 + klen:4 + klen])[0]
        out[key] = data[4 + klen:4 + klen + vlen]
        data = data[4 + klen + vlen:]
    return out


def test_the_packet(make_server):
    backend = ScriptedBackend(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", read_uwsgi_request)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { uwsgi_pass 127.0.0.1:BACKEND;"
                        " uwsgi_param CONTENT_LENGTH $content_length; uwsgi_param EXTRA xtra;"
                        " uwsgi_param EMPTY $http_x_none if_not_empty; uwsgi_modifier1 30;"
                        " uwsgi_modifier2 7; uwsgi_string \"xtra\"; } }"
                        .replace("BACKEND", str(backend.port)))
        r = http_get(s.port, "/p", method="POST", body=b"0123456789", headers={"X-Custom-Field": "v"})
        assert r.status == 200 and r.body == b"ok"
        packet = backend.requests[0]
        size = struct.unpack("<H", packet[1:3])[0]
        assert packet[0] == 30 and packet[3] == 7
        vars_ = parse_vars(packet[4:4 + size])
        assert vars_[b"CONTENT_LENGTH"] == b"10" and vars_[b"HTTP_X_CUSTOM_FIELD"] == b"v"
        assert b"EMPTY" not in vars_
        # uwsgi_string after the vars, then the body.
        assert packet[4 + size:] == b"xtra0123456789"
    finally:
        backend.close()


@pytest.mark.parametrize("answer,status,message", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, None),
    (b"not http at all\r\n\r\n", 502, "upstream sent invalid status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", 502, "upstream prematurely closed connection"),
])
def test_answers(make_server, answer, status, message):
    backend = ScriptedBackend(answer, read_uwsgi_request)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { uwsgi_pass 127.0.0.1:BACKEND; } }"
                        .replace("BACKEND", str(backend.port)))
        assert http_get(s.port, "/").status == status
        if message:
            wait_for(lambda: message in s.error_log(), what=message)
    finally:
        backend.close()


@pytest.mark.parametrize("directive,message", [
    ("uwsgi_pass 127.0.0.1;", 'no port in upstream "127.0.0.1"'),
    ("uwsgi_pass http://127.0.0.1:9000;", 'invalid host in upstream "http://127.0.0.1:9000"'),
    ("uwsgi_param A b c;", 'invalid parameter "c"'),
])
def test_configuration_errors_as_nginx(directive, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { %s } }" % directive)
        assert rc == 1 and message in err, (binary, err)


CACHE_CONF = r"""
uwsgi_cache_path %%DIR%%/ucache levels=1:2 keys_zone=wsgi:1m;
add_header X-Cache $upstream_cache_status always;
server {
    listen 127.0.0.1:%%PORT%%;
    location / {
        uwsgi_pass 127.0.0.1:APPPORT;
        include PARAMS;
        uwsgi_cache wsgi;
        uwsgi_cache_key $request_uri;
        uwsgi_cache_valid 200 10m;
    }
}
"""


def test_uwsgi_cache_beside_nginx(app):
    """uwsgi_cache: a WSGI answer (1 MiB spilled to the temp file, a sized one) is kept and sent again
    whole; one with Set-Cookie is not kept; a 418 proxy_cache_valid does not name is not kept."""
    conf = CACHE_CONF.replace("APPPORT", str(app.port)).replace("PARAMS", PARAMS)
    servers = weir_and_nginx(conf, {})
    try:
        for s in next(servers):
            for path, kept in (("/big?n=1048576", True), ("/sized", True), ("/a?x=1", True),
                               ("/teapot", False)):
                first, second = (http_get(s.port, path) for _ in range(2))
                assert (first.header("X-Cache"), second.header("X-Cache")) == \
                    ("MISS", "HIT" if kept else "MISS"), (s.name, path)
                assert first.status == second.status and first.body == second.body
            assert len(http_get(s.port, "/big?n=1048576").body) == 1048576
    finally:
        for _ in servers:  # stops both, checks weir clean
            pass


@pytest.fixture(scope="module")
def tls_app():
    """Debian's uWSGI serving APP over TLS (--suwsgi-socket) with a self-signed certificate for
    localhost; the certificate is the one the proxies trust."""
    d, app = app_dir()
    crt, key = make_certificate(d, "app")
    port = free_port()
    a = BackendProcess(
        [UWSGI, "--plugin", "python3", "--suwsgi-socket", "127.0.0.1:%d,%s,%s" % (port, crt, key),
         "--wsgi-file", app, "--master", "--processes", "2", "--uid", "nobody", "--gid", "nogroup",
         "--die-on-term", "--disable-logging"], port, None, d)
    a.crt = crt
    yield a
    a.stop()


TLS_CONF = r"""
server {
    listen 127.0.0.1:%%PORT%%;
    include PARAMS;
    location / { uwsgi_pass suwsgi://127.0.0.1:APPPORT; }
    location /var/ { set $up suwsgi://127.0.0.1:APPPORT; uwsgi_pass $up; }
    location /verified/ { uwsgi_pass suwsgi://127.0.0.1:APPPORT; uwsgi_ssl_verify on;
                          uwsgi_ssl_trusted_certificate CRT; uwsgi_ssl_name localhost;
                          uwsgi_ssl_server_name on; uwsgi_ssl_session_reuse off; }
    location /wrong-name/ { uwsgi_pass suwsgi://127.0.0.1:APPPORT; uwsgi_ssl_verify on;
                            uwsgi_ssl_trusted_certificate CRT; }
}
"""


@pytest.fixture(scope="module")
def tls_pair(tls_app):
    conf = (TLS_CONF.replace("APPPORT", str(tls_app.port)).replace("PARAMS", PARAMS)
            .replace("CRT", tls_app.crt))
    yield from weir_and_nginx(conf, {})


@pytest.mark.parametrize("path", ["/a?x=1", "/var/b", "/verified/c", "/wrong-name/d"])
def test_uwsgi_over_tls_as_nginx(tls_pair, path):
    weir, nginx = tls_pair
    w, n = (parity_answer(s.port, path) for s in tls_pair)
    assert w == n
    if path != "/wrong-name/d":
        assert w[0][0] == "HTTP/1.1 200 OK" and b"REQUEST_URI=%s\n" % path.encode() in w[1]
    else:
        assert w[0][0] == "HTTP/1.1 502 Bad Gateway"
        assert "upstream SSL certificate does not match \"127.0.0.1\"" in weir.error_log()
