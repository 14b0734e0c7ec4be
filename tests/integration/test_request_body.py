"""Reading request bodies, through nginx's mirror module (its one reader that needs no upstream): the body is
read (Content-Length or chunked, with the headers or later, in memory or spilled to client_body_temp_path)
before the mirrors start; $request_body / $request_body_file in the access log show what was read. Each
scenario runs on weir and on Debian's nginx with the same nginx.conf, and the log lines must be the same."""
import os
import re
import socket
import time

from conftest import NGINX, read_to_end, wait_for

CONF = r"""
    include %%DIR%%/conf/mime.types;
    log_format body '$request_method $uri $status $request_length "$request_body" "$request_body_file"';
    log_subrequest on;
    client_body_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/logs/body.log body;
        location / { mirror /mirror; }
        location = /mirror { internal; return 204; }
        location /two/ { mirror /mirror; mirror /mirror2; }
        location = /mirror2 { internal; return 204; }
        location /small/ { mirror /mirror; client_body_buffer_size 8; alias %%DIR%%/html/; }
        location /kept/ { mirror /mirror; client_body_in_file_only on; alias %%DIR%%/html/; }
        location /clean/ { mirror /mirror; client_body_in_file_only clean; alias %%DIR%%/html/; }
        location /nobody/ { mirror /mirror; mirror_request_body off; alias %%DIR%%/html/; }
        location /limited/ { mirror /mirror; client_max_body_size 10; alias %%DIR%%/html/; }
        location /off/ { mirror off; alias %%DIR%%/html/; }
        location /tofile/ { mirror /f.txt; mirror /missing.txt; alias %%DIR%%/html/; }
    }
"""

FILES = {"index.html": "index\n", "f.txt": "file\n"}

BODY_16 = "0123456789abcdef"


def request(method, path, body=None, chunked=None, extra=""):
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s" % (method, path, extra)
    if chunked is not None:
        data = "".join("%x\r\n%s\r\n" % (len(c), c) for c in chunked) + "0\r\n\r\n"
        return head + "Transfer-Encoding: chunked\r\n\r\n" + data
    if body is not None:
        return head + "Content-Length: %d\r\n\r\n%s" % (len(body), body)
    return head + "\r\n"


HALF_CLOSE = object()


def head(method, path, extra=""):
    return "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s" % (method, path, extra)


# Each scenario: a name and what the client does - strings are sent, numbers are pauses (s), HALF_CLOSE
# shuts the client's side.
SCENARIOS = [
    ("GET without a body", [request("GET", "/f.txt")]),
    ("body with the headers", [request("GET", "/f.txt", body="hello")]),
    ("POST body, then 405", [request("POST", "/f.txt", body="posted")]),
    ("empty body", [request("GET", "/f.txt", body="")]),
    ("chunked body", [request("GET", "/f.txt", chunked=["ab", "cdef", "g"])]),
    ("two mirrors", [request("GET", "/two/", body="twice")]),
    ("pre-read body over client_body_buffer_size", [request("GET", "/small/f.txt", body=BODY_16 * 4)]),
    ("pre-read chunked body", [request("GET", "/small/f.txt", chunked=[BODY_16, BODY_16, "x"])]),
    ("body after the headers", [head("GET", "/f.txt", "Content-Length: 5\r\n\r\n"), 0.2, "la", 0.1, "ter"]),
    ("rest of the body fits the header buffer",
     [head("GET", "/small/f.txt", "Content-Length: 300\r\n\r\n") + "h" * 20, 0.2, "b" * 280]),
    ("body read in pieces, spilled",
     [head("GET", "/small/f.txt", "Content-Length: 4000\r\n\r\n"), 0.2, "a" * 1500, 0.1, "b" * 2500]),
    ("chunked in pieces, spilled",
     [head("GET", "/small/f.txt", "Transfer-Encoding: chunked\r\n\r\n"), 0.2, "400\r\n" + "c" * 600, 0.1,
      "c" * 424 + "\r\n5", 0.1, "\r\nhello\r\n0\r", 0.1, "\n\r\n"]),
    ("client_body_in_file_only on", [request("GET", "/kept/f.txt", body="keep me")]),
    ("client_body_in_file_only clean", [request("GET", "/clean/f.txt", body="drop me")]),
    ("empty body, in file only", [request("GET", "/kept/f.txt", body="")]),
    ("Expect: 100-continue", [head("GET", "/f.txt", "Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"), 0.2,
                              "next"]),
    ("mirror_request_body off", [request("GET", "/nobody/f.txt", body="unread")]),
    ("mirror off", [request("GET", "/off/f.txt", body="unread")]),
    ("mirrors to a file and to nothing", [request("GET", "/tofile/index.html", body="x")]),
    ("Content-Length over client_max_body_size", [request("GET", "/limited/f.txt", body="x" * 11)]),
    ("chunked over client_max_body_size", [request("GET", "/limited/f.txt", chunked=["12345678", "12345"])]),
    ("invalid chunked body", [head("GET", "/f.txt", "Transfer-Encoding: chunked\r\n\r\nzz\r\n")]),
    ("client_body_timeout", [head("GET", "/f.txt", "Content-Length: 10\r\n\r\nabc"), 1.6]),
    ("client closes mid-body", [head("GET", "/f.txt", "Content-Length: 10\r\n\r\nabc"), 0.2, HALF_CLOSE]),
]


def play(port, script):
    """Runs a client script; returns the response's first line (b"" when the server sent nothing)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for step in script:
        if step is HALF_CLOSE:
            s.shutdown(socket.SHUT_WR)
        elif isinstance(step, (int, float)):
            time.sleep(step)
        else:
            s.sendall(step.encode())
    return read_to_end(s).split(b"\r\n")[0]


def log_lines(server, wait_count):
    path = server.path("logs/body.log")
    wait_for(lambda: os.path.exists(path) and len(open(path).read().splitlines()) >= wait_count,
             what="%d log lines" % wait_count)
    return open(path).read().splitlines()


def normalize(lines, server):
    # Temp file names are random: keep only whether there was one.
    return [re.sub(r'"%s/client_body_temp/[0-9/]+"' % re.escape(server.dir), '"TEMPFILE"', line) for line in lines]


def test_request_bodies_read_as_nginx_reads_them(make_server):
    servers = [make_server(CONF, files=FILES), make_server(CONF, files=FILES, binary=NGINX)]
    results = []
    for s in servers:
        answers = [play(s.port, script) for _, script in SCENARIOS]
        lines = normalize(open(s.path("logs/body.log")).read().splitlines(), s)
        results.append((answers, lines))
    (w_answers, w_lines), (n_answers, n_lines) = results
    for (name, _), a, b in zip(SCENARIOS, w_answers, n_answers):
        assert a == b, "%s: weir %r, nginx %r" % (name, a, b)
    assert w_lines == n_lines
    # The lines say what was read: spot-check a few against the requests.
    assert 'GET /f.txt 200 83 "hello" "-"' in w_lines
    assert 'GET /mirror 204 0 "hello" "-"' in w_lines
    assert 'GET /f.txt 200 114 "abcdefg" "-"' in w_lines
    assert 'GET /f.txt 200 83 "later" "-"' in w_lines
    assert 'GET /small/f.txt 200 386 "%s" "-"' % ("h" * 20 + "b" * 280) in w_lines
    assert 'GET /f.txt 408 82 "abc" "-"' in w_lines
    assert 'GET /f.txt 400 82 "abc" "-"' in w_lines
    assert sum(1 for line in w_lines if line.endswith('"-" "TEMPFILE"')) == 2 * 5
    assert "a client request body is buffered to a temporary file" in servers[0].error_log()


def test_body_files_kept_or_cleaned(make_server):
    s = make_server(CONF, files=FILES)
    for path, body in (("/kept/f.txt", "keep me"), ("/clean/f.txt", "drop me")):
        assert play(s.port, [request("GET", path, body=body)]) == b"HTTP/1.1 200 OK"
    lines = open(s.path("logs/body.log")).read().splitlines()
    kept = re.search(r'GET /kept/f.txt 200 \d+ "-" "([^"]+)"', "\n".join(lines)).group(1)
    cleaned = re.search(r'GET /clean/f.txt 200 \d+ "-" "([^"]+)"', "\n".join(lines)).group(1)
    assert kept.startswith(s.dir + "/client_body_temp/")
    assert open(kept).read() == "keep me"
    assert not os.path.exists(cleaned)
    # A body kept on request is not news: no warning about buffering to a temporary file.
    assert "buffered to a temporary file" not in s.error_log()


def test_mirrors_on_a_keepalive_connection(make_server):
    conf = CONF.replace("log_subrequest on;", "")
    s = make_server(conf, files=FILES)
    c = s.client()
    one = "GET /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
    two = "GET /two/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
    c.send(one + two)  # pipelined: the second waits in the socket while the first's mirror runs
    assert c.response().status == 200
    assert c.response().status == 404
    c.send(one)
    r = c.response()
    assert r.status == 200 and r.body == b"file\n"
    c.close()
    wait_for(lambda: len(open(s.path("logs/body.log")).read().splitlines()) == 3, what="three lines")
    # log_subrequest off: only the main requests are logged, each with its body.
    assert open(s.path("logs/body.log")).read().splitlines() == [
        'GET /f.txt 200 %d "one" "-"' % len(one), 'GET /two/ 404 %d "two" "-"' % len(two),
        'GET /f.txt 200 %d "one" "-"' % len(one)]
