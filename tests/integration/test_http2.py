"""HTTP/2 (#14) with real clients - curl (--http2, --http2-prior-knowledge), h2load and a frame-level
client on Debian's python3-h2 - beside Debian's nginx on the same configuration: ALPN h2 over TLS
and prior-knowledge h2c, the request line, variables and access log, cookies joined, HEAD and 304,
large files under flow control (a window the client opens slowly), request bodies with and without
a length to a proxied origin, many streams at once, resets, limits (too large a header field,
keepalive_requests), graceful GOAWAY on quit, and the directives' load-time messages."""
import collections
import contextlib
import gzip
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from backend import Backend, KeepOpen, response
from conftest import NGINX, WEIR, check_conf, make_certificate, wait_for, weir_and_nginx
from h2client import H2

BIG = os.urandom(3 * 1024 * 1024 + 17)
FILES = {"index.html": "hello over h2\n", "big.bin": BIG}


@pytest.fixture(scope="module")
def cert():
    d = tempfile.mkdtemp(prefix="weir-h2-")
    os.chmod(d, 0o755)
    yield make_certificate(d, "c")
    shutil.rmtree(d, ignore_errors=True)


def conf(cert, extra=""):
    crt, key = cert
    return """
    log_format h2 '$request|$status|$body_bytes_sent|$http2|$server_protocol|$https|$http_cookie|$request_length|$sent_http_connection|$sent_http_location';
    access_log %%%%DIR%%%%/logs/h2.log h2;
    server {
        listen 127.0.0.1:%%%%PORT0%%%% http2;
        listen 127.0.0.1:%%%%PORT1%%%% ssl http2;
        listen 127.0.0.1:%%%%PORT2%%%% ssl;
        server_name localhost;
        ssl_certificate %s; ssl_certificate_key %s;
        location /echo { return 200 "$request_method|$uri|$args|$http_cookie|$http_x_a|$content_length\\n"; }
        location /r { return 301 /index.html; }
        %s
    }
    """ % (crt, key, extra)


@pytest.fixture(scope="module")
def pair(cert):
    yield from weir_and_nginx(conf(cert), FILES, ports=3)


def curl(*args):
    out = subprocess.run(["curl", "-sS", "-k", "--max-time", "20", "-o", "-", "-w",
                          "\n%{http_code}|%{http_version}", *args], capture_output=True)
    body, _, tail = out.stdout.rpartition(b"\n")
    return out.returncode, body, tail.decode()


def h2log(s, n):
    path = s.path("logs/h2.log")
    wait_for(lambda: os.path.exists(path) and len(open(path).readlines()) >= n, what="log lines")
    return open(path).read().splitlines()


def test_h2c_and_tls_alpn_beside_nginx(pair):
    results = []
    for s in pair:
        p0, p1, p2 = s.ports
        got = [
            curl("--http2-prior-knowledge", "http://127.0.0.1:%d/echo?x=1" % p0, "-b", "a=1; b=2",
                 "-H", "X-A: v"),
            curl("--http2", "https://127.0.0.1:%d/echo" % p1),
            curl("--http1.1", "https://127.0.0.1:%d/echo" % p1),
            # No http2 on this address: ALPN chooses HTTP/1.1.
            curl("--http2", "https://127.0.0.1:%d/echo" % p2),
            curl("--http2-prior-knowledge", "http://127.0.0.1:%d/big.bin" % p0),
            curl("--http2-prior-knowledge", "http://127.0.0.1:%d/r" % p0, "-D", "-"),
            curl("--http2", "https://127.0.0.1:%d/nothing" % p1),
        ]
        results.append((got, h2log(s, 7)))
    (weir, weir_log), (nginx, nginx_log) = results
    assert weir[0] == (0, b"GET|/echo|x=1|a=1; b=2|v|\n", "200|2")
    assert weir[1][2] == "200|2" and weir[2][2] == "200|1.1" and weir[3][2] == "200|1.1"
    assert hashlib.md5(weir[4][1]).digest() == hashlib.md5(BIG).digest()
    assert b"location: http://127.0.0.1:%d/index.html" % pair[0].ports[0] in weir[5][1]
    assert weir[6][2] == "404|2"
    for w, n in zip(weir, nginx):
        assert w[0] == n[0] and w[2] == n[2]
        if w[2].startswith("200"):  # error pages name their server
            assert w[1] == n[1]
    # Error pages name their server, so their sizes differ.
    # $request_length of HTTP/2 is the compressed header block's (and the body's), as nginx counts
    # it; a stream is never kept alive itself ("close"); the Location logged is the one sent.
    def mask(lines):
        return [re.sub(r":\d+/", ":PORT/", re.sub(r"\|(30\d|404)\|\d+\|", r"|\1|-|", ln))
                for ln in lines]

    assert mask(weir_log) == mask(nginx_log)
    assert weir_log[0].startswith("GET /echo?x=1 HTTP/2.0|200|26|h2c|HTTP/2.0||a=1; b=2|")
    assert weir_log[0].endswith("|close|-")
    assert weir_log[1].split("|")[3:7] == ["h2", "HTTP/2.0", "on", "-"]
    assert weir_log[2].split("|")[3:7] == ["", "HTTP/1.1", "on", "-"]
    assert weir_log[5].endswith("|close|http://127.0.0.1:%d/index.html" % pair[0].ports[0])


def test_head_304_and_status_only_answers(pair):
    for s in pair:
        c = H2(s.ports[0])
        head = c.response(c.request("/index.html", "HEAD"))
        assert head.headers[":status"] == "200" and head.body == b""
        assert head.headers["content-length"] == "14"
        etag = head.headers["etag"]
        nm = c.response(c.request("/index.html", headers=[("if-none-match", etag)]))
        assert nm.headers[":status"] == "304" and nm.body == b""
        # Connection-specific fields are never sent (RFC 9113 8.2.2).
        assert not any(k in head.headers for k in ("connection", "keep-alive", "transfer-encoding"))
        c.close()


def test_trailers(cert):
    """add_trailer's fields come as a HEADERS frame after the body (END_STREAM on it), as nginx
    sends them; a response without trailers ends on its last DATA frame."""
    extra = "location /t { add_trailer X-Trailer yes; add_trailer X-Other $uri; }"
    with servers(cert, extra) as pair:
        got = []
        for s in pair:
            s.write("t/a.txt", "trailered\n")
            c = H2(s.ports[0])
            t = c.response(c.request("/t/a.txt"))
            plain = c.response(c.request("/index.html"))
            got.append((t.headers[":status"], t.body, t.trailers, plain.trailers))
            c.close()
        assert got[0] == ("200", b"trailered\n", {"x-trailer": "yes", "x-other": "/t/a.txt"}, None)
        assert got[0] == got[1]


def test_flow_control_with_a_slow_window(pair):
    """The client's window is 1000 bytes and opens by 64 KiB at a time: the 3 MiB file still
    arrives whole, in frames no larger than the window allows, on both servers."""
    for s in pair:
        c = H2(s.ports[0], settings={4: 1000}, auto_window=False)  # INITIAL_WINDOW_SIZE
        sid = c.request("/big.bin")
        st = c.streams[sid]
        c.wait(lambda: len(st.body) >= 1000, what="first window")
        assert len(st.body) == 1000
        while not st.ended:
            before = len(st.body)
            c.open_window(sid, 65536)
            c.wait(lambda: st.ended or len(st.body) >= min(before + 65536, len(BIG)),
                   what="next window")
        assert st.body == BIG
        # The connection serves another stream afterwards.
        assert c.response(c.request("/index.html")).body == b"hello over h2\n"
        c.close()


@contextlib.contextmanager
def servers(cert, extra):
    """weir and nginx on conf(cert, extra) for one test."""
    gen = weir_and_nginx(conf(cert, extra), FILES, ports=3)
    pair = next(gen)
    try:
        yield pair
    finally:
        next(gen, None)


def test_request_bodies_to_a_proxied_origin(cert):
    with Backend() as b, servers(cert, "client_max_body_size 10m; "
                                 "location /up { proxy_pass http://127.0.0.1:%d; }" % b.port) as pair:
        for s in pair:
            body = os.urandom(2 * 1024 * 1024 + 5)
            n = len(b.requests)
            c = H2(s.ports[0])
            with_len = c.request("/up/a", "POST", headers=[("content-length", str(len(body)))],
                                 body=body)
            without_len = c.request("/up/b", "POST", body=b"x" * 70000)
            empty = c.request("/up/c", "POST", body=b"")
            for sid in (with_len, without_len, empty):
                assert c.response(sid, timeout=20).headers[":status"] == "200"
            c.close()
            got = {r[1]: r for r in b.requests[n:]}
            assert got["/up/a"][3] == body
            assert got["/up/b"][3] == b"x" * 70000
            assert got["/up/b"][2].get("content-length") == "70000"  # buffered, then counted
            assert got["/up/c"][3] == b""
            # curl's upload without a length, through TLS.
            p = s.ports[1]
            rc, out, tail = curl("--http2", "-X", "POST", "-H", "Transfer-Encoding: chunked",
                                 "--data-binary", "hello", "https://127.0.0.1:%d/up/d" % p)
            assert (rc, tail) == (0, "200|2")
            assert b.requests[-1][3] == b"hello"


def test_proxied_responses_under_flow_control(cert):
    """A proxied 3 MiB response to a stream whose window opens slowly: buffered (through the event
    pipe, spilling to the temp file) and not (the relay waits for the window), gzip over HTTP/2, and
    a streamed upload answered by the origin; the bodies arrive whole, on both servers."""
    with Backend() as b:
        big = BIG
        b.script("/big", [response(200, big), KeepOpen()])
        b.script("/text", [response(200, b"hello " * 20000, {"Content-Type": "text/plain"})])
        extra = """client_max_body_size 10m;
            location /buffered/ { proxy_pass http://127.0.0.1:%d/; proxy_buffers 4 4k; }
            location /unbuffered/ { proxy_pass http://127.0.0.1:%d/; proxy_buffering off; }
            location /gz/ { proxy_pass http://127.0.0.1:%d/; gzip on; gzip_types text/plain; }
            location /small-body/ { proxy_pass http://127.0.0.1:%d/; client_max_body_size 1k; }
        """ % (b.port, b.port, b.port, b.port)
        with servers(cert, extra) as pair:
            for s in pair:
                c = H2(s.ports[0], settings={4: 1000}, auto_window=False)
                sids = [c.request("/buffered/big"), c.request("/unbuffered/big")]
                for sid in sids:
                    st = c.streams[sid]
                    c.wait(lambda: len(st.body) >= 1000, what="first window")
                while not all(c.streams[sid].ended for sid in sids):
                    for sid in sids:
                        if not c.streams[sid].ended:
                            c.open_window(sid, 65536)
                    c.read_once()
                for sid in sids:
                    assert c.streams[sid].body == big, (s.name, sid)
                c.close()
                c = H2(s.ports[0])
                gz = c.response(c.request("/gz/text", headers=[("accept-encoding", "gzip")]))
                assert gz.headers.get("content-encoding") == "gzip"
                assert "content-length" not in gz.headers
                assert gzip.decompress(gz.body) == b"hello " * 20000
                # A body over client_max_body_size without a length: 413, as nginx.
                too = c.response(c.request("/small-body/x", "POST", body=b"y" * 5000))
                assert too.headers[":status"] == "413", s.name
                c.close()


def test_many_streams_at_once(pair):
    if shutil.which("h2load") is None:
        pytest.fail("h2load (nghttp2-client) is missing: make test installs it")
    for s in pair:
        out = subprocess.run(["h2load", "-n", "3000", "-c", "3", "-m", "50",
                              "http://127.0.0.1:%d/index.html" % s.ports[0]],
                             capture_output=True, text=True, timeout=60).stdout
        assert "3000 succeeded, 0 failed" in out, out
        out = subprocess.run(["h2load", "-n", "40", "-c", "2", "-m", "20",
                              "https://127.0.0.1:%d/big.bin" % s.ports[1]],
                             capture_output=True, text=True, timeout=60).stdout
        assert "40 succeeded, 0 failed" in out, out


def test_client_reset_and_the_connection_goes_on(pair):
    weir = pair[0]
    c = H2(weir.ports[0], settings={4: 1000}, auto_window=False)
    sid = c.request("/big.bin")
    st = c.streams[sid]
    c.wait(lambda: len(st.body) >= 1000, what="first window")
    c.reset(sid)  # CANCEL
    c.conn.increment_flow_control_window(1 << 20)
    c.flush()
    other = c.request("/index.html")
    c.open_window(other, 65536)
    assert c.response(other).body == b"hello over h2\n"
    c.close()
    wait_for(lambda: "client canceled stream %d" % sid in weir.error_log(), what="log line")


def test_rapid_reset_is_sent_away(pair):
    """CVE-2023-44487: a client that opens and resets streams without end is sent away (GOAWAY),
    and the server answers others meanwhile."""
    weir = pair[0]
    c = H2(weir.ports[0])
    for i in range(3000):
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":path", "/index.html"), (":scheme", "http"),
                                  (":authority", "localhost")])
        c.conn.reset_stream(sid)
        if i % 100 == 99:
            try:
                c.flush()
            except (BrokenPipeError, ConnectionResetError):
                break
    # nghttp2's limit: GOAWAY, then the connection ends (h2 may stop at the GOAWAY itself).
    c.wait(lambda: c.closed, what="the end of the connection")
    c.close()
    other = H2(weir.ports[0])
    assert other.response(other.request("/index.html")).headers[":status"] == "200"
    other.close()


def test_concurrent_streams_beyond_the_setting(cert):
    """http2_max_concurrent_streams 2: a client that ignores the setting is refused - nginx resets
    the stream (REFUSED_STREAM), weir (nghttp2) ends the connection with PROTOCOL_ERROR, as RFC 9113
    5.1.2 allows - and the next connection is served."""
    with servers(cert, "http2_max_concurrent_streams 2;") as pair:
        for s in pair:
            c = H2(s.ports[0], settings={4: 1000}, auto_window=False)
            c.wait(lambda: c.conn.remote_settings.max_concurrent_streams == 2, what="SETTINGS")
            c.conn.remote_settings._settings[3] = collections.deque([100])  # ignore it
            a, b = c.request("/big.bin"), c.request("/big.bin")
            c.wait(lambda: len(c.streams[a].body) >= 1000 and len(c.streams[b].body) >= 1000,
                   what="two streams")
            third = c.request("/index.html")
            if s.binary == WEIR:
                c.wait(lambda: c.goaway is not None, what="GOAWAY")
                assert c.goaway.error_code == 1
                c.wait(lambda: c.closed, what="close")
            else:
                assert c.response(third).reset == 7
            c.close()
            other = H2(s.ports[0])
            assert other.response(other.request("/index.html")).headers[":status"] == "200"
            other.close()


def test_limits(cert):
    conf_extra = "keepalive_requests 3; location /c { return 200 $connection; }"
    with servers(cert, conf_extra) as pair:
        for s in pair:
            # keepalive_requests: the third stream is the connection's last (GOAWAY); h2load does
            # not open another for the fourth.
            out = subprocess.run(["h2load", "-n", "4", "-c", "1", "-m", "1",
                                  "http://127.0.0.1:%d/c" % s.ports[0]],
                                 capture_output=True, text=True, timeout=60).stdout
            assert "3 succeeded, 1 failed" in out, out
            # A header field larger than large_client_header_buffers' size: ENHANCE_YOUR_CALM.
            c = H2(s.ports[0])
            c.request("/index.html", headers=[("x-big", "~" * 9000)])  # no shorter in Huffman
            c.wait(lambda: c.goaway is not None, what="GOAWAY for a large field")
            assert c.goaway.error_code == 11
            c.close()
            wait_for(lambda: "client sent too large header field" in s.error_log(), what="log line")


def test_graceful_quit_sends_goaway(cert, make_server):
    """SIGQUIT: an idle HTTP/2 connection gets GOAWAY and is closed; one with a stream in flight
    finishes that stream first, then gets GOAWAY; the server exits."""
    s = make_server(conf(cert), files=FILES, ports=3)
    idle = H2(s.ports[0])
    assert idle.response(idle.request("/index.html")).headers[":status"] == "200"
    busy = H2(s.ports[0], settings={4: 1000}, auto_window=False)
    sid = busy.request("/big.bin")
    st = busy.streams[sid]
    busy.wait(lambda: len(st.body) >= 1000, what="first window")
    s.send_signal(signal.SIGQUIT)
    idle.wait(lambda: idle.goaway is not None, what="GOAWAY on the idle connection")
    assert idle.goaway.error_code == 0
    idle.wait(lambda: idle.closed, what="close")
    busy.conn.increment_flow_control_window(1 << 24)
    busy.open_window(sid, 1 << 24)
    busy.wait(lambda: st.ended, timeout=20, what="the stream in flight")
    assert st.body == BIG
    busy.wait(lambda: busy.goaway is not None, what="GOAWAY after the last stream")
    assert s.proc.wait(20) == 0


def test_directives_load_with_nginx_messages(cert):
    base = conf(cert).replace("%%PORT0%%", "1").replace("%%PORT1%%", "2").replace("%%PORT2%%", "3")
    for directive, replacement in (("http2_idle_timeout 10s", "keepalive_timeout"),
                                   ("http2_recv_timeout 10s", "client_header_timeout"),
                                   ("http2_max_requests 10", "keepalive_requests"),
                                   ("http2_max_field_size 8k", "large_client_header_buffers"),
                                   ("http2_max_header_size 16k", "large_client_header_buffers")):
        for binary in (WEIR, NGINX):
            rc, out = check_conf(binary, base + directive + ";")
            assert rc == 0, out
            assert ('the "%s" directive is obsolete, use the "%s" directive instead'
                    % (directive.split()[0], replacement)) in out, out
    for directive, message in (("http2_chunk_size 0", "the http2 chunk size cannot be zero"),
                               ("http2_streams_index_size 3", "must be a power of two"),
                               ("http2_recv_buffer_size 16", "value is too small"),
                               ("http2_pool_size 64", "the pool size must be no less than 112"),
                               ("http2_pool_size 1000", "the pool size must be a multiple of 16")):
        for binary in (WEIR, NGINX):
            rc, out = check_conf(binary, base + directive + ";")
            assert rc != 0 and message in out, (binary, out)
    rc, out = check_conf(WEIR, base + "http2 on; http2_max_concurrent_streams 8; "
                         "http2_body_preread_size 128k; http2_chunk_size 16k; http2_push off; "
                         "http2_pool_size 4k; http2_max_concurrent_pushes 10;")
    assert rc == 0 and 'the "http2_push" directive is obsolete, ignored' in out, out
