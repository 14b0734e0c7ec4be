"""slice (#12), beside Debian's nginx on the same configuration, with Debian's nginx as the origin
serving a real file: a response fetched in pieces of `slice` bytes through "Range: $slice_range",
each piece after the first a subrequest; the pieces joined into the whole file or cut to the
client's range; each piece cached under its own key; and the faults nginx's slice module refuses
(a piece that is not a 206, of another ETag, of another range, without a complete length), each
with nginx's error line, played by a scripted origin."""
import hashlib
import os
import re
import socket
import subprocess

import pytest

from backend import Backend, response
from conftest import NGINX, WEIR, Server, check_conf, http_get, wait_for, weir_and_nginx

SLICE = 16384
# 7 pieces, the last one short; not a multiple of anything.
DATA = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(3126))[:100000]

CONF = r"""
    proxy_cache_path %%DIR%%/cache levels=1:2 keys_zone=pieces:1m;
    proxy_temp_path %%DIR%%/proxy_temp;
    server {
        listen 127.0.0.1:%%PORT0%%;
        listen 127.0.0.1:%%PORT1%% http2;
        location /plain/ {
            slice 16k;
            proxy_set_header Range $slice_range;
            proxy_pass http://127.0.0.1:ORIGIN/;
        }
        location /cached/ {
            slice 16k;
            proxy_cache pieces;
            proxy_cache_key $uri$is_args$args$slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_set_header Range $slice_range;
            add_header X-Cache $upstream_cache_status always;
            proxy_pass http://127.0.0.1:ORIGIN/;
        }
        location /faulty/ {
            slice 16k;
            proxy_set_header Range $slice_range;
            proxy_pass http://127.0.0.1:BACKEND;
        }
        location /off/ {
            proxy_set_header X-Slice "[$slice_range]";
            proxy_pass http://127.0.0.1:BACKEND;
        }
    }
"""

ORIGIN_CONF = r"""
    log_format ranges '$request_uri $http_range';
    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/logs/ranges.log ranges;
    }
"""


def piece(body, etag='"v1"', status=206, content_range=None):
    """A scripted origin's answer to "Range: bytes=S-E" over body, as nginx's static module gives
    it; content_range or status override what it says."""
    def answer(method, target, headers):
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", headers.get("range", ""))
        start, end = int(m.group(1)), min(int(m.group(2)), len(body) - 1)
        cr = content_range(start, end) if content_range else "bytes %d-%d/%d" % (start, end, len(body))
        if status != 206:
            return [response(status, body, {"ETag": etag(start) if callable(etag) else etag})]
        return [response(206, body[start:end + 1], {
            "Content-Range": cr(start) if callable(cr) else cr,
            "ETag": etag(start) if callable(etag) else etag})]
    return answer


@pytest.fixture(scope="module")
def origin():
    s = Server(ORIGIN_CONF, files={"f.bin": DATA}, binary=NGINX)
    s.start()
    yield s
    s.stop()
    s.cleanup()


@pytest.fixture(scope="module")
def backend():
    with Backend() as b:
        b.script("/faulty/ignores", piece(DATA[:40000], status=200))
        b.script("/faulty/etag", piece(DATA[:40000], etag=lambda start: '"v1"' if start == 0 else '"v2"'))
        b.script("/faulty/range", piece(DATA[:40000], content_range=lambda s, e: "bytes %d-%d/40000" % (
            s, e if s == 0 else e - 1)))
        b.script("/faulty/status", lambda m, t, h: (
            piece(DATA[:40000])(m, t, h) if h.get("range", "").startswith("bytes=0-")
            else [response(200, DATA[:40000], {"ETag": '"v1"'})]))
        b.script("/faulty/nolength", piece(DATA[:40000], content_range=lambda s, e: (
            "bytes %d-%d/40000" % (s, e) if s == 0 else "bytes %d-%d/*" % (s, e))))
        yield b


@pytest.fixture(scope="module")
def pair(origin, backend):
    conf = CONF.replace("ORIGIN", str(origin.port)).replace("BACKEND", str(backend.port))
    yield from weir_and_nginx(conf, {}, ports=2)


def logged(origin, uri):
    with open(origin.path("logs/ranges.log")) as f:
        return [line.split(" ", 1)[1].strip() for line in f if line.split(" ", 1)[0] == uri]


def asked(origin, uri, expected):
    """The ranges the origin was asked for uri, in order, once it has logged as many as expected
    (it logs a request after its answer has gone out)."""
    wait_for(lambda: len(logged(origin, uri)) >= len(expected), what="the origin's log of " + uri)
    return logged(origin, uri)


def pieces(start_piece, end_piece):
    return ["bytes=%d-%d" % (i * SLICE, (i + 1) * SLICE - 1) for i in range(start_piece, end_piece)]


def test_the_whole_file_is_fetched_in_pieces(pair, origin):
    for s in pair:
        uri = "/f.bin?who=" + s.name
        r = http_get(s.port, "/plain" + uri)
        assert r.status == 200, s.name
        assert r.header("Content-Length") == str(len(DATA))
        assert r.header("Content-Range") is None
        assert r.header_list("Accept-Ranges") == ["bytes"], s.name
        assert r.body == DATA, s.name
        # Seven pieces, each asked once, in order.
        assert asked(origin, uri, pieces(0, 7)) == pieces(0, 7), s.name


RANGES = [
    "bytes=0-99",             # inside the first piece
    "bytes=16000-17000",      # across two pieces
    "bytes=40000-40000",      # one byte of the third
    "bytes=20000-90000",      # five pieces
    "bytes=50000-",           # to the end
    "bytes=99990-",           # inside the short last piece
    "bytes=-1000",            # a suffix: fetched from the first piece
    "bytes=0-1,40000-40001",  # several: slice allows one, so the whole file
    "bytes=200000-",          # beyond the end: the origin's 416
]


@pytest.mark.parametrize("rng", RANGES)
def test_the_clients_range_is_cut_from_the_pieces(pair, origin, rng):
    answers = []
    m = re.fullmatch(r"bytes=(\d+)-\d*", rng)
    start = int(m.group(1)) // SLICE if m else 0
    for s in pair:
        uri = "/f.bin?r=%s&who=%s" % (rng, s.name)
        r = http_get(s.port, "/plain" + uri, headers={"Range": rng})
        answers.append((r.status, r.header("Content-Range"), r.header("Content-Length"), r.body))
        if r.status == 206:
            m = re.fullmatch(r"bytes (\d+)-(\d+)/100000", r.header("Content-Range"))
            first, last = int(m.group(1)), int(m.group(2))
            assert r.body == DATA[first:last + 1], s.name
            # The piece the client's start is in first (the first piece for a suffix), then the
            # others the range covers.
            expected = pieces(start, start + 1) + [
                p for p in pieces(first // SLICE, last // SLICE + 1) if p not in pieces(start, start + 1)]
        elif r.status == 200:
            assert r.body == DATA
            expected = pieces(0, 7)
        else:
            expected = pieces(start, start + 1)  # past the end: the origin's 416 is passed on
        # Only the pieces the answer covers were asked for.
        assert asked(origin, uri, expected) == expected, s.name
    assert answers[0] == answers[1], [a[:3] for a in answers]


def test_a_range_only_asks_for_the_pieces_it_covers(pair, origin):
    for s in pair:
        uri = "/f.bin?few=" + s.name
        r = http_get(s.port, "/plain" + uri, headers={"Range": "bytes=40000-50000"})
        assert (r.status, r.body) == (206, DATA[40000:50001]), s.name
        assert asked(origin, uri, pieces(2, 4)) == pieces(2, 4), s.name


def test_if_range_goes_to_the_origin_with_the_first_piece(pair, origin):
    # The slice starts from the first piece; the origin judges If-Range (a 200 of the whole file
    # when it does not match, passed through), as in nginx.
    answers = []
    for s in pair:
        uri = "/f.bin?ifr=" + s.name
        r = http_get(s.port, "/plain" + uri, headers={"Range": "bytes=40000-50000",
                                                      "If-Range": '"other"'})
        assert (r.status, r.body) == (200, DATA), s.name
        answers.append(asked(origin, uri, ["bytes=0-16383"]))
    assert answers[0] == answers[1] == ["bytes=0-16383"]


def cache_files(s, uri):
    """The cache files both servers keep for uri's pieces, by nginx's layout (levels=1:2)."""
    out = []
    for rng in pieces(0, 7):
        md5 = hashlib.md5((uri + rng).encode()).hexdigest()
        out.append(s.path("cache/%s/%s/%s" % (md5[-1], md5[-3:-1], md5)))
    return out


def test_each_piece_is_cached_under_its_own_key(pair, origin):
    for s in pair:
        uri = "/f.bin?c=" + s.name
        # The middle first: only its pieces are fetched.
        r = http_get(s.port, "/cached" + uri, headers={"Range": "bytes=40000-50000"})
        assert (r.status, r.header("X-Cache"), r.body) == (206, "MISS", DATA[40000:50001]), s.name
        assert asked(origin, uri, pieces(2, 4)) == pieces(2, 4)
        # Then the whole file: the main request's own piece (the first) is a MISS, and only the
        # pieces not yet kept reach the origin.
        r = http_get(s.port, "/cached" + uri)
        assert (r.status, r.header("X-Cache"), r.body) == (200, "MISS", DATA), s.name
        expected = pieces(2, 4) + pieces(0, 2) + pieces(4, 7)
        assert asked(origin, uri, expected) == expected, s.name
        # Every piece kept, each in its own file where nginx puts it.
        for path in cache_files(s, "/cached/f.bin?c=" + s.name):
            wait_for(lambda: os.path.exists(path), what="%s's %s" % (s.name, path))
        # All HITs now.
        r = http_get(s.port, "/cached" + uri)
        assert (r.status, r.header("X-Cache"), r.body) == (200, "HIT", DATA), s.name
        r = http_get(s.port, "/cached" + uri, headers={"Range": "bytes=16000-99999"})
        assert (r.status, r.header("X-Cache"), r.body) == (206, "HIT", DATA[16000:]), s.name
        assert r.header("Content-Range") == "bytes 16000-99999/100000"
        assert len(logged(origin, uri)) == 7, s.name


def test_an_origin_that_ignores_the_range_is_passed_through(pair, backend):
    for s in pair:
        r = http_get(s.port, "/faulty/ignores")
        assert (r.status, r.header("Content-Length"), r.body) == (200, "40000", DATA[:40000]), s.name


def read_until_close(port, path):
    """The raw answer to one request, read until the server closes (a response cut short)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize("path,line", [
    ("/faulty/etag", "etag mismatch in slice response"),
    ("/faulty/range", "unexpected range in slice response: 16384-32767"),
    ("/faulty/status", "unexpected status code 200 in slice response"),
    ("/faulty/nolength", "no complete length in slice response"),
])
def test_a_piece_that_does_not_fit_cuts_the_response_short(pair, path, line):
    for s in pair:
        data = read_until_close(s.port, path)
        head, _, body = data.partition(b"\r\n\r\n")
        # The first piece went out under the whole length; the response ends after it.
        assert head.startswith(b"HTTP/1.1 200 OK"), s.name
        assert b"\r\nContent-Length: 40000\r\n" in head, s.name
        assert body == DATA[:SLICE], (s.name, len(body))
        wait_for(lambda: line in open(s.path("logs/error.log")).read(),
                 what="%s's error line: %s" % (s.name, line))


def test_slice_range_is_empty_where_slice_is_off(pair, backend):
    for s in pair:
        http_get(s.port, "/off/x?who=" + s.name)
        headers = [h for _, t, h, _ in backend.requests if t == "/off/x?who=" + s.name][-1]
        assert headers["x-slice"] == "[]", s.name


@pytest.mark.parametrize("path", ["/plain", "/cached"])
@pytest.mark.parametrize("rng", ["", "bytes=20000-90000"])
def test_pieces_over_http2(pair, path, rng):
    # The pieces' subrequests answer one HTTP/2 stream, in order.
    for s in pair:
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "-o", "-", "-w",
             "\n%{http_code}", "-H", "Range: " + rng if rng else "X: y",
             "http://127.0.0.1:%d%s/f.bin?h2=%s%s" % (s.ports[1], path, s.name, rng)],
            capture_output=True, check=True, timeout=30).stdout
        body, _, status = out.rpartition(b"\n")
        if rng:
            assert (status, body) == (b"206", DATA[20000:90001]), s.name
        else:
            assert (status, body) == (b"200", DATA), s.name


@pytest.mark.parametrize("conf,error", [
    ("slice abc;", '"slice" directive invalid value'),
    ("slice 1m 2m;", 'invalid number of arguments in "slice" directive'),
    ("server { listen 127.0.0.1:1; location / { slice 1m; slice 2m; } }",
     '"slice" directive is duplicate'),
])
def test_bad_slice_lines_are_refused_as_nginx_refuses_them(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc == 1 and "[emerg]" in err and error in err, (binary, err)
