"""FastCGI (#11): fastcgi_pass to Debian's php-fpm, beside Debian's nginx on the same configuration
(the repository's fastcgi_params, fastcgi_split_path_info, fastcgi_index): the same status, header
fields and body for scripts that read the CGI variables, the request body (small, and large enough to
be read from the client body's temp file in many STDIN records), set Status and Location, write a large
body (buffered and with fastcgi_buffering off) and write to stderr (logged as nginx logs it). Then
fastcgi_param's inheritance and if_not_empty, fastcgi_pass_request_headers, fastcgi_catch_stderr, a
unix socket, an upstream group with fastcgi_keep_conn and keepalive (one connection for many requests,
seen in /proc/net/tcp), and the configuration errors in nginx's words. A scripted FastCGI
backend sends records split at every byte, with padding and stderr between stdout records, and closes
early."""
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest

from conftest import (NGINX, ROOT, WEIR, BackendProcess, ScriptedBackend, check_conf, dechunk,
                      free_port, http_get, make_certificate, raw, wait_for, weir_and_nginx)

PHP_FPM = shutil.which("php-fpm8.2") or "/usr/sbin/php-fpm8.2"
PARAMS = os.path.join(ROOT, "conf", "fastcgi_params")

SCRIPTS = {
    "info.php": r"""<?php
foreach (["SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "REQUEST_URI", "QUERY_STRING",
          "REQUEST_METHOD", "CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_X_CUSTOM", "HTTP_HOST",
          "DOCUMENT_URI", "GATEWAY_INTERFACE", "REMOTE_ADDR", "SERVER_PROTOCOL", "REDIRECT_STATUS",
          "HTTPS", "LEVEL", "EMPTY_ONE"] as $k) {
    echo $k, "=", array_key_exists($k, $_SERVER) ? $_SERVER[$k] : "(unset)", "\n";
}
$body = file_get_contents("php://input");
echo "body_len=", strlen($body), " body_md5=", md5($body), "\n";
""",
    "status.php": r"""<?php
header("Status: 404 Not Found");
header("X-From-Script: one");
echo "not here\n";
""",
    "code.php": r"""<?php
http_response_code(403);
echo "forbidden by script\n";
""",
    "redirect.php": r"""<?php
header("Location: http://example.com/elsewhere");
""",
    "big.php": r"""<?php
$n = intval($_GET["n"]);
$chunk = str_repeat("0123456789abcdef", 4096);
for ($i = 0; $i < $n; $i += strlen($chunk)) { echo substr($chunk, 0, min(strlen($chunk), $n - $i)); flush(); }
""",
    "stderr.php": r"""<?php
error_log("a message for the log.");
echo "after stderr\n";
""",
    "length.php": r"""<?php
header("Content-Length: 13");
echo "Hello, world\n";
""",
    "sub/index.php": r"""<?php
echo "sub index ", $_SERVER["SCRIPT_NAME"], "\n";
""",
}

PHP_LOCATION = r"""
        fastcgi_split_path_info ^(.+\.php)(/.*)$;
        fastcgi_index index.php;
        include %s;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param PATH_INFO $fastcgi_path_info;
        fastcgi_param LEVEL location;
        fastcgi_param EMPTY_ONE $http_x_none if_not_empty;
""" % PARAMS


def conf_for(fpm):
    return r"""
client_body_buffer_size 8k;
server {
    listen 127.0.0.1:%%PORT%%;
    index index.php;
    location ~ [^/]\.php(/|$) {
        fastcgi_pass 127.0.0.1:FPMPORT;
        PHP
    }
    location /sub/ { fastcgi_pass 127.0.0.1:FPMPORT; PHP }
    location ^~ /stream/ {
        rewrite ^/stream(/.*)$ $1 break;
        fastcgi_pass 127.0.0.1:FPMPORT;
        fastcgi_request_buffering off;
        PHP
    }
    location ^~ /nobuf/ {
        rewrite ^/nobuf(/.*)$ $1 break;
        fastcgi_pass 127.0.0.1:FPMPORT;
        fastcgi_buffering off;
        PHP
    }
}
""".replace("PHP", PHP_LOCATION).replace("FPMPORT", str(fpm.port))


def php_fpm():
    """Debian's php-fpm on 127.0.0.1 and a unix socket, its pools run as nobody."""
    if not os.path.exists(PHP_FPM):
        pytest.fail("php-fpm is not installed (make deps installs php8.2-fpm)")
    d = tempfile.mkdtemp(prefix="weir-fpm-")
    os.chmod(d, 0o755)
    port = free_port()
    sock = os.path.join(d, "fpm.sock")
    conf = os.path.join(d, "fpm.conf")
    with open(conf, "w") as f:
        f.write("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\ndaemonize = no\n" % (d, d))
        for name, listen in (("tcp", "127.0.0.1:%d" % port), ("unix", sock)):
            f.write("[%s]\nuser = nobody\ngroup = nogroup\nlisten = %s\nlisten.mode = 0666\n"
                    "pm = static\npm.max_children = 2\ncatch_workers_output = no\n" % (name, listen))
    return BackendProcess([PHP_FPM, "-n", "-y", conf, "-F", "-R"], port, sock, d, signal.SIGQUIT)


@pytest.fixture(scope="module")
def fpm():
    f = php_fpm()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def pair(fpm):
    yield from weir_and_nginx(conf_for(fpm), SCRIPTS)


def normalized(s, text):
    return text.replace(s.dir, "DIR").replace(str(s.port), "PORT")


def request(s, path, method="GET", body=None, headers=None):
    return http_get(s.port, path, method=method, body=body, headers=headers)


REQUESTS = [
    ("GET", "/info.php", None, None),
    ("GET", "/info.php/extra/path?a=1&b=2", None, {"X-Custom": "custom value"}),
    ("POST", "/info.php?post=1", b"name=value&other=2",
     {"Content-Type": "application/x-www-form-urlencoded"}),
    # Read into the client body's temp file (client_body_buffer_size 8k), sent in many STDIN records.
    ("POST", "/info.php", bytes(range(256)) * 1200, {"Content-Type": "application/octet-stream"}),
    ("PUT", "/info.php", b"", None),
    # fastcgi_request_buffering off: STDIN records as the body comes.
    ("POST", "/stream/info.php", bytes(range(256)) * 1200, {"Content-Type": "application/octet-stream"}),
    ("POST", "/stream/info.php", b"short", None),
    ("GET", "/status.php", None, None),
    ("GET", "/code.php", None, None),
    ("GET", "/redirect.php", None, None),
    ("GET", "/big.php?n=100", None, None),
    ("GET", "/big.php?n=1048576", None, None),
    ("GET", "/nobuf/big.php?n=1048576", None, None),
    ("GET", "/sub/", None, None),
    ("HEAD", "/info.php", None, None),
    # The script's Content-Length reaches the client (not chunked).
    ("GET", "/length.php", None, None),
    ("HEAD", "/length.php", None, None),
    ("GET", "/nobuf/length.php", None, None),
]


@pytest.mark.parametrize("method,path,body,headers", REQUESTS,
                         ids=["%s %s" % (r[0], r[1]) for r in REQUESTS])
def test_responses_as_nginx(pair, method, path, body, headers):
    got = []
    for s in pair:
        r = request(s, path, method=method, body=body, headers=headers)
        fields = {k: r.header(k) for k in ("Content-Type", "Location", "X-From-Script", "X-Powered-By",
                                           "Status", "Content-Length", "Transfer-Encoding")}
        got.append((r.status, fields, normalized(s, r.body.decode("latin-1"))))
    assert got[0] == got[1]
    status, fields, text = got[0]
    if path.startswith("/info.php") and method != "HEAD":
        assert "GATEWAY_INTERFACE=CGI/1.1" in text and "LEVEL=location" in text
        assert "EMPTY_ONE=(unset)" in text  # if_not_empty
        if body is not None:
            assert "body_len=%d body_md5=%s" % (len(body), hashlib.md5(body).hexdigest()) in text
    if path == "/info.php/extra/path?a=1&b=2":
        assert "SCRIPT_NAME=/info.php\nPATH_INFO=/extra/path\n" in text
        assert "HTTP_X_CUSTOM=custom value" in text
    if path == "/status.php":
        assert status == 404 and fields["Status"] is None and fields["X-From-Script"] == "one"
    if path == "/redirect.php":
        assert status == 302 and fields["Location"] == "http://example.com/elsewhere"
    if "n=1048576" in path:
        assert len(text) == 1048576 and text.startswith("0123456789abcdef")
    if path == "/sub/":
        assert text == "sub index /sub/index.php\n"
    if path.endswith("/length.php"):
        assert fields["Content-Length"] == "13" and fields["Transfer-Encoding"] is None
        assert text == ("" if method == "HEAD" else "Hello, world\n")


def test_stderr_is_logged_as_nginx(pair):
    lines = []
    for s in pair:
        assert request(s, "/stderr.php").body == b"after stderr\n"
        wait_for(lambda: "FastCGI sent in stderr" in s.error_log(), what="the stderr line")
        line = [l for l in s.error_log().splitlines() if "FastCGI sent in stderr" in l][-1]
        lines.append(normalized(s, re.sub(r"^.*?\[error\] \d+#\d+: \*\d+ ", "", line)))
    assert lines[0] == lines[1]
    assert lines[0].startswith('FastCGI sent in stderr: "PHP message: a message for the log" while '
                               "reading response header from upstream, client: 127.0.0.1")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_params_inheritance_and_headers(make_server, fpm, binary):
    conf = r"""
    fastcgi_param LEVEL http;
    fastcgi_param REQUEST_METHOD $request_method;
    fastcgi_param SCRIPT_FILENAME %%DIR%%/html/info.php;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /inherit { fastcgi_pass 127.0.0.1:FPMPORT; }
        location /own { fastcgi_pass 127.0.0.1:FPMPORT; fastcgi_param SCRIPT_FILENAME %%DIR%%/html/info.php;
                        fastcgi_param REQUEST_METHOD GET; fastcgi_param HTTP_X_CUSTOM from-param; }
        location /noheaders { fastcgi_pass 127.0.0.1:FPMPORT; fastcgi_pass_request_headers off; }
        location /unix { fastcgi_pass unix:SOCKET; }
        location /var { set $fpm 127.0.0.1:FPMPORT; fastcgi_pass $fpm; }
    }
    """.replace("FPMPORT", str(fpm.port)).replace("SOCKET", fpm.socket)
    s = make_server(conf, binary=binary, files=SCRIPTS)
    hdr = {"X-Custom": "from-client"}
    inherit = http_get(s.port, "/inherit", headers=hdr).body.decode()
    assert "LEVEL=http" in inherit and "HTTP_X_CUSTOM=from-client" in inherit
    own = http_get(s.port, "/own", headers=hdr).body.decode()
    # A level with a fastcgi_param of its own inherits none; its HTTP_ param wins over the field.
    assert "LEVEL=(unset)" in own and "HTTP_X_CUSTOM=from-param" in own
    noheaders = http_get(s.port, "/noheaders", headers=hdr).body.decode()
    assert "HTTP_X_CUSTOM=(unset)" in noheaders and "HTTP_HOST=(unset)" in noheaders
    assert "LEVEL=http" in http_get(s.port, "/unix").body.decode()
    assert "LEVEL=http" in http_get(s.port, "/var").body.decode()


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_catch_stderr_makes_a_bad_gateway(make_server, fpm, binary):
    conf = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { fastcgi_pass 127.0.0.1:FPMPORT; include PARAMS;
                     fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
                     fastcgi_catch_stderr "for the log"; }
    }
    """.replace("FPMPORT", str(fpm.port)).replace("PARAMS", PARAMS)
    s = make_server(conf, binary=binary, files=SCRIPTS)
    assert http_get(s.port, "/stderr.php").status == 502
    assert http_get(s.port, "/info.php").status == 200


def connections_to(port):
    """Local ports of the established TCP connections to 127.0.0.1:port (/proc/net/tcp)."""
    ports = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        local, remote, state = f[1], f[2], f[3]
        if state == "01" and remote == "0100007F:%04X" % port:
            ports.add(int(local.split(":")[1], 16))
    return ports


def test_keep_conn_reuses_one_connection(make_server, fpm):
    conf = r"""
    upstream php { server 127.0.0.1:FPMPORT; keepalive 4; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { fastcgi_pass php; fastcgi_keep_conn on; include PARAMS;
                     fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; }
    }
    """.replace("FPMPORT", str(fpm.port)).replace("PARAMS", PARAMS)
    s = make_server(conf, files=SCRIPTS)
    seen = set()
    for i in range(10):
        r = http_get(s.port, "/big.php?n=%d" % (1000 + 70000 * i))
        assert r.status == 200 and len(r.body) == 1000 + 70000 * i
        seen |= connections_to(fpm.port)
    # One connection served the ten requests, and stays open for the next.
    assert len(seen) == 1 and connections_to(fpm.port) == seen


@pytest.mark.parametrize("directive,message", [
    ("fastcgi_pass 127.0.0.1;", 'no port in upstream "127.0.0.1"'),
    ("fastcgi_pass nosuch;", 'no port in upstream "nosuch"'),
    ("fastcgi_pass http://127.0.0.1:9000;", 'invalid host in upstream "http://127.0.0.1:9000"'),
    ("fastcgi_split_path_info ^(.+)$;", 'pattern "^(.+)$" must have 2 captures'),
    ("fastcgi_param A b c;", 'invalid parameter "c"'),
])
def test_configuration_errors_as_nginx(directive, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { %s } }" % directive)
        assert rc == 1 and message in err, (binary, err)


# --- a scripted FastCGI backend ------------------------------------------------------------------

def record(kind, content, padding=0):
    return struct.pack(">BBHHBB", 1, kind, 1, len(content), padding, 0) + content + b"\0" * padding


def read_fastcgi_request(c):
    """A FastCGI request's bytes, up to its empty STDIN record."""
    data = b""
    while not data.endswith(record(5, b"")):
        more = c.recv(65536)
        if not more:
            break
        data += more
    return data


def fastcgi_backend(answer, step=4096):
    return ScriptedBackend(answer, read_fastcgi_request, step)


BODY = b"".join(bytes([65 + i % 26]) * (100 + i) for i in range(40))
ANSWER = (record(6, b"Status: 201 Created\r\nX-Sc") + record(7, b"warning one\n", 4) +
          record(6, b"ript: yes\r\nContent-Type: text/plain\r\n\r\n" + BODY[:500], 3) +
          record(6, BODY[500:], 7) + record(7, b"warning two") +
          record(3, b"\0\0\0\0\0\0\0\0"))


@pytest.mark.parametrize("step", [1, 7, 4096])
@pytest.mark.parametrize("buffering", ["on", "off"])
def test_records_split_anywhere(make_server, step, buffering):
    backend = fastcgi_backend(ANSWER, step)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:"
                        "BACKEND; fastcgi_buffering BUFFERING; fastcgi_param SCRIPT_NAME $uri; } }"
                        .replace("BACKEND", str(backend.port)).replace("BUFFERING", buffering))
        r = http_get(s.port, "/x")
        assert r.status == 201 and r.header("X-Script") == "yes" and r.body == BODY
        wait_for(lambda: "warning two" in s.error_log(), what="the second stderr line")
        log = s.error_log()
        assert 'FastCGI sent in stderr: "warning one" while reading response header' in log
        # Read with the header or after it: the action is the relay's at that moment.
        assert 'FastCGI sent in stderr: "warning two" while ' in log
        # The request's records: BEGIN_REQUEST (responder, no keep_conn), PARAMS, STDIN.
        req = backend.requests[0]
        assert req.startswith(struct.pack(">BBHHBB", 1, 1, 1, 8, 0, 0) + b"\0\x01\0\0\0\0\0\0")
        assert b"\x0b\x02SCRIPT_NAME/x" in req and req.endswith(record(4, b"") + record(5, b""))
    finally:
        backend.close()


@pytest.mark.parametrize("answer,message", [
    (record(6, b"Content-Type: text/plain\r\n"), "upstream prematurely closed connection"),
    (record(6, b"Content-Type: text/plain\r\n") + record(3, b"\0" * 8),
     "upstream prematurely closed FastCGI stdout"),
    (struct.pack(">BBHHBB", 2, 6, 1, 0, 0, 0), "upstream sent unsupported FastCGI protocol version: 2"),
    (record(9, b""), "upstream sent invalid FastCGI record type: 9"),
    (record(6, b"Status: abc\r\n\r\n"), 'upstream sent invalid status "abc"'),
])
def test_bad_answers_are_502_with_nginx_lines(make_server, answer, message):
    backend = fastcgi_backend(answer, 4096)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:"
                        "BACKEND; } }".replace("BACKEND", str(backend.port)))
        assert http_get(s.port, "/x").status == 502
        wait_for(lambda: message in s.error_log(), what=message)
    finally:
        backend.close()


LENGTH_ANSWERS = {
    # Content-Length 5, ten bytes of STDOUT: the body is cut at five, with nginx's warning.
    "longer": (record(6, b"Content-Length: 5\r\n\r\nhello") + record(6, b"world") + record(6, b"") +
               record(3, b"\0" * 8), b"hello",
               'upstream sent more data than specified in "Content-Length" header'),
    # Content-Length 20, five bytes, then the end of STDOUT or of the request: the response is cut.
    "stdout short": (record(6, b"Content-Length: 20\r\n\r\nhello") + record(6, b"") +
                     record(3, b"\0" * 8), b"hello", "upstream prematurely closed FastCGI stdout"),
    "request short": (record(6, b"Content-Length: 20\r\n\r\nhello") + record(3, b"\0" * 8), b"hello",
                      "upstream prematurely closed FastCGI request"),
    # No body at all: the answer's end comes with its header.
    "empty, stdout short": (record(6, b"Content-Length: 20\r\n\r\n") + record(6, b"") +
                            record(3, b"\0" * 8), b"", "upstream prematurely closed FastCGI stdout"),
    "empty, request short": (record(6, b"Content-Length: 20\r\n\r\n") + record(3, b"\0" * 8), b"",
                             "upstream prematurely closed FastCGI request"),
}


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
@pytest.mark.parametrize("buffering", ["on", "off"])
@pytest.mark.parametrize("case", list(LENGTH_ANSWERS))
def test_content_length_bounds_the_body_as_nginx(make_server, binary, buffering, case):
    answer, body, message = LENGTH_ANSWERS[case]
    if buffering == "off":
        message = message.replace("stdout", "request")  # nginx's non-buffered relay names the request
    backend = fastcgi_backend(answer, 4096)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:"
                        "BACKEND; fastcgi_buffering BUFFERING; } }"
                        .replace("BACKEND", str(backend.port)).replace("BUFFERING", buffering),
                        binary=binary)
        data = raw(s.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=20)
        head, _, got = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding" not in head, head
        assert (b"Content-Length: 5" if case == "longer" else b"Content-Length: 20") in head
        assert got == body
        wait_for(lambda: message in s.error_log(), what=message)
    finally:
        backend.close()


def test_an_invalid_content_length_is_a_bad_gateway(make_server):
    backend = fastcgi_backend(record(6, b"Content-Length: 5x\r\n\r\nhello") + record(3, b"\0" * 8))
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:"
                        "BACKEND; } }".replace("BACKEND", str(backend.port)))
        assert http_get(s.port, "/").status == 502
        wait_for(lambda: 'upstream sent invalid "Content-Length" header' in s.error_log(),
                 what="the log line")
    finally:
        backend.close()


def test_a_body_cut_short_ends_the_response_early(make_server):
    backend = fastcgi_backend(record(6, b"Content-Type: text/plain\r\n\r\n" + b"x" * 5000), 4096)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:"
                        "BACKEND; } }".replace("BACKEND", str(backend.port)))
        data = raw(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=20)
        # Chunked, and the last chunk never comes: the client sees the response cut short.
        assert data.startswith(b"HTTP/1.1 200 ") and not data.endswith(b"0\r\n\r\n")
        wait_for(lambda: "upstream prematurely closed connection while reading upstream"
                 in s.error_log(), what="the log line")
    finally:
        backend.close()


@pytest.mark.parametrize("path", ["/info.php", "/stream/info.php"])
def test_a_chunked_body_as_nginx(pair, path):
    body = b"".join(bytes([48 + i % 10]) * (1000 + i) for i in range(60))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7000]), body[i:i + 7000])
                      for i in range(0, len(body), 7000)) + b"0\r\n\r\n"
    got = []
    for s in pair:
        out = raw(s.port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunks, timeout=20)
        text = dechunk(out.split(b"\r\n\r\n", 1)[1]).decode("latin-1")
        got.append(normalized(s, text))
    assert got[0] == got[1]
    if path == "/info.php":  # buffered: CONTENT_LENGTH is the body's length
        assert ("body_len=%d body_md5=%s" % (len(body), hashlib.md5(body).hexdigest())) in got[0]
    else:  # streamed: no CONTENT_LENGTH, and php-fpm reads no body without one (nor with nginx)
        assert "CONTENT_LENGTH=\n" in got[0] and "body_len=0 " in got[0]


def records_of(data):
    """The (type, content) records of a FastCGI byte stream, their padding checked to be at most 7."""
    out = []
    while data:
        version, kind, _, length, padding, _ = struct.unpack(">BBHHBB", data[:8])
        assert version == 1 and padding < 8
        out.append((kind, data[8:8 + length]))
        data = data[8 + length + padding:]
    return out


@pytest.mark.parametrize("buffering", ["on", "off"])
@pytest.mark.parametrize("chunked", [False, True])
def test_the_body_goes_in_stdin_records(make_server, buffering, chunked):
    backend = fastcgi_backend(record(6, b"Content-Type: text/plain\r\n\r\nok") + record(3, b"\0" * 8), 4096)
    body = bytes(range(256)) * 400  # 100 KiB: several STDIN records of at most 32 KiB
    try:
        s = make_server("client_body_buffer_size 16k; server { listen 127.0.0.1:%%PORT%%; location / {"
                        " fastcgi_pass 127.0.0.1:BACKEND; fastcgi_request_buffering BUFFERING;"
                        " fastcgi_param CONTENT_LENGTH $content_length; } }"
                        .replace("BACKEND", str(backend.port)).replace("BUFFERING", buffering))
        if chunked:
            framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 9000]), body[i:i + 9000])
                              for i in range(0, len(body), 9000)) + b"0\r\n\r\n"
            head = b"Transfer-Encoding: chunked\r\n"
        else:
            framed, head = body, b"Content-Length: %d\r\n" % len(body)
        out = raw(s.port, b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n" + framed,
                  timeout=20)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok") or b"\r\n2\r\nok\r\n" in out
        recs = records_of(backend.requests[0])
        stdin = [c for k, c in recs if k == 5]
        assert b"".join(stdin) == body and stdin[-1] == b"" and max(len(c) for c in stdin) <= 32768
        params = b"".join(c for k, c in recs if k == 4)
        expected = b"" if chunked and buffering == "off" else str(len(body)).encode()
        assert b"\x0e" + bytes([len(expected)]) + b"CONTENT_LENGTH" + expected in params
    finally:
        backend.close()


CACHE_SCRIPTS = {
    "run.php": r"""<?php
header("X-Run: " . uniqid("", true));
echo "run ", $_GET["n"] ?? "", "\n";
""",
    "private.php": r"""<?php
header("Cache-Control: private");
echo uniqid("", true), "\n";
""",
    "session.php": r"""<?php
setcookie("sid", uniqid());
echo "with a cookie\n";
""",
}

CACHE_CONF = r"""
fastcgi_cache_path %%DIR%%/fcache levels=1:2 keys_zone=php:1m;
add_header X-Cache $upstream_cache_status always;
server {
    listen 127.0.0.1:%%PORT%%;
    location ~ \.php$ {
        include PARAMS;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_pass 127.0.0.1:FPMPORT;
        fastcgi_cache php;
        fastcgi_cache_key $request_uri;
        fastcgi_cache_valid 200 10m;
    }
}
"""


def test_fastcgi_cache_beside_nginx(fpm):
    """fastcgi_cache on php-fpm: a script's answer is kept and sent again without running it (the
    same X-Run); Cache-Control: private and a Set-Cookie keep it out; the file is where nginx
    puts it for the key."""
    conf = CACHE_CONF.replace("PARAMS", PARAMS).replace("FPMPORT", str(fpm.port))
    servers = weir_and_nginx(conf, CACHE_SCRIPTS)
    try:
        for s in next(servers):
            for who in ("a", "b"):
                uri = "/run.php?n=%s" % who
                first, second, third = (http_get(s.port, uri) for _ in range(3))
                assert [r.header("X-Cache") for r in (first, second, third)] == ["MISS", "HIT", "HIT"]
                assert first.header("X-Run") == second.header("X-Run") == third.header("X-Run"), s.name
                assert second.body == b"run %s\n" % who.encode()
                md5 = hashlib.md5(uri.encode()).hexdigest()
                assert os.path.exists(s.path("fcache/%s/%s/%s" % (md5[-1], md5[-3:-1], md5))), s.name
            for uri in ("/private.php", "/session.php"):
                a, b = (http_get(s.port, uri) for _ in range(2))
                assert (a.header("X-Cache"), b.header("X-Cache")) == ("MISS", "MISS"), (s.name, uri)
            head = http_get(s.port, "/run.php?n=a", method="HEAD")
            assert (head.status, head.header("X-Cache"), head.body) == (200, "HIT", b"")
    finally:
        for _ in servers:  # stops both, checks weir clean
            pass


WORDPRESS = r"""
server {
    listen 127.0.0.1:%%PORT%%;
    index index.php index.html;
    location / { try_files $uri $uri/ /index.php?$args; }
    location ~ \.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass 127.0.0.1:FPMPORT;
    }
}
"""

WP_SCRIPTS = {
    "index.php": '<?php echo "index ", $_SERVER["REQUEST_URI"], " ", $_SERVER["SCRIPT_NAME"], " q=", '
                 '$_SERVER["QUERY_STRING"], " pi=", $_SERVER["PATH_INFO"], "\\n";',
    "hello.php": '<?php echo "hello ", $_SERVER["SCRIPT_FILENAME"], " pi=", $_SERVER["PATH_INFO"], "\\n";',
    "static.txt": "plain file\n",
}


def test_debian_php_snippet_as_nginx(make_server, fpm):
    """A WordPress-style site through Debian's snippets/fastcgi-php.conf: weir with the repository's copy of
    the snippet and fastcgi.conf (conf/, as the package installs them), nginx with Debian's own."""
    got = []
    for binary, etc in ((WEIR, os.path.join(ROOT, "conf")), (NGINX, "/etc/nginx")):
        s = make_server(WORDPRESS.replace("FPMPORT", str(fpm.port)), binary=binary, files=WP_SCRIPTS,
                        start=False)
        os.makedirs(s.path("conf/snippets"))
        shutil.copy(os.path.join(etc, "snippets", "fastcgi-php.conf"), s.path("conf/snippets/"))
        shutil.copy(os.path.join(etc, "fastcgi.conf"), s.path("conf/"))
        s.start()
        answers = []
        for path in ("/", "/a-post/?p=12", "/hello.php", "/hello.php/extra/info", "/missing.php",
                     "/static.txt", "/index.php?x=1"):
            r = http_get(s.port, path)
            body = normalized(s, r.body.decode()) if r.status == 200 else ""  # error pages name the server
            answers.append((path, r.status, body))
        got.append(answers)
    assert got[0] == got[1]
    answers = dict((p, (st, body)) for p, st, body in got[0])
    assert answers["/a-post/?p=12"] == (200, "index /a-post/?p=12 /index.php q=p=12 pi=\n")
    assert answers["/hello.php"] == (200, "hello DIR/html/hello.php pi=\n")
    # Not a \.php$ location's: try_files sends it to the index, as nginx does.
    assert answers["/hello.php/extra/info"] == (200, "index /hello.php/extra/info /index.php q= pi=\n")
    assert answers["/missing.php"][0] == 404 and answers["/static.txt"] == (200, "plain file\n")


LARAVEL = r"""
server {
    listen 127.0.0.1:%%PORT%%;
    root %%DIR%%/html/public;
    index index.php;
    charset utf-8;
    location / { try_files $uri $uri/ /index.php?$query_string; }
    location = /favicon.ico { access_log off; log_not_found off; }
    error_page 404 /index.php;
    location ~ \.php$ {
        fastcgi_pass 127.0.0.1:FPMPORT;
        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
        include PARAMS;
        fastcgi_hide_header X-Powered-By;
    }
    location ~ /\.(?!well-known).* { deny all; }
}
"""

LARAVEL_SCRIPTS = {
    "public/index.php": '<?php echo "front ", $_SERVER["REQUEST_URI"], " q=", $_SERVER["QUERY_STRING"], '
                        '" script=", basename($_SERVER["SCRIPT_FILENAME"]), "\\n";',
    "public/.env": "SECRET=1\n",
    "public/css/app.css": "body{}\n",
}


def test_laravel_shaped_site_as_nginx(make_server, fpm):
    """Laravel's documented nginx configuration: a front controller through try_files with the query
    string, $realpath_root, error_page 404 to the controller, dot files denied, X-Powered-By hidden."""
    got = []
    for binary in (WEIR, NGINX):
        s = make_server(LARAVEL.replace("FPMPORT", str(fpm.port)).replace("PARAMS", PARAMS),
                        binary=binary, files=LARAVEL_SCRIPTS)
        answers = []
        for path in ("/", "/users/7?sort=name", "/css/app.css", "/.env", "/index.php/x"):
            r = http_get(s.port, path)
            body = r.body.decode() if r.status == 200 else ""
            answers.append((path, r.status, r.header("X-Powered-By"), r.header("Content-Type"), body))
        got.append(answers)
    assert got[0] == got[1]
    answers = {a[0]: a[1:] for a in got[0]}
    assert answers["/users/7?sort=name"] == (200, None, "text/html; charset=UTF-8",
                                             "front /users/7?sort=name q=sort=name script=index.php\n")
    assert answers["/css/app.css"][0] == 200 and answers["/css/app.css"][3] == "body{}\n"
    assert answers["/.env"][0] == 403


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_a_slow_script_meets_the_read_timeout(make_server, fpm, binary):
    conf = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { fastcgi_pass 127.0.0.1:FPMPORT; include PARAMS; fastcgi_read_timeout 500ms;
                     fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; }
    }
    """.replace("FPMPORT", str(fpm.port)).replace("PARAMS", PARAMS)
    s = make_server(conf, binary=binary, files={"slow.php": "<?php usleep(1500000); echo 'late';"})
    assert http_get(s.port, "/slow.php").status == 504
    wait_for(lambda: "upstream timed out (110: Connection timed out) while reading response header "
             "from upstream" in s.error_log(), what="the timeout line")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_https_is_on_over_tls_through_fastcgi_params(make_server, fpm, binary):
    """fastcgi_params' `HTTPS $https if_not_empty`: on over TLS, left out over plain HTTP."""
    d = tempfile.mkdtemp(prefix="weir-fcgi-tls-")
    os.chmod(d, 0o755)
    crt, key = make_certificate(d, "c")
    conf = r"""
    server {
        listen 127.0.0.1:%%PORT0%% ssl;
        listen 127.0.0.1:%%PORT1%%;
        ssl_certificate CRT;
        ssl_certificate_key KEY;
        location ~ \.php$ { fastcgi_pass 127.0.0.1:FPMPORT; include PARAMS;
                            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; }
    }
    """.replace("FPMPORT", str(fpm.port)).replace("PARAMS", PARAMS).replace("CRT", crt).replace("KEY", key)
    try:
        s = make_server(conf, binary=binary, files={"info.php": SCRIPTS["info.php"]}, ports=2)
        tls = subprocess.run(["curl", "-sk", "https://127.0.0.1:%d/info.php" % s.ports[0]],
                             capture_output=True, text=True, timeout=30).stdout
        assert "HTTPS=on\n" in tls and "REQUEST_METHOD=GET\n" in tls
        plain = http_get(s.ports[1], "/info.php").body.decode()
        assert "HTTPS=(unset)\n" in plain and "REQUEST_METHOD=GET\n" in plain
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_stderr_flood_is_logged_and_the_answer_comes(make_server):
    """64 MiB of STDERR before the header (in records of 32 KiB): logged in lines of at most 1 KiB (the
    text of a record is gathered in a fixed buffer), and the answer whole."""
    flood = b"".join(record(7, bytes([97 + i % 26]) * 32768) for i in range(2048))
    backend = fastcgi_backend(flood + record(6, b"Content-Type: text/plain\r\n\r\nafter the flood") +
                              record(3, b"\0" * 8), 65536)
    try:
        s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { fastcgi_pass 127.0.0.1:BACKEND; } }"
                        .replace("BACKEND", str(backend.port)))
        r = http_get(s.port, "/")
        assert r.status == 200 and r.body == b"after the flood"
        lines = [l for l in s.error_log().splitlines() if "FastCGI sent in stderr" in l]
        assert len(lines) == 65536 and all(len(l) < 1400 for l in lines)
    finally:
        backend.close()


# --- fcgiwrap: CGI scripts over FastCGI ------------------------------------------------------------

FCGIWRAP = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"

CGI_SCRIPTS = {
    "cgi-bin/env.cgi": """#!/bin/sh
printf 'Content-Type: text/plain\\r\\nX-Cgi: sh\\r\\n\\r\\n'
for v in REQUEST_METHOD QUERY_STRING SCRIPT_NAME PATH_INFO GATEWAY_INTERFACE CONTENT_LENGTH \\
         CONTENT_TYPE HTTP_X_CUSTOM SERVER_PROTOCOL; do
    eval "echo $v=\\${$v-unset}"
done
echo "body: $(cat | md5sum | cut -d' ' -f1)"
""",
    "cgi-bin/status.cgi": """#!/bin/sh
printf 'Status: 404 Not Found\\r\\nContent-Type: text/plain\\r\\n\\r\\nno such thing\\n'
""",
    "cgi-bin/redirect.cgi": """#!/bin/sh
printf 'Location: http://example.com/moved\\r\\n\\r\\n'
""",
    "cgi-bin/warn.cgi": """#!/bin/sh
echo "a warning from the script" >&2
printf 'Content-Type: text/plain\\r\\n\\r\\nwarned\\n'
""",
    "cgi-bin/big.cgi": """#!/bin/sh
printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'
head -c 1048576 /dev/zero | tr '\\000' z
""",
}

# Debian's example (/usr/share/doc/fcgiwrap/examples/nginx.conf), with the root of the test's files
# and the path info split from the script's name.
FCGIWRAP_CONF = r"""
client_body_buffer_size 8k;
server {
    listen 127.0.0.1:%%PORT%%;
    location /cgi-bin/ {
        gzip off;
        fastcgi_pass 127.0.0.1:WRAPPORT;
        fastcgi_split_path_info ^(.+\.cgi)(/.*)$;
        include PARAMS;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        fastcgi_param PATH_INFO $fastcgi_path_info;
    }
}
"""


@pytest.fixture(scope="module")
def fcgiwrap():
    if not os.path.exists(FCGIWRAP):
        pytest.fail("fcgiwrap is not installed (make deps installs it)")
    d = tempfile.mkdtemp(prefix="weir-fcgiwrap-")
    port = free_port()
    # -f: the scripts' stderr goes over FastCGI, to the server's error log.
    # One process (no -c): with preforked children, the parent's SIGTERM would leave them behind.
    proc = BackendProcess([FCGIWRAP, "-f", "-s", "tcp:127.0.0.1:%d" % port], port, None, d)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def cgi_pair(fcgiwrap):
    def executable(s):
        for name in CGI_SCRIPTS:
            os.chmod(s.path("html/" + name), 0o755)
    yield from weir_and_nginx(FCGIWRAP_CONF.replace("WRAPPORT", str(fcgiwrap.port)).replace("PARAMS", PARAMS),
                              CGI_SCRIPTS, prepare=executable)


CGI_REQUESTS = [
    ("GET", "/cgi-bin/env.cgi/extra/path?a=1&b=2", None, {"X-Custom": "from the client"}),
    ("POST", "/cgi-bin/env.cgi", b"name=value", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/cgi-bin/env.cgi", bytes(range(256)) * 400, {"Content-Type": "application/octet-stream"}),
    ("GET", "/cgi-bin/status.cgi", None, None),
    ("GET", "/cgi-bin/redirect.cgi", None, None),
    ("GET", "/cgi-bin/big.cgi", None, None),
    ("GET", "/cgi-bin/missing.cgi", None, None),
    ("HEAD", "/cgi-bin/env.cgi", None, None),
]


@pytest.mark.parametrize("method,path,body,headers", CGI_REQUESTS,
                         ids=["%s %s" % (r[0], r[1]) for r in CGI_REQUESTS])
def test_cgi_scripts_through_fcgiwrap_as_nginx(cgi_pair, method, path, body, headers):
    got = []
    for s in cgi_pair:
        r = request(s, path, method=method, body=body, headers=headers)
        fields = {k: r.header(k) for k in ("Content-Type", "Location", "X-Cgi", "Status", "Content-Length",
                                           "Transfer-Encoding")}
        got.append((r.status, fields, normalized(s, r.body.decode("latin-1"))))
    assert got[0] == got[1]
    status, fields, text = got[0]
    if path.startswith("/cgi-bin/env.cgi/"):
        assert status == 200 and fields["X-Cgi"] == "sh"
        assert "SCRIPT_NAME=/cgi-bin/env.cgi\n" in text and "QUERY_STRING=a=1&b=2\n" in text
        assert "GATEWAY_INTERFACE=CGI/1.1\n" in text and "HTTP_X_CUSTOM=from the client\n" in text
        assert "PATH_INFO=/extra/path\n" in text
    if method == "POST":
        assert "CONTENT_LENGTH=%d\n" % len(body) in text
        assert "body: %s\n" % hashlib.md5(body).hexdigest() in text
    if path == "/cgi-bin/status.cgi":
        assert status == 404 and text == "no such thing\n" and fields["Status"] is None
    if path == "/cgi-bin/redirect.cgi":
        assert status == 302 and fields["Location"] == "http://example.com/moved"
    if path == "/cgi-bin/big.cgi":
        assert text == "z" * 1048576
    if path == "/cgi-bin/missing.cgi":
        assert status == 403  # fcgiwrap's own answer


def test_a_cgi_scripts_stderr_is_logged_as_nginx(cgi_pair):
    lines = []
    for s in cgi_pair:
        assert request(s, "/cgi-bin/warn.cgi").body == b"warned\n"
        wait_for(lambda: "a warning from the script" in s.error_log(), what="the stderr line")
        line = [l for l in s.error_log().splitlines() if "a warning from the script" in l][-1]
        lines.append(normalized(s, re.sub(r"^.*?\[error\] \d+#\d+: \*\d+ ", "", line)))
    assert lines[0] == lines[1]
    assert lines[0].startswith('FastCGI sent in stderr: "a warning from the script" while ')
