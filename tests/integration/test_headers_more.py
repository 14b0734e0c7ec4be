"""headers-more (more_set_headers, more_clear_headers, more_set_input_headers, more_clear_input_headers)
beside Debian's nginx with its libnginx-mod-http-headers-more-filter loaded: the same configuration and
requests, the answers' header lines and bodies compared (Date masked unless a case sets it)."""
import os
import re
import subprocess

import pytest

from conftest import NGINX, WEIR, check_conf, raw

MODULE = "/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so"
LOAD = "load_module %s;" % MODULE

CONF = """
    charset_types text/plain;
    more_set_headers 'X-Level: http';
    server { listen 127.0.0.1:%%PORT1%%;
             location / { add_header X-Hidden-A a; add_header X-Hidden-B b; add_header X-Shown s;
                          add_header Cache-Control "no-cache"; add_header Cache-Control "private";
                          return 200 "backend\\n"; } }
    server {
        listen 127.0.0.1:%%PORT0%%;
        root %%DIR%%/html;
        more_set_headers 'X-Server-Level: yes';
        location = /server { more_set_headers 'Server: my_server'; }
        location = /noserver { more_clear_headers Server Date; }
        location = /several { more_set_headers 'X-Foo: bar' 'X-Uri: $uri?$args' 'X-Foo: baz'; }
        location = /forms { add_header X-A 1; more_set_headers 'X-Empty:' 'X-Bare' '  X-Sp  :  v w  '; }
        location /s404 { more_set_headers -s 404 'X-Err: yes'; more_set_headers -s '200 301' 'X-Ok: yes'; }
        location /types { more_set_headers -t 'text/html' 'X-Html: 1'; more_set_headers -t 'text/plain;application/json' 'X-Text: 1'; }
        location /proxied { proxy_pass http://127.0.0.1:%%PORT1%%/; more_clear_headers 'X-Hidden-*' Cache-Control; }
        location /cc { proxy_pass http://127.0.0.1:%%PORT1%%/; more_set_headers 'Cache-Control: max-age=5'; }
        location = /ctype.txt { more_set_headers 'Content-Type: text/foo; charset="latin1"'; }
        location = /ctype2.txt { more_set_headers 'Content-Type: application/x-thing'; }
        location = /noctype.txt { more_clear_headers Content-Type; }
        location = /nolen.txt { more_clear_headers Content-Length; }
        location = /len.txt { more_set_headers 'Content-Length: 3'; }
        location = /validators.txt { more_clear_headers Last-Modified ETag Accept-Ranges; }
        location = /lm.txt { more_set_headers 'Last-Modified: Mon, 01 Jan 2001 00:00:00 GMT' 'ETag: "x"'; }
        location = /redirect { more_set_headers 'Location: /elsewhere'; return 301 /there; }
        location = /www { more_set_headers -s 401 'WWW-Authenticate: Basic realm="x"'; return 401; }
        location = /date { more_set_headers 'Date: yesterday'; }
        location = /enc.txt { more_set_headers 'Content-Encoding: identity'; }
        location = /if { if ($arg_x) { more_set_headers 'X-If: $arg_x'; } }
        location = /expires.txt { expires 1h; more_set_headers 'Cache-Control: public' 'Expires: never'; }
    }
"""

REQUESTS = [
    "GET /server HTTP/1.1", "GET /noserver HTTP/1.1", "GET /several?a=1 HTTP/1.1", "GET /forms HTTP/1.1",
    "GET /s404 HTTP/1.1", "GET /s404/nothere HTTP/1.1", "GET /s404/x.txt HTTP/1.1", "GET /types/a.html HTTP/1.1", "GET /types/a.txt HTTP/1.1",
    "GET /types/a.json HTTP/1.1", "GET /types/a.bin HTTP/1.1", "GET /proxied HTTP/1.1", "GET /cc HTTP/1.1",
    "GET /ctype.txt HTTP/1.1", "GET /ctype2.txt HTTP/1.1", "GET /noctype.txt HTTP/1.1", "GET /nolen.txt HTTP/1.1",
    "GET /len.txt HTTP/1.1", "GET /validators.txt HTTP/1.1", "GET /lm.txt HTTP/1.1", "GET /redirect HTTP/1.1",
    "GET /www HTTP/1.1", "GET /date HTTP/1.1", "GET /enc.txt HTTP/1.1", "GET /if?x=7 HTTP/1.1", "GET /if HTTP/1.1",
    "GET /expires.txt HTTP/1.1", "HEAD /server HTTP/1.1", "GET /missing HTTP/1.1",
]

FILES = {"s404/x.txt": "x\n", "types/a.html": "<p>h</p>\n", "types/a.txt": "t\n", "types/a.json": "{}\n",
         "types/a.bin": "b\n", "ctype.txt": "c\n", "ctype2.txt": "c\n", "noctype.txt": "c\n",
         "nolen.txt": "no length here\n", "len.txt": "abcdef\n", "validators.txt": "v\n", "lm.txt": "l\n",
         "date": "d\n", "enc.txt": "e\n", "if": "i\n", "expires.txt": "x\n", "server": "s\n", "noserver": "n\n",
         "several": "s\n", "forms": "f\n"}


def answer_lines(port, line, ports):
    out = raw(port, line + "\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    lines = []
    for l in head.decode("latin-1").split("\r\n"):
        low = l.lower()
        if low.startswith("date:") and "yesterday" not in low:
            continue  # the clock's
        if low.startswith("last-modified:") and "2001" not in low:
            continue  # the files were written at different moments
        if low.startswith("etag:") and '"x"' not in low:
            continue
        if low.startswith("expires:") and "never" not in low:
            continue
        if low.startswith("server:"):
            l = re.sub(r"(weir|nginx)(/[\d.]+)?", "SERVER", l)
        for i, p in enumerate(ports):
            l = l.replace(":%d" % p, ":PORT%d" % i)
        lines.append(l)
    if re.search(rb"<center>(weir|nginx)", body):  # an error page: its length has the server's name
        lines = [l for l in lines if not l.lower().startswith("content-length:")]
    return lines, re.sub(rb"(weir|nginx)(/[\d.]+)?", b"SERVER", body)


def test_more_set_and_clear_headers_as_nginx(make_server):
    assert os.path.exists(MODULE), "libnginx-mod-http-headers-more-filter is not installed"
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(CONF, main_conf=LOAD, binary=binary, ports=2, files=FILES)
        seen[binary] = [answer_lines(s.port, r, s.ports) for r in REQUESTS]
    for i, r in enumerate(REQUESTS):
        assert seen[WEIR][i] == seen[NGINX][i], (r, seen[WEIR][i], seen[NGINX][i])
    by = dict(zip(REQUESTS, seen[WEIR]))
    assert "Server: my_server" in by["GET /server HTTP/1.1"][0]
    assert not any(l.lower().startswith(("server:", "date:")) for l in by["GET /noserver HTTP/1.1"][0])
    assert "X-Err: yes" in by["GET /s404/nothere HTTP/1.1"][0] and "X-Ok: yes" in by["GET /s404/x.txt HTTP/1.1"][0]
    assert not any(l.startswith("X-Hidden") for l in by["GET /proxied HTTP/1.1"][0])
    assert by["GET /server HTTP/1.1"][0].index("X-Level: http") < by["GET /server HTTP/1.1"][0].index(
        "X-Server-Level: yes")


@pytest.mark.parametrize("directive, message", [
    ("more_set_headers -x 'A: b';", 'more_set_headers: invalid option name: "-x"'),
    ("more_set_headers -s;", "more_set_headers: option -s takes an argument."),
    ("more_set_headers -s '200 2x' 'A: b';", 'more_set_headers: invalid digit "x" found in the status code list "200 2x"'),
    ("more_clear_headers '*';", "more_clear_headers: wildcard key too short: *"),
    ("more_set_headers '   ';", "more_set_headers: no key found in the header argument:    "),
    ("more_set_headers 'A: $nosuchvar';", 'unknown "nosuchvar" variable'),
    ("more_set_input_headers -s 200 'A: b';", 'more_set_input_headers: invalid option name: "-s"'),
    ("more_clear_input_headers -t;", "more_clear_input_headers: option -t takes an argument."),
    ("more_set_input_headers -r -t 'text/plain' 'A: b';", None),
])
def test_load_errors_as_nginx(directive, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, full_conf="%s events {} http { server { listen 127.0.0.1:1; %s } }"
                             % (LOAD, directive))
        if message is None:
            assert rc == 0, (binary, err)
        else:
            assert rc != 0 and message in err, (binary, err)


def test_clearing_an_absent_cache_control(make_server):
    """more_clear_headers Cache-Control on a response that has none: the module (0.34, on nginx
    before 1.23) writes an empty "Cache-Control: " line; weir writes none."""
    conf = "server { listen 127.0.0.1:%%PORT%%; root %%DIR%%/html; more_clear_headers Cache-Control; }"
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(conf, main_conf=LOAD, binary=binary, files={"a.txt": "a\n"})
        seen[binary] = [l for l in answer_lines(s.port, "GET /a.txt HTTP/1.1", s.ports)[0]
                        if l.lower().startswith("cache-control")]
    assert seen == {NGINX: ["Cache-Control: "], WEIR: []}


INPUT_CONF = """
    server { listen 127.0.0.1:%%PORT1%%;
             location / { return 200 "foo=$http_x_foo rep=$http_x_rep hidden=$http_x_hidden_a,$http_x_hidden_b ae=$http_accept_encoding host=$http_host json=$http_x_json ua=$http_user_agent uri=$http_x_uri cookie=$http_cookie\\n"; } }
    server {
        listen 127.0.0.1:%%PORT0%%;
        more_set_input_headers 'X-Foo: server';
        location / {
            more_set_input_headers 'X-Foo: bar' 'X-Uri: $uri';
            more_set_input_headers -r 'X-Rep: replaced';
            more_clear_input_headers 'X-Hidden-*' Accept-Encoding;
            more_set_input_headers -t 'application/json' 'X-Json: yes';
            proxy_set_header Host $host;
            proxy_pass http://127.0.0.1:%%PORT1%%/;
            add_header X-Host $host;
            add_header X-Foo-Seen $http_x_foo;
        }
        location /host { more_set_input_headers 'Host: other.example' 'User-Agent: agent/2' 'Cookie: c=1';
                         proxy_set_header Host $host; proxy_pass http://127.0.0.1:%%PORT1%%/; add_header X-Host $host; }
        location /clearhost { more_clear_input_headers Host; proxy_pass http://127.0.0.1:%%PORT1%%/; add_header X-Host $host; }
        location /rewritten { rewrite ^ /x break; more_set_input_headers 'X-Foo: after-rewrite-$uri';
                              proxy_pass http://127.0.0.1:%%PORT1%%; }
    }
"""

INPUT_REQUESTS = [
    "GET /a HTTP/1.1\r\nHost: h\r\n",
    "GET /a HTTP/1.1\r\nHost: h\r\nX-Foo: one\r\nX-Foo: two\r\nX-Rep: old\r\nX-Hidden-A: a\r\nX-Hidden-B: b\r\n"
    "Accept-Encoding: gzip\r\n",
    "POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    "POST /a HTTP/1.1\r\nHost: h\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
    "GET /host HTTP/1.1\r\nHost: h\r\nUser-Agent: agent/1\r\nCookie: a=1\r\nCookie: b=2\r\n",
    "GET /clearhost HTTP/1.1\r\nHost: h\r\n",
    "GET /rewritten HTTP/1.1\r\nHost: h\r\n",
    "GET /a HTTP/1.0\r\nX-Foo: ten\r\n",
]


def test_more_set_and_clear_input_headers_as_nginx(make_server):
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(INPUT_CONF, main_conf=LOAD, binary=binary, ports=2)
        out = []
        for req in INPUT_REQUESTS:
            if "\r\n\r\n" not in req:
                req += "Connection: close\r\n\r\n"
            else:
                req = req.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
            head, _, body = raw(s.port, req).partition(b"\r\n\r\n")
            lines = [l for l in head.decode("latin-1").split("\r\n")
                     if l.lower().startswith(("http/", "x-host", "x-foo-seen"))]
            out.append((lines, body.decode("latin-1").replace(":%d" % s.ports[1], ":PORT1")))
        seen[binary] = out
    for i, req in enumerate(INPUT_REQUESTS):
        assert seen[WEIR][i] == seen[NGINX][i], (req, seen[WEIR][i], seen[NGINX][i])
    first = seen[WEIR][1][1]
    assert "foo=bar " in first and "rep=replaced" in first and "hidden=," in first and "ae= " in first
    assert "X-Host: other.example" in seen[WEIR][4][0]


def test_over_http2_as_nginx(make_server):
    """The same filter and handler serve HTTP/2 streams (h2c here): Server and Date hidden or
    replaced, a type set, input headers changed, as nginx with the module."""
    conf = """server { listen 127.0.0.1:%%PORT1%%; location = /echo { return 200 "in=$http_x_in ua=$http_user_agent\\n"; } }
    server { listen 127.0.0.1:%%PORT0%% http2; root %%DIR%%/html;
      location /a { more_clear_headers Server Date; more_set_headers 'X-A: 1' 'Content-Type: text/x-thing';
                    return 200 "a\\n"; }
      location /b { more_set_headers 'Server: mine' -s 404 'X-Nf: 1'; }
      location /c { more_set_input_headers 'X-In: v'; more_clear_input_headers User-Agent;
                    proxy_pass http://127.0.0.1:%%PORT1%%/echo; }
    }"""
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(conf, main_conf=LOAD, binary=binary, ports=2)
        out = []
        for path in ("/a", "/b/missing", "/c"):
            text = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge", "http://127.0.0.1:%d%s" % (s.port, path)],
                                  capture_output=True, text=True, timeout=20).stdout
            out.append([re.sub(r"(weir|nginx)/[\d.]+", "SERVER", l) for l in text.splitlines()
                        if l and not l.startswith(("date:", "content-length:")) and "<" not in l])
        seen[binary] = out
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][0] == ["HTTP/2 200 ", "content-type: text/x-thing", "x-a: 1", "a"]
    assert "server: mine" in seen[WEIR][1] and "x-nf: 1" in seen[WEIR][1]
    assert seen[WEIR][2][-1] == "in=v ua="


def test_invalid_values_close_as_nginx(make_server):
    """A Content-Length that is no number (more_set_headers) or an invalid Host (more_set_input_headers)
    fails the request as the module fails it: the connection closes with nothing sent; the server
    goes on."""
    conf = """server { listen 127.0.0.1:%%PORT%%; root %%DIR%%/html;
      location /a.txt { more_set_headers 'Content-Length: abc'; }
      location /r { more_set_headers 'Content-Length: -5'; return 200 "x\\n"; }
      location /host { more_set_input_headers 'Host: bad/host'; proxy_pass http://127.0.0.1:%%PORT%%/ok; }
      location /ok { return 200 "ok\\n"; }
    }"""
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(conf, main_conf=LOAD, binary=binary, files={"a.txt": "hello\n"})
        got = [raw(s.port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % p) for p in ("/a.txt", "/r", "/host")]
        got.append(raw(s.port, "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").split(b"\r\n")[0])
        seen[binary] = got
    assert seen[WEIR] == seen[NGINX] == [b"", b"", b"", b"HTTP/1.1 200 OK"], seen
