"""The gzip filter (#9): every answer compared with Debian's nginx on the same configuration, files
and requests - status, header lines in order (Date and Server masked), the body after decompressing
it with Python's zlib, and $gzip_ratio in the access log - over Accept-Encoding variants, types,
gzip_min_length, HEAD, 304, ranges, error pages, gzip_proxied with Via, gzip_http_version,
gzip_disable, and proxied, chunked and flushed responses. Then what only weir can be asked: a large
response passes in bounded memory, and a flushed upstream chunk reaches the client decompressible
at once."""
import hashlib
import os
import socket
import threading
import zlib

import pytest

from backend import Backend, Send, Wait, response
from conftest import dechunk, peak_rss, raw, unname_server, wait_for, weir_and_nginx

TEXT = ("".join("line %d of a text that compresses well\n" % i for i in range(400))).encode()
FILES = {"big.txt": TEXT, "small.txt": b"tiny\n", "page.html": b"<html>" + TEXT + b"</html>",
         "data.json": b'{"k": "' + b"v" * 3000 + b'"}', "img.png": b"\x89PNG" + TEXT,
         "mid.txt": TEXT[:200]}
MTIME = 1700000000

CONF = r"""
    include %%DIR%%/conf/mime.types;
    log_format ratio '$uri $status $gzip_ratio';
    access_log %%DIR%%/logs/ratio.log ratio;
    gzip on;
    gzip_types text/plain application/json;
    gzip_min_length 100;
    gzip_vary on;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
        location /proxied/ { gzip_proxied any; alias %%DIR%%/html/; }
        location /expired/ { gzip_proxied expired; expires -1; alias %%DIR%%/html/; }
        location /fresh/ { gzip_proxied expired no-cache; expires 1h; alias %%DIR%%/html/; }
        location /split/ { gzip_proxied expired; gzip_proxied no-cache; expires -1;
                           alias %%DIR%%/html/; }
        location /nocache/ { gzip_proxied no-cache; add_header Cache-Control "no-cache";
                             alias %%DIR%%/html/; }
        location /http10/ { gzip_http_version 1.0; alias %%DIR%%/html/; }
        location /disable/ { gzip_disable "MSIE [4-6]\." "^curl/"; alias %%DIR%%/html/; }
        location /level9/ { gzip_comp_level 9; gzip_window 4k; gzip_hash 1k; alias %%DIR%%/html/; }
        location /any/ { gzip_types *; alias %%DIR%%/html/; }
        location /two/ { gzip_types image/png; gzip_types application/json image/png;
                         alias %%DIR%%/html/; }
        location /off/ { gzip off; alias %%DIR%%/html/; }
        location /ret { return 200 "%%TEXT%%"; }
        location /encoded { add_header Content-Encoding identity; return 200 "%%TEXT%%"; }
        location /up/ { proxy_pass http://127.0.0.1:%%PORT%%/; }
    }
"""

AE = ["gzip", "gzip, deflate", "deflate", "gzip;q=0", "gzip;q=0.5", "GZIP", "x-gzip",
      "br, gzip;q=0.001", "identity", "gzip;q=0.000", "gzip;q=1.5", "deflate,gzip", "xgzip"]

REQUESTS = ([("/big.txt", {"Accept-Encoding": ae}) for ae in AE] + [
    ("/small.txt", {"Accept-Encoding": "gzip"}),
    ("/mid.txt", {"Accept-Encoding": "gzip"}),
    ("/page.html", {"Accept-Encoding": "gzip"}),
    ("/data.json", {"Accept-Encoding": "gzip"}),
    ("/img.png", {"Accept-Encoding": "gzip"}),
    ("/any/img.png", {"Accept-Encoding": "gzip"}),
    ("/two/img.png", {"Accept-Encoding": "gzip"}),
    ("/two/data.json", {"Accept-Encoding": "gzip"}),
    ("/two/page.html", {"Accept-Encoding": "gzip"}),
    ("/two/big.txt", {"Accept-Encoding": "gzip"}),
    ("/off/big.txt", {"Accept-Encoding": "gzip"}),
    ("/missing", {"Accept-Encoding": "gzip"}),
    ("/big.txt", {"Accept-Encoding": "gzip", "Range": "bytes=0-10"}),
    ("/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/proxied/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/expired/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/fresh/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/split/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/nocache/big.txt", {"Accept-Encoding": "gzip", "Via": "1.1 proxy"}),
    ("/disable/big.txt", {"Accept-Encoding": "gzip", "User-Agent": "curl/8.0"}),
    ("/disable/big.txt", {"Accept-Encoding": "gzip", "User-Agent": "Mozilla/4.0 (MSIE 5.5)"}),
    ("/disable/big.txt", {"Accept-Encoding": "gzip", "User-Agent": "Firefox"}),
    ("/level9/big.txt", {"Accept-Encoding": "gzip"}),
    ("/ret", {"Accept-Encoding": "gzip"}),
    ("/encoded", {"Accept-Encoding": "gzip"}),
    ("/up/big.txt", {"Accept-Encoding": "gzip"}),
    ("/up/data.json", {"Accept-Encoding": "gzip"}),
])


def request(port, path, headers, method="GET", version="1.1"):
    req = "%s %s HTTP/%s\r\nHost: localhost\r\nConnection: close\r\n" % (method, path, version)
    for k, v in headers.items():
        req += "%s: %s\r\n" % (k, v)
    out = raw(port, req + "\r\n", timeout=10)
    head, _, body = out.partition(b"\r\n\r\n")
    lines = [l for l in head.decode("latin-1").split("\r\n")
             if not l.lower().startswith(("date:", "server:", "expires:"))]
    if "Transfer-Encoding: chunked" in lines:
        body = dechunk(body)
    if "Content-Encoding: gzip" in lines and method != "HEAD":
        body = b"GUNZIPPED:" + zlib.decompress(body, 16 + zlib.MAX_WBITS)
    return unname_server(lines, body)


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF.replace("%%TEXT%%", TEXT[:3000].decode().replace("\n", " ")), FILES, mtime=MTIME)


@pytest.mark.parametrize("path,headers", REQUESTS,
                         ids=["%s %s" % (p, sorted(h.items())) for p, h in REQUESTS])
def test_answers_as_nginx(pair, path, headers):
    weir, nginx = pair
    assert request(weir.port, path, headers) == request(nginx.port, path, headers)


def test_head_304_and_http10_as_nginx(pair):
    weir, nginx = pair
    ae = {"Accept-Encoding": "gzip"}
    for args in [("/big.txt", ae, "HEAD"), ("/big.txt", ae, "GET", "1.0"),
                 ("/http10/big.txt", ae, "GET", "1.0")]:
        assert request(weir.port, *args) == request(nginx.port, *args), args
    etag = [l for l in request(nginx.port, "/big.txt", ae)[0] if l.startswith("ETag:")][0][6:]
    cond = dict(ae, **{"If-None-Match": etag})
    assert request(weir.port, "/big.txt", cond) == request(nginx.port, "/big.txt", cond)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    lines, body = request(weir.port, "/big.txt", {"Accept-Encoding": "gzip"})
    assert body == b"GUNZIPPED:" + TEXT
    assert "Content-Encoding: gzip" in lines and "Vary: Accept-Encoding" in lines
    assert not any(l.startswith(("Content-Length:", "Accept-Ranges:")) for l in lines)
    assert any(l.startswith('ETag: W/"') for l in lines)
    lines, body = request(weir.port, "/big.txt", {"Accept-Encoding": "gzip;q=0"})
    assert body == TEXT and "Vary: Accept-Encoding" in lines
    # A repeated gzip_types adds to the first (text/html always in): plain text is not in it.
    for path, gzipped in (("/two/img.png", True), ("/two/data.json", True),
                          ("/two/page.html", True), ("/two/big.txt", False)):
        lines, _ = request(weir.port, path, {"Accept-Encoding": "gzip"})
        assert ("Content-Encoding: gzip" in lines) == gzipped, (path, lines)


def test_gzip_ratio_as_nginx(pair):
    logs = []
    for s in pair:
        for path in ("/big.txt", "/level9/big.txt", "/data.json", "/small.txt"):
            request(s.port, path, {"Accept-Encoding": "gzip"})
        wait_for(lambda: open(s.path("logs/ratio.log")).read().count("\n") >= 4, what="the log")
        logs.append(open(s.path("logs/ratio.log")).read().splitlines()[-4:])
    assert logs[0] == logs[1]
    assert logs[0][0].startswith("/big.txt 200 ") and logs[0][3] == "/small.txt 200 -"


def test_flushed_chunks_reach_the_client_decompressible(make_server):
    """proxy_buffering off: each upstream chunk is a flushed buffer, so the client can decompress
    what it has before the upstream sends more (the backend waits for the test to say so)."""
    seen = threading.Event()
    with Backend() as b:
        b.script("/events", [Send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"),
                             Send(b"%x\r\n" % 300 + b"e" * 300 + b"\r\n"), Wait(seen),
                             Send(b"%x\r\n" % 300 + b"f" * 300 + b"\r\n0\r\n\r\n")])
        s = make_server("""
        gzip on; gzip_types text/plain;
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
        """ % b.port)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        data, plain = b"", b""
        while len(plain) < 300:
            data += c.recv(65536)  # times out (the test fails) if the first flush never comes
            head, sep, body = data.partition(b"\r\n\r\n")
            if not sep:
                continue
            gz, rest = b"", body
            while b"\r\n" in rest:
                size, _, more = rest.partition(b"\r\n")
                n = int(size, 16)
                if n == 0 or len(more) < n + 2:
                    break
                gz += more[:n]
                rest = more[n + 2:]
            plain = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(gz)
        assert b"Content-Encoding: gzip" in head and plain == b"e" * 300
        seen.set()
        while not data.endswith(b"0\r\n\r\n"):
            data += c.recv(65536)
        c.close()


def test_a_large_response_in_bounded_memory(make_server):
    """24 MiB of text gzipped to a slow client: the worker's memory stays within a few MiB of where
    it started (gzip_buffers bound the output; the input is held, not copied), and every byte
    arrives (few buffers on both sides of the filter, so it often waits for the client with input
    half taken while the copy filter refills what it gave back)."""
    s = make_server("""
    gzip on; gzip_types text/plain; types { text/plain txt; }
    gzip_buffers 2 4k; output_buffers 2 8k;
    server { listen 127.0.0.1:%%PORT%% sndbuf=32k; location / { } }
    """, main_conf="worker_processes 1;", start=False)
    digest = hashlib.sha256()
    with open(s.path("html/big.txt"), "wb") as f:
        for i in range(24):
            piece = os.urandom(512 * 1024).hex().encode()  # 1 MiB, compresses about 2:1
            digest.update(piece)
            f.write(piece)
    os.chmod(s.path("html/big.txt"), 0o644)
    s.start()
    wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")
    (pid,) = s.worker_pids()
    raw(s.port, "GET /big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")

    before = peak_rss(pid)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    c.sendall(b"GET /big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = b""
    head = None
    total = 0
    got = hashlib.sha256()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        data += chunk
        if head is None and b"\r\n\r\n" in data:
            head, _, data = data.partition(b"\r\n\r\n")
        if head is not None:
            # Dechunk as it comes; decompress to count.
            while True:
                size, sep, rest = data.partition(b"\r\n")
                if not sep:
                    break
                n = int(size, 16)
                if len(rest) < n + 2:
                    break
                plain = d.decompress(rest[:n])
                got.update(plain)
                total += len(plain)
                data = rest[n + 2:]
                if n == 0:
                    break
    c.close()
    assert total == 24 * 1024 * 1024 and got.digest() == digest.digest()
    assert peak_rss(pid) - before < 8 * 1024 * 1024, peak_rss(pid) - before


STATIC_FILES = {"pre.txt": TEXT, "pre.txt.gz": zlib.compress(TEXT, 9, 16 + zlib.MAX_WBITS),
                "plain.txt": TEXT, "dir/x.txt": b"x"}
STATIC_CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        gzip_static on;
        location / { }
        location /vary/ { gzip_vary on; alias %%DIR%%/html/; }
        location /always/ { gzip_static always; alias %%DIR%%/html/; }
        location /both/ { gzip on; gzip_types text/plain; alias %%DIR%%/html/; }
        location /off/ { gzip_static off; alias %%DIR%%/html/; }
    }
"""


@pytest.fixture(scope="module")
def static_pair():
    yield from weir_and_nginx(STATIC_CONF, STATIC_FILES, mtime=MTIME)


STATIC_REQUESTS = [(prefix + path, headers)
                   for prefix in ("", "/vary", "/always", "/both", "/off")
                   for path in ("/pre.txt", "/plain.txt", "/dir/")
                   for headers in ({"Accept-Encoding": "gzip"}, {}, {"Accept-Encoding": "gzip;q=0"})]


def static_answer(port, path, headers, method):
    """request()'s answer less what differs on purpose: weir offers ranges of a .gz file (nginx
    does since 1.23.3; Debian's 1.22 does not), and a HEAD's error page length names the server."""
    lines, body = request(port, path, headers, method)
    lines = [l for l in lines if not l.startswith("Accept-Ranges:") or
             "Content-Encoding: gzip" not in lines]
    if method == "HEAD" and not lines[0].startswith("HTTP/1.1 2"):
        lines = [l for l in lines if not l.startswith("Content-Length:")]
    return lines, body


@pytest.mark.parametrize("path,headers", STATIC_REQUESTS,
                         ids=["%s %s" % (p, sorted(h.items())) for p, h in STATIC_REQUESTS])
def test_gzip_static_as_nginx(static_pair, path, headers):
    weir, nginx = static_pair
    for method in ("GET", "HEAD"):
        assert static_answer(weir.port, path, headers, method) == \
            static_answer(nginx.port, path, headers, method)


def test_gzip_static_sends_the_precompressed_file(static_pair):
    weir, _ = static_pair
    lines, body = request(weir.port, "/pre.txt", {"Accept-Encoding": "gzip"})
    assert "Content-Encoding: gzip" in lines and body == b"GUNZIPPED:" + TEXT
    assert "Content-Length: %d" % len(STATIC_FILES["pre.txt.gz"]) in lines  # the file, as it is
    assert "Accept-Ranges: bytes" in lines
    lines, body = request(weir.port, "/always/pre.txt", {})
    assert "Content-Encoding: gzip" in lines  # always: whatever the client says
    out = raw(weir.port, "GET /pre.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                         "Range: bytes=0-9\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    assert out.partition(b"\r\n\r\n")[2] == STATIC_FILES["pre.txt.gz"][:10]  # of the .gz file


GZ = zlib.compress(TEXT, 6, 16 + zlib.MAX_WBITS)
TWO_MEMBERS = zlib.compress(TEXT[:5000], 6, 16 + zlib.MAX_WBITS) + \
    zlib.compress(TEXT[5000:], 6, 16 + zlib.MAX_WBITS)
GUNZIP_CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        gunzip on;
        location /static/ { gzip_static always; alias %%DIR%%/html/; }
        location / { proxy_pass http://127.0.0.1:%%UPORT%%; }
        location /off/ { gunzip off; proxy_pass http://127.0.0.1:%%UPORT%%/; }
        location /vary/ { gzip_vary on; proxy_pass http://127.0.0.1:%%UPORT%%/; }
        location /nb/ { proxy_buffering off; proxy_pass http://127.0.0.1:%%UPORT%%/; }
    }
"""


@pytest.fixture(scope="module")
def gunzip_pair():
    with Backend() as b:
        gz = {"Content-Encoding": "gzip", "Content-Type": "text/plain", "ETag": '"e1"'}
        b.script("/gz", [response(200, GZ, gz)])
        b.script("/two", [response(200, TWO_MEMBERS, gz)])
        b.script("/bad", [response(200, b"this is not gzip at all" * 10, gz)])
        b.script("/short", [response(200, GZ[:len(GZ) // 2], gz)])
        b.script("/plain", [response(200, TEXT, {"Content-Type": "text/plain"})])
        b.script("/br", [response(200, b"xx", {"Content-Encoding": "br"})])
        conf = GUNZIP_CONF.replace("%%UPORT%%", str(b.port))
        yield from weir_and_nginx(conf, {"t.txt": TEXT, "t.txt.gz": GZ}, mtime=MTIME)


GUNZIP_REQUESTS = [(p, h) for p in ("/gz", "/two", "/plain", "/br", "/off/gz", "/vary/gz",
                                    "/nb/gz", "/nb/two", "/static/t.txt")
                   for h in ({}, {"Accept-Encoding": "gzip"})]


@pytest.mark.parametrize("path,headers", GUNZIP_REQUESTS,
                         ids=["%s %s" % (p, sorted(h.items())) for p, h in GUNZIP_REQUESTS])
def test_gunzip_as_nginx(gunzip_pair, path, headers):
    weir, nginx = gunzip_pair
    assert static_answer(weir.port, path, headers, "GET") == \
        static_answer(nginx.port, path, headers, "GET")


def test_gunzip_decompresses_for_clients_without_gzip(gunzip_pair):
    weir, nginx = gunzip_pair
    for path in ("/bad", "/short"):  # broken: whatever went out is cut short, as nginx cuts it
        outs = [raw(s.port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
                for s in gunzip_pair]
        assert [o[:12] for o in outs] == [outs[1][:12]] * 2 and not outs[0].endswith(b"0\r\n\r\n")
    for path in ("/gz", "/two", "/nb/two", "/static/t.txt"):
        lines, body = request(weir.port, path, {})
        assert body == TEXT and not any(l.startswith("Content-Encoding") for l in lines), path
    lines, _ = request(weir.port, "/gz", {})
    assert 'ETag: W/"e1"' in lines
    log = weir.error_log()
    assert "inflate() failed: 0, -3" in log and "inflate() returned -5 on response end" in log
