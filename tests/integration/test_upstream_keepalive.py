"""The upstream keepalive cache beyond its cap. nginx closes a connection released while `keepalive N`
connections are already idle, so a load whose concurrency hovers above N opens and closes upstream
connections all the time. weir keeps such surplus connections for keepalive_surplus_timeout (1 s) of
disuse, least recently used first; `keepalive_surplus_timeout 0` is nginx's rule. Each test holds
several upstream connections busy at once with a backend that waits, then counts the backend's
connections and closes."""
import signal
import threading
import time

from backend import Backend, KeepOpen, Wait, response
from conftest import WEIR, Client, check_conf, http_get, wait_for

CONF = """
    upstream ka { server 127.0.0.1:%d; keepalive 1; %s }
    server { listen 127.0.0.1:%%%%PORT%%%%;
             location / { proxy_pass http://ka; proxy_http_version 1.1;
                          proxy_set_header Connection ""; } }
"""


def concurrent_round(port, backend, n):
    """n requests that are all at the backend at once, answered together, each read whole."""
    go = threading.Event()
    backend.script("/held", [Wait(go), response(200, "held"), KeepOpen()])
    before = len(backend.requests)
    clients = [Client(port) for _ in range(n)]
    for c in clients:
        c.send(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: len(backend.requests) == before + n, what="all requests at the backend")
    go.set()
    for c in clients:
        r = c.response()
        assert r.status == 200 and r.body == b"held"
        c.close()


def test_surplus_connections_are_kept_and_reused(make_server):
    with Backend() as b:
        # A timeout no busy test machine can outlast between the two bursts.
        s = make_server(CONF % (b.port, "keepalive_surplus_timeout 60s;"))
        concurrent_round(s.port, b, 3)
        assert b.connections == 3
        # Two of the three are above the cap of 1, and a second burst finds all three idle.
        concurrent_round(s.port, b, 3)
        assert b.connections == 3 and b.closed == 0
        assert http_get(s.port, "/one").status == 200
        assert b.connections == 3


def test_surplus_closed_once_unused_for_the_timeout(make_server):
    with Backend() as b:
        s = make_server(CONF % (b.port, ""))
        concurrent_round(s.port, b, 3)
        # The two least recently used go when they have been idle 1 s (the default); the cap's
        # one stays.
        wait_for(lambda: b.closed == 2, timeout=10, what="the surplus connections closed")
        assert http_get(s.port, "/after").status == 200
        assert b.connections == 3 and b.closed == 2


def test_surplus_timeout_zero_is_nginx_rule(make_server):
    with Backend() as b:
        s = make_server(CONF % (b.port, "keepalive_surplus_timeout 0;"))
        concurrent_round(s.port, b, 3)
        # Closed as they were released above the cap, before any timer could run.
        wait_for(lambda: b.closed == 2, timeout=10, what="the surplus connections closed")
        concurrent_round(s.port, b, 3)
        assert b.connections == 5  # two new connections for the second burst


def test_surplus_does_not_hold_an_old_worker(make_server):
    """A reload while surplus connections wait out a long timeout: the old worker closes every
    cached connection and leaves at once; its pending surplus timer does not keep it."""
    with Backend() as b:
        s = make_server(CONF % (b.port, "keepalive_surplus_timeout 60s;"))
        concurrent_round(s.port, b, 3)
        assert b.closed == 0
        old = set(s.worker_pids())
        started = time.monotonic()
        s.send_signal(signal.SIGHUP)
        wait_for(lambda: s.worker_pids() and not old & set(s.worker_pids()), timeout=20,
                 what="the old worker gone")
        assert time.monotonic() - started < 15  # not the 60 s of the timer
        wait_for(lambda: b.closed == 3, what="the old worker's connections closed")
        assert http_get(s.port, "/after").status == 200


def test_keepalive_directive_values():
    ok = """
    upstream u { server 127.0.0.1:9; keepalive 2; %s }
    server { listen 127.0.0.1:%%%%PORT%%%%; location / { proxy_pass http://u; } }
    """
    # nginx's num and msec slots take 0.
    for line in ("keepalive_timeout 0;", "keepalive_requests 0;", "keepalive_time 0;",
                 "keepalive_surplus_timeout 0;", "keepalive_surplus_timeout 5s;"):
        rc, err = check_conf(WEIR, ok % line)
        assert rc == 0, (line, err)
    for line, message in (("keepalive_surplus_timeout soon;", '"keepalive_surplus_timeout" directive invalid value'),
                          ("keepalive_timeout 1x;", '"keepalive_timeout" directive invalid value'),
                          ("keepalive_requests -1;", '"keepalive_requests" directive invalid number'),
                          ("keepalive_surplus_timeout 1s 2s;",
                           'invalid number of arguments in "keepalive_surplus_timeout" directive')):
        rc, err = check_conf(WEIR, ok % line)
        assert rc != 0 and message in err, (line, err)
    rc, err = check_conf(WEIR, (ok % "").replace("keepalive 2;", "keepalive 0;"))
    assert rc != 0 and 'invalid value "0" in "keepalive" directive' in err
