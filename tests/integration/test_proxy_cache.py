"""proxy_cache (#12), beside Debian's nginx on the same configuration and origin: the same
$upstream_cache_status sequence for the same requests (MISS, HIT, EXPIRED, BYPASS), the same
answers, the same number of requests reaching the origin, and the cache file where nginx puts it
(the MD5 of the key under the levels' directories). What keeps a response out (Cache-Control
private / no-store / no-cache / max-age=0, Set-Cookie, X-Accel-Expires: 0, Expires in the past,
a status proxy_cache_valid does not name, a body cut short), proxy_cache_bypass, proxy_no_cache,
proxy_cache_min_uses, proxy_cache_methods; conditions and ranges answered from the cache while the
origin is asked for the whole response; a body spilled to the temp file; a reload keeps the
entries; a damaged file is a MISS."""
import glob
import hashlib
import os
import re
import socket
import signal
import threading
import time

import pytest

from backend import Backend, Close, Send, Wait, chunked, response
from conftest import Server, check_conf, http_get, raw, wait_for, weir_and_nginx, NGINX, WEIR

LM = "Wed, 21 Oct 2015 07:28:00 GMT"
BIG = bytes(range(256)) * 4096  # 1 MiB: spills to the temp file with the default buffers

CONF = r"""
    # Cache files go through the open-file cache as nginx's do: a replaced entry must not be read
    # through an older descriptor, nor a revalidated one through an older copy of its header.
    open_file_cache max=100 inactive=60s;
    open_file_cache_valid 60s;
    proxy_cache_path %%DIR%%/cache levels=1:2 keys_zone=one:1m;
    proxy_temp_path %%DIR%%/proxy_temp;
    add_header X-Cache $upstream_cache_status always;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            proxy_cache one;
            proxy_cache_valid 200 302 10m;
            proxy_cache_valid 404 1m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /bypass/ {
            proxy_cache one;
            proxy_cache_key $uri;
            proxy_cache_valid 10m;
            proxy_cache_bypass $arg_nocache;
            proxy_no_cache $arg_nostore;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /min/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_min_uses 2;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /post/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_methods POST;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /nocache/ {
            proxy_cache off;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /stale/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_use_stale error timeout http_500 updating;
            proxy_read_timeout 1s;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /reval/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_revalidate on;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /lock/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_lock on;
            # Long enough for the first fetch to end on a busy machine once the test lets it
            # (the waiting request then finds its entry); the outlasting case waits it out.
            proxy_cache_lock_timeout 2s;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /range-off/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_max_range_offset 2;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /bg/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /var/ {
            proxy_cache $arg_zone;
            proxy_cache_valid 10m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /plain/ {
            open_file_cache off;
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /head/ {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /nohead/ {
            proxy_cache one;
            proxy_cache_key $request_method$request_uri;
            proxy_cache_valid 10m;
            proxy_cache_convert_head off;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
    }
"""

# Paths whose responses are never kept: (path, origin's answer).
NOT_KEPT = {
    "/cc/private": response(200, "private\n", {"Cache-Control": "private, max-age=60"}),
    "/cc/no-store": response(200, "no-store\n", {"Cache-Control": "no-store"}),
    "/cc/no-cache": response(200, "no-cache\n", {"Cache-Control": "no-cache"}),
    "/cc/max-age-0": response(200, "zero\n", {"Cache-Control": "max-age=0"}),
    "/cookie": response(200, "cookie\n", {"Set-Cookie": "a=b"}),
    "/xae-0": response(200, "xae\n", {"X-Accel-Expires": "0"}),
    "/expires-past": response(200, "past\n", {"Expires": "Thu, 01 Jan 1970 00:00:01 GMT"}),
    "/status-500": response(500, "error\n"),
}

# Paths kept although proxy_cache_valid would not keep them, or kept longer: the header says.
KEPT_BY_HEADER = {
    "/cc/max-age-500": response(500, "kept error\n", {"Cache-Control": "max-age=60"}),
    "/xae-60": response(201, "created\n", {"X-Accel-Expires": "60"}),
    "/expires-future": response(203, "future\n", {"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"}),
}


def script(b):
    b.script("/a.txt", [response(200, "hello\n", {"Last-Modified": LM, "ETag": '"abc"',
                                                  "Accept-Ranges": "bytes"})])
    b.script("/no-ranges", [response(200, "hello\n")])
    b.script("/missing", [response(404, "not here\n")])
    b.script("/moved", [response(302, "", {"Location": "/a.txt"})])
    b.script("/chunked", chunked(["chunk one ", "chunk two\n"]))
    b.script("/big", [response(200, BIG)])
    b.script("/big8k", [response(200, b"x" * 8000)])
    b.script("/short", [Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."), Close()])
    b.script("/expired", [response(200, "stale\n", {"X-Accel-Expires": "@1"})])
    for path, steps in list(NOT_KEPT.items()) + list(KEPT_BY_HEADER.items()):
        b.script(path, steps if isinstance(steps, list) else [steps])


@pytest.fixture(scope="module")
def origin():
    with Backend() as b:
        script(b)
        yield b


@pytest.fixture(scope="module")
def pair(origin):
    yield from weir_and_nginx(CONF.replace("ORIGIN", str(origin.port)), {})


def asked(origin, target):
    """How many requests for target reached the origin."""
    return sum(1 for _, t, _, _ in origin.requests if t == target)


def statuses(s, path, n, **kw):
    out = []
    for _ in range(n):
        r = http_get(s.port, path, **kw)
        out.append((r.status, r.header("X-Cache"), r.body))
    return out


def cache_file(s, origin, uri):
    """Where both servers keep the default key's file: levels=1:2 from the end of the MD5."""
    key = "http://127.0.0.1:%d%s" % (origin.port, uri)
    md5 = hashlib.md5(key.encode()).hexdigest()
    return s.path("cache/%s/%s/%s" % (md5[-1], md5[-3:-1], md5)), key


def test_miss_then_hit_and_the_file_where_nginx_puts_it(pair, origin):
    for s in pair:
        uri = "/a.txt?who=" + s.name
        seq = statuses(s, uri, 3)
        assert [x[:2] for x in seq] == [(200, "MISS"), (200, "HIT"), (200, "HIT")], s.name
        assert all(x[2] == b"hello\n" for x in seq)
        assert asked(origin, uri) == 1, s.name
        path, key = cache_file(s, origin, uri)
        wait_for(lambda: os.path.exists(path), what="%s's cache file %s" % (s.name, path))
        with open(path, "rb") as f:
            data = f.read()
        assert b"\nKEY: " + key.encode() + b"\n" in data, s.name
        assert data.endswith(b"hello\n"), s.name
    # The HIT's header is the MISS's.
    w, n = (http_get(s.port, "/a.txt?who=" + s.name) for s in pair)
    for r in (w, n):
        assert r.header("Content-Length") == "6"
        assert r.header("Last-Modified") == LM
        assert r.header("ETag") == '"abc"'
        assert r.header_list("Accept-Ranges") == ["bytes"]
    assert w.header("Content-Type") == n.header("Content-Type")


def test_head_is_answered_from_the_cache(pair, origin):
    for s in pair:
        uri = "/a.txt?head=" + s.name
        assert http_get(s.port, uri).header("X-Cache") == "MISS"
        r = http_get(s.port, uri, method="HEAD")
        assert (r.status, r.header("X-Cache"), r.header("Content-Length"), r.body) == \
            (200, "HIT", "6", b""), s.name
        assert asked(origin, uri) == 1


def test_statuses_proxy_cache_valid_names(pair, origin):
    for s in pair:
        for path, status in (("/missing", 404), ("/moved", 302)):
            uri = "%s?who=%s" % (path, s.name)
            seq = statuses(s, uri, 2)
            assert [x[:2] for x in seq] == [(status, "MISS"), (status, "HIT")], (s.name, path)
            assert asked(origin, uri) == 1
        r = http_get(s.port, "/moved?who=" + s.name)
        assert r.header("Location") == "http://localhost:%d/a.txt" % s.port or \
            r.header("Location") == "/a.txt", r.header("Location")


@pytest.mark.parametrize("path", sorted(NOT_KEPT))
def test_responses_that_are_not_kept(pair, origin, path):
    results = []
    for s in pair:
        uri = "%s?who=%s" % (path, s.name)
        seq = statuses(s, uri, 2)
        assert [x[1] for x in seq] == ["MISS", "MISS"], (s.name, seq)
        assert asked(origin, uri) == 2, s.name
        results.append([x[0] for x in seq])
    assert results[0] == results[1]


@pytest.mark.parametrize("path", sorted(KEPT_BY_HEADER))
def test_responses_kept_by_their_header(pair, origin, path):
    for s in pair:
        uri = "%s?who=%s" % (path, s.name)
        seq = statuses(s, uri, 2)
        assert [x[1] for x in seq] == ["MISS", "HIT"], (s.name, seq)
        assert seq[0][0] == seq[1][0] and seq[0][2] == seq[1][2]
        assert asked(origin, uri) == 1, s.name


def test_an_expired_entry_is_fetched_again(pair, origin):
    # X-Accel-Expires: @1 keeps the response with a lifetime that ended in 1970.
    for s in pair:
        uri = "/expired?who=" + s.name
        assert [x[1] for x in statuses(s, uri, 3)] == ["MISS", "EXPIRED", "EXPIRED"], s.name
        assert asked(origin, uri) == 3


def test_a_chunked_response_is_kept_and_sent_with_its_length(pair, origin):
    for s in pair:
        uri = "/chunked?who=" + s.name
        a, b = (http_get(s.port, uri) for _ in range(2))
        assert (a.header("X-Cache"), b.header("X-Cache")) == ("MISS", "HIT")
        assert a.body == b.body == b"chunk one chunk two\n"
        if s.name == "weir":
            # nginx sends the HIT chunked, as the origin did; weir knows the file's length.
            assert (b.header("Content-Length"), b.header("Transfer-Encoding")) == ("20", None)
        assert asked(origin, uri) == 1


def test_a_large_body_spilled_to_the_temp_file_is_kept(pair, origin):
    for s in pair:
        uri = "/big?who=" + s.name
        a, b = (http_get(s.port, uri) for _ in range(2))
        assert (a.header("X-Cache"), b.header("X-Cache")) == ("MISS", "HIT")
        assert a.body == BIG and b.body == BIG
        assert asked(origin, uri) == 1
        # No temp file is left behind.
        assert not [f for f in glob.glob(s.path("proxy_temp/**"), recursive=True)
                    if os.path.isfile(f)]


def test_a_body_cut_short_is_not_kept(pair, origin):
    for s in pair:
        uri = "/short?who=" + s.name
        for _ in range(2):
            out = raw(s.port, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % uri)
            assert out.startswith(b"HTTP/1.1 200") and b"X-Cache: MISS" in out, (s.name, out)
            assert out.endswith(b"only ten.."), out
        assert asked(origin, uri) == 2


def test_bypass_and_no_cache(pair, origin):
    for s in pair:
        base = "/bypass/%s" % s.name
        seq = [http_get(s.port, base + q).header("X-Cache")
               for q in ("", "?nocache=1", "", "?nocache=0")]
        # The bypassed response is fetched and kept (it replaces the entry); "0" is false.
        assert seq == ["MISS", "BYPASS", "HIT", "HIT"], s.name
        other = "/bypass/%s-nostore" % s.name
        seq = [http_get(s.port, other + q).header("X-Cache") for q in ("?nostore=1", "", "")]
        assert seq == ["MISS", "MISS", "HIT"], s.name


def test_min_uses(pair, origin):
    for s in pair:
        uri = "/min/x?who=" + s.name
        assert [x[1] for x in statuses(s, uri, 3)] == ["MISS", "MISS", "HIT"], s.name
        assert asked(origin, uri) == 2


def test_methods(pair, origin):
    for s in pair:
        uri = "/a.txt?post=" + s.name
        r = http_get(s.port, uri, method="POST", body=b"x", headers={"If-None-Match": '"abc"'})
        assert r.header("X-Cache") is None, s.name  # POST is not looked up by default
        # Nor asked for whole: the client's conditions go on as without the cache.
        _, _, headers, _ = [q for q in origin.requests if q[1] == uri and q[0] == "POST"][0]
        assert headers.get("if-none-match") == '"abc"', s.name
        assert [x[1] for x in statuses(s, uri, 2)] == ["MISS", "HIT"]
        puri = "/post/p?who=" + s.name
        seq = [http_get(s.port, puri, method="POST", body=b"x").header("X-Cache")
               for _ in range(2)]
        assert seq == ["MISS", "HIT"], s.name
        assert http_get(s.port, "/nocache/a?who=" + s.name).header("X-Cache") is None


def test_conditions_and_ranges_are_the_caches_own(pair, origin):
    for s in pair:
        uri = "/a.txt?cond=" + s.name
        # The client's conditions and range do not reach the origin: the cache needs the whole
        # response, and answers them itself.
        r = http_get(s.port, uri, headers={"If-None-Match": '"abc"', "Range": "bytes=0-1"})
        assert (r.status, r.header("X-Cache")) == (304, "MISS"), s.name
        _, _, headers, _ = [q for q in origin.requests if q[1] == uri][0]
        assert "if-none-match" not in headers and "range" not in headers, s.name
        r = http_get(s.port, uri, headers={"If-None-Match": '"abc"'})
        assert (r.status, r.header("X-Cache")) == (304, "HIT"), s.name
        r = http_get(s.port, uri, headers={"If-Modified-Since": LM})
        assert r.status == 304
        r = http_get(s.port, uri, headers={"Range": "bytes=1-3"})
        assert (r.status, r.body, r.header("Content-Range")) == (206, b"ell", "bytes 1-3/6")
        r = http_get(s.port, uri, headers={"Range": "bytes=0-0,2-2"})
        assert r.status == 206 and b"multipart/byteranges" in r.header("Content-Type").encode()
        assert asked(origin, uri) == 1


def test_range_on_a_miss(pair, origin):
    for s in pair:
        uri = "/a.txt?range=" + s.name
        r = http_get(s.port, uri, headers={"Range": "bytes=1-3"})
        assert (r.status, r.body, r.header("X-Cache")) == (206, b"ell", "MISS"), s.name
        assert http_get(s.port, uri).header("X-Cache") == "HIT"


def test_no_ranges_unless_the_upstream_takes_them(pair, origin):
    # As nginx: the cache answers ranges only for a response whose upstream sent Accept-Ranges.
    for s in pair:
        uri = "/no-ranges?who=" + s.name
        for status in ("MISS", "HIT"):
            r = http_get(s.port, uri, headers={"Range": "bytes=1-3"})
            assert (r.status, r.body, r.header("X-Cache")) == (200, b"hello\n", status), s.name
            assert r.header("Accept-Ranges") is None


EXPIRED_NOW = {"X-Accel-Expires": "@1"}  # kept, with a lifetime that ended in 1970


@pytest.mark.parametrize("failure", ["http_500", "error", "timeout"])
def test_use_stale_sends_the_expired_entry_when_the_upstream_fails(pair, origin, failure):
    for s in pair:
        path = "/stale/%s-%s" % (failure, s.name)
        origin.script(path, [response(200, "old\n", dict(EXPIRED_NOW, ETag='"s1"'))])
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        origin.script(path, {"http_500": [response(500, "broken\n")],
                             "error": [Close()],
                             "timeout": [Wait(threading.Event())]}[failure])
        r = http_get(s.port, path)
        assert (r.status, r.header("X-Cache"), r.body) == (200, "STALE", b"old\n"), (s.name, r)
        if failure == "http_500":
            # An entry sent from its file answers the client's conditions as a HIT does.
            r = http_get(s.port, path, headers={"If-None-Match": '"s1"'})
            assert (r.status, r.header("X-Cache")) == (304, "STALE"), s.name
        # Where use_stale is off, the failure is the answer.
        other = "/a-%s-%s" % (failure, s.name)
        origin.script(other, [response(200, "old\n", EXPIRED_NOW)])
        assert http_get(s.port, other).header("X-Cache") == "MISS"
        origin.script(other, [response(500, "broken\n")])
        r = http_get(s.port, other)
        assert (r.status, r.header("X-Cache")) == (500, "EXPIRED"), s.name


def test_stale_if_error(pair, origin):
    """Cache-Control: stale-if-error lets the expired entry stand in for an upstream that cannot be
    reached, where proxy_cache_use_stale says nothing; not for a 500 it answers."""
    for s in pair:
        path = "/sie-" + s.name
        origin.script(path, [response(200, "old\n", {"Cache-Control": "max-age=1, stale-if-error=600"})])
        stored = time.time()
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        # The entry's lifetime is a second (whole seconds): the state waited for is its end.
        wait_for(lambda: time.time() > stored + 2.1, timeout=5, what="the entry to expire")
        origin.script(path, [Close()])
        r = http_get(s.port, path)
        assert (r.status, r.header("X-Cache"), r.body) == (200, "STALE", b"old\n"), s.name
        origin.script(path, [response(500, "broken\n")])
        r = http_get(s.port, path)
        assert (r.status, r.header("X-Cache")) == (500, "EXPIRED"), s.name


def test_use_stale_updating(pair, origin):
    """While one request fetches an expired entry anew, the others get the expired one at once."""
    for s in pair:
        path = "/stale/updating-" + s.name
        origin.script(path, [response(200, "old\n", EXPIRED_NOW)])
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        release = threading.Event()
        origin.script(path, [Wait(release), response(200, "new\n")])
        first = {}
        t = threading.Thread(target=lambda: first.update(r=http_get(s.port, path)))
        t.start()
        try:
            wait_for(lambda: asked(origin, path) == 2, what="the update reaching the origin")
            r = http_get(s.port, path)
            assert (r.header("X-Cache"), r.body) == ("UPDATING", b"old\n"), s.name
        finally:
            release.set()
            t.join(10)
        assert (first["r"].header("X-Cache"), first["r"].body) == ("EXPIRED", b"new\n")
        r = http_get(s.port, path)
        assert (r.header("X-Cache"), r.body) == ("HIT", b"new\n"), s.name


def requests_read(port):
    """Connections to the server on port whose request it has read (established, nothing left in
    the server side's receive queue; /proc/net/tcp)."""
    n = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01" and int(f[4].split(":")[1], 16) == 0:
            n += 1
    return n


def in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn()))
    t.start()
    return t, out


@pytest.mark.parametrize("outlast", [False, True])
def test_cache_lock(pair, origin, outlast):
    """proxy_cache_lock: while one request fetches a key, another waits for its entry (a HIT, the
    origin asked once); when the fetch outlasts proxy_cache_lock_timeout, the waiting one goes to the
    origin itself (nginx's info line "cache lock timeout") and keeps nothing."""
    for s in pair:
        path = "/lock/%s-%s" % (outlast, s.name)
        release = threading.Event()
        origin.script(path, [Wait(release), response(200, "locked\n")])
        first, a = in_thread(lambda: http_get(s.port, path))
        second = None
        try:
            wait_for(lambda: asked(origin, path) == 1, what="the first request at the origin")
            if outlast:
                origin.script(path, [response(200, "second\n")])
                r = http_get(s.port, path)
                assert (r.header("X-Cache"), r.body) == ("MISS", b"second\n"), s.name
                wait_for(lambda: "cache lock timeout" in s.error_log(), what="the log line")
            else:
                second, b = in_thread(lambda: http_get(s.port, path))
                wait_for(lambda: requests_read(s.port) == 2, what="the second request read")
        finally:
            release.set()
            first.join(10)
            if second is not None:
                second.join(10)
        assert (a["r"].header("X-Cache"), a["r"].body) == ("MISS", b"locked\n"), s.name
        if not outlast:
            assert (b["r"].header("X-Cache"), b["r"].body) == ("HIT", b"locked\n"), s.name
            assert asked(origin, path) == 1
        else:
            assert asked(origin, path) == 2
            r = http_get(s.port, path)
            assert (r.header("X-Cache"), r.body) == ("HIT", b"locked\n"), s.name


def test_background_update(pair, origin):
    """proxy_cache_background_update with use_stale updating: the expired entry goes out at once
    (STALE) while a background subrequest fetches the new one, which the next request gets."""
    for s in pair:
        path = "/bg/" + s.name
        origin.script(path, [response(200, "old\n", EXPIRED_NOW)])
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        release = threading.Event()
        origin.script(path, [Wait(release), response(200, "new\n")])
        try:
            r = http_get(s.port, path)  # answered while the origin holds the update
            assert (r.header("X-Cache"), r.body) == ("STALE", b"old\n"), s.name
            wait_for(lambda: asked(origin, path) == 2, what="the update at the origin")
        finally:
            release.set()

        def updated():
            r = http_get(s.port, path)
            return r.header("X-Cache") == "HIT" and r.body == b"new\n"
        wait_for(updated, what="the new entry")
        assert asked(origin, path) == 2


def test_revalidate(pair, origin):
    """An expired entry with validators is asked for with If-Modified-Since and If-None-Match; a
    304 makes it fresh again (REVALIDATED, for as long as the 304 says) and it is sent."""
    for s in pair:
        path = "/reval/" + s.name
        origin.script(path, [response(200, "kept\n", dict(EXPIRED_NOW, **{
            "Last-Modified": LM, "ETag": '"v1"'}))])
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        origin.script(path, [response(304, "", {"Cache-Control": "max-age=600"})])
        r = http_get(s.port, path)
        assert (r.status, r.header("X-Cache"), r.body) == (200, "REVALIDATED", b"kept\n"), s.name
        assert r.header("ETag") == '"v1"'
        _, _, headers, _ = [q for q in origin.requests if q[1] == path][1]
        assert headers.get("if-modified-since") == LM and headers.get("if-none-match") == '"v1"'
        r = http_get(s.port, path)
        assert (r.header("X-Cache"), r.body) == ("HIT", b"kept\n"), s.name
        assert asked(origin, path) == 2
        # A changed resource comes whole and replaces the entry.
        other = "/reval/changed-" + s.name
        origin.script(other, [response(200, "v1\n", dict(EXPIRED_NOW, ETag='"v1"'))])
        assert http_get(s.port, other).header("X-Cache") == "MISS"
        origin.script(other, [response(200, "v2\n", {"ETag": '"v2"'})])
        r = http_get(s.port, other)
        assert (r.header("X-Cache"), r.body) == ("EXPIRED", b"v2\n")
        assert (http_get(s.port, other).header("X-Cache")) == "HIT"


def test_convert_head(pair, origin):
    """A HEAD's MISS is fetched with GET and kept whole (proxy_cache_convert_head on, nginx's
    default); with it off the upstream gets the HEAD and the key must tell them apart."""
    for s in pair:
        path = "/head/" + s.name
        r = http_get(s.port, path, method="HEAD")
        assert (r.status, r.header("X-Cache"), r.body) == (200, "MISS", b""), s.name
        assert [q[0] for q in origin.requests if q[1] == path] == ["GET"]
        r = http_get(s.port, path)
        assert (r.header("X-Cache"), r.body) == ("HIT", b"backend " + path.encode()), s.name
        path = "/nohead/" + s.name
        r = http_get(s.port, path, method="HEAD")
        assert (r.status, r.header("X-Cache")) == (200, "MISS"), s.name
        assert [q[0] for q in origin.requests if q[1] == path] == ["HEAD"]
        assert http_get(s.port, path).header("X-Cache") == "MISS"
        assert http_get(s.port, path, method="HEAD").header("X-Cache") == "HIT"


def test_max_range_offset(pair, origin):
    """A range starting at proxy_cache_max_range_offset or past it goes to the upstream as asked and
    nothing is kept; one before it is asked for whole and kept."""
    for s in pair:
        far = "/range-off/far-" + s.name
        origin.script(far, [response(206, "34", {"Content-Range": "bytes 3-4/10"})])
        r = http_get(s.port, far, headers={"Range": "bytes=3-4"})
        assert (r.status, r.header("X-Cache")) == (206, "MISS"), s.name
        assert [q[2].get("range") for q in origin.requests if q[1] == far] == ["bytes=3-4"]
        near = "/range-off/near-" + s.name
        r = http_get(s.port, near, headers={"Range": "bytes=1-1"})
        assert r.header("X-Cache") == "MISS"
        assert [q[2].get("range") for q in origin.requests if q[1] == near] == [None]
        assert http_get(s.port, near).header("X-Cache") == "HIT", s.name


def test_vary_keeps_a_variant_per_request(pair, origin):
    """A response with Vary is kept for the requests whose named fields have the same values; another
    variant is fetched and kept beside it under a key of its own, and each is sent to its own."""
    for s in pair:
        path = "/vary-" + s.name
        gz = {"Accept-Encoding": "gzip"}
        origin.script(path, [response(200, "gzip variant\n", {"Vary": "Accept-Encoding"})])
        r = http_get(s.port, path, headers=gz)
        assert (r.header("X-Cache"), r.body) == ("MISS", b"gzip variant\n"), s.name
        origin.script(path, [response(200, "plain variant\n", {"Vary": "Accept-Encoding"})])
        r = http_get(s.port, path)
        assert (r.header("X-Cache"), r.body) == ("MISS", b"plain variant\n"), s.name
        for _ in range(2):
            r = http_get(s.port, path, headers=gz)
            assert (r.header("X-Cache"), r.body) == ("HIT", b"gzip variant\n"), s.name
            r = http_get(s.port, path)
            assert (r.header("X-Cache"), r.body) == ("HIT", b"plain variant\n"), s.name
            assert r.header("Vary") == "Accept-Encoding"
        assert asked(origin, path) == 2
        star = "/vary-star-" + s.name
        origin.script(star, [response(200, "any\n", {"Vary": "*"})])
        assert [http_get(s.port, star).header("X-Cache") for _ in range(2)] == ["MISS", "MISS"]


def test_cache_named_by_a_variable(pair, origin):
    for s in pair:
        uri = "/var/%s?zone=one" % s.name
        assert [http_get(s.port, uri).header("X-Cache") for _ in range(2)] == ["MISS", "HIT"], s.name
        for off in ("off", ""):
            r = http_get(s.port, "/var/%s?zone=%s" % (s.name, off))
            assert (r.status, r.header("X-Cache")) == (200, None), s.name
        r = http_get(s.port, "/var/%s?zone=nowhere" % s.name)
        assert r.status == 500, s.name
        wait_for(lambda: 'cache "nowhere" not found' in s.error_log(), what="the log line")


def test_a_reload_keeps_the_entries(pair, origin):
    for s in pair:
        uri = "/a.txt?reload=" + s.name
        assert http_get(s.port, uri).header("X-Cache") == "MISS"
        old = set(s.worker_pids())
        s.send_signal(signal.SIGHUP)
        wait_for(lambda: not (set(s.worker_pids()) & old), what="new workers")
        assert http_get(s.port, uri).header("X-Cache") == "HIT", s.name
        assert asked(origin, uri) == 1


def test_a_damaged_file_is_a_miss(pair, origin):
    # Without open_file_cache: with it, a deleted file is served from its descriptor until
    # open_file_cache_valid, as nginx's.
    s = pair[0]
    uri = "/plain/damaged"
    assert http_get(s.port, uri).header("X-Cache") == "MISS"
    path, _ = cache_file(s, origin, uri)
    wait_for(lambda: os.path.exists(path), what="the cache file")
    with open(path, "r+b") as f:
        f.write(b"garbage!")
    r = http_get(s.port, uri)
    assert (r.status, r.header("X-Cache"), r.body) == (200, "MISS", b"backend " + uri.encode())
    assert 'cache file "%s" version mismatch' % path in s.error_log()
    assert http_get(s.port, uri).header("X-Cache") == "HIT"
    os.unlink(path)  # deleted behind the server's back: fetched again
    assert http_get(s.port, uri).header("X-Cache") == "MISS"
    assert asked(origin, uri) == 3


@pytest.mark.parametrize("conf,message", [
    ("fastcgi_cache_path %%DIR%%/c keys_zone=f:1m; server { listen 127.0.0.1:%%PORT%%; "
     "location / { fastcgi_cache f; fastcgi_pass 127.0.0.1:9; } }",
     'no "fastcgi_cache_key" for "fastcgi_cache"'),
    ("server { listen 127.0.0.1:%%PORT%%; location / { proxy_cache nowhere; "
     "proxy_pass http://127.0.0.1:9; } }",
     '"proxy_cache" zone "nowhere" is unknown'),
    ("proxy_cache_path %%DIR%%/c keys_zone=z:1m; server { listen 127.0.0.1:%%PORT%%; "
     "location / { proxy_cache z; proxy_cache_valid 200 abc; proxy_pass http://127.0.0.1:9; } }",
     'invalid time value "abc"'),
    ("proxy_cache_path %%DIR%%/c keys_zone=z:1m; server { listen 127.0.0.1:%%PORT%%; "
     "location / { proxy_cache z; proxy_cache_valid 999 1m; proxy_pass http://127.0.0.1:9; } }",
     'invalid status "999"'),
    ("proxy_cache_path %%DIR%%/c keys_zone=z:1m; server { listen 127.0.0.1:%%PORT%%; "
     "location / { proxy_cache z; proxy_cache_methods PUT; proxy_pass http://127.0.0.1:9; } }",
     'invalid value "PUT"'),
    ("proxy_cache_path %%DIR%%/c keys_zone=z:1m; proxy_cache_path %%DIR%%/d keys_zone=z:1m;",
     'duplicate zone "z"'),
])
def test_configuration_errors_as_nginx(conf, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        if binary == NGINX and "fastcgi_cache_key" in message:
            # nginx only warns, then keeps every response under one empty key: weir refuses.
            assert rc == 0 and "[warn]" in err and message in err, err
            continue
        assert rc != 0 and message in err, (binary, err)


HELPERS_CONF = r"""
    proxy_cache_path %%DIR%%/cache levels=1:2 keys_zone=one:1m inactive=1s;
    proxy_cache_path %%DIR%%/cache2 levels=1:2 keys_zone=two:1m max_size=40k;
    proxy_temp_path %%DIR%%/proxy_temp;
    add_header X-Cache $upstream_cache_status always;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            proxy_cache one;
            proxy_cache_valid 10m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /lru/ {
            rewrite ^ /big8k break;
            proxy_cache two;
            proxy_cache_key $request_uri;
            proxy_cache_valid 10m;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
    }
"""


@pytest.fixture
def helpers(origin):
    s = Server(HELPERS_CONF.replace("ORIGIN", str(origin.port)))
    for d in ("cache", "cache2"):
        os.makedirs(s.path(d))
        os.chmod(s.path(d), 0o777)
    yield s
    s.stop()
    s.check_clean()
    s.cleanup()


def titles(s):
    out = {}
    for pid in s.worker_pids():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                out[pid] = f.read().replace(b"\0", b" ").decode().strip()
        except FileNotFoundError:
            pass
    return out


def test_the_loader_fills_the_index_after_a_restart(helpers, origin):
    """After a restart the cache loader process puts the files on disk back into the index (nginx's
    notice when it is done); what it does not know is deleted; the manager runs as its own process
    and is respawned when it dies."""
    s = helpers
    # Left in the cache directory by someone else: the loader deletes it, as nginx's.
    junk = s.path("cache/not-a-cache-file")
    with open(junk, "w") as f:
        f.write("junk")
    s.start()
    uri = "/a.txt?loader=1"
    assert http_get(s.port, uri).header("X-Cache") == "MISS"
    wait_for(lambda: not os.path.exists(junk), what="the loader deleting the junk file")
    s.stop()
    s.start()
    wait_for(lambda: s.error_log().count("http file cache: %s " % s.path("cache")) == 2,
             what="the loader's notice")
    assert http_get(s.port, uri).header("X-Cache") == "HIT"
    assert asked(origin, uri) == 1
    names = titles(s)
    managers = [p for p, t in names.items() if t == "weir: cache manager process"]
    assert len(managers) == 1 and "weir: worker process" in names.values(), names
    os.kill(managers[0], signal.SIGKILL)
    wait_for(lambda: "cache manager process %d exited on signal 9" % managers[0] in s.error_log(),
             what="the master seeing the manager die")
    wait_for(lambda: [p for p, t in titles(s).items()
                      if t == "weir: cache manager process" and p != managers[0]],
             what="a new cache manager")
    # An alert is what a dead process leaves; the test made it.
    with open(s.path("logs/error.log"), "r+") as f:
        text = f.read().replace("[alert]", "[was-alert]")
        f.seek(0)
        f.write(text)


def test_the_manager_deletes_inactive_and_over_size_entries(helpers, origin):
    """inactive=1s: an entry not asked for within a second leaves the index and the disk (the
    manager looks at least every 10 s). max_size=40k: the least recently used go first, until the
    files take no more than that on disk."""
    s = helpers
    s.start()
    inactive = []
    for i in range(3):
        uri = "/big8k?n=%d" % i
        assert http_get(s.port, uri).header("X-Cache") == "MISS"
        inactive.append(cache_file(s, origin, uri)[0])
    lru = []
    for i in range(8):  # 8 files of about 12 KiB on disk each
        uri = "/lru/%d" % i
        assert http_get(s.port, uri).header("X-Cache") == "MISS"
        md5 = hashlib.md5(uri.encode()).hexdigest()
        lru.append(s.path("cache2/%s/%s/%s" % (md5[-1], md5[-3:-1], md5)))
    wait_for(lambda: not [p for p in inactive if os.path.exists(p)], timeout=30,
             what="the manager deleting the inactive entries")

    def on_disk():
        return sum(os.stat(p).st_blocks * 512 for p in lru if os.path.exists(p))
    wait_for(lambda: on_disk() <= 40 * 1024, timeout=30, what="the cache within max_size")
    kept = [i for i, p in enumerate(lru) if os.path.exists(p)]
    assert kept and kept == list(range(8 - len(kept), 8)), kept  # the most recent stay
    assert http_get(s.port, "/lru/7").header("X-Cache") == "HIT"
    r0 = http_get(s.port, "/lru/0")
    assert r0.header("X-Cache") == "MISS", (kept, os.path.exists(lru[0]), r0.headers)
    assert http_get(s.port, "/big8k?n=0").header("X-Cache") == "MISS"


@pytest.mark.parametrize("use_temp_path", ["on", "off"])
def test_an_unwritable_cache_directory_leaves_responses_uncached(origin, use_temp_path):
    """A cache directory the workers cannot write to: every response is still answered whole (a
    large one spilling to its temp file as usual), logged, and none is kept."""
    conf = HELPERS_CONF.replace("ORIGIN", str(origin.port)).replace(
        "keys_zone=one:1m inactive=1s;", "keys_zone=one:1m use_temp_path=%s;" % use_temp_path)
    s = Server(conf)
    try:
        s.start()
        os.chmod(s.path("cache"), 0o500)  # the master made it the workers'; now nobody may write
        for _ in range(2):
            for path, body in (("/a.txt?ro=" + use_temp_path, b"hello\n"), ("/big?ro=" + use_temp_path, BIG)):
                r = http_get(s.port, path)
                assert (r.status, r.header("X-Cache"), r.body == body) == (200, "MISS", True), path
        assert "[crit]" in s.error_log()
    finally:
        os.chmod(s.path("cache"), 0o700)
        s.stop()
        s.check_clean()
        s.cleanup()


REAL_CONFIGS = {
    # A caching reverse proxy as blog posts and CDN guides write it.
    "proxy": r"""
    proxy_cache_path %%DIR%%/static levels=1:2 keys_zone=STATIC:10m inactive=24h max_size=1g
                     use_temp_path=off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / {
            proxy_pass http://127.0.0.1:9;
            proxy_set_header Host $host;
            proxy_buffering on;
            proxy_cache STATIC;
            proxy_cache_valid 200 1d;
            proxy_cache_valid any 1m;
            proxy_cache_use_stale error timeout invalid_header updating http_500 http_502 http_503
                                  http_504;
            proxy_cache_lock on;
            proxy_cache_revalidate on;
            proxy_cache_background_update on;
            proxy_cache_min_uses 2;
            proxy_ignore_headers Cache-Control Set-Cookie;
            proxy_hide_header Set-Cookie;
            add_header X-Cache-Status $upstream_cache_status;
        }
    }
""",
    # WordPress with the FastCGI cache, as its guides write it.
    "wordpress": r"""
    fastcgi_cache_path %%DIR%%/wp levels=1:2 keys_zone=WORDPRESS:100m inactive=60m;
    fastcgi_cache_key "$scheme$request_method$host$request_uri";
    fastcgi_cache_use_stale error timeout invalid_header http_500;
    fastcgi_ignore_headers Cache-Control Expires Set-Cookie;
    server {
        listen 127.0.0.1:%%PORT%%;
        set $skip_cache 0;
        if ($request_method = POST) { set $skip_cache 1; }
        if ($query_string != "") { set $skip_cache 1; }
        if ($request_uri ~* "/wp-admin/|/xmlrpc.php|wp-.*.php|/feed/|index.php|sitemap(_index)?.xml") {
            set $skip_cache 1;
        }
        if ($http_cookie ~* "comment_author|wordpress_[a-f0-9]+|wp-postpass|wordpress_no_cache") {
            set $skip_cache 1;
        }
        location ~ \.php$ {
            fastcgi_pass 127.0.0.1:9;
            fastcgi_cache_bypass $skip_cache;
            fastcgi_no_cache $skip_cache;
            fastcgi_cache WORDPRESS;
            fastcgi_cache_valid 200 60m;
            fastcgi_cache_methods GET HEAD;
            add_header X-FastCGI-Cache $upstream_cache_status;
        }
    }
""",
}


@pytest.mark.parametrize("name", sorted(REAL_CONFIGS))
def test_real_cache_configurations_load_as_nginx(name):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, REAL_CONFIGS[name])
        assert rc == 0, (binary, err)


def keepalive_answers(port, path, n):
    """n requests one after another on one keep-alive connection, each answer read by its length
    before the next is sent (a response held back by the server is a timeout here)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        buf, out = b"", []
        for _ in range(n):
            c.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path.encode())
            while b"\r\n\r\n" not in buf:
                buf += c.recv(65536)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(re.search(rb"\r\nContent-Length: (\d+)", head).group(1))
            while len(buf) < length:
                buf += c.recv(65536)
            out.append((head.split(b" ")[1], buf[:length]))
            buf = buf[length:]
        return out


def test_a_small_answer_through_a_kept_upstream_connection_is_not_held_back():
    # Smaller than postpone_output, from an upstream connection kept for the next request: the
    # response's end must push it out (it was once held until the client gave up).
    body = os.urandom(1024)
    origin = Server("server { listen 127.0.0.1:%%PORT%%; }", files={"1k.bin": body}, binary=NGINX)
    origin.start()
    s = Server(("sendfile on; tcp_nopush on;\n"
                "proxy_cache_path %%DIR%%/cache levels=1:2 keys_zone=one:1m;\n"
                "proxy_temp_path %%DIR%%/proxy_temp;\n"
                "upstream origin { server 127.0.0.1:ORIGIN; keepalive 4; }\n"
                "server { listen 127.0.0.1:%%PORT%%;\n"
                "  location / { proxy_pass http://origin; proxy_http_version 1.1;\n"
                "               proxy_set_header Connection \"\"; proxy_cache one; proxy_cache_valid 10m; }\n"
                "  location /plain/ { proxy_pass http://origin/; proxy_http_version 1.1;\n"
                "                     proxy_set_header Connection \"\"; }\n"
                "}").replace("ORIGIN", str(origin.port)))
    try:
        s.start()
        for path in ("/1k.bin", "/plain/1k.bin"):
            assert keepalive_answers(s.port, path, 5) == [(b"200", body)] * 5, path
    finally:
        s.stop()
        origin.stop()
        s.check_clean()
        s.cleanup()
        origin.cleanup()
