"""Hostile input: request smuggling through discarded bodies, chunk framing stricter than nginx's, empty
lines before a request, pipelining after a rejected body, max_headers and client_body_min_rate. Each
exchange runs over a real socket; the randomized pipelined-pair test runs the same cases on Debian's nginx
and asserts that both answer them the same way."""
import os
import random
import socket
import time

import pytest

from conftest import NGINX, WEIR, raw, read_to_end, status_codes, wait_for, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        client_header_timeout 5s;
        client_body_timeout 5s;
        location / { }
        location /ret { return 200 "ret\n"; }
        location /read/ { mirror /m; alias %%DIR%%/html/; }
        location = /m { internal; return 204; }
    }
"""

FILES = {"index.html": "INDEX\n", "sub/a.txt": "HIDDEN\n", "marker.txt": "MARKER\n"}

MARKER = b"GET /marker.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def chunked(chunks, size_prefix=b"", trailer=b""):
    body = b"".join(size_prefix + b"%x\r\n" % len(c) + c + b"\r\n" for c in chunks)
    return body + b"0\r\n" + trailer + b"\r\n"


def head(method, path, framing):
    return b"%s %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % (method, path, framing)


def send_in_pieces(port, data, cuts, timeout=5):
    """Sends data cut at the given offsets, each piece its own packet, then reads until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        if cut > last:
            s.sendall(data[last:cut])
            time.sleep(0.002)
            last = cut
    return read_to_end(s)


def test_discarded_chunked_body_does_not_smuggle_a_request(make_server):
    # The reported attack: 200 one-byte chunks, then a request whose header hides another one at the byte
    # where a 4 KiB read-ahead would have resumed parsing.
    s = make_server(CONF, files=FILES)
    body = chunked([b"x"] * 200)
    req = (head(b"GET", b"/index.html", b"Transfer-Encoding: chunked\r\n") + body +
           b"GET /index.html HTTP/1.1\r\nX-Pad: " + b"p" * 3809 +
           b"GET /sub/a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    out = raw(s.port, req)
    assert out.count(b"INDEX") == 2
    assert b"HIDDEN" not in out
    assert status_codes(out) == [200, 200]


DISCARDED = [
    ("one-byte chunks", chunked([b"x"] * 200)),
    ("leading zeros", b"0" * 5000 + b"3\r\nabc\r\n" + b"0" * 3000 + b"0\r\n\r\n"),
    ("extensions and trailers", chunked([b"ab", b"c" * 300], trailer=b"T: 1\r\nU: 2\r\n")),
    ("larger than the read buffer", chunked([b"y" * 20000, b"z" * 7000])),
    ("many small chunks", chunked([b"q" * 7] * 3000)),
]


@pytest.mark.parametrize("path,status", [(b"/index.html", 200), (b"/missing", 404), (b"/ret", 200)],
                         ids=["static", "404", "return"])
@pytest.mark.parametrize("name,body", DISCARDED, ids=[d[0] for d in DISCARDED])
def test_pipelined_request_after_a_discarded_chunked_body(make_server, path, status, name, body):
    s = make_server(CONF, files=FILES)
    out = raw(s.port, head(b"GET", path, b"Transfer-Encoding: chunked\r\n") + body + MARKER)
    assert status_codes(out) == [status, 200], out[:300]
    assert out.count(b"MARKER") == 1


def test_discarded_body_split_at_every_byte(make_server):
    s = make_server(CONF, files=FILES)
    for framing, body in ((b"Transfer-Encoding: chunked\r\n", chunked([b"a", b"bc", b"def"], b"00",
                                                                       b"X: y\r\n")),
                          (b"Content-Length: 9\r\n", b"012345678")):
        req = head(b"POST", b"/ret", framing)
        data = req + body + MARKER
        out = send_in_pieces(s.port, data, range(len(req), len(req) + len(body) + 1))
        assert status_codes(out) == [200, 200], out
        assert out.count(b"MARKER") == 1


def test_read_body_keeps_the_pipelined_request(make_server):
    s = make_server(CONF, files=FILES)
    for framing, body in ((b"Transfer-Encoding: chunked\r\n", chunked([b"x"] * 300)),
                          (b"Content-Length: 5000\r\n", b"b" * 5000)):
        out = raw(s.port, head(b"POST", b"/read/index.html", framing) + body + MARKER)
        assert status_codes(out) == [405, 200] and out.count(b"MARKER") == 1, out[:300]


LAX = [
    ("bare LF after the size", b"5\nhello\r\n0\r\n\r\n"),
    ("bare LF after the data", b"5\r\nhello\n0\r\n\r\n"),
    ("bare LF after the last chunk", b"0\n\r\n"),
    ("bare LF ending a trailer", b"0\r\nX: y\n\r\n"),
    ("endless extension", b"1;" + b"e" * 20000 + b"\r\nx\r\n0\r\n\r\n"),
    ("endless trailer", b"0\r\nX: " + b"t" * 20000 + b"\r\n\r\n"),
]


@pytest.mark.parametrize("path", [b"/index.html", b"/read/index.html"], ids=["discarded", "read"])
@pytest.mark.parametrize("name,body", LAX, ids=[c[0] for c in LAX])
def test_lax_chunk_framing_is_400_and_close(make_server, path, name, body):
    # nginx accepts a bare LF (and unbounded extensions); weir answers 400 and closes, so a front-end
    # and weir can never disagree on where a body ends.
    s = make_server(CONF, files=FILES)
    out = raw(s.port, head(b"GET", path, b"Transfer-Encoding: chunked\r\n") + body + MARKER)
    assert status_codes(out) == [400], out[:300]
    assert b"MARKER" not in out
    assert "client sent invalid chunked body" in s.error_log()


@pytest.mark.parametrize("te,status", [
    ("gzip", 400), ("chunked, gzip", 400), ("identity", 400), ("gzip, chunked", 501), ("Chunked", 200),
])
def test_transfer_codings(make_server, te, status):
    s = make_server(CONF, files=FILES)
    out = raw(s.port, head(b"GET", b"/index.html", b"Transfer-Encoding: %s\r\n" % te.encode()) +
              b"0\r\n\r\n" + MARKER)
    if status == 200:
        assert status_codes(out) == [200, 200]
    else:
        assert status_codes(out) == [status]
        assert 'client sent unknown "Transfer-Encoding": "%s"' % te in s.error_log()


def test_empty_lines_before_the_request_line(make_server):
    s = make_server(CONF, files=FILES)
    out = raw(s.port, b"\r\n" * 50 + b"\n\n\r\n" + MARKER)
    assert status_codes(out) == [200] and b"MARKER" in out
    # Many empty lines fill the header buffer: still skipped.
    out = raw(s.port, b"\r\n" * 3000 + MARKER)
    assert status_codes(out) == [200] and b"MARKER" in out
    # Between pipelined requests, as clients that end a body with CRLF send them.
    out = raw(s.port, head(b"POST", b"/index.html", b"Content-Length: 5\r\n") + b"hello\r\n\r\n" + MARKER)
    assert status_codes(out) == [405, 200] and b"MARKER" in out


def test_pipelined_request_after_405_with_a_body(make_server):
    s = make_server(CONF, files=FILES)
    for n in (5, 5000, 100000):
        req = head(b"POST", b"/index.html", b"Content-Length: %d\r\n" % n) + b"b" * n
        out = raw(s.port, req + MARKER)
        assert status_codes(out) == [405, 200] and out.count(b"MARKER") == 1
        # The body in a later packet than the headers, and the next request later still.
        out = send_in_pieces(s.port, req + MARKER, [len(req) - n, len(req)])
        assert status_codes(out) == [405, 200] and out.count(b"MARKER") == 1


def many_headers(n):
    return (b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n" +
            b"".join(b"X-%d: a\r\n" % i for i in range(n - 2)) + b"Connection: close\r\n\r\n")


def test_max_headers(make_server):
    conf = CONF.replace("client_header_timeout 5s;", "large_client_header_buffers 4 64k;")
    s = make_server(conf + "server { listen 127.0.0.1:%%PORT1%%; large_client_header_buffers 4 64k; "
                    "max_headers 3; }", files=FILES, ports=2)
    assert status_codes(raw(s.port, many_headers(1000))) == [200]
    assert status_codes(raw(s.port, many_headers(1001))) == [400]
    assert "client sent too many header lines" in s.error_log()
    assert status_codes(raw(s.ports[1], many_headers(3))) == [200]
    assert status_codes(raw(s.ports[1], many_headers(4))) == [400]


def trickle(port, head_bytes, body, interval):
    """Sends the head, then the body a byte every `interval` seconds; returns (what came back, seconds from
    the head to the server's close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.sendall(head_bytes)
    start = time.monotonic()
    out = b""
    for i in range(len(body)):
        s.settimeout(interval)
        try:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        except socket.timeout:
            pass
        try:
            s.sendall(body[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
    s.settimeout(20)
    out += read_to_end(s)
    return out, time.monotonic() - start


def test_client_body_min_rate_cuts_a_trickle(make_server):
    conf = CONF.replace("location /read/ {", "location /read/ { client_body_min_rate 100;")
    s = make_server(conf, files=FILES)
    # 10 bytes, one every 4 s: each read comes within client_body_timeout 5s, yet the body is cut at about
    # 5 s (client_body_timeout plus 1 byte at 100 bytes/s) rather than served after 40 s.
    req = head(b"POST", b"/read/index.html", b"Content-Length: 10\r\nConnection: close\r\n")
    out, took = trickle(s.port, req, b"0123456789", 4)
    assert out == b""
    assert 4.5 < took < 8.5, took
    time.sleep(0.2)
    assert "client sent the request body slower than client_body_min_rate: 1 bytes in" in s.error_log()
    assert '"POST /read/index.html HTTP/1.1" 408 ' in s.access_log()


def test_client_body_min_rate_is_off_by_default(make_server):
    s = make_server(CONF.replace("client_body_timeout 5s;", "client_body_timeout 2s;"), files=FILES)
    req = head(b"POST", b"/read/index.html", b"Content-Length: 4\r\nConnection: close\r\n")
    out, took = trickle(s.port, req, b"abcd", 1)
    assert status_codes(out) == [405], out
    assert took > 2.5


def test_header_timeout_counts_from_the_accept(make_server):
    # client_header_timeout bounds the whole header phase (as nginx's does): a byte now and then does not
    # extend it.
    s = make_server(CONF.replace("client_header_timeout 5s;", "client_header_timeout 2s;"), files=FILES)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    start = time.monotonic()
    time.sleep(1.2)
    closed_at = None
    for b in b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nX: " + b"y" * 20:
        try:
            c.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.monotonic() - start
            break
        c.settimeout(0.15)
        try:
            if c.recv(100) == b"":
                closed_at = time.monotonic() - start
                break
        except socket.timeout:
            pass
    c.close()
    assert closed_at is not None and 1.8 < closed_at < 3.0, closed_at


# --- a differential fuzz: random body framings in a pipelined pair, on weir and on Debian's nginx ---

def random_case(rng):
    """One request with a random framing (valid for both servers), a marker request behind it, the offsets
    to cut the bytes at, and the status the first request gets."""
    method, path, status = rng.choice([(b"GET", b"/index.html", 200), (b"POST", b"/index.html", 405),
                                       (b"GET", b"/missing", 404), (b"POST", b"/ret", 200),
                                       (b"PUT", b"/read/index.html", 405)])
    if rng.random() < 0.3:
        body = bytes(rng.choice(b"abcGET \r\n") for _ in range(rng.randrange(0, 9000)))
        framing = b"Content-Length: %d\r\n" % len(body)
    else:
        chunks = [bytes(rng.choice(b"xyz\r\n0") for _ in range(rng.choice([1, 2, 7, 100, 4096, 5000])))
                  for _ in range(rng.randrange(0, 12))]
        prefix = b"0" * rng.choice([0, 0, 1, 30])
        body = b"".join(prefix + b"%x" % len(c) + (b";e=%d" % len(c) if rng.random() < 0.3 else b"") +
                        b"\r\n" + c + b"\r\n" for c in chunks)
        body += b"0\r\n" + (b"Trailer-X: %d\r\n" % rng.randrange(100) if rng.random() < 0.3 else b"") + b"\r\n"
        framing = b"Transfer-Encoding: chunked\r\n"
    req = head(method, path, framing)
    data = req + body + MARKER
    cuts = [rng.randrange(len(req) - 4, len(data)) for _ in range(rng.randrange(0, 4))]
    return data, cuts, [status, 200]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES)


@pytest.mark.parametrize("batch", range(4))
def test_fuzz_pipelined_pairs_like_nginx(pair, batch):
    seed = int(os.environ.get("WEIR_FUZZ_SEED", "2026")) * 10 + batch
    rng = random.Random(seed)
    for i in range(40):
        data, cuts, want = random_case(rng)
        for s in pair:
            out = send_in_pieces(s.port, data, cuts)
            got = status_codes(out)
            assert got == want and out.count(b"MARKER") == 1, (s.name, seed, i, got, data[:200])


@pytest.mark.parametrize("line", [b": empty", b"X Bad: 1", b"\x7fX: 1", b"X:\x00"],
                         ids=["colon", "space", "del", "nul"])
def test_invalid_header_lines_logged_as_nginx(make_server, line):
    # The info line names the bad byte in nginx's hex ("\x3a", lower case), so log parsers match.
    said = []
    for binary in (WEIR, NGINX):
        s = make_server(CONF, files=FILES, binary=binary)
        out = raw(s.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + line + b"\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out[:40]
        wait_for(lambda: "invalid header line" in s.error_log(), what="the log line")
        said.append([l.split(": ", 1)[1] for l in s.error_log().splitlines() if "invalid header line" in l])
    assert said[0] == said[1]
