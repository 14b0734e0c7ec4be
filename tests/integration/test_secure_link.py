"""secure_link (ngx_http_secure_link_module, in Debian's nginx): every answer compared with Debian's
nginx on the same configuration and requests, the hashes made here with Python's hashlib: signed
links with an expiry (valid, expired, a wrong or malformed hash, a bad time), without one, the older
secure_link_secret form (hex in either case, a query string), inheritance, and the load errors."""
import base64
import hashlib
import time

import pytest

from conftest import NGINX, WEIR, check_conf, raw, unname_server, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        secure_link $arg_md5,$arg_expires;
        secure_link_md5 "$secure_link_expires$uri$remote_addr secret";
        location /s/ {
            if ($secure_link = "") { return 403; }
            if ($secure_link = "0") { return 410; }
            return 200 "ok [$secure_link] [$secure_link_expires]\n";
        }
        location /plain/ {
            secure_link $arg_h;
            secure_link_md5 "$uri word";
            return 200 "[$secure_link] [$secure_link_expires]\n";
        }
        location /p/ {
            secure_link_secret segredo;
            if ($secure_link = "") { return 403; }
            return 200 "link [$secure_link]\n";
        }
        location /none/ { secure_link_md5 "x"; return 200 "[$secure_link]\n"; }
    }
"""


def b64(digest, pad=False):
    s = base64.urlsafe_b64encode(digest).decode()
    return s if pad else s.rstrip("=")


def signed(uri, expires, secret="secret", pad=False):
    text = "%s%s127.0.0.1 %s" % (expires, uri, secret)
    return b64(hashlib.md5(text.encode()).digest(), pad)


def requests():
    future, past = int(time.time()) + 3600, int(time.time()) - 10
    good = signed("/s/file", future)
    hexd = hashlib.md5(b"file.zip?x=1segredo").hexdigest()
    return [
        "/s/file?md5=%s&expires=%d" % (good, future),
        "/s/file?md5=%s&expires=%d" % (signed("/s/file", future, pad=True), future),
        "/s/file?md5=%s&expires=%d" % (signed("/s/file", past), past),
        "/s/file?md5=%s&expires=%d" % (good, future + 1),
        "/s/other?md5=%s&expires=%d" % (good, future),
        "/s/file?md5=%s&expires=0" % signed("/s/file", 0),
        "/s/file?md5=%s&expires=12x" % signed("/s/file", "12x"),
        "/s/file?md5=%s*&expires=%d" % (good[:-1], future),
        "/s/file?md5=%sAAAA&expires=%d" % (good, future),
        "/s/file?md5=%s&expires=%d" % (good[:-2], future),
        "/s/file?expires=%d" % future,
        "/s/file",
        "/plain/f?h=%s" % b64(hashlib.md5(b"/plain/f word").digest()),
        "/plain/f?h=%s" % b64(hashlib.md5(b"/plain/g word").digest()),
        "/p/%s/file.zip?x=1" % hexd,
        "/p/%s/file.zip?x=1" % hexd.upper(),
        "/p/%s/file.zip?x=2" % hexd,
        "/p/%s/" % hexd,
        "/p/%s" % hexd,
        "/p/%s0/file.zip?x=1" % hexd,
        "/p/file.zip",
        "/none/x",
    ]


def answer(port, path):
    head, _, body = raw(port, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                        % path).partition(b"\r\n\r\n")
    lines = [l for l in head.decode("latin-1").split("\r\n")
             if not l.lower().startswith(("date:", "server:"))]
    return unname_server(lines, body)


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def test_answers_as_nginx(pair):
    weir, nginx = pair
    for path in requests():
        assert answer(weir.port, path) == answer(nginx.port, path), path


def test_what_the_answers_hold(pair):
    weir, _ = pair
    future, past = int(time.time()) + 3600, int(time.time()) - 10
    status = lambda path: answer(weir.port, path)[0][0]  # noqa: E731
    _, body = answer(weir.port, "/s/file?md5=%s&expires=%d" % (signed("/s/file", future), future))
    assert body == b"ok [1] [%d]\n" % future
    assert "410" in status("/s/file?md5=%s&expires=%d" % (signed("/s/file", past), past))
    assert "403" in status("/s/file?md5=%s&expires=%d" % (signed("/s/file", future), future + 1))
    hexd = hashlib.md5(b"file.zip?x=1segredo").hexdigest()
    assert answer(weir.port, "/p/%s/file.zip?x=1" % hexd)[1] == b"link [file.zip?x=1]\n"
    assert "403" in status("/p/%s/file.zip?x=2" % hexd)


@pytest.mark.parametrize("directives,message", [
    ("location / { secure_link_secret a; secure_link $arg_h; }",
     '"secure_link_secret" cannot be mixed with "secure_link" and "secure_link_md5"'),
    ("location / { secure_link $a; secure_link $b; }", '"secure_link" directive is duplicate'),
    ("location / { secure_link_secret a; secure_link_secret b; }",
     '"secure_link_secret" directive is duplicate'),
    ("location / { secure_link_md5; }", 'invalid number of arguments in "secure_link_md5"'),
])
def test_load_errors_as_nginx(directives, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:1; %s }" % directives)
        assert rc != 0 and message in err, (binary, err)


def test_an_outer_secret_and_an_inner_expression_load_as_nginx():
    conf = ("server { listen 127.0.0.1:1; secure_link_secret a; "
            "location / { secure_link $arg_h; secure_link_md5 x; } }")
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc == 0, (binary, err)
