"""The proxy's memory bounds (#23): 1 GiB from a fast upstream (Debian's nginx serving a file) to a
client that reads slower, through `proxy_buffers 8 4k` and no temp file, grows the worker's memory by
under 1 MiB and arrives whole and in order; 1000 proxied requests in flight at once cost each at
most the per-request budget the README states."""
import os
import socket
import threading

from backend import Backend, Wait, response
from conftest import NGINX, SANITIZED, Server, http_get, wait_for

GIB = 1 << 30
MARK_EVERY = 64 << 20


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def make_big_file(path):
    """1 GiB, sparse, with a numbered mark every 64 MiB: the order of the bytes is checked as they
    pass, without a second gigabyte to compare against."""
    with open(path, "wb") as f:
        f.truncate(GIB)
        for off in range(0, GIB, MARK_EVERY):
            f.seek(off)
            f.write(b"MARK%012d" % off)


def test_a_gibibyte_through_small_buffers_in_bounded_memory(make_server):
    origin = Server(r"""
        server { listen 127.0.0.1:%%PORT%%; location / { } }
    """, binary=NGINX)
    try:
        make_big_file(origin.path("html/big"))
        with open(origin.path("html/small"), "w") as f:
            f.write("small\n")
        for name in ("big", "small"):
            os.chmod(origin.path("html/" + name), 0o644)
        origin.start()
        s = make_server(r"""
            server {
                listen 127.0.0.1:%%%%PORT%%%%;
                location / {
                    proxy_pass http://127.0.0.1:%d;
                    proxy_buffers 8 4k;
                    proxy_buffer_size 4k;
                    proxy_busy_buffers_size 8k;
                    proxy_max_temp_file_size 0;
                }
            }
        """ % origin.port, main_conf="worker_processes 1;")
        wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")  # forked after the listen
        (pid,) = s.worker_pids()
        assert http_get(s.port, "/small").status == 200  # a warm-up: the pools are made
        before = status_kib(pid, "VmRSS")
        c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            assert d, data
            data += d
        head, _, first = data.partition(b"\r\n\r\n")
        got = 0
        tail = b""  # the last bytes seen, for a mark cut between two reads
        seen_marks = 0
        d = first
        while d:
            chunk = tail + d
            base = got - len(tail)
            k = chunk.find(b"MARK")
            while k >= 0 and k + 16 <= len(chunk):
                off = base + k
                assert off % MARK_EVERY == 0 and chunk[k:k + 16] == b"MARK%012d" % off, (off, chunk[k:k + 16])
                seen_marks += 1  # complete only now: the tail is too short to hold a whole one
                k = chunk.find(b"MARK", k + 1)
            got += len(d)
            tail = chunk[-15:]
            d = c.recv(1 << 16)
        c.close()
        grown = status_kib(pid, "VmHWM") - before
        assert b"Content-Length: %d" % GIB in head, head
        assert got == GIB
        assert seen_marks == GIB // MARK_EVERY, seen_marks
        # The sanitizer's own bookkeeping (quarantine, shadow) is not the relay's.
        assert grown < (16 << 10 if SANITIZED else 1 << 10), "grew by %d KiB" % grown
    finally:
        origin.stop()
        origin.cleanup()


# What one proxied request in flight may cost the worker (README, Performance).
BUDGET_KIB_PER_REQUEST = 16


def test_a_thousand_proxied_requests_in_flight_within_the_budget(make_server, enough_fds):
    n = 1000
    release = threading.Event()
    with Backend() as b:
        b.script("/held", [Wait(release), response(200, "x" * 1024)])
        s = make_server(r"""
            upstream origin { server 127.0.0.1:%d; keepalive 32; }
            server {
                listen 127.0.0.1:%%%%PORT%%%% backlog=2048;
                location / { proxy_pass http://origin; proxy_http_version 1.1;
                             proxy_set_header Connection ""; }
            }
        """ % b.port, main_conf="worker_processes 1;\nworker_rlimit_nofile 8192;",
            events="worker_connections 4096;")
        wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")  # forked after the listen
        (pid,) = s.worker_pids()
        warm = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        warm.sendall(b"GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while warm.recv(65536):
            pass
        warm.close()
        before = status_kib(pid, "VmRSS")
        clients = []
        try:
            for _ in range(n):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
                c.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
                clients.append(c)
            # Every request has reached the origin and waits there: all are in flight.
            wait_for(lambda: sum(1 for r in b.requests if r[1] == "/held") >= n, timeout=120,
                     what="every request at the origin")
            in_flight = status_kib(pid, "VmRSS") - before
            release.set()
            for c in clients:
                data = b""
                while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 1024:
                    d = c.recv(65536)
                    assert d, data
                    data += d
                assert data.startswith(b"HTTP/1.1 200"), data[:100]
        finally:
            release.set()
            for c in clients:
                c.close()
        per_request = in_flight / n
        budget = BUDGET_KIB_PER_REQUEST * (4 if SANITIZED else 1)
        assert per_request <= budget, "%.1f KiB per request in flight" % per_request
