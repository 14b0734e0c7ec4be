"""One client's request must never reach another client's upstream exchange (#16 defects 1 and 2).

An upstream may answer before it has read the request body (an early 413, a static file asked with a
body, a full-duplex download). Then the connection's request side is not at a request boundary: it
must not go back to the keepalive cache, or the next client's request becomes the rest of the old
body (a cross-client desync, and request smuggling past the front's own locations). And once the
response header has gone to the client, the request side is over: no more body is sent, the header
is never read again, and the request is never retried on another peer."""
import socket
import time

import pytest

from backend import Backend, KeepOpen, Send, Sleep, response
from conftest import NGINX, WEIR, Client, http_get, parse_one, read_to_end, wait_for

BIG = 16 * 1024 * 1024


def keepalive_conf(port, extra=""):
    return """
    log_format up '$request_method $uri $status "$upstream_addr" "$upstream_status"';
    access_log %%%%DIR%%%%/logs/up.log up;
    client_max_body_size 64m;
    upstream ka { server 127.0.0.1:%d; keepalive 4; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             proxy_http_version 1.1;
             proxy_set_header Connection "";
             proxy_read_timeout 5s;
             %s
             location / { proxy_pass http://ka; } }
    """ % (port, extra)


def send_head(port, head):
    """A client that sends a request header announcing a body it then withholds; returns the socket."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(head.encode("latin-1"))
    return c


def assert_second_client_served(s, b):
    r = http_get(s.port, "/second", headers={"Cookie": "victim=1"})
    assert r.status == 200 and r.body == b"backend /second", r
    seen = [(m, t) for m, t, _, _ in b.requests]
    assert ("GET", "/second") in seen, seen
    for _, _, _, body in b.requests:
        assert body is None or b"victim=1" not in body  # never inside another request's body


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_early_answer_to_a_buffered_body_is_not_reused(make_server, framing):
    """The issue's reproduction A: the upstream answers a 16 MiB upload at once with 413 and then
    reads the body; the next client must get a new connection, not the rest of that body."""
    with Backend(rcvbuf=65536) as b:
        b.script("/early", [response(413, ""), KeepOpen()], early=True)
        s = make_server(keepalive_conf(b.port))
        c = Client(s.port, timeout=30)
        if framing == "length":
            c.send("POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG)
            c.send(b"u" * BIG)
        else:
            c.send("POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(16):
                c.send(b"100000\r\n" + b"u" * 0x100000 + b"\r\n")
            c.send(b"0\r\n\r\n")
        assert c.response().status == 413
        assert_second_client_served(s, b)
        c.close()


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_early_answer_to_a_streamed_body_is_not_reused(make_server, framing):
    """proxy_request_buffering off: the client announces a body and sends only part of it; the
    upstream answers at once. The client's connection and the upstream's both end there."""
    with Backend() as b:
        b.script("/early", [response(200, "early"), KeepOpen()], early=True)
        s = make_server(keepalive_conf(b.port, "proxy_request_buffering off;"))
        if framing == "length":
            a = send_head(s.port, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 41\r\n\r\n")
        else:
            a = send_head(s.port, "POST /early HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        resp, _ = parse_one(read_to_end(a))  # answered, then closed: the body never came
        assert resp.status == 200 and resp.body == b"early"
        assert_second_client_served(s, b)


def front_conf(port):
    return """
    upstream w { server 127.0.0.1:%d; keepalive 2; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             location / { proxy_pass http://w; proxy_http_version 1.1;
                          proxy_set_header Host w;
                          proxy_set_header Connection "";
                          proxy_request_buffering off; }
             location /SMUGGLED { return 403; } }
    """ % port


BACK = """
    log_format paths '$request_method $uri $status';
    access_log %%DIR%%/logs/paths.log paths;
    server { listen 127.0.0.1:%%PORT%%;
             location / { }
             location /SMUGGLED { return 403; } }
"""


@pytest.mark.parametrize("back_binary", [NGINX, WEIR], ids=["nginx", "weir"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_no_smuggling_through_a_streamed_body(make_server, back_binary, framing):
    """The issue's smuggling reproduction: client A announces a body it never sends and the back end
    answers at once; client C's request must reach the back end as C's request, not complete A's
    body and leave its X-Pad value to be parsed as a request the front refuses."""
    back = make_server(BACK, files={"index.html": "index\n", "sub/a.txt": "a\n"}, binary=back_binary)
    front = make_server(front_conf(back.port))
    if framing == "length":
        a = send_head(front.port, "GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 41\r\n\r\n")
    else:
        a = send_head(front.port, "GET /index.html HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n")
    head = b""
    while b"index\n" not in head:
        chunk = a.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 ")
    # "GET /sub/a.txt HTTP/1.1\r\nHost: w\r\nX-Pad: " is 41 bytes: what follows is a request.
    r = http_get(front.port, "/sub/a.txt",
                 headers={"X-Pad": "GET /SMUGGLED-by-C HTTP/1.0", "H": "x"})
    assert r.status == 200 and r.body == b"a\n", r
    a.close()
    wait_for(lambda: "/sub/a.txt" in open(back.path("logs/paths.log")).read(),
             what="the back end's log line")
    paths = open(back.path("logs/paths.log")).read()
    assert "SMUGGLED" not in paths, paths


def test_response_relayed_while_the_body_still_goes_is_never_retried(make_server):
    """The issue's reproduction B: a full-duplex upstream answers a PUT at once with half of its body
    while still reading the upload, and sends the rest later. The whole response reaches the slow
    client, the PUT goes out once, and no peer is marked failed."""
    half = b"h" * (256 * 1024)
    head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * len(half))
    with Backend(rcvbuf=65536) as b:
        b.script("/dl", [Send(head.encode() + half), Sleep(1.5), Send(half), KeepOpen()], early=True)
        s = make_server("""
        client_max_body_size 64m;
        upstream two { server 127.0.0.1:%d; server 127.0.0.1:%d; }
        server { listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
                 location / { proxy_pass http://two; proxy_buffering off;
                              proxy_send_timeout 1s; } }
        """ % (b.port, b.port))
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(30)
        c.connect(("127.0.0.1", s.port))
        body = 8 * 1024 * 1024
        c.sendall(b"PUT /dl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % body + b"p" * body)
        time.sleep(2)  # a slow reader: longer than proxy_send_timeout, past the upstream's pause
        resp, _ = parse_one(read_to_end(c))
        assert resp.status == 200 and resp.body == 2 * half, len(resp.body)
        wait_for(lambda: len(b.requests) == 1, what="the upstream's record of the PUT")
        time.sleep(0.5)
        assert [m for m, _, _, _ in b.requests] == ["PUT"]  # sent once, to one peer
        log = s.error_log()
        assert "prematurely" not in log and "temporarily disabled" not in log, log
        assert "timed out" not in log, log


RETRY_LOG = """
    log_format up '$request_method $uri $status "$upstream_status"';
    access_log %%%%DIR%%%%/logs/up.log up;
    upstream %s { %s keepalive 4; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             proxy_http_version 1.1;
             proxy_set_header Connection "";
             location / { proxy_pass http://%s; }
             location /post-ok/ { proxy_pass http://%s; proxy_next_upstream error non_idempotent; } }
"""


# Debian's nginx answers the same with one server; with two it runs out of tries when both
# peers' cached connections fail (502), where weir retries afresh.
@pytest.mark.parametrize("servers,binary", [(1, WEIR), (2, WEIR), (1, NGINX)],
                         ids=["one-weir", "two-weir", "one-nginx"])
@pytest.mark.parametrize("drop", ["close", "reset"])
def test_a_reused_connection_the_upstream_dropped_is_retried_afresh(make_server, drop, servers,
                                                                    binary):
    """#25: an upstream closes idle keep-alive connections on its own timer, so a reused connection
    may be gone as the request crosses the close. The backend here drops every request that is not
    the first on its connection, so every reuse meets that race: each GET is answered 200 through a
    new connection to the same peer, with one server or two, and no peer is marked failed; a POST is
    not sent twice unless proxy_next_upstream non_idempotent."""
    with Backend(drop_reused=drop) as b:
        group = "u%d" % servers
        lines = "server 127.0.0.1:%d;" % b.port * servers
        s = make_server(RETRY_LOG % (group, lines, group, group), binary=binary)
        statuses = [http_get(s.port, "/g%d" % i).status for i in range(12)]
        assert statuses == [200] * 12
        assert b.dropped >= 5  # the race was met, again and again
        assert "temporarily disabled" not in s.error_log()
        assert "no live upstreams" not in s.error_log()
        posts = [http_get(s.port, "/p%d" % i, method="POST", body=b"x").status for i in range(6)]
        assert 502 in posts  # a reused connection dropped a POST: not repeated
        for i in range(6):
            assert http_get(s.port, "/post-ok/p%d" % i, method="POST", body=b"x").status == 200


def test_steady_requests_to_an_upstream_with_a_short_idle_timer(make_server):
    """#25 as users meet it: the upstream closes connections idle for 100 ms and requests come
    90-110 ms apart, so some reuse a connection just as it closes. Every GET is answered 200."""
    with Backend(idle_close=0.1) as b:
        s = make_server(RETRY_LOG % ("u", "server 127.0.0.1:%d;" % b.port, "u", "u"))
        statuses = []
        for i in range(60):
            statuses.append(http_get(s.port, "/s%d" % i).status)
            time.sleep(0.09 + 0.02 * (i % 3) / 2)
        assert statuses == [200] * 60
        assert b.connections > 1  # the upstream did close idle connections
