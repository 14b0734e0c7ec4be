"""HTTP/1.x core: keep-alive, pipelining, HTTP/1.0 and 0.9, malformed requests and the statuses nginx gives
them (400, 405, 408, 413, 414, 494->400, 505), Host rules, absolute URIs, URI normalisation, request bodies."""
import re
import socket
import struct
import subprocess
import time

from conftest import Client, raw, read_to_end

CORE = """
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        client_header_buffer_size 1k;
        large_client_header_buffers 2 2k;
        client_header_timeout 1s;
        client_max_body_size 100;
        keepalive_requests 5;
        location / { }
        location /echo { return 200 "$request_method $uri $args\\n"; }
    }
"""

FILES = {"index.html": "index\n", "a.txt": "aaa\n", "b.txt": "bbb\n"}


def test_keepalive_and_pipelining(make_server):
    s = make_server(CORE, files=FILES)
    c = Client(s.port)
    for _ in range(2):
        c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = c.response()
        assert r.status == 200 and r.body == b"aaa\n" and r.header("Connection") == "keep-alive"
    # Three requests in one packet, answered in order on the same connection.
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "GET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
           "GET /echo?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert c.response().body == b"aaa\n"
    assert c.response().body == b"bbb\n"
    # keepalive_requests 5: the fifth request is answered with "Connection: close".
    r = c.response()
    assert r.body == b"GET /echo x=1\n" and r.header("Connection") == "close"
    assert c.is_closed()
    c.close()
    assert s.access_log().count("GET /a.txt HTTP/1.1") == 3


def test_pipelined_requests_split_across_reads(make_server):
    s = make_server(CORE, files=FILES)
    c = Client(s.port)
    c.send("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b.t")
    assert c.response().body == b"aaa\n"
    time.sleep(0.1)
    c.send("xt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert c.response().body == b"bbb\n"
    assert c.is_closed()


def test_http10_and_09(make_server):
    s = make_server(CORE, files=FILES)
    out = raw(s.port, "GET /a.txt HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in out and out.endswith(b"aaa\n")
    c = Client(s.port)
    c.send("GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r = c.response()
    assert r.header("Connection") == "keep-alive"
    c.close()
    # HTTP/0.9: the body alone.
    assert raw(s.port, "GET /a.txt\r\n") == b"aaa\n"


def test_malformed_requests(make_server):
    s = make_server(CORE, files=FILES)
    cases = [
        ("get / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nIf-Match: \"a\"\r\nIf-Match: \"b\"\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  # no framing: 400
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET /../x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /%2 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\n: novalue\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX\x00: y\r\n\r\n", 400),
        ("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ]
    for req, status in cases:
        out = raw(s.port, req)
        assert out.startswith(b"HTTP/1.1 %d " % status), (req, out[:100])
        assert b"Connection: close" in out, req
    log = s.error_log()
    assert 'client sent duplicate host header: "Host: b", previous value: "Host: a"' in log
    assert 'client sent duplicate header line: "If-Match: "b"", previous value: "If-Match: "a""' in log


def test_long_uri_and_large_headers(make_server):
    s = make_server(CORE, files=FILES)
    # The request line does not fit a large buffer (2k): 414.
    out = raw(s.port, "GET /" + "a" * 3000 + " HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414 Request-URI Too Large")
    # It fits a large buffer: moved there and served.
    r = Client(s.port)
    r.send("GET /echo?" + "b" * 1500 + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.response().status == 200
    # A header line longer than a large buffer: 400 "Request Header Or Cookie Too Large".
    out = raw(s.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + "c" * 3000 + "\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"Request Header Or Cookie Too Large" in out
    # More large buffers than allowed (2 x 2k).
    hdrs = "".join("X-H%d: %s\r\n" % (i, "d" * 1500) for i in range(4))
    out = raw(s.port, "GET / HTTP/1.1\r\nHost: x\r\n" + hdrs + "\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request")
    assert "client sent too long header line" in s.error_log() or "too large request" in s.error_log()


def test_header_timeout_is_408_in_the_log(make_server):
    s = make_server(CORE, files=FILES)
    c = Client(s.port)
    c.send("GET / HTTP/1.1\r\nHost: x\r\n")
    t = time.time()
    assert c.is_closed(wait=5)
    assert 0.8 < time.time() - t < 4
    # nginx sends nothing for a header timeout, and logs 408.
    assert c.buf == b""
    time.sleep(0.1)
    assert '"GET / HTTP/1.1" 408 ' in s.access_log()
    assert "client timed out" in s.error_log()


def test_body_too_large_and_discarded_bodies(make_server):
    s = make_server(CORE, files=FILES)
    out = raw(s.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + "x" * 101)
    assert out.startswith(b"HTTP/1.1 413 Request Entity Too Large")
    assert "client intended to send too large body: 101 bytes" in s.error_log()
    # Bodies the handler does not need are read and dropped; the connection stays usable.
    c = Client(s.port)
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
           "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().body == b"POST /echo \n"
    assert c.response().body == b"aaa\n"
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().status == 200
    assert c.response().body == b"bbb\n"
    # Like nginx 1.22, a discarded chunked body is not held to client_max_body_size.
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + "65\r\n" + "y" * 101 + "\r\n0\r\n\r\n")
    assert c.response().status == 200
    c.close()


def test_expect_continue(make_server):
    s = make_server(CORE, files=FILES)
    c = Client(s.port)
    c.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    c.sock.settimeout(3)
    data = c.sock.recv(100)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    c.buf = data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    c.send("abc")
    assert c.response().status == 200


def test_absolute_uri_and_host_selection(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; server_name one; return 200 "one $host\\n"; }
    server { listen 127.0.0.1:%%PORT%%; server_name two *.two.test www.three.*; return 200 "two $host\\n"; }
    server { listen 127.0.0.1:%%PORT%%; server_name ~^(?<sub>[a-z]+)\\.re\\.test$; return 200 "re $sub\\n"; }
    """
    s = make_server(conf)
    assert s.get("/", host="two").body == b"two two\n"
    assert s.get("/", host="TWO:8080").body == b"two two\n"
    assert s.get("/", host="a.two.test").body == b"two a.two.test\n"
    assert s.get("/", host="www.three.org").body == b"two www.three.org\n"
    assert s.get("/", host="abc.re.test").body == b"re abc\n"
    assert s.get("/", host="unknown").body == b"one unknown\n"  # the default server
    out = raw(s.port, "GET http://two/x HTTP/1.1\r\nHost: one\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"two two\n")


def test_uri_normalisation(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 "$uri\\n"; } }
    server { listen 127.0.0.1:%%PORT1%%; merge_slashes off; location / { return 200 "$uri\\n"; } }
    """
    s = make_server(conf, ports=2)
    for path, uri in [("/a/./b/../c", "/a/c"), ("//a///b", "/a/b"), ("/%61%2Fb", "/a/b"),
                      ("/a/b/..", "/a/"), ("/a/.", "/a/"), ("/x%20y", "/x y"), ("/a%3Fb?c", "/a?b")]:
        assert s.get(path).body == uri.encode() + b"\n", path
    assert http_get_port(s.ports[1], "//a//b").body == b"//a//b\n"


def http_get_port(port, path):
    from conftest import http_get
    return http_get(port, path)


def test_unix_socket_and_ipv6(make_server):
    import os
    conf = """
    server { listen unix:%%DIR%%/logs/weir.sock; listen [::1]:%%PORT%%; return 200 "ok $remote_addr\\n"; }
    """
    s = make_server(conf)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(s.path("logs/weir.sock"))
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert read_to_end(sock).endswith(b"ok unix:\n")
    try:
        s6 = socket.create_connection(("::1", s.port), timeout=5)
    except OSError:
        return  # no IPv6 on this machine
    s6.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s6.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.endswith(b"ok ::1\n")
    assert os.path.exists(s.path("logs/weir.sock"))


def segments_received(s):
    """The segments a client socket has received (struct tcp_info's tcpi_segs_in)."""
    raw_info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    # 8 one-byte fields, 24 u32 (rto ... total_retrans), 4 u64 (pacing_rate ... bytes_received),
    # then segs_out and segs_in.
    return struct.unpack_from("I", raw_info, 8 + 24 * 4 + 4 * 8 + 4)[0]


def test_close_sends_the_fin_with_the_last_bytes(make_server):
    """A response on a connection that closes after it ends in the packet that carries the FIN
    (MSG_MORE on its last bytes, then the close): the client gets the SYN-ACK, the ACK of its
    request and one packet with the response and the FIN, where it got a fourth, a bare FIN, before.
    Not while the request's body is still being read and dropped: the close waits for that."""
    s = make_server("""
    error_log %%DIR%%/logs/debug.log debug;
    server { listen 127.0.0.1:%%PORT%%; location / { } }
    """, files={"1k.bin": "x" * 1024})
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_to_end(c, close=False)
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"x" * 1024)
    assert segments_received(c) <= 3
    c.close()
    # A body still arriving: answered at once, and the close (and so the FIN) waits for the body.
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"POST /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\nabc")
    assert c.recv(65536).startswith(b"HTTP/1.1 405 ")
    c.close()
    with open(s.path("logs/debug.log")) as f:
        log = f.read()
    assert log.count("http write filter: the close follows") == 1


def test_so_keepalive_times_reach_the_connections(make_server):
    """listen ... so_keepalive=idle:interval:count (parts may be left out, as nginx allows): the
    accepted connection keeps alive with those times, as the kernel's own report shows."""
    s = make_server("server { listen 127.0.0.1:%%PORT%% so_keepalive=30m::7; return 200; }")
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.recv(4096).startswith(b"HTTP/1.1 200")
    # ss -o: "timer:(keepalive,29min,0)" on the server's side of the connection.
    out = subprocess.run(["ss", "-tno", "state", "established", "( sport = :%d )" % s.port],
                         capture_output=True, text=True, check=True).stdout
    assert re.search(r"timer:\(keepalive,(29|30)min,0\)", out), out
    fd_info = [l for l in out.splitlines() if ":%d " % s.port in l]
    assert len(fd_info) == 1, out
    c.close()


def test_a_deferred_accept_reads_the_request_at_once(make_server):
    """listen ... deferred (TCP_DEFER_ACCEPT): the kernel hands over a connection once its first
    bytes have come, and weir reads them at once, as nginx does, not after a turn of the event loop.
    A plain listen waits for epoll to report them."""
    s = make_server("""
    server { listen 127.0.0.1:%%PORT0%% deferred; location / { } }
    server { listen 127.0.0.1:%%PORT1%%; location / { } }
    """, main_conf="error_log %%DIR%%/logs/debug.log debug;", files={"1k.bin": "x" * 1024},
                    ports=2)
    for port in s.ports:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_to_end(c).endswith(b"x" * 1024)
    with open(s.path("logs/debug.log")) as f:
        lines = f.read().splitlines()

    # The connections in the order they came: the deferred listener's first.
    conns = [line.split("*")[1].split()[0] for line in lines if "accept: 127.0.0.1:" in line]
    assert len(conns) == 2, conns
    seen = {}
    for n in conns:
        own = [line for line in lines if "*%s " % n in line]
        start = next(i for i, line in enumerate(own) if "accept:" in line)
        wait = next(i for i, line in enumerate(own) if "http wait request handler" in line)
        seen[n] = [int(line.rsplit("ev:", 1)[1], 16) for line in own[start:wait]
                   if "epoll: fd:" in line]
    deferred, plain = (seen[n] for n in conns)
    # The plain connection's first read waits for a report of input (EPOLLIN, 1), perhaps after one
    # of room to write; the deferred one's comes before any report.
    assert deferred == [] and any(ev & 1 for ev in plain), seen
