"""brotli and zstd beside gzip (#9): the coding each Accept-Encoding gets (q-values, br > zstd >
gzip when equal, q=0 refused), bodies decoded by Debian's `brotli` and `zstd` tools and by the
Python bindings of the same libraries, Vary on every response a coding could have applied to,
types, min lengths, HEAD, 304 and ranges, $brotli_ratio and $zstd_ratio, a flushed upstream chunk
reaching the client decodable at once, a large response in bounded memory, brotli_static and
zstd_static, and the load errors."""
import hashlib
import os
import socket
import subprocess
import threading

import brotli
import pytest
import zstandard

from backend import Backend, Send, Wait
from conftest import Server, WEIR, check_conf, dechunk, peak_rss, raw, wait_for

TEXT = ("".join("line %d of a text that compresses well\n" % i for i in range(400))).encode()
FILES = {"t.txt": TEXT, "small.txt": b"tiny\n", "img.png": b"\x89PNG" + TEXT,
         "pre/a.txt": TEXT, "pre/a.txt.br": brotli.compress(TEXT),
         "pre/a.txt.zst": zstandard.ZstdCompressor().compress(TEXT),
         "pre/a.txt.gz": b"not really gzip"}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    log_format ratio '$uri $status [$gzip_ratio] [$brotli_ratio] [$zstd_ratio]';
    access_log %%DIR%%/logs/ratio.log ratio;
    gzip on; gzip_types text/plain;
    brotli on; brotli_types text/plain;
    zstd on; zstd_types text/plain;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
        location /nobr/ { brotli off; alias %%DIR%%/html/; }
        location /long/ { brotli_min_length 100000; zstd_min_length 100000; alias %%DIR%%/html/; }
        location /levels/ { brotli_comp_level 11; brotli_window 16m; zstd_comp_level 19;
                            alias %%DIR%%/html/; }
        location /pre/ { brotli off; zstd off; gzip off;
                         brotli_static on; zstd_static on; gzip_static on; }
        location /always/ { brotli off; zstd off; gzip off; brotli_static always;
                            alias %%DIR%%/html/pre/; }
    }
"""


@pytest.fixture(scope="module")
def weir():
    s = Server(CONF, files=FILES)
    s.start()
    yield s
    s.stop()
    s.check_clean()
    s.cleanup()


def fetch(port, path, ae=None, method="GET", extra=""):
    req = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s" % (method, path, extra)
    if ae is not None:
        req += "Accept-Encoding: %s\r\n" % ae
    head, _, body = raw(port, req + "\r\n").partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(": ")
        headers.setdefault(k.lower(), []).append(v)
    if "chunked" in headers.get("transfer-encoding", [""])[0]:
        body = dechunk(body)
    return lines[0], headers, body


def decode_with_tool(coding, body):
    tool = {"br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"],
            "gzip": ["gzip", "-d", "-c"]}[coding]
    return subprocess.run(tool, input=body, capture_output=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("ae,coding", [
    ("gzip", "gzip"), ("br", "br"), ("zstd", "zstd"),
    ("gzip, deflate, br", "br"), ("gzip, zstd", "zstd"), ("gzip, deflate, br, zstd", "br"),
    ("br;q=0.5, gzip", "gzip"), ("br;q=0.5, zstd;q=0.6, gzip;q=0.4", "zstd"),
    ("zstd;q=0.9, br;q=0.8, gzip;q=0.1", "zstd"), ("br;q=0, gzip;q=0.2", "gzip"),
    ("br;q=0", None), ("BR", "br"), ("br ; q=1.0", "br"), ("*", "br"), ("*;q=0", None),
    ("identity", None), ("br;q=2", None), ("zstd;q=0.001", "zstd"),
])
def test_negotiated_coding_decoded_by_the_tools(weir, ae, coding):
    status, headers, body = fetch(weir.port, "/t.txt", ae)
    assert status == "HTTP/1.1 200 OK"
    assert headers.get("content-encoding") == ([coding] if coding else None), headers
    assert headers["vary"] == ["Accept-Encoding"]
    if coding:
        assert "content-length" not in headers and len(body) < len(TEXT) // 3
        assert decode_with_tool(coding, body) == TEXT
    else:
        assert body == TEXT


def test_what_stays_uncompressed_and_the_vary_rule(weir):
    # Not a listed type, too short for the min lengths: no coding and no Vary from brotli/zstd.
    for path in ("/img.png", "/small.txt"):
        _, headers, _ = fetch(weir.port, path, "br, zstd")
        assert "content-encoding" not in headers and "vary" not in headers, (path, headers)
    # brotli off here: zstd takes a br-preferring client.
    _, headers, body = fetch(weir.port, "/nobr/t.txt", "br, zstd")
    assert headers["content-encoding"] == ["zstd"]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == TEXT
    # Longer min lengths: gzip (min 20) still applies.
    _, headers, _ = fetch(weir.port, "/long/t.txt", "br, zstd, gzip")
    assert headers["content-encoding"] == ["gzip"]


def test_head_304_and_range(weir):
    status, headers, body = fetch(weir.port, "/t.txt", "br", method="HEAD")
    assert headers["content-encoding"] == ["br"] and body == b""
    etag = headers["etag"][0]
    assert etag.startswith('W/"')
    status, headers, body = fetch(weir.port, "/t.txt", "zstd",
                                  extra="If-None-Match: %s\r\n" % etag.replace('W/', ''))
    assert status == "HTTP/1.1 304 Not Modified" and body == b""
    status, headers, body = fetch(weir.port, "/t.txt", "br", extra="Range: bytes=0-9\r\n")
    assert status == "HTTP/1.1 200 OK" and brotli.decompress(body) == TEXT
    assert "accept-ranges" not in headers


def test_levels_and_window(weir):
    _, headers, body = fetch(weir.port, "/levels/t.txt", "br")
    assert headers["content-encoding"] == ["br"] and brotli.decompress(body) == TEXT
    _, headers, body = fetch(weir.port, "/levels/t.txt", "zstd")
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == TEXT


def test_ratios_in_the_log(weir):
    for ae in ("br", "zstd", "gzip"):
        fetch(weir.port, "/t.txt", ae)
    fetch(weir.port, "/img.png", "br")

    def lines():
        with open(weir.path("logs/ratio.log")) as f:
            return f.read().splitlines()
    wait_for(lambda: any(l.startswith("/img.png") for l in lines()), what="the log lines")
    ratios = [tuple(r.rstrip("] ") for r in l.split("[")[1:]) for l in lines()
              if l.startswith("/t.txt 200")]
    br = [float(b) for g, b, z in ratios if g == z == "-" != b]
    zs = [float(z) for g, b, z in ratios if g == b == "-" != z]
    assert br and zs and min(br + zs) > 3, ratios
    assert "/img.png 200 [-] [-] [-]" in lines()


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_flushed_chunks_reach_the_client_decodable(make_server, coding):
    """proxy_buffering off: each upstream chunk is a flushed buffer, so the client decodes what it
    has before the upstream sends more (the backend waits for the test to say so)."""
    seen = threading.Event()
    with Backend() as b:
        b.script("/events", [Send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"),
                             Send(b"%x\r\n" % 300 + b"e" * 300 + b"\r\n"), Wait(seen),
                             Send(b"%x\r\n" % 300 + b"f" * 300 + b"\r\n0\r\n\r\n")])
        s = make_server("""
        brotli on; brotli_types text/plain; zstd on; zstd_types text/plain;
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; proxy_buffering off; } }
        """ % b.port)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\n\r\n" % coding.encode())
        dec = brotli.Decompressor() if coding == "br" else \
            zstandard.ZstdDecompressor().decompressobj()
        data, plain, used = b"", b"", 0
        while len(plain) < 300:
            data += c.recv(65536)  # times out (the test fails) if the first flush never comes
            head, sep, body = data.partition(b"\r\n\r\n")
            if not sep:
                continue
            while True:
                size, nl, more = body[used:].partition(b"\r\n")
                if not nl or int(size, 16) == 0 or len(more) < int(size, 16) + 2:
                    break
                n = int(size, 16)
                plain += dec.process(more[:n]) if coding == "br" else dec.decompress(more[:n])
                used += len(size) + 2 + n + 2
        assert ("Content-Encoding: %s" % coding).encode() in head and plain == b"e" * 300
        seen.set()
        while not data.endswith(b"0\r\n\r\n"):
            data += c.recv(65536)
        c.close()
        rest = dechunk(data.partition(b"\r\n\r\n")[2][used:])
        plain += dec.process(rest) if coding == "br" else dec.decompress(rest)
        assert plain == b"e" * 300 + b"f" * 300


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_large_response_in_bounded_memory(make_server, coding):
    """12 MiB of text encoded for a slow client: the worker's memory stays within a few MiB of
    where it started beyond what the codec itself holds, and every byte arrives."""
    s = make_server("""
    brotli on; brotli_types text/plain; brotli_comp_level 1; brotli_buffers 2 4k;
    zstd on; zstd_types text/plain; zstd_buffers 2 4k;
    types { text/plain txt; } output_buffers 2 8k;
    server { listen 127.0.0.1:%%PORT%% sndbuf=32k; location / { } }
    """, main_conf="worker_processes 1;", start=False)
    digest = hashlib.sha256()
    with open(s.path("html/big.txt"), "wb") as f:
        for i in range(12):
            piece = os.urandom(512 * 1024).hex().encode()
            digest.update(piece)
            f.write(piece)
    os.chmod(s.path("html/big.txt"), 0o644)
    # The brotli encoder frees and allocates as it goes; the sanitizer build's quarantine would keep
    # every freed block, which is not what is measured here.
    s.extra_env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"}
    s.start()
    wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")
    (pid,) = s.worker_pids()
    req = ("GET /big.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\nConnection: close\r\n\r\n"
           % coding)
    raw(s.port, req, timeout=60)  # the codec's own memory is taken once

    before = peak_rss(pid)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    # Small enough that weir waits for the client again and again; not so small that loopback's
    # 64 KiB segments leave every window update to the zero-window probe timer.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
    c.sendall(req.encode())
    dec = brotli.Decompressor() if coding == "br" else zstandard.ZstdDecompressor().decompressobj()
    data, head, total, got = b"", None, 0, hashlib.sha256()
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        data += chunk
        if head is None and b"\r\n\r\n" in data:
            head, _, data = data.partition(b"\r\n\r\n")
        if head is not None:
            while True:
                size, sep, rest = data.partition(b"\r\n")
                if not sep:
                    break
                n = int(size, 16)
                if len(rest) < n + 2:
                    break
                if n == 0:
                    break
                plain = dec.process(rest[:n]) if coding == "br" else dec.decompress(rest[:n])
                got.update(plain)
                total += len(plain)
                data = rest[n + 2:]
                if n == 0:
                    break
    c.close()
    assert total == 12 * 1024 * 1024 and got.digest() == digest.digest()
    assert peak_rss(pid) - before < 8 * 1024 * 1024, peak_rss(pid) - before


@pytest.mark.parametrize("ae,coding,body", [
    ("br", "br", FILES["pre/a.txt.br"]),
    ("zstd", "zstd", FILES["pre/a.txt.zst"]),
    ("gzip", "gzip", FILES["pre/a.txt.gz"]),
    ("gzip, br, zstd", "br", FILES["pre/a.txt.br"]),
    ("br;q=0.5, zstd", "zstd", FILES["pre/a.txt.zst"]),
    ("br;q=0.5, zstd;q=0.4, gzip", "gzip", FILES["pre/a.txt.gz"]),
    ("identity", None, TEXT),
])
def test_precompressed_files(weir, ae, coding, body):
    _, headers, got = fetch(weir.port, "/pre/a.txt", ae)
    assert headers.get("content-encoding") == ([coding] if coding else None)
    assert got == body
    if coding:
        assert headers["content-length"] == [str(len(body))]


def test_brotli_static_always(weir):
    _, headers, got = fetch(weir.port, "/always/a.txt", None)
    assert headers["content-encoding"] == ["br"] and got == FILES["pre/a.txt.br"]


@pytest.mark.parametrize("directive,error", [
    ("brotli_comp_level 12", "must be between 0 and 11"),
    ("brotli_window 3k", "must be 1k, 2k"),
    ("zstd_comp_level 0", "must be between 1 and"),
    ("zstd_comp_level x", "invalid number"),
    ("brotli_static sometimes", 'invalid value "sometimes"'),
    ("brotli maybe", "invalid value"),
    ("zstd_buffers 4", "invalid number of arguments"),
])
def test_load_errors(directive, error):
    rc, err = check_conf(WEIR, "server { listen 127.0.0.1:%%PORT%%; " + directive + "; }")
    assert rc != 0 and error in err, err
