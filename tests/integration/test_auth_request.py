"""auth_request (#10): access decided by a subrequest to a proxied auth service (a scripted backend):
2xx lets the request through with auth_request_set's variables from the service's headers, 401
passes the service's WWW-Authenticate, 403 denies, anything else is a 500 with nginx's log line -
answered as Debian's nginx answers; the service sees the original request's headers but no body."""
import pytest

from backend import Backend, response
from conftest import raw, wait_for, weir_and_nginx


@pytest.fixture(scope="module")
def backend():
    with Backend() as b:
        yield b


def conf(port):
    return r"""
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        root %%%%DIR%%%%/html;
        location = /auth { internal; proxy_pass http://127.0.0.1:%d;
                           proxy_pass_request_body off; proxy_set_header Content-Length "";
                           proxy_set_header X-Original-URI $request_uri; }
        location /app/ { auth_request /auth;
                         auth_request_set $user $upstream_http_x_user;
                         add_header X-User $user; }
        location /open/ { auth_request off; }
    }
    """ % port


class Service:
    """The auth service's answer for each credential it gets (the Authorization header)."""
    ANSWERS = {
        "good": response(200, b"", {"X-User": "alice"}),
        "nocontent": response(204, b"", {"X-User": "bob"}),
        "login": response(401, b"no", {"WWW-Authenticate": 'Bearer realm="sso"'}),
        "banned": response(403, b"no"),
        "broken": response(500, b"oops"),
        "redirect": response(302, b"", {"Location": "/login"}),
    }


@pytest.fixture(scope="module")
def pair(backend):
    yield from weir_and_nginx(conf(backend.port), {"app/page.html": b"secret\n",
                                                   "open/page.html": b"open\n"})


def ask(port, path, cred=None, body=None):
    req = "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % path
    if cred:
        req += "Authorization: %s\r\n" % cred
    if body:
        req = req.replace("GET", "POST") + "Content-Length: %d\r\n\r\n%s" % (len(body), body)
    else:
        req += "\r\n"
    head, _, data = raw(port, req).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    keep = [l for l in lines if l.startswith(("HTTP/", "WWW-Authenticate", "X-User"))]
    return keep, data if lines[0].endswith("200 OK") else b""


@pytest.mark.parametrize("cred", list(Service.ANSWERS) + [None])
def test_answers_as_nginx(pair, backend, cred):
    weir, nginx = pair
    got = []
    for s in pair:
        backend.scripts.clear()
        if cred is not None:
            backend.script("/auth", [Service.ANSWERS[cred]])
        got.append(ask(s.port, "/app/page.html", cred))
    assert got[0] == got[1]
    if cred in ("good", "nocontent"):
        assert got[0][1] == b"secret\n" and got[0][0][1].startswith("X-User: ")


def test_what_the_service_sees_and_the_log_line(pair, backend):
    weir, nginx = pair
    backend.scripts.clear()
    backend.script("/auth", [Service.ANSWERS["broken"]])
    before = len(backend.requests)
    assert ask(weir.port, "/app/page.html", "broken", body="abc")[0][0].endswith("500 Internal Server Error")
    wait_for(lambda: "auth request unexpected status: 500" in weir.error_log(), what="the log line")
    method, target, headers, body = backend.requests[before]
    headers = {k.lower(): v for k, v in headers.items()}
    assert target == "/auth" and method == "GET" and body == b""
    assert headers.get("x-original-uri") == "/app/page.html"
    assert headers.get("authorization") == "broken"
    assert ask(weir.port, "/open/page.html")[1] == b"open\n"
