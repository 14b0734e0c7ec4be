"""proxy_pass_trailers (nginx 1.27's): a chunked response's trailer section goes on to an HTTP/1.1
client after the body, buffered or not, less the hidden fields (proxy_hide_header) and the framing
and hop-by-hop ones; the Trailer field that announces it passes too. Off (the default, and nginx
1.22's only behaviour) drops both. A trailer section larger than proxy_buffer_size ends the response
badly with nginx's log line; an HTTP/1.0 client gets the body alone. Debian's nginx 1.22 has no such
directive, so the answers are checked against the trailer the backend sent."""
from backend import Backend, KeepOpen, Send, Sleep
from conftest import dechunk, raw, wait_for

CONF = """
    upstream ka { server 127.0.0.1:%d; keepalive 4; }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             proxy_http_version 1.1; proxy_set_header Connection "";
             proxy_hide_header X-Secret;
             location / { proxy_pass http://ka; proxy_pass_trailers on; proxy_buffer_size 1k; }
             location /nb/ { proxy_pass http://ka; proxy_pass_trailers on; proxy_buffering off; }
             location /off/ { proxy_pass http://ka; } }
"""

TRAILER = ("X-Checksum: 5d41402abc4b2a76\r\nX-Secret: hidden\r\nContent-Length: 99\r\n"
           "Transfer-Encoding: gzip\r\nX-Timing: db;dur=53\r\n")


def chunked_with_trailer(trailer, keep_open=False, split=False):
    head = Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Timing\r\n\r\n")
    body = [Send("5\r\nhello\r\n"), Send("6\r\n world\r\n")]
    if split:
        # The last chunk and each line of the trailer in its own read.
        tail = [Send("0\r\n")] + [x for line in trailer.split("\r\n")[:-1]
                                  for x in (Sleep(0.02), Send(line + "\r\n"))] + [Sleep(0.02), Send("\r\n")]
    else:
        tail = [Send("0\r\n" + trailer + "\r\n")]
    return [head] + body + tail + ([KeepOpen()] if keep_open else [])


def get(port, path, version="1.1"):
    return raw(port, "GET %s HTTP/%s\r\nHost: x\r\nConnection: close\r\n\r\n" % (path, version))


def test_trailers_pass_buffered_and_not(make_server):
    with Backend() as b:
        for path in ("/t", "/nb/t", "/split", "/nb/split", "/off/t"):
            b.script(path, chunked_with_trailer(TRAILER, split="split" in path))
        s = make_server(CONF % b.port)
        for path in ("/t", "/nb/t", "/split", "/nb/split"):
            head, _, body = get(s.port, path).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), (path, head)
            assert b"\r\nTransfer-Encoding: chunked" in head
            assert b"\r\nTrailer: X-Checksum, X-Timing" in head, (path, head)
            data, trailer = dechunk(body, trailer=True)
            assert data == b"hello world", path
            # Hidden and framing fields never reach the client; the others keep their order.
            assert trailer == [b"X-Checksum: 5d41402abc4b2a76", b"X-Timing: db;dur=53"], (path, trailer)

        # Off: neither the trailer nor the field announcing it.
        head, _, body = get(s.port, "/off/t").partition(b"\r\n\r\n")
        assert b"Trailer:" not in head
        assert dechunk(body, trailer=True) == (b"hello world", [])

        # HTTP/1.0: no chunked coding, so no trailer; the body is whole up to the close.
        head, _, body = get(s.port, "/t", version="1.0").partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"hello world"


def test_connection_is_reused_after_a_trailer(make_server):
    """The trailer is part of the message: after it the upstream connection is at a request
    boundary and goes back to the keepalive cache."""
    with Backend() as b:
        b.script("/t", chunked_with_trailer(TRAILER, keep_open=True))
        s = make_server(CONF % b.port)
        for _ in range(3):
            assert dechunk(get(s.port, "/t").partition(b"\r\n\r\n")[2], trailer=True)[1][0].startswith(b"X-Checksum")
        assert b.connections == 1


def test_too_big_trailer_ends_the_response_badly(make_server):
    """A trailer section over proxy_buffer_size (1k here): the client's response ends without its
    last chunk, and the log says so in nginx's words."""
    big = "".join("X-Big-%d: %s\r\n" % (i, "v" * 60) for i in range(40))
    with Backend() as b:
        b.script("/big", chunked_with_trailer(big))
        b.script("/bad", chunked_with_trailer("no colon here\r\n"))
        s = make_server(CONF % b.port)
        for path, line in (("/big", "upstream sent too big trailers"),
                           ("/bad", "upstream sent invalid trailer")):
            head, _, body = get(s.port, path).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"hello" in body and not body.endswith(b"0\r\n\r\n"), (path, body[-40:])
            wait_for(lambda: line in open(s.path("logs/error.log")).read(), what=line)
