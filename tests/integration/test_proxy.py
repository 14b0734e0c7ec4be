"""proxy_pass through the upstream lifecycle, against the scripted backend over real sockets: the
buffered (event pipe, temp-file spill) and non-buffered relays, chunked and Content-Length bodies, the
request weir builds, and the upstream faults that must answer 502/504."""
import os
import threading
import socket
import time

from backend import Backend, Close, KeepOpen, Reset, Send, Sleep, Wait, chunked, response
from conftest import NGINX, WEIR, Client, http_get, slow_get, parse_one, read_to_end, wait_for


def conf(port, extra=""):
    return r"""
    upstream back { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%%%%PORT%%%% sndbuf=32k;  # the kernel does not take a whole body
        proxy_read_timeout 1s;
        location / { proxy_pass http://127.0.0.1:%d; }
        location /nb/ { proxy_pass http://back/; proxy_buffering off; }
        location /small/ { proxy_pass http://back/; proxy_buffers 2 4k; proxy_busy_buffers_size 4k;
                           proxy_max_temp_file_size 1m; proxy_temp_file_write_size 4k; }
        %s
    }
""" % (port, port, extra)


def test_buffered_and_non_buffered_bodies(make_server):
    big = os.urandom(300000)
    with Backend() as b:
        b.script("/big", [response(200, big, {"X-Up": "1"})])
        b.script("/chunks", chunked(["ab", "c" * 5000, "d"]))
        s = make_server(conf(b.port))
        r = http_get(s.port, "/big")
        assert r.status == 200 and r.body == big and r.header("X-Up") == "1"
        assert r.header("Server").startswith("weir")  # the upstream's own Server is hidden
        r = http_get(s.port, "/chunks")
        assert r.status == 200 and r.body == b"ab" + b"c" * 5000 + b"d"
    with Backend() as b:
        b.script("/big", [response(200, big)])
        b.script("/chunks", chunked(["x" * 10, "y"]))
        s2 = make_server(conf(b.port))
        for path in ("/nb/big", "/small/big"):
            r = slow_get(s2.port, path)
            assert r.status == 200 and r.body == big, path
        r = http_get(s2.port, "/nb/chunks")
        assert r.status == 200 and r.body == b"x" * 10 + b"y"
        assert "buffered to a temporary file" in s2.error_log()


def test_request_line_and_headers(make_server):
    with Backend() as b:
        s = make_server(conf(b.port))
        r = http_get(s.port, "/nb/q?a=1", headers={"X-Client": "c", "Connection": "keep-alive, X-Hop",
                                                   "X-Hop": "secret"})
        assert r.status == 200
        method, target, headers, body = b.requests[-1]
        assert method == "GET" and target == "/q?a=1"  # the location's prefix replaced by "/"
        h = {k.lower(): v for k, v in headers.items()}
        assert h["host"] == "back"  # $proxy_host
        assert h["connection"] == "close" and h["x-client"] == "c"
        assert "x-hop" not in h  # named by the client's Connection header: hop-by-hop
        r = http_get(s.port, "/p", method="POST", body=b"payload")
        assert r.status == 200 and b.requests[-1][3] == b"payload"


def test_upstream_faults(make_server):
    with Backend() as b:
        b.script("/garbage", [Send("NOT HTTP AT ALL\r\n\r\n")])
        b.script("/reset", [Reset()])
        b.script("/slow", [Sleep(3), response(200, "late")])
        b.script("/big-header", [Send("HTTP/1.1 200 OK\r\nX-Big: " + "a" * 8000 + "\r\n\r\n")])
        b.script("/extra", [Send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"), Close()])
        s = make_server(conf(b.port))
        assert http_get(s.port, "/garbage").status == 502
        assert http_get(s.port, "/reset").status == 502
        assert http_get(s.port, "/slow").status == 504
        assert http_get(s.port, "/big-header").status == 502
        r = http_get(s.port, "/extra")
        assert r.status == 200 and r.body == b"abc"
        log = s.error_log()
        assert "upstream sent invalid status line" in log
        assert "upstream timed out" in log and "upstream sent too big header" in log
    s2 = make_server(conf(1))  # nothing listens on port 1
    assert http_get(s2.port, "/x").status == 502
    assert "connect() failed" in s2.error_log() and "Connection refused" in s2.error_log()


def streaming_conf(port):
    return r"""
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        client_body_buffer_size 8k;
        client_body_timeout 1s;
        location / { proxy_pass http://127.0.0.1:%d; proxy_request_buffering off;
                     proxy_http_version 1.1; }
        location /v10/ { proxy_pass http://127.0.0.1:%d; proxy_request_buffering off; }
        location /buffered/ { proxy_pass http://127.0.0.1:%d; }
    }
""" % (port, port, port)


def test_request_body_streams_without_buffering(make_server):
    body = os.urandom(300000)
    with Backend() as b:
        s = make_server(streaming_conf(b.port))
        for path in ("/up", "/buffered/up"):
            r = http_get(s.port, path, method="POST", body=body)
            assert r.status == 200 and b.requests[-1][3] == body, path
            assert b.requests[-1][2]["content-length"] == str(len(body))
        log = s.error_log()
        assert log.count("a client request body is buffered to a temporary file") == 1  # buffered/
        # The upstream hears of the request before the client has sent all of its body.
        head = b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\nConnection: close\r\n\r\n"
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(head + b"a" * 10000)
        wait_for(lambda: b.connections == 3, what="the upstream connection, body still arriving")
        c.sendall(b"b" * 10000)
        r, _ = parse_one(read_to_end(c))
        assert r.status == 200 and b.requests[-1][3] == b"a" * 10000 + b"b" * 10000
        # Chunked from the client: chunked to an HTTP/1.1 upstream, counted first for HTTP/1.0.
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"x" * 5000, b"y" * 20000, b"z"))
        for path, framing in (("/ch", "transfer-encoding"), ("/v10/ch", "content-length")):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"Connection: close\r\n\r\n" % path.encode() + chunks + b"0\r\n\r\n")
            r, _ = parse_one(read_to_end(c))
            assert r.status == 200, path
            assert b.requests[-1][3] == b"x" * 5000 + b"y" * 20000 + b"z", path
            assert framing in b.requests[-1][2], (path, b.requests[-1][2])


def test_streamed_body_client_timeout(make_server):
    with Backend() as b:
        s = make_server(streaming_conf(b.port))
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
        start = time.time()
        data = read_to_end(c)  # client_body_timeout 1s: the request ends, the connection closes
        assert time.time() - start < 5
        assert b"HTTP/1.1 200" not in data
        wait_for(lambda: "client timed out" in s.error_log(), what="the timeout logged")
        assert b.requests == []  # the upstream never got a complete request


def test_force_ranges_as_nginx(make_server):
    cf = r"""
    proxy_temp_path %%%%DIR%%%%/proxy_temp;
    proxy_headers_hash_max_size 1024;
    proxy_headers_hash_bucket_size 128;
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { proxy_pass http://127.0.0.1:%d; }
        location /ranged/ { proxy_pass http://127.0.0.1:%d; proxy_force_ranges on; }
    }
    """
    with Backend() as b:
        b.script("/f", [response(200, "0123456789", {"Accept-Ranges": "none"}), KeepOpen()])
        b.script("/ranged/f", [response(200, "0123456789", {"Accept-Ranges": "none"}), KeepOpen()])
        for binary in (None, NGINX):  # the same answers from both
            s = make_server(cf % (b.port, b.port), binary=binary)
            r = http_get(s.port, "/f", headers={"Range": "bytes=2-4"})
            assert r.status == 200 and r.body == b"0123456789", s.name  # no ranges of our own
            assert r.header("Accept-Ranges") == "none"
            r = http_get(s.port, "/ranged/f", headers={"Range": "bytes=2-4"})
            assert r.status == 206 and r.body == b"234", s.name
            assert r.header("Content-Range") == "bytes 2-4/10"
            r = http_get(s.port, "/ranged/f", headers={"Range": "bytes=0-1,5-6"})
            assert r.status == 200 and r.body == b"0123456789", s.name  # one range at most


def test_proxy_limit_rate_paces_the_upstream(make_server):
    body = b"p" * 200000
    with Backend() as b:
        b.script("/r", [response(200, body)])
        s = make_server(conf(b.port, "location /paced/ { proxy_pass http://back/; "
                                     "proxy_limit_rate 50k; proxy_read_timeout 1s; }"))
        start = time.time()
        r = http_get(s.port, "/paced/r")
        paced = time.time() - start
        # 200 kB read at 50 KiB/s: at least 2.9 s (the first second is free); pauses are not timeouts.
        assert r.status == 200 and r.body == body and paced > 1.5, paced
        start = time.time()
        assert http_get(s.port, "/r").body == body and time.time() - start < 1.0
        assert "timed out" not in s.error_log()


def test_pipe_keeps_sending_what_the_write_filter_holds(make_server):
    # A temp-file body sent in sendfile_max_chunk pieces while the reader waits for buffers: the
    # pipe must push the write filter's held data when the client can take it (it stalled).
    big = os.urandom(1000000)
    with Backend() as b:
        b.script("/big", [response(200, big)])
        s = make_server(conf(b.port, "location /chunky/ { proxy_pass http://back/; "
                                     "proxy_buffers 2 4k; proxy_busy_buffers_size 4k; "
                                     "proxy_temp_file_write_size 4k; sendfile_max_chunk 4k; }"))
        for _ in range(3):
            r = slow_get(s.port, "/chunky/big", pause=0.2)
            assert r.status == 200 and r.body == big


def test_a_retry_keeps_what_the_request_was(make_server):
    """proxy_pass with variables, and the first peer closes without an answer: the request goes to
    the next one, and $proxy_host (evaluated for this request) is still known afterwards - the
    retry resets the response parser only."""
    with Backend() as bad, Backend() as good:
        bad.script("/r", [Close()])
        good.script("/r", [response(200, "second")])
        s = make_server(r"""
            log_format hosts '$proxy_host $status';
            upstream pool { server 127.0.0.1:%d; server 127.0.0.1:%d; }
            server {
                listen 127.0.0.1:%%%%PORT%%%%;
                access_log %%%%DIR%%%%/logs/hosts.log hosts;
                location / { set $group pool; proxy_pass http://$group; }
            }
        """ % (bad.port, good.port))
        r = http_get(s.port, "/r")
        assert (r.status, r.body) == (200, b"second")
        wait_for(lambda: "pool 200" in s.access_log("logs/hosts.log"), what="the log line")
        assert "upstream prematurely closed connection" in s.error_log()


def test_a_retried_request_sends_its_body_again_whole(make_server):
    """A POST whose body went to a temp file (and whose head is in memory) reaches a peer that
    reads it and closes without an answer: with non_idempotent the request goes to the next peer,
    every buffer rewound to where it began, and that peer gets the same body."""
    body = os.urandom(200000)
    with Backend() as bad, Backend() as good:
        bad.script("/post", [Close()])
        s = make_server(r"""
            upstream two { server 127.0.0.1:%d; server 127.0.0.1:%d; }
            server {
                listen 127.0.0.1:%%%%PORT%%%%;
                client_body_buffer_size 8k;
                location / { proxy_pass http://two; proxy_next_upstream error non_idempotent; }
            }
        """ % (bad.port, good.port))
        r = http_get(s.port, "/post", method="POST", body=body)
        assert r.status == 200, r.status
        assert bad.requests[-1][3] == body
        assert good.requests[-1][0] == "POST" and good.requests[-1][3] == body


def test_a_chunked_body_goes_chunked_only_while_it_is_read(make_server):
    # proxy_request_buffering off: a chunked body still coming streams to the upstream chunked
    # ($proxy_internal_chunked is "chunked"); one already read whole goes with its Content-Length
    # ($proxy_internal_chunked not found, so no header); as Debian's nginx.
    for binary in (WEIR, NGINX):
        with Backend() as b:
            seen, go = threading.Event(), threading.Event()

            def on_header(method, target, headers):
                seen.set()
                return [Wait(go), response(200, b"done")]
            b.script("/streamed", on_header, early=True)
            s = make_server("""server { listen 127.0.0.1:%%%%PORT%%%%;
                location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1;
                             proxy_request_buffering off; proxy_set_header X-C $proxy_internal_chunked; } }
            """ % b.port, binary=binary)
            c = Client(s.port)
            c.send("POST /whole HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            assert c.response().status == 200
            # The rest of the body is sent once the upstream has the request's header.
            c.send("POST /streamed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n")
            assert seen.wait(10)
            c.send("2\r\ngh\r\n0\r\n\r\n")
            wait_for(lambda: b.bodies_read == 2, what="the streamed body's end")
            go.set()
            r = c.response()
            assert (r.status, r.body) == (200, b"done")
            c.close()
            wait_for(lambda: len(b.requests) == 2, what="the requests")
            (m1, t1, h1, body1), (m2, t2, h2, body2) = b.requests
            assert (t1, h1.get("x-c"), h1.get("content-length"), body1) == ("/whole", None, "3", b"abc"), binary
            assert (t2, h2.get("x-c"), h2.get("transfer-encoding"), body2) == \
                ("/streamed", "chunked", "chunked", b"defgh"), binary


def test_proxy_pass_inside_limit_except_as_nginx(make_server):
    # proxy_pass is one of the few directives limit_except takes: the methods it does not name are
    # proxied, the others served by the location.
    conf = """server { listen 127.0.0.1:%%%%PORT%%%%;
        location /api/ { limit_except GET { proxy_pass http://127.0.0.1:%d; } } }"""
    seen = []
    for binary in (WEIR, NGINX):
        with Backend() as b:
            s = make_server(conf % b.port, files={"api/f.txt": b"static\n"}, binary=binary)
            got = [(m, http_get(s.port, "/api/f.txt", method=m, body=b"" if m == "POST" else None))
                   for m in ("GET", "POST", "DELETE")]
            seen.append(([(m, r.status, r.body) for m, r in got], [x[:2] for x in b.requests]))
    assert seen[0] == seen[1]
    assert seen[0][0][0] == ("GET", 200, b"static\n")
    assert seen[0][1] == [("POST", "/api/f.txt"), ("DELETE", "/api/f.txt")]
