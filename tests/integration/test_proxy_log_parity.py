"""Upstream faults are logged in nginx's exact words (#16 defect 8): log parsers and fail2ban filters
written for nginx must match weir's lines. Each fault is played by the scripted backend to weir and
to Debian's nginx on the same config, and the error and warn lines are compared whole, past the
time, pid and connection number."""
import re

from backend import Backend, Reset, Send, Sleep
from conftest import NGINX, free_port, raw, wait_for

HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"

SCRIPTS = {
    "/hdr-timeout": [Sleep(3)],
    "/hdr-close": [Send("HTTP/1.1 200 OK\r\nX: y\r\n")],
    "/hdr-reset": [Send("HTTP/1.1 200 OK\r\n"), Sleep(0.1), Reset()],
    "/body-close": [Send(HEAD + "0123456789")],
    "/body-timeout": [Send(HEAD + "0123456789"), Sleep(3)],
    "/nb/body-close": [Send(HEAD + "0123456789"), Sleep(0.2)],  # the close on its own event
    "/nb/body-timeout": [Send(HEAD + "0123456789"), Sleep(3)],
    "/big-header": [Send("HTTP/1.1 200 OK\r\nX-Big: " + "b" * 5000 + "\r\n\r\n")],
    "/too-much": [Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef")],
    "/bad-chunk": [Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")],
}

LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")


def conf(port, gone):
    return """
    upstream dead { server 127.0.0.1:%d max_fails=1 fail_timeout=30s; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             proxy_read_timeout 1s;
             location / { proxy_pass http://127.0.0.1:%d; }
             location /nb/ { proxy_pass http://127.0.0.1:%d; proxy_buffering off; }
             location /refused { proxy_pass http://127.0.0.1:%d; }
             location /dead { proxy_pass http://dead; } }
    """ % (gone, port, port, gone)


def fault_lines(server, path):
    """The error/warn lines the request for path adds to the server's error log."""
    before = len(server.error_log().splitlines())
    raw(server.port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
    if path != "/too-much":
        wait_for(lambda: len(server.error_log().splitlines()) > before, what="a line for " + path)
    lines = []
    for line in server.error_log().splitlines()[before:]:
        m = LINE.match(line)
        if m and m.group(1) in ("error", "warn", "crit", "alert"):
            lines.append("[%s] %s" % (m.group(1), m.group(2)))
    return lines


def test_upstream_faults_are_logged_as_nginx_logs_them(make_server):
    gone = free_port()
    with Backend() as b:
        for path, steps in SCRIPTS.items():
            b.script(path, steps)
        paths = list(SCRIPTS) + ["/refused", "/dead", "/dead"]
        servers = [make_server(conf(b.port, gone)), make_server(conf(b.port, gone), binary=NGINX)]
        logged = {}
        for s in servers:
            logged[s.name] = {p + "#%d" % i: fault_lines(s, p) for i, p in enumerate(paths)}
        differ = ["%s\n  weir:  %s\n  nginx: %s" % (k, logged["weir"][k], logged["nginx"][k])
                  for k in logged["nginx"] if logged["weir"][k] != logged["nginx"][k]]
        assert not differ, "\n".join(differ)
