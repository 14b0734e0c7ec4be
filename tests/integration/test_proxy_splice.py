"""The splice relay (#23): a body that no filter needs to see goes from the upstream's socket to the
client's through a kernel pipe - with proxy_buffering off always, with it on while the client keeps
up (when it falls behind, the event pipe reads on into its buffers and the temp file, after what the
kernel pipe holds). What the client gets, what the logs count,
when the upstream connection is reused, and how each end of the relay ends are as nginx's (nginx
copies the body through proxy_buffer_size); the pipe is seen among the worker's descriptors while
it works, kept empty for the next relay, and closed when a client leaves it holding bytes."""
import gzip
import hashlib
import os
import re
import socket
import threading

import pytest

from backend import Backend, Close, KeepOpen, Send, Wait
from conftest import NGINX, dechunk, read_to_end, wait_for

BODY = os.urandom(4 << 20)
DIGEST = hashlib.sha256(BODY).hexdigest()

# Debian's nginx as the origin, over a keep-alive upstream.
ORIGIN = """
    log_format conn '$request_uri $connection $connection_requests';
    access_log %%DIR%%/logs/origin.log conn;
    server { listen 127.0.0.1:%%PORT%%; root %%DIR%%/html; }
"""

# A small send buffer, so that a client that stops reading stops the relay (the kernel would
# otherwise take megabytes on its behalf).
FRONT = """
    log_format counts '$uri $status $body_bytes_sent $upstream_response_length';
    access_log %%%%DIR%%%%/logs/counts.log counts;
    upstream origin { server 127.0.0.1:%d; keepalive 4; }
    server {
        listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        location / { proxy_pass http://origin; }
        location /gz/ { gzip on; gzip_types text/plain; proxy_pass http://origin/; }
        location /py/ { proxy_pass http://127.0.0.1:%d/; proxy_read_timeout 2s; }
        location /b/ { proxy_buffering on; proxy_pass http://origin/; }
        location /b0/ { proxy_buffering on; proxy_max_temp_file_size 0; proxy_pass http://origin/; }
        location /r/ { proxy_force_ranges on; proxy_pass http://origin/; }
        location /br/ { proxy_buffering on; proxy_force_ranges on; proxy_pass http://origin/; }
        location /b/slow/ { proxy_buffering on; limit_rate 1m; proxy_pass http://origin/; }
    }
"""


def pipe_fds(s):
    """Pipe descriptors the workers hold."""
    n = 0
    for pid in s.worker_pids():
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:")
            except OSError:
                pass
    return n


def pipes_full(s):
    """Whether every pipe the workers hold is full (the relay stalled on its client): each pipe is
    opened again through /proc and asked how much it holds and how much it takes."""
    import fcntl
    import struct
    import termios
    pipes = {}
    for pid in s.worker_pids():
        for fd in os.listdir("/proc/%d/fd" % pid):
            path = "/proc/%d/fd/%s" % (pid, fd)
            try:
                target = os.readlink(path)
            except OSError:
                continue
            if target.startswith("pipe:") and target not in pipes:
                pipes[target] = path
    if not pipes:
        return False
    for path in pipes.values():
        p = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            held = struct.unpack("i", fcntl.ioctl(p, termios.FIONREAD, b"\0\0\0\0"))[0]
            size = fcntl.fcntl(p, 1032)  # F_GETPIPE_SZ
        finally:
            os.close(p)
        if held != size:
            return False
    return True


def body_of(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def keepalive_body(c):
    """One response's body on a kept-alive connection (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
                 .split(b":")[1])
    while len(body) < length:
        body += c.recv(65536)
    assert len(body) == length
    return body


def request(port, path, version="1.1", rcvbuf=0, headers=""):
    c = socket.socket()
    c.settimeout(20)
    if rcvbuf:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.connect(("127.0.0.1", port))
    extra = headers + ("Host: t\r\nConnection: close\r\n" if version == "1.1" else "")
    c.sendall(("GET %s HTTP/%s\r\n%s\r\n" % (path, version, extra)).encode())
    return c


@pytest.fixture
def origin(make_server):
    return make_server(ORIGIN, binary=NGINX, files={"4m.bin": BODY, "small.txt": b"small\n"})


def front(make_server, origin, py_port=9, binary=None):
    return make_server(FRONT % (origin.port, py_port), binary=binary)


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
@pytest.mark.parametrize("prefix", ["", "/b"], ids=["non-buffered", "buffered"])
def test_bodies_whole_counted_and_the_upstream_reused(make_server, origin, binary, prefix):
    s = front(make_server, origin, binary=binary)
    for _ in range(3):
        head, body = body_of(read_to_end(request(s.port, prefix + "/4m.bin")))
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 4194304" in head
        assert hashlib.sha256(body).hexdigest() == DIGEST
    wait_for(lambda: len(s.access_log("logs/counts.log").splitlines()) == 3, what="three log lines")
    assert s.access_log("logs/counts.log").splitlines() == [prefix + "/4m.bin 200 4194304 4194304"] * 3
    if binary is None:
        assert pipe_fds(s) == 2
    # One upstream connection carried all three.
    wait_for(lambda: len(origin.access_log("logs/origin.log").splitlines()) == 3, what="three lines")
    lines = origin.access_log("logs/origin.log").splitlines()
    assert [l.split()[2] for l in lines] == ["1", "2", "3"], lines
    s.check_clean()


def test_the_pipe_works_then_waits_empty_and_is_closed_with_bytes_in_it(make_server, origin):
    s = front(make_server, origin)
    assert pipe_fds(s) == 0
    # A client that reads 64 KiB and stops: the relay waits on it with the pipe full.
    c = request(s.port, "/4m.bin", rcvbuf=8192)
    got = b""
    while len(got) < 65536:
        got += c.recv(65536)
    wait_for(lambda: pipe_fds(s) == 2, what="the kernel pipe open in the worker")
    wait_for(lambda: pipes_full(s), what="the pipe full, waiting on the client")
    # It goes away: the pipe held bytes, so it is closed, and the upstream connection too.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    wait_for(lambda: pipe_fds(s) == 0, what="the pipe closed with the bytes it held")
    # A whole response leaves its pipe empty, kept for the next one: two answers on one keep-alive
    # connection (so the first is over before the second begins) use the same pipe.
    k = socket.create_connection(("127.0.0.1", s.port), timeout=20)
    for _ in range(2):
        k.sendall(b"GET /4m.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        assert hashlib.sha256(keepalive_body(k)).hexdigest() == DIGEST
        assert pipe_fds(s) == 2
    k.close()
    wait_for(lambda: len(s.access_log("logs/counts.log").splitlines()) == 3, what="three log lines")
    assert s.access_log("logs/counts.log").splitlines()[0].startswith("/4m.bin 200 ")
    assert not s.access_log("logs/counts.log").splitlines()[0].endswith(" 4194304 4194304")
    # The aborted exchange did not leave its half-read connection cached: the third request came
    # on a new connection or on the second's, never on the first's.
    wait_for(lambda: len(origin.access_log("logs/origin.log").splitlines()) == 3, what="three lines")
    lines = origin.access_log("logs/origin.log").splitlines()
    assert lines[0].split()[1] not in (lines[1].split()[1], lines[2].split()[1]), lines
    s.check_clean()


def test_a_body_a_filter_changes_is_not_spliced(make_server, origin):
    """gzip must see the body: the buffer relay carries it."""
    s = front(make_server, origin)
    head, body = body_of(read_to_end(request(s.port, "/gz/4m.bin", headers="Accept-Encoding: gzip\r\n")))
    assert b"Content-Encoding: gzip" in head
    assert hashlib.sha256(gzip.decompress(dechunk(body))).hexdigest() == DIGEST
    assert pipe_fds(s) == 0
    # A small answer that came whole with its header has nothing left to splice.
    _, body = body_of(read_to_end(request(s.port, "/small.txt")))
    assert body == b"small\n"
    assert pipe_fds(s) == 0
    _, body = body_of(read_to_end(request(s.port, "/4m.bin")))
    assert hashlib.sha256(body).hexdigest() == DIGEST
    assert pipe_fds(s) == 2


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
def test_upstream_ends_early_or_sends_too_much(make_server, origin, binary):
    gate = threading.Event()
    with Backend() as b:
        part = b"p" * 100000
        b.script("/early", [Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + part),
                            Wait(gate), Close()])
        b.script("/extra", [Send(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 10010),
                            KeepOpen()])
        b.script("/after", [Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter"), KeepOpen()])
        s = front(make_server, origin, py_port=b.port, binary=binary)
        c = request(s.port, "/py/early")
        got = b""
        while len(got) < 100000:
            got += c.recv(65536)
        gate.set()
        got += read_to_end(c)
        head, body = body_of(got)
        assert body == part  # cut short, the connection closed
        # nginx's line; its action says which event found the close: the upstream's read, or the
        # client's write event, which reads on after writing (timing decides, for nginx too).
        wait_for(lambda: re.search(r"upstream prematurely closed connection while "
                                   r"(reading upstream|sending to client)", s.error_log()),
                 what="nginx's line for the early close")
        # 10 bytes past Content-Length: nginx's warning, and the connection is not reused.
        _, body = body_of(read_to_end(request(s.port, "/py/extra")))
        assert body == b"x" * 10000
        wait_for(lambda: 'upstream sent more data than specified in "Content-Length" header'
                 in s.error_log(), what="the warning for the extra bytes")
        before = b.connections
        _, body = body_of(read_to_end(request(s.port, "/py/after")))
        assert body == b"after"
        assert b.connections == before + 1


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
def test_close_delimited_body_and_read_timeout(make_server, origin, binary):
    gate = threading.Event()
    with Backend() as b:
        b.script("/close", [Send(b"HTTP/1.0 200 OK\r\n\r\n" + b"c" * 300000), Close()])
        b.script("/stall", [Send(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"s" * 1000),
                            Wait(gate)])
        s = front(make_server, origin, py_port=b.port, binary=binary)
        # An HTTP/1.0 client gets the body as it is, up to the upstream's close.
        head, body = body_of(read_to_end(request(s.port, "/py/close", version="1.0")))
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"c" * 300000
        # An upstream that stalls mid-body: proxy_read_timeout ends the response, nginx's line.
        head, body = body_of(read_to_end(request(s.port, "/py/stall")))
        gate.set()
        assert body == b"s" * 1000
        wait_for(lambda: "upstream timed out (110: Connection timed out) while reading upstream"
                 in s.error_log(), what="the timeout line")
        wait_for(lambda: "/py/stall 200 1000 1000" in s.access_log("logs/counts.log"),
                 what="the stalled response's log line")


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
def test_buffered_and_the_client_falls_behind(make_server, origin, binary):
    """A client that stops reading: the upstream is still read to its end (the origin logs the
    request done while the client waits) into the buffers and the temp file; then the client gets
    every byte in order - what the kernel pipe held first."""
    s = front(make_server, origin, binary=binary)
    c = request(s.port, "/b/4m.bin", rcvbuf=8192)
    got = b""
    while len(got) < 16384:
        got += c.recv(16384)
    wait_for(lambda: "/4m.bin" in origin.access_log("logs/origin.log"), what="the upstream done")
    got += read_to_end(c)
    head, body = body_of(got)
    assert hashlib.sha256(body).hexdigest() == DIGEST
    wait_for(lambda: "/b/4m.bin 200 4194304 4194304" in s.access_log("logs/counts.log"),
             what="the log line")
    s.check_clean()


def test_buffered_with_limit_rate_is_not_spliced(make_server, origin):
    """limit_rate needs the write filter: the event pipe carries the body, paced."""
    s = front(make_server, origin)
    c = request(s.port, "/b/slow/4m.bin")
    c.settimeout(30)
    _, body = body_of(read_to_end(c))
    assert hashlib.sha256(body).hexdigest() == DIGEST
    assert pipe_fds(s) == 0
    s.check_clean()


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
def test_ranges_the_range_filter_cuts_are_not_spliced(make_server, origin, binary):
    """proxy_force_ranges: the range filter cuts the body, so it goes through the filters."""
    s = front(make_server, origin, binary=binary)
    for prefix in ("/r", "/br"):
        for first in (100, 3000000):
            head, body = body_of(read_to_end(request(
                s.port, prefix + "/4m.bin", headers="Range: bytes=%d-%d\r\n" % (first, first + 99))))
            assert head.startswith(b"HTTP/1.1 206 "), head
            assert body == BODY[first:first + 100]
    if binary is None:
        assert pipe_fds(s) == 0



def open_fds(s):
    return sum(len(os.listdir("/proc/%d/fd" % pid)) for pid in s.worker_pids())


@pytest.mark.parametrize("prefix", ["", "/b0"], ids=["non-buffered", "buffered"])
@pytest.mark.parametrize("free", [2, 3, 4], ids=["socket-last", "no-pipe", "pipe-last"])
def test_with_descriptors_short_the_buffers_carry_the_body(make_server, origin, free, prefix):
    """The descriptor limit near: the kernel pipe cannot be opened (or takes the last two), and the
    body goes through the buffers instead (or is spliced), whole, the upstream connection kept.
    Buffered, without a temp file (which would need a descriptor)."""
    s = make_server(FRONT % (origin.port, 9), main_conf="worker_rlimit_nofile 64; worker_processes 1;",
                    start=False)
    # UBSan cannot probe a vtable with no descriptor left (see Server.check_clean): its reports then
    # go on and are sifted; ASan's checks need no descriptor and stay fatal.
    s.descriptors_exhausted = True
    s.extra_env = {"UBSAN_OPTIONS": "halt_on_error=0"}
    s.start()
    idle = []
    try:
        # The client's socket and the upstream's come on top of these.
        while open_fds(s) < 64 - free:
            n = open_fds(s)
            idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=20))
            wait_for(lambda: open_fds(s) > n, what="an idle connection accepted")
        assert open_fds(s) == 64 - free
        head, body = body_of(read_to_end(request(s.port, prefix + "/4m.bin", version="1.0")))
        assert head.startswith(b"HTTP/1.1 200 "), head[:300]
        assert len(body) == len(BODY) and hashlib.sha256(body).hexdigest() == DIGEST
        wait_for(lambda: s.access_log("logs/counts.log"), what="the log line")
        assert s.access_log("logs/counts.log").splitlines() == [prefix + "/4m.bin 200 4194304 4194304"]
        # Spliced only when the pipe could be made (kept empty for the next relay).
        assert pipe_fds(s) == (2 if free == 4 else 0)
    finally:
        for c in idle:
            c.close()
    # The upstream connection was kept: the next request comes on it.
    head, body = body_of(read_to_end(request(s.port, "/small.txt")))
    assert body == b"small\n"
    # (the origin writes its log line after its answer)
    wait_for(lambda: len(origin.access_log("logs/origin.log").splitlines()) == 2, what="two lines")
    lines = origin.access_log("logs/origin.log").splitlines()
    assert [l.split()[2] for l in lines] == ["1", "2"], lines
    s.check_clean()
