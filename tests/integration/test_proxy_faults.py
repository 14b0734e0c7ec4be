"""Upstream faults through proxy_pass, each against the scripted backend over real sockets: a reset
mid-body closes the client's connection (never a padded or complete-looking response); the keepalive
cache reuses only connections whose response was well framed; proxy_next_upstream retries where it
may (never a POST unless non_idempotent) and the $upstream_* lists show every try; a failed peer
gets traffic again after fail_timeout; a client that goes away mid-body releases the upstream
connection and the temp file; a temp directory that breaks at run time fails that response only; a
reload loses no proxied download."""
import os
import shutil
import signal
import socket
import threading
import time

from backend import Backend, KeepOpen, Reset, Send, Sleep, Wait, chunked, response
from conftest import NGINX, free_port, http_get, parse_one, read_to_end, wait_for

LOG = r"""
    log_format up '$request_method $uri $status "$upstream_addr" "$upstream_status"';
    access_log %%DIR%%/logs/up.log up;
    proxy_temp_path %%DIR%%/proxy_temp;
"""


def raw_get(port, path, pause=0.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    if pause:
        time.sleep(pause)
    return read_to_end(s)


def test_reset_mid_body_closes_the_client(make_server):
    head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    with Backend() as b:
        b.script("/cut", [Send(head + "a" * 30000), Sleep(0.2), Reset()])
        b.script("/nb/cut", [Send(head + "a" * 30000), Sleep(0.2), Reset()])
        s = make_server(LOG + """
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; }
                 location /nb/ { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
        """ % (b.port, b.port))
        for path in ("/cut", "/nb/cut"):
            data = raw_get(s.port, path)
            header, _, body = data.partition(b"\r\n\r\n")
            assert header.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 100000" in header
            assert 0 < len(body) < 100000, (path, len(body))  # cut short, then closed
        assert "upstream" in s.error_log()


def keepalive_conf(port):
    return LOG + """
    upstream ka { server 127.0.0.1:%d; keepalive 2; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             location / { proxy_pass http://ka; proxy_http_version 1.1;
                          proxy_set_header Connection ""; } }
    """ % port


def test_keepalive_reuses_only_well_framed_connections(make_server):
    with Backend() as b:
        b.script("/chunked", chunked(["ab", "cd"]) + [KeepOpen()])
        b.script("/extra", [Send("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"), KeepOpen()])
        b.script("/close", [response(200, "bye", {"Connection": "close"}), KeepOpen()])
        s = make_server(keepalive_conf(b.port))
        for i in range(5):
            assert http_get(s.port, "/k%d" % i).status == 200
        assert b.connections == 1  # one upstream connection for five requests
        r = http_get(s.port, "/chunked")
        assert r.body == b"abcd" and b.connections == 1  # chunked and complete: still reused
        r = http_get(s.port, "/extra")
        assert r.body == b"abc"
        assert http_get(s.port, "/after").status == 200
        assert b.connections == 2  # the connection that sent too much was not kept
        assert http_get(s.port, "/close").body == b"bye"
        assert http_get(s.port, "/after2").status == 200
        assert b.connections == 3  # nor the one the upstream asked to close
        method, target, headers, _ = b.requests[-1]
        assert "connection" not in headers  # proxy_set_header Connection "" removes it


def test_next_upstream_and_the_upstream_lists(make_server):
    with Backend() as a, Backend() as b:
        a.script("/x", [response(502, "bad")])
        s = make_server(LOG + """
        upstream two { server 127.0.0.1:%d max_fails=0; server 127.0.0.1:%d; }
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 proxy_next_upstream error timeout http_502;
                 location / { proxy_pass http://two; }
                 location /any/ { proxy_pass http://two/;
                                  proxy_next_upstream error http_502 non_idempotent; }
                 location /once/ { proxy_pass http://two/; proxy_next_upstream_tries 1; } }
        """ % (a.port, b.port))
        assert all(http_get(s.port, "/x").status == 200 for _ in range(4))
        posts = [http_get(s.port, "/x", method="POST", body=b"p").status for _ in range(4)]
        assert 502 in posts and 200 in posts  # a POST is not sent twice
        assert all(http_get(s.port, "/any/x", method="POST", body=b"p").status == 200
                   for _ in range(4))
        assert 502 in [http_get(s.port, "/once/x").status for _ in range(4)]
        log = open(s.path("logs/up.log")).read().splitlines()
        pair = '"127.0.0.1:%d, 127.0.0.1:%d" "502, 200"' % (a.port, b.port)
        assert any(l.startswith("GET /x 200 ") and pair in l for l in log), log
        assert not any(l.startswith("POST /x ") and "," in l for l in log)
        assert any(l.startswith("POST /any/x 200 ") and pair in l for l in log)


def test_failed_peer_returns_after_fail_timeout(make_server):
    gone = free_port()
    with Backend() as b:
        s = make_server(LOG + """
        upstream two { server 127.0.0.1:%d max_fails=1 fail_timeout=1s; server 127.0.0.1:%d; }
        server { listen 127.0.0.1:%%%%PORT%%%%; location / { proxy_pass http://two; } }
        """ % (gone, b.port))
        assert http_get(s.port, "/a").status == 200  # refused, then the other peer
        assert http_get(s.port, "/b").status == 200
        wait_for(lambda: "upstream server temporarily disabled" in s.error_log(),
                 what="the peer taken out")
        with Backend(port=gone) as back:
            for i in range(4):
                assert http_get(s.port, "/c%d" % i).status == 200
            assert back.requests == []  # still out within fail_timeout
            time.sleep(1.2)
            for i in range(6):
                assert http_get(s.port, "/d%d" % i).status == 200
            assert back.requests  # back in rotation


def temp_files(s):
    root = s.path("proxy_temp")
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]


def test_client_abort_releases_connection_and_temp_file(make_server):
    big = b"z" * 20000000  # more than the kernel's socket buffers take
    with Backend() as b:
        b.script("/big", [response(200, big)])
        s = make_server(LOG + """
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; } }
        """ % b.port)
        assert http_get(s.port, "/warm").status == 200
        baseline = s.idle_fd_counts()
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(10)
        c.connect(("127.0.0.1", s.port))
        c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        c.recv(100)
        # The spilled temp file is open in a worker (unlinked at creation, as weir makes them).
        wait_for(lambda: any(f > f0 for (_, f), (_, f0) in zip(s.fd_counts(), baseline)),
                 what="the response spilled to a temp file")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # reset: the client is gone mid-body
        wait_for(lambda: s.fd_counts() == baseline, what="descriptors back to the baseline")
        assert temp_files(s) == []  # unlinked at creation; nothing left behind
        assert http_get(s.port, "/after").status == 200


def test_temp_dir_broken_at_run_time(make_server):
    big = b"t" * 2000000
    with Backend() as b:
        b.script("/big", [response(200, big)])
        s = make_server(LOG + """
        server { listen 127.0.0.1:%%%%PORT%%%% sndbuf=32k;
                 location / { proxy_pass http://127.0.0.1:%d; } }
        """ % b.port)
        shutil.rmtree(s.path("proxy_temp"))
        with open(s.path("proxy_temp"), "w") as f:
            f.write("not a directory")
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow client: the pipe must spill
        c.settimeout(10)
        c.connect(("127.0.0.1", s.port))
        c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
        header, _, body = read_to_end(c).partition(b"\r\n\r\n")
        assert header.startswith(b"HTTP/1.1 200 ") and len(body) < len(big)
        assert "proxy_temp" in s.error_log() and "Not a directory" in s.error_log()
        r = http_get(s.port, "/small")  # the next response, which needs no temp file, is fine
        assert r.status == 200 and r.body == b"backend /small"
        os.unlink(s.path("proxy_temp"))
        os.mkdir(s.path("proxy_temp"))
        os.chmod(s.path("proxy_temp"), 0o777)


def test_reload_loses_no_proxied_download(make_server):
    piece = b"r" * 100000
    steps = [Send("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(piece) * 20))]
    for _ in range(20):
        steps += [Send(piece), Sleep(0.1)]
    with Backend() as b:
        b.script("/long", steps)
        s = make_server(LOG + """
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; } }
        """ % b.port)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=20)
        c.sendall(b"GET /long HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        first = c.recv(1000)
        s.send_signal(signal.SIGHUP)
        data = first + read_to_end(c)
        r, _ = parse_one(data)
        assert r.status == 200 and r.body == piece * 20
        assert http_get(s.port, "/after").status == 200


def test_429_counts_toward_max_fails(make_server):
    """As in nginx, a 429 that proxy_next_upstream acts on is the peer's failure (403 and 404 are
    not): with max_fails=1 the peer is out after one."""
    with Backend() as a, Backend() as b:
        a.script("/x", [response(429, "slow down")])
        s = make_server(LOG + """
        upstream two { server 127.0.0.1:%d max_fails=1 fail_timeout=30s; server 127.0.0.1:%d; }
        server { listen 127.0.0.1:%%%%PORT%%%%; proxy_next_upstream error http_429;
                 location / { proxy_pass http://two; } }
        """ % (a.port, b.port))
        assert [http_get(s.port, "/x").status for _ in range(6)] == [200] * 6
        assert len(a.requests) == 1  # out after its 429
        assert "upstream server temporarily disabled" in s.error_log()


def test_a_request_that_comes_with_its_fin_is_aborted_as_nginx_aborts_it(make_server):
    """A client that sends its request and closes its side at once (the FIN read with the request,
    so no later event tells) has the proxied request aborted, as nginx does: no answer, the upstream
    connection closed, and nginx's log line. The upstream answers only once the client has seen
    the connection close, so an answer would mean the abort was missed."""
    closed = threading.Event()
    with Backend() as b:
        b.script("/late", [Wait(closed), response(200, "late\n")])
        conf = """
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; } }
        """ % b.port
        for binary in (None, NGINX):
            closed.clear()
            s = make_server(conf, **({"binary": binary} if binary else {}))
            c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            c.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            got = c.recv(4096)  # the close, not a timeout (which would raise)
            c.close()
            closed.set()
            assert got == b"", (binary, got)
            wait_for(lambda: "epoll_wait() reported that client prematurely closed connection, so "
                     "upstream connection is closed too" in s.error_log(), what="the log line")
