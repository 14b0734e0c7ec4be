"""Capacity under attack: new connections spread over the workers (idle, under wrk, after a reload), and a
slowloris that outnumbers worker_connections does not lock out other clients, because connections still
sending their request header give way to new ones, oldest first. Bounded in count and time, 127.0.0.1 only."""
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import read_to_end, wait_for

# How the kernel spreads connections over the workers depends on both having CPU: these run alone.
pytestmark = [pytest.mark.serial, pytest.mark.usefixtures("enough_fds")]

CONF = """
    access_log %%DIR%%/logs/pid.log pidlog;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
    }
"""
MAIN = "worker_processes 2;"
EVENTS = "worker_connections 768;"
LOG_FORMAT = "log_format pidlog '$pid $connection';\n"


def workers(s):
    return s.worker_pids()


def socket_count(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def start(make_server, events=EVENTS):
    s = make_server(LOG_FORMAT + CONF, main_conf=MAIN, events=events, files={"index.html": "index\n"})
    wait_for(lambda: len(workers(s)) == 2, what="two workers")
    return s


def hold_idle(s, n):
    """Opens n connections that send nothing; returns them and each worker's share."""
    pids = workers(s)
    base = {p: socket_count(p) for p in pids}
    conns = []
    try:
        for _ in range(n):
            conns.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        # Accepted by the workers (a state, not a time): every connection is held by one of them.
        wait_for(lambda: sum(socket_count(p) - base[p] for p in pids) >= n, timeout=20,
                 what="every connection accepted")
    except BaseException:
        close_all(conns)  # the server's graceful stop must not wait for them
        raise
    return conns, {p: socket_count(p) - base[p] for p in pids}


def close_all(conns):
    for c in conns:
        c.close()


# Room for all of them in either worker: how the kernel spreads them is measured, not what a full
# worker reclaims (the slowloris test below is about that).
ROOMY = "worker_connections 2048;"


def test_idle_connections_spread_over_both_workers(make_server):
    s = start(make_server, ROOMY)
    conns, share = hold_idle(s, 1000)
    try:
        # Every connection is held (none refused), and each worker holds a part: which worker the
        # kernel wakes depends on how busy each is (the sanitizer build has given one worker under a
        # quarter); without the exclusive wake-ups one worker takes them all.
        assert sum(share.values()) == 1000, share
        assert min(share.values()) >= 100, share
        assert "worker_connections are not enough" not in s.error_log()
    finally:
        close_all(conns)


def test_connections_spread_after_a_reload(make_server):
    s = start(make_server, ROOMY)
    old = set(workers(s))
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: len(set(workers(s)) - old) == 2 and len(workers(s)) == 2, timeout=20,
             what="two new workers")
    conns, share = hold_idle(s, 600)
    try:
        assert sum(share.values()) == 600, share
        assert min(share.values()) >= 60, share
    finally:
        close_all(conns)


def test_wrk_load_spreads_over_both_workers(make_server):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.fail("wrk is not installed (make deps installs it)")
    s = start(make_server)
    # A new connection per request, so that accepting goes on all through the run.
    out = subprocess.run([wrk, "-t", "2", "-c", "32", "-d", "2s", "-H", "Connection: close",
                          "http://127.0.0.1:%d/" % s.port], capture_output=True, text=True,
                         timeout=30).stdout
    assert re.search(r"Requests/sec", out), out
    time.sleep(0.5)
    per_worker = {}
    with open(s.path("logs/pid.log")) as f:
        for line in f:
            pid, conn = line.split()
            per_worker.setdefault(pid, set()).add(conn)
    counts = sorted(len(v) for v in per_worker.values())
    assert len(counts) == 2 and sum(counts) >= 200, counts
    assert counts[0] >= sum(counts) // 10, counts


class Slowloris:
    """n connections that each send a partial request header, then one more header byte every `interval`
    seconds; a connection the server closes is opened again. Stops after `seconds`."""

    def __init__(self, port, n, seconds, interval=3.0):
        self.port, self.n, self.seconds, self.interval = port, n, seconds, interval
        self.reopened = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open(self, sel):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        sel.register(s, selectors.EVENT_READ, [time.monotonic(), False])
        return s

    def run(self):
        sel = selectors.DefaultSelector()
        for _ in range(self.n):
            self.open(sel)
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):  # the server closed it (or answered): open another
                sel.unregister(key.fileobj)
                key.fileobj.close()
                self.reopened += 1
                self.open(sel)
            now = time.monotonic()
            for key in list(sel.get_map().values()):
                due, started = key.data
                if now < due:
                    continue
                try:
                    key.fileobj.send(b"X-a: b\r\n" if started else b"GET / HTTP/1.1\r\nHost: x\r\n")
                    key.data[:] = [now + self.interval, True]
                except (BlockingIOError, OSError):
                    key.data[0] = now + 0.2
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()


def probe(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = read_to_end(s)
        return data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"index\n")
    except OSError:
        return False


def test_slowloris_does_not_lock_out_other_clients(make_server):
    s = start(make_server)
    attack = Slowloris(s.port, 2000, seconds=20)
    attack.thread.start()
    time.sleep(2)  # the attack fills both workers' slots
    ok = total = 0
    while attack.thread.is_alive() and total < 150:
        total += 1
        ok += probe(s.port)
        time.sleep(0.1)
    attack.thread.join(30)
    assert total >= 50
    # nginx keeps 13-19 % here (its slots stay full until client_header_timeout); weir reclaims.
    assert ok / total >= 0.9, (ok, total, attack.reopened)
    assert attack.reopened > 0
    log = s.error_log()
    assert "closing a connection that has sent no complete request header" in log
    assert "worker_connections are not enough" in log
    assert probe(s.port)
