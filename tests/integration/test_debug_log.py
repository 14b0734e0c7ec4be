"""The debug log (#13): `error_log ... debug` writes [debug] lines in nginx's words for what a request goes
through. Beside Debian's nginx (built --with-debug) on the same configuration and requests, the lines a
user reads (request line, URI parts, headers, the location used, internal redirects, the file served, the
request sent upstream and the upstream's status and headers, finalization and closing) come the same, in
the same order, request by request. Only at the debug level, only for the connections debug_connection
names, only into the error log of the location whose error_log is at debug, and following a reload."""
import re
import signal
import socket

import pytest

from conftest import NGINX, WEIR, http_get, raw, wait_for

CONF = r"""
server {
    listen 127.0.0.1:%%PORT0%%;
    location / { }
    location /r { rewrite ^/r(.*)$ /$1 last; }
    location /p/ { proxy_pass http://127.0.0.1:%%PORT1%%/; }
    location = /exact { return 204; }
}
server { listen 127.0.0.1:%%PORT1%%; location / { return 200 "origin"; } }
"""

REQUESTS = ["/", "/rindex.html?x=1", "/p/up?a=1", "/exact", "/nothere", "/index.html"]

# The lines compared with nginx's. Left out: weir walks its locations in its own order ("test location"),
# and nginx's event, timer and allocator lines.
COMPARED = ("accept:", "http wait request handler", "http process request line", "http request line:",
            "http uri:", "http args:", "http exten:", "http header:", "http header done",
            "using configuration", "http cl:", "internal redirect:", "open index", "http filename:",
            "http init upstream", "http proxy header", "http proxy status", "http upstream process header",
            "finalize http upstream request", "close http upstream connection", "http finalize request:",
            "set http keepalive handler", "http close request", "http log handler", "close http connection",
            "HTTP/1.1 ")

LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[debug\] \d+#\d+: (?:\*(\d+) )?(.*)$")


def debug_conf(s, level="debug", events=""):
    """The server's configuration with its error log at this level (conftest's is at info)."""
    text = s.conf_text.replace("error_log %s/logs/error.log info;" % s.dir,
                               "error_log %s/logs/error.log %s;" % (s.dir, level))
    return text.replace("events { ", "events { " + events, 1)


def debug_lines(text):
    """[debug] messages by connection number; a multi-line message (the response header) is joined."""
    conns = {}
    cur = None
    for line in text.removesuffix("\n").split("\n"):
        m = LINE.match(line)
        if m:
            cur = conns.setdefault(m.group(1), []) if m.group(1) else None
            if cur is not None:
                cur.append(m.group(2))
        elif not re.match(r"^\d{4}/", line) and cur is not None and cur:
            cur[-1] += "\n" + line
    return conns


def normalized(s, msg):
    msg = msg.replace(s.dir, "DIR").replace("\r", "")
    msg = re.sub(r"fd:\d+", "fd:N", msg)
    msg = re.sub(r"(close http (upstream )?connection): \d+", r"\1: N", msg)
    msg = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", msg)
    msg = re.sub(r"(Server|server): (weir|nginx)/[\d.]+", r"\1: SERVER", msg)
    msg = re.sub(r"(Date|Last-Modified): [^\n\"]*", r"\1: DATE", msg)
    msg = re.sub(r'ETag: "[^"]*"', "ETag: ETAG", msg)
    if msg.startswith("HTTP/1.1 4"):  # the error page names the server
        msg = re.sub(r"Content-Length: \d+", "Content-Length: N", msg)
    return msg


def by_request(s):
    """For each client connection (named by its request line): the compared lines, normalized."""
    out = {}
    for lines in debug_lines(s.error_log()).values():
        req = [l for l in lines if l.startswith("http request line:")]
        if not req:
            continue
        out[req[0]] = [normalized(s, l) for l in lines if l.startswith(COMPARED)]
    return out


@pytest.fixture
def pair(make_server):
    servers = []
    for binary in (WEIR, NGINX):
        s = make_server(CONF, binary=binary, ports=2, start=False)
        s.write("index.html", "hello\n")
        s.set_conf(debug_conf(s))
        s.start()
        servers.append(s)
    return servers


def test_a_request_reads_as_in_nginx_debug_log(pair):
    for s in pair:
        for path in REQUESTS:
            http_get(s.port, path)
        # The last connection's close is written after its answer.
        wait_for(lambda: sum("close http connection" in l
                             for l in s.error_log().splitlines()) >= len(REQUESTS) + 1,
                 what="every connection closed")
    weir, nginx = (by_request(s) for s in pair)
    assert set(weir) == set(nginx) and len(weir) == len(REQUESTS) + 1  # the proxied request's origin side
    for req in nginx:
        assert weir[req] == nginx[req], req
    # What they show, spelled out for one request of each kind.
    redirect = weir['http request line: "GET /rindex.html?x=1 HTTP/1.1"']
    assert 'using configuration "/r"' in redirect and 'http filename: "DIR/html/index.html"' in redirect
    assert 'http uri: "/rindex.html"' in redirect and 'http args: "x=1"' in redirect
    proxied = weir['http request line: "GET /p/up?a=1 HTTP/1.1"']
    assert ('http proxy header:\n"GET /up?a=1 HTTP/1.0\nHost: 127.0.0.1:PORT\nConnection: close\n\n"'
            in proxied)
    assert 'http proxy status 200 "200 OK"' in proxied and "http proxy header done" in proxied
    assert "finalize http upstream request: 0" in proxied
    static = weir['http request line: "GET /index.html HTTP/1.1"']
    assert any(l.startswith("HTTP/1.1 200 OK\nServer: SERVER\n") and "Content-Length: 6\n" in l
               for l in static)
    assert static[-1] == "close http connection: N"
    # A debug line carries no context, as nginx's: no "while ...", no ", client: ...".
    for line in pair[0].error_log().splitlines():
        if "[debug]" in line:
            assert " while " not in line and ", client: " not in line, line


def test_keepalive_and_phases(make_server):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { set $x 1; } }", start=False)
    s.write("a", "a file\n")
    s.set_conf(debug_conf(s))
    s.start()
    c = socket.create_connection(("127.0.0.1", s.port))
    try:
        for _ in range(2):
            c.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        c.close()
    wait_for(lambda: "close http connection" in s.error_log(), what="the close")
    lines = debug_lines(s.error_log())["1"]
    assert lines.count("set http keepalive handler") == 2 and lines.count("http keepalive handler") == 2
    assert lines.count('http request line: "GET /a HTTP/1.1"') == 2
    assert any(l.startswith("rewrite phase: ") for l in lines)
    assert any(l.startswith("content phase: ") for l in lines)
    assert any(l.startswith("post rewrite phase: ") for l in lines)
    assert 'test location: "/"' in lines and lines.count('http filename: "%s/html/a"' % s.dir) == 2


def test_no_rewrite_phases_without_rewrite_directives(make_server):
    # With no rewrite, return, set, if or break anywhere, the rewrite module's handler is not in
    # the phases at all (nginx's would run and decline): no rewrite or post-rewrite step.
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { } }", start=False)
    s.write("a", "a file\n")
    s.set_conf(debug_conf(s))
    s.start()
    assert http_get(s.port, "/a").status == 200
    wait_for(lambda: "close http connection" in s.error_log(), what="the close")
    lines = debug_lines(s.error_log())["1"]
    assert any(l.startswith("content phase: ") for l in lines)
    assert not any(l.startswith("rewrite phase: ") or l.startswith("post rewrite phase: ")
                   for l in lines), lines


def test_no_debug_lines_below_debug(make_server):
    s = make_server(CONF, ports=2)
    for path in REQUESTS:
        http_get(s.port, path)
    wait_for(lambda: "/nothere" in s.error_log(), what="the 404's line")
    assert "[debug]" not in s.error_log()


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_debug_connection_names_whose_lines_are_written(make_server, binary):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { return 200 x; } }", binary=binary,
                    start=False)
    s.set_conf(debug_conf(s, "error", "debug_connection 127.0.0.3; "))
    s.start()
    for source in ("127.0.0.2", "127.0.0.3"):
        assert raw(s.port, b"GET /" + source.encode() + b" HTTP/1.0\r\n\r\n",
                   source=source).startswith(b"HTTP/1.1 200 ")
    wait_for(lambda: "close http connection" in s.error_log(), what="the named client's close")
    conns = debug_lines(s.error_log())
    assert list(conns) == ["2"], conns.keys()
    assert 'http request line: "GET /127.0.0.3 HTTP/1.0"' in conns["2"]
    assert "127.0.0.2" not in s.error_log()


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_a_location_error_log_at_debug(make_server, binary):
    conf = ("server { listen 127.0.0.1:%%PORT%%; location / { return 200 x; }"
            " location /dbg/ { error_log %%DIR%%/logs/dbg.log debug; return 200 y; } }")
    s = make_server(conf, binary=binary)
    assert http_get(s.port, "/dbg/a").body == b"y"
    assert http_get(s.port, "/other").body == b"x"
    wait_for(lambda: "http finalize request" in open(s.path("logs/dbg.log")).read(),
             what="the location's debug lines")
    dbg = open(s.path("logs/dbg.log")).read()
    # Lines from the location's configuration on, for its request only.
    assert 'http finalize request: 200, "/dbg/a?"' in dbg or 'http finalize request: 0, "/dbg/a?"' in dbg
    assert "/other" not in dbg
    assert "[debug]" not in s.error_log()


def test_reload_turns_the_debug_log_on_and_off(make_server):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { return 200 x; } }")
    info = s.conf_text

    def reload_to(text, generation):
        s.set_conf(text)
        old = set(s.worker_pids())
        s.send_signal(signal.SIGHUP)
        wait_for(lambda: s.worker_pids() and not set(s.worker_pids()) & old, what="new workers")
        assert http_get(s.port, "/gen%d" % generation).status == 200

    assert http_get(s.port, "/gen0").status == 200
    reload_to(debug_conf(s), 1)
    wait_for(lambda: 'http request line: "GET /gen1 HTTP/1.1"' in s.error_log(), what="debug lines")
    # A request's line is written before its answer: had the debug log stayed on, it would be there.
    reload_to(info, 2)
    assert "/gen2" not in s.error_log() and "/gen0" not in s.error_log()
