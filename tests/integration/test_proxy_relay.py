"""How the upstream's response is relayed (#16 defects 4-7): a non-buffered response's header leaves
at once; $upstream_response_length and $upstream_bytes_received count what nginx counts; the
upstream connection is released as soon as the upstream is done, whatever the client's pace; small
chunks spilled to the temp file cost memory and wire bytes in proportion to the data."""
import os
import socket
import threading

from backend import Backend, KeepOpen, Send, Wait, chunked, response
from conftest import NGINX, dechunk, http_get, read_to_end, slow_client, wait_for

LENGTHS = """
    log_format lengths '$uri $upstream_response_length $upstream_bytes_received';
    access_log %%%%DIR%%%%/logs/lengths.log lengths;
    server { listen 127.0.0.1:%%%%PORT%%%%;
             location / { proxy_pass http://127.0.0.1:%d; }
             location /nb/ { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
"""


def test_upstream_response_length_as_nginx(make_server):
    with Backend() as b:
        for prefix in ("", "/nb"):
            b.script(prefix + "/1k", [response(200, b"k" * 1024)])
            b.script(prefix + "/300k", [response(200, b"m" * 300000)])
            b.script(prefix + "/chunked", chunked(["abc", "d" * 5000, "ef"]))
            b.script(prefix + "/empty", [response(204, b"")])
        paths = [p + q for p in ("", "/nb") for q in ("/1k", "/300k", "/chunked", "/empty")]
        logs = {}
        for binary in (None, NGINX):
            s = make_server(LENGTHS % (b.port, b.port), binary=binary)
            for path in paths:
                assert http_get(s.port, path).status in (200, 204)
            wait_for(lambda: len(open(s.path("logs/lengths.log")).readlines()) == len(paths),
                     what="the access-log lines")
            logs[s.name] = open(s.path("logs/lengths.log")).read().splitlines()
        assert logs["weir"] == logs["nginx"], logs
        assert "/nb/300k 300000 " in "\n".join(logs["weir"])


def test_non_buffered_header_leaves_at_once(make_server):
    """An event stream: the upstream sends its header and waits. The client must see the header
    before the upstream sends anything more (the backend waits for the test to say so)."""
    seen = threading.Event()
    with Backend() as b:
        b.script("/events", [Send("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"),
                             Wait(seen), Send("6\r\ndata:1\r\n0\r\n\r\n")])
        s = make_server("""
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
        """ % b.port)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)  # times out (the test fails) if the header waits for the body
            assert chunk
            head += chunk
        assert head.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in head
        seen.set()
        rest = head.partition(b"\r\n\r\n")[2]
        while b"0\r\n\r\n" not in rest:
            chunk = c.recv(4096)
            assert chunk
            rest += chunk
        assert b"data:1" in rest
        c.close()


HINTS = ("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
         "Link: </app.js>; rel=preload; as=script\r\nConnection: keep-alive\r\n\r\n")


def read_until(c, marker, data=b""):
    while marker not in data:
        chunk = c.recv(65536)  # times out (the test fails) when the marker never comes
        assert chunk, data
        data += chunk
    return data


def test_early_hints_reach_the_client_before_the_answer(make_server):
    """#25: 103 Early Hints and its Link headers go to an HTTP/1.1 client before the final answer,
    buffered and not; the upstream sends the answer only once the test saw the hints. An HTTP/1.0
    client gets the answer alone, and the upstream's 100 Continue to a body weir already read is
    not passed on."""
    events = {p: threading.Event() for p in ("/hints", "/nb/hints")}
    with Backend() as b:
        for path, seen in events.items():
            b.script(path, [Send(HINTS), Wait(seen), response(200, "answer")])
        b.script("/old", [Send(HINTS), response(200, "answer")])
        b.script("/continue", [Send("HTTP/1.1 100 Continue\r\n\r\n"),
                               Send("HTTP/1.1 102 Processing\r\n\r\n"), response(200, "answer")])
        s = make_server("""
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; }
                 location /nb/ { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
        """ % (b.port, b.port))
        for path, seen in events.items():
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            data = read_until(c, b"\r\n\r\n")
            hints, _, rest = data.partition(b"\r\n\r\n")
            assert hints.split(b"\r\n") == [
                b"HTTP/1.1 103 Early Hints", b"Link: </style.css>; rel=preload; as=style",
                b"Link: </app.js>; rel=preload; as=script"], path  # no hop-by-hop field
            seen.set()
            data = read_until(c, b"answer", rest)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n"), path
            c.close()
        r = http_get(s.port, "/old", version="1.0")
        assert r.status == 200 and r.body == b"answer"
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"POST /continue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: 4\r\n\r\nbody")
        data = read_until(c, b"answer")
        assert data.startswith(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n"), data
        c.close()


def test_upstream_released_when_done_not_when_the_client_is(make_server):
    """The issue's reproduction D: with max_conns=1, a second request while a slow client still
    downloads a response the upstream has finished sending is served (on the same keepalive
    connection), not refused with "no live upstreams"."""
    big = bytes(range(256)) * 8192  # 2 MiB
    with Backend() as b:
        b.script("/big", [response(200, big), KeepOpen()])
        s = make_server("""
        proxy_temp_path %%%%DIR%%%%/proxy_temp;
        upstream u { server 127.0.0.1:%d max_conns=1; keepalive 4; }
        server { listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
                 location / { proxy_pass http://u; proxy_http_version 1.1;
                              proxy_set_header Connection ""; } }
        """ % b.port)
        c = slow_client(s.port, "/big", timeout=10)
        first = c.recv(100)
        assert first.startswith(b"HTTP/1.1 200 ")
        # The client reads no more until the second request was served.
        small = []
        wait_for(lambda: small.append(http_get(s.port, "/small").status) or small[-1] == 200,
                 what="the second request served")
        assert b.connections == 1  # on the connection the first response came by
        data = first + read_to_end(c)
        assert data.partition(b"\r\n\r\n")[2] == big


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def spilled_bytes(pid):
    """The size of the worker's temp files (unlinked at creation, open by descriptor)."""
    total = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if "proxy_temp" in os.readlink("/proc/%d/fd/%s" % (pid, fd)):
                total += os.stat("/proc/%d/fd/%s" % (pid, fd)).st_size
        except OSError:
            pass
    return total


def test_tiny_chunks_spilled_cost_what_the_data_costs(make_server):
    """The issue's reproduction C, at 1 MB: sent as 1-byte chunks to a client that stalls until the
    temp file holds nearly all of it. The worker's memory grows by a few MiB at most (it grew by
    ~440 MB: a buffer per chunk), and the client gets the body with little framing (13.9 MB of
    chunk framing for 4 MB of data before)."""
    n = 1000000  # 6 MB of framing from the upstream; ASan on a busy machine must keep up
    with Backend() as b:
        b.script("/tiny", [Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                           Send(b"1\r\nx\r\n" * n + b"0\r\n\r\n")])
        s = make_server("""
        proxy_temp_path %%%%DIR%%%%/proxy_temp;
        server { listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
                 location / { proxy_pass http://127.0.0.1:%d; } }
        """ % b.port, main_conf="worker_processes 1;")
        assert http_get(s.port, "/warm").status == 200
        (pid,) = s.worker_pids()
        before = proc_status(pid, "VmRSS")
        c = slow_client(s.port, "/tiny")
        data = c.recv(100)
        wait_for(lambda: spilled_bytes(pid) > n - 200000, timeout=60, what="the body spilled")
        data += read_to_end(c)
        grown = proc_status(pid, "VmHWM") - before
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert len(body) < n * 1.02, len(body)
        assert dechunk(body) == b"x" * n
        assert grown < 16 * 1024 * 1024, grown
