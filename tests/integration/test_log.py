"""Access logs (combined, custom formats, escape=default|json|none, buffer=/flush=/gzip=, if=, off, variables in
the path) and error logs (levels, per-location error_log, the line format)."""
import json
import re

import pytest

from conftest import NGINX, WEIR, check_conf, http_get, raw, wait_for

LOGS = """
    log_format custom '$remote_addr|$request_method|$uri|$args|$status|$body_bytes_sent|$request_length|$http_x_test';
    log_format js escape=json '{"uri":"$uri","ua":"$http_user_agent","missing":"$http_nope"}';
    log_format raw escape=none '[$http_user_agent]';
    log_format dflt '[$http_user_agent]';
    map_hash_bucket_size 64;
"""


def test_combined_format(make_server):
    s = make_server("""
    server { listen 127.0.0.1:%%PORT%%; location / { } }
    """, files={"f.txt": "12345"})
    http_get(s.port, "/f.txt?x=1", headers={"User-Agent": "tester/1.0", "Referer": "http://ref/"})
    http_get(s.port, "/none")
    wait_for(lambda: s.access_log().count("\n") >= 2, what="two log lines")
    lines = s.access_log().splitlines()
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                        r'"GET /f\.txt\?x=1 HTTP/1\.1" 200 5 "http://ref/" "tester/1\.0"', lines[0]), lines[0]
    assert re.fullmatch(r'.*"GET /none HTTP/1\.1" 404 \d+ "-" "-"', lines[1]), lines[1]


def test_custom_formats_and_escaping(make_server):
    conf = """
    log_format custom '$remote_addr|$request_method|$uri|$args|$status|$body_bytes_sent|$request_length|$http_x_test';
    log_format js escape=json '{"uri":"$uri","ua":"$http_user_agent","missing":"$http_nope"}';
    log_format raw escape=none '[$http_user_agent]';
    log_format dflt '[$http_user_agent]';
    log_format packed '$status$request_method${uri}x' "-$args";
    log_format plain 'no values';
    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/logs/packed.log packed;
        access_log %%DIR%%/logs/plain.log plain;
        access_log %%DIR%%/logs/custom.log custom;
        access_log %%DIR%%/logs/json.log js;
        access_log %%DIR%%/logs/raw.log raw;
        access_log %%DIR%%/logs/dflt.log dflt;
        location / { return 200 "ok"; }
    }
    """
    s = make_server(conf)
    ua = b'bad"ua\\\x01\xc3\xa9\xff'
    raw(s.port, b"GET /p%22q?a=b HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua + b"\r\nX-Test: t\r\nConnection: close\r\n\r\n")
    wait_for(lambda: s.access_log("logs/dflt.log") != "", what="log lines")
    line = open(s.path("logs/custom.log")).read().strip()
    f = line.split("|")
    assert f[:7] == ["127.0.0.1", "GET", "/p\\x22q", "a=b", "200", "2", f[6]] and int(f[6]) > 50 and f[7] == "t"
    dflt = open(s.path("logs/dflt.log"), "rb").read().strip()
    assert dflt == b'[bad\\x22ua\\x5C\\x01\\xC3\\xA9\\xFF]'
    assert open(s.path("logs/raw.log"), "rb").read().strip() == b"[" + ua + b"]"
    # Values back to back, a value right before a literal, and a format of several strings or no values.
    assert open(s.path("logs/packed.log")).read() == "200GET/p\\x22qx-a=b\n"
    assert open(s.path("logs/plain.log")).read() == "no values\n"
    js = open(s.path("logs/json.log"), "rb").read().strip()
    # Valid UTF-8 passes; the lone 0xFF byte is escaped, so the line is valid JSON (nginx writes it raw).
    assert js == b'{"uri":"/p\\"q","ua":"bad\\"ua\\\\\\u0001\xc3\xa9\\u00FF","missing":""}'
    parsed = json.loads(js)
    assert parsed["ua"] == 'bad"ua\\\x01\u00e9\u00ff' and parsed["missing"] == ""


def test_buffer_flush_if_and_off(make_server):
    conf = """
    map_placeholder
    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/logs/buffered.log combined buffer=64k flush=1s;
        access_log %%DIR%%/logs/filtered.log combined if=$arg_log;
        location /off { access_log off; return 200; }
        location / { return 200; }
    }
    """.replace("map_placeholder", "")
    s = make_server(conf)
    http_get(s.port, "/a?log=1")
    http_get(s.port, "/b?log=0")
    http_get(s.port, "/c")
    http_get(s.port, "/off?log=1")
    wait_for(lambda: "GET /a?log=1" in s.access_log("logs/filtered.log"), what="the filtered line")
    # Buffered: nothing yet; written by the flush timer.
    assert s.access_log("logs/buffered.log") == ""
    wait_for(lambda: s.access_log("logs/buffered.log").count("\n") == 3, timeout=5, what="flushed buffer")
    assert "/off" not in s.access_log("logs/buffered.log")
    filtered = s.access_log("logs/filtered.log")
    assert "GET /a?log=1" in filtered and "/b?log=0" not in filtered and "GET /c " not in filtered


def test_buffered_log_written_at_exit(make_server):
    s = make_server("""
    server { listen 127.0.0.1:%%PORT%%; access_log %%DIR%%/logs/b.log combined buffer=1m; location / { return 200; } }
    """)
    for i in range(5):
        http_get(s.port, "/x%d" % i)
    assert s.access_log("logs/b.log") == ""
    s.stop()
    assert s.access_log("logs/b.log").count("\n") == 5


def test_gzipped_log(make_server):
    """access_log ... gzip: each write is a gzip member of its own (zcat reads them in a row), the
    lines those of a plain log of the same requests; a line too long for the buffer is a member
    alone; the level is taken, and written at exit."""
    import gzip
    import os
    s = make_server("""
    log_format short "$request_uri $status";
    server { listen 127.0.0.1:%%PORT%%;
             access_log %%DIR%%/logs/plain.log short;
             access_log %%DIR%%/logs/z.log short gzip=9 flush=100ms;
             access_log %%DIR%%/logs/small.log short buffer=64 gzip;
             location / { return 200; } }
    """)
    paths = ["/x%d" % i for i in range(20)] + ["/" + "long" * 40]
    for p in paths:
        http_get(s.port, p)
    wait_for(lambda: s.access_log("logs/plain.log").count("\n") == len(paths), what="plain lines")
    plain = s.access_log("logs/plain.log")

    def unzipped(name):
        with open(s.path(name), "rb") as f:
            return gzip.decompress(f.read()).decode()

    # The flush timer writes the buffer: a member in the file without a stop.
    wait_for(lambda: os.path.getsize(s.path("logs/z.log")) > 0, what="a flushed member")
    wait_for(lambda: unzipped("logs/z.log") == plain, what="every line gzipped")
    s.stop()
    small = open(s.path("logs/small.log"), "rb").read()
    assert gzip.decompress(small).decode() == plain
    assert small.count(b"\x1f\x8b\x08") > 2  # several members: the buffer was filled, a line passed it


@pytest.mark.parametrize("params,message", [
    ("gzip=0", 'invalid compression level "0"'), ("gzip=10", 'invalid compression level "10"'),
    ("gzip=x", 'invalid compression level "x"'), ("gzipx", 'invalid parameter "gzipx"')])
def test_gzip_load_errors_as_nginx(params, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "access_log logs/a.log combined %s;" % params)
        assert rc != 0 and message in err, (binary, err)


def test_gzip_levels_load_as_nginx():
    conf = ("access_log logs/a.log combined gzip; access_log logs/b.log combined gzip=5 "
            "buffer=8k flush=5s; access_log logs/a.log combined gzip;")
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc == 0, (binary, err)
        rc, err = check_conf(binary, conf + " access_log logs/a.log combined gzip=2;")
        assert rc != 0 and "already defined with conflicting parameters" in err, (binary, err)


def test_variable_log_path(make_server):
    import os
    s = make_server("""
    server { listen 127.0.0.1:%%PORT%%; access_log %%DIR%%/logs/v/by-$arg_who.log combined; location / { return 200; } }
    """)
    # A path with variables is opened by the worker (which runs as `user` when started as root).
    os.makedirs(s.path("logs/v"))
    os.chmod(s.path("logs/v"), 0o777)
    http_get(s.port, "/?who=alice")
    http_get(s.port, "/?who=bob")
    # A line is written after its response went out: wait for it.
    wait_for(lambda: "who=alice" in s.access_log("logs/v/by-alice.log"), what="alice's line")
    wait_for(lambda: "who=bob" in s.access_log("logs/v/by-bob.log"), what="bob's line")


def test_error_log_levels_and_format(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
        location /quiet/ { error_log %%DIR%%/logs/quiet.log crit; }
        location /info/ { error_log %%DIR%%/logs/info.log info; error_log %%DIR%%/logs/info2.log error; }
    }
    """
    s = make_server(conf)
    http_get(s.port, "/nope", headers={"Referer": "http://r/"})
    http_get(s.port, "/quiet/nope")
    http_get(s.port, "/info/nope")
    wait_for(lambda: "/info/nope" in s.access_log(), what="the last request's log line")
    log = s.error_log()
    line = [l for l in log.splitlines() if "/nope\" failed" in l and "/quiet/" not in l and "/info/" not in l][0]
    assert re.fullmatch(r'\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#\d+: \*\d+ open\(\) ".*/html/nope" failed '
                        r'\(2: No such file or directory\), client: 127\.0\.0\.1, server: , '
                        r'request: "GET /nope HTTP/1\.1", host: "localhost", referrer: "http://r/"', line), line
    assert open(s.path("logs/quiet.log")).read() == ""
    assert "/info/nope" in open(s.path("logs/info.log")).read()
    assert "/info/nope" in open(s.path("logs/info2.log")).read()
    assert "/info/nope" not in log


def test_client_close_lines_as_nginx(make_server):
    """A client that leaves before its request, and one that closes its idle keep-alive connection:
    nginx's two info lines, the first with the connection's context, the second without any."""
    import socket
    from conftest import NGINX, Client
    lines = {}
    for binary in (None, NGINX):
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { } }",
                        files={"f.txt": "x"}, binary=binary)
        socket.create_connection(("127.0.0.1", s.port)).close()
        c = Client(s.port)
        c.send(b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().status == 200
        c.sock.close()
        wait_for(lambda: "closed keepalive" in open(s.path("logs/error.log")).read(), what=s.name)
        got = [re.sub(r"^.*?\*\d+ ", "", l).replace(str(s.port), "PORT")
               for l in open(s.path("logs/error.log")).read().splitlines() if "closed" in l]
        lines[s.name] = got
    assert lines["weir"] == lines["nginx"], lines
    assert lines["weir"] == ["client closed connection while waiting for request, client: 127.0.0.1, "
                             "server: 127.0.0.1:PORT", "client 127.0.0.1 closed keepalive connection"]


class SyslogReceiver:
    """A UDP socket on 127.0.0.1 that keeps the datagrams it gets."""

    def __init__(self):
        import socket
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.got = []

    def read(self):
        import socket
        try:
            while True:
                self.got.append(self.sock.recv(65536).decode())
        except socket.timeout:
            pass
        return self.got

    def close(self):
        self.sock.close()


def test_syslog_as_nginx(make_server):
    """error_log and access_log to syslog:server=... as nginx sends them: RFC 3164 datagrams
    "<PRI>Mmm dd hh:mm:ss host tag: message" with the facility, severity, tag and nohostname given,
    the error line whole (its nginx date too, as nginx sends it) at its level's severity, the access
    line without its newline; and nginx's load errors."""
    import socket
    from conftest import NGINX, WEIR, check_conf
    results = {}
    for binary in (WEIR, NGINX):
        rx = SyslogReceiver()
        try:
            s = make_server("""
            log_format short '$request|$status';
            server { listen 127.0.0.1:%%%%PORT%%%%;
                     error_log syslog:server=127.0.0.1:%d,facility=local3,tag=errs info;
                     access_log syslog:server=127.0.0.1:%d,severity=notice,tag=acc,nohostname short;
                     location / { } }
            """ % (rx.port, rx.port), binary=binary, files={"f.txt": "x"})
            assert http_get(s.port, "/f.txt").status == 200
            assert http_get(s.port, "/missing").status == 404
            wait_for(lambda: len([m for m in rx.read() if "acc:" in m]) >= 2, what="access datagrams")
            wait_for(lambda: any("errs:" in m for m in rx.read()), what="error datagram")
            s.stop()
        finally:
            rx.close()
        host = socket.gethostname().lower()
        norm = []
        for m in rx.got:
            m = re.sub(r"^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ", r"\1TIME ", m)
            m = re.sub(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: \*\d+ ", r"DATE [\1] PID: *N ", m)
            m = m.replace(" %s " % host, " HOST ")
            m = re.sub(r"/tmp/(weir|nginx)-test-\w+/", "DIR/", m)
            norm.append(m)
        results[binary] = sorted(m for m in norm if "acc:" in m or "open()" in m)
    assert results[WEIR] == results[NGINX], results
    # local3 (19) * 8 + info... the 404's open() error line is [error] (3): 155; notice (5) for the
    # access lines of the default facility local7 (23): 189.
    assert "<189>TIME acc: GET /f.txt HTTP/1.1|200" in results[WEIR]
    assert any(m.startswith("<155>TIME HOST errs: DATE [error] PID: *N open() ") for m in results[WEIR])
    for bad, msg in (("syslog:facility=local3", "no syslog server specified"),
                     ("syslog:server=127.0.0.1,facility=nope", 'unknown syslog facility "nope"'),
                     ("syslog:server=127.0.0.1,tag=a-b", 'syslog "tag" only allows alphanumeric characters and underscore'),
                     ("syslog:server=127.0.0.1,foo=1", 'unknown syslog parameter "foo=1"')):
        for binary in (WEIR, NGINX):
            rc, err = check_conf(binary, "error_log %s;" % bad)
            assert rc == 1 and msg in err, (binary, bad, err)
