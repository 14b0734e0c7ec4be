"""The scripted backend the upstream tests stand on: each misbehaviour does what it says over a real
socket (a whole response with keep-alive, a slow one, chunks, 1xx, garbage, an early close, a reset),
and it records the requests it read, bodies included."""
import socket
import time

from backend import Backend, Close, KeepOpen, Reset, Send, Sleep, chunked, response
from conftest import Client, read_to_end


def test_default_answer_keeps_the_connection():
    with Backend() as b:
        c = Client(b.port)
        for path in ("/a", "/b"):
            c.send("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            r = c.response()
            assert r.status == 200 and r.body == b"backend " + path.encode()
        c.close()
        assert [r[1] for r in b.requests] == ["/a", "/b"] and b.connections == 1


def test_scripted_misbehaviour():
    with Backend() as b:
        b.script("/slow", [Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"), Sleep(0.5), Send("ok")])
        b.script("/chunked", chunked(["ab", "cde"]))
        b.script("/1xx", [Send("HTTP/1.1 100 Continue\r\n\r\n"), response(201, "made", reason="Created")])
        b.script("/garbage", [Send("NOT HTTP AT ALL\r\n\r\n")])
        b.script("/early", [Send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), Close()])
        b.script("/reset", [Send("HTTP/1.1 200 OK\r\n"), Reset()])

        def get(path):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            return read_to_end(s)

        start = time.monotonic()
        assert get("/slow").endswith(b"\r\n\r\nok") and time.monotonic() - start >= 0.45
        assert b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n" in get("/chunked")
        out = get("/1xx")
        assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created") and out.endswith(b"made")
        assert get("/garbage") == b"NOT HTTP AT ALL\r\n\r\n"
        assert get("/early").endswith(b"abc")
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        s.sendall(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")
        got, reset = b"", False
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            reset = True
        s.close()
        assert reset and got in (b"", b"HTTP/1.1 200 OK\r\n")


def test_records_request_bodies():
    with Backend() as b:
        b.script("/post", [response(200, "thanks"), KeepOpen()])
        c = Client(b.port)
        c.send("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert c.response().body == b"thanks"
        c.send("POST /post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        assert c.response().status == 200
        c.close()
        assert [r[3] for r in b.requests] == [b"hello", b"abc"]
        assert b.requests[1][2]["transfer-encoding"] == "chunked"
