"""add_header, expires and add_trailer (#9, the headers filter), every answer compared with Debian's
nginx on the same configuration and files: the header lines in order (Date and Server masked,
Expires given as its distance from Date, since the two servers answer in different seconds), the
body, and a chunked response's trailers. Also the load-time errors, in nginx's words."""
import email.utils
import os
import subprocess
import time

import pytest

from conftest import NGINX, WEIR, raw, check_conf, unname_server, wait_for, weir_and_nginx

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        add_header X-Server srv;
        add_header X-Always yes always;
        add_header X-Empty "";
        location / { }
        location /own/ { add_header X-Own "own $uri"; alias %%DIR%%/html/; }
        location = /e/1h { expires 1h; return 200 "x"; }
        location = /e/neg { expires -1; return 200 "x"; }
        location = /e/zero { expires 0; return 200 "x"; }
        location = /e/epoch { expires epoch; return 200 "x"; }
        location = /e/max { expires max; return 200 "x"; }
        location = /e/off { expires off; return 200 "x"; }
        location = /e/daily { expires @3h30m; return 200 "x"; }
        location = /e/plus { expires +2d; return 200 "x"; }
        location = /e/mod-noLM { expires modified 1h; return 200 "x"; }
        location /mod/ { expires modified +1h; alias %%DIR%%/html/; }
        location /modpast/ { expires modified 1d; alias %%DIR%%/html/; }
        location = /e/var { set $e 2h; expires $e; return 200 "x"; }
        location = /e/varbad { set $e bogus; expires $e; return 200 "x"; }
        location = /e/varepoch { set $e epoch; expires $e; return 200 "x"; }
        location = /e/404 { expires 1h; return 404; }
        location = /e/cc { expires 1h; add_header Cache-Control public; return 200 "x"; }
        location = /fast { expires 1h; add_header X-Frame-Options SAMEORIGIN; add_header X-Empty "";
                           return 200 "f"; }
        location /fastfile/ { expires 2h; add_header X-F f; add_header X-G g; alias %%DIR%%/html/; }
        location /fastup/ { expires 2h; add_header X-F f; proxy_pass http://127.0.0.1:%%PORT%%/src/; }
        location /lm/ { add_header Last-Modified ""; add_header ETag '"mine"'; alias %%DIR%%/html/; }
        location /lm2/ { add_header Last-Modified "Tue, 01 Jan 2030 00:00:00 GMT"; alias %%DIR%%/html/; }
        location = /redirect { return 302 /there; }
        location = /teapot { return 418 "tea"; }
        location = /err { return 500; }
        location /src/ { add_header Cache-Control no-store; add_header Cache-Control private;
                         add_header Expires "Thu, 01 Jan 2015 00:00:00 GMT"; return 200 "src"; }
        location /up/ { proxy_pass http://127.0.0.1:%%PORT%%/src/; expires 30m; }
        location /iff { if ($arg_x) { add_header X-If yes; } add_header X-Loc loc; return 200 "i"; }
        location = /trailer { add_trailer X-Trailer "t $uri"; add_trailer X-Never ""; return 200 "body"; }
        location = /trailer404 { add_trailer X-T t; add_trailer X-TA ta always; return 404 "no"; }
    }
"""

FILES = {"index.html": "index\n", "a.txt": "a text\n"}
MTIME = 1700000000  # the same Last-Modified (and ETag) on both servers

PATHS = ["/", "/a.txt", "/missing", "/own/a.txt", "/e/1h", "/e/neg", "/e/zero", "/e/epoch",
         "/e/max", "/e/off", "/e/daily", "/e/plus", "/e/mod-noLM", "/mod/a.txt", "/modpast/a.txt",
         "/e/var", "/e/varbad", "/e/varepoch", "/e/404", "/e/cc", "/fast", "/fastfile/a.txt", "/fastfile/missing", "/fastup/x",
         "/lm/a.txt", "/lm2/a.txt",
         "/redirect", "/teapot", "/err", "/up/x", "/iff", "/iff?x=1", "/trailer", "/trailer404"]


def answer(port, path, version="1.1"):
    """The status line, the header lines in order (masked as the module says) and the body."""
    out = raw(port, "GET %s HTTP/%s\r\nHost: localhost\r\nConnection: close\r\n\r\n"
              % (path, version))
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    date = None
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        if k.lower() == "date":
            date = email.utils.parsedate_to_datetime(v)
    shown = [lines[0]]
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        if k.lower() in ("date", "server"):
            continue
        if k.lower() == "expires" and date is not None and v.endswith(" GMT") and \
                not v.startswith("Thu, 01 Jan 1970") and not v.startswith("Thu, 31 Dec 2037"):
            # Fixed by the file's time for `modified`; else measured from now.
            if path not in ("/mod/a.txt", "/modpast/a.txt"):
                v = "now%+d" % (email.utils.parsedate_to_datetime(v) - date).total_seconds()
        v = v.replace(":%d/" % port, ":PORT/")
        shown.append("%s: %s" % (k, v))
    return unname_server(shown, body)


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, mtime=MTIME)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    head, _ = answer(weir.port, "/e/1h")
    assert "Expires: now+3600" in head and "Cache-Control: max-age=3600" in head
    assert "X-Server: srv" in head and "X-Always: yes" in head
    assert not any(h.startswith("X-Empty") for h in head)
    head, _ = answer(weir.port, "/own/a.txt")
    assert "X-Own: own /own/a.txt" in head and "X-Server: srv" not in head  # replaced, not merged
    head, _ = answer(weir.port, "/missing")
    assert "X-Always: yes" in head and "X-Server: srv" not in head  # 404: only `always`
    head, _ = answer(weir.port, "/up/x")
    assert head.count("Cache-Control: max-age=1800") == 1
    assert not any("no-store" in h or "private" in h for h in head)
    head, body = answer(weir.port, "/trailer")
    assert "Transfer-Encoding: chunked" in head
    assert body == b"4\r\nbody\r\n0\r\nX-Trailer: t /trailer\r\n\r\n"
    _, body = answer(weir.port, "/trailer404")
    assert body.endswith(b"0\r\nX-TA: ta\r\n\r\n")
    head, body = answer(weir.port, "/trailer", version="1.0")
    assert body == b"body" and "Content-Length: 4" in head  # HTTP/1.0: no chunks, no trailers


# Constant add_header lines with `expires <time>` are made at load and copied per response: the
# copy must be what variables, the HTTP/2 header filter and a response's own lines see.
LINES_CONF = r"""
    log_format lines '$sent_http_expires|$sent_http_cache_control|$sent_http_x_frame_options';
    server {
        listen 127.0.0.1:%%PORT%% http2;
        access_log logs/lines.log lines;
        location = /fast { expires 1h; add_header X-Frame-Options SAMEORIGIN; add_header X-E "";
                           return 200 "f"; }
        location /src/ { add_header Cache-Control no-store; return 200 "s"; }
        location /up/ { expires 30m; add_header X-Frame-Options DENY;
                        proxy_pass http://127.0.0.1:%%PORT%%/src/; }
    }
"""


def test_constant_lines_seen_by_variables_and_http2(make_server):
    s = make_server(LINES_CONF)
    head, _ = answer(s.port, "/fast")
    assert head[1:] == ["Content-Type: text/plain", "Content-Length: 1", "Connection: close",
                        "Expires: now+3600", "Cache-Control: max-age=3600", "X-Frame-Options: SAMEORIGIN"]
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-D", "-",
                          "http://127.0.0.1:%d/fast" % s.port], capture_output=True, check=True)
    h2 = out.stdout.decode().lower()
    assert h2.startswith("http/2 200") and "cache-control: max-age=3600" in h2
    assert "x-frame-options: sameorigin" in h2 and "expires: " in h2 and "x-e:" not in h2
    head, _ = answer(s.port, "/up/x")
    assert head.count("Cache-Control: max-age=1800") == 1 and "X-Frame-Options: DENY" in head
    log = s.path("logs/lines.log")
    wait_for(lambda: os.path.exists(log) and len(open(log).readlines()) >= 4, what="log lines")
    lines = [line.split("|") for line in open(log).read().splitlines()]
    fast = [line for line in lines if line[2] == "SAMEORIGIN"]
    assert len(fast) == 2 and all(line[1] == "max-age=3600" for line in fast)
    for line in fast:
        at = email.utils.parsedate_to_datetime(line[0]).timestamp()
        assert abs(at - time.time() - 3600) < 60
    assert ["max-age=1800", "DENY"] in [line[1:] for line in lines]


@pytest.mark.parametrize("directive,error", [
    ("expires 1x;", '"expires" directive invalid value'),
    ("expires modified @1h;", '"expires" directive daily time cannot be used with "modified" parameter'),
    ("expires @25h;", '"expires" directive daily time value must be less than 24 hours'),
    ("expires later 1h;", '"expires" directive invalid value'),
    ("expires 1h; expires 2h;", '"expires" directive is duplicate'),
    ("add_header X y sometimes;", 'invalid parameter "sometimes"'),
    ("add_header X;", 'invalid number of arguments in "add_header" directive'),
])
def test_load_errors_as_nginx(directive, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; location / { " +
                            directive + " } }")
        assert rc != 0 and "[emerg]" in err and error + " in " in err, (binary, err)
        assert "nginx.conf:" in err
