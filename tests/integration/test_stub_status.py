"""stub_status (#10): nginx's text, counters that add up across workers (accepts, handled, requests)
and the states of connections right now - an idle one waiting, one whose header is arriving, the one
asking - as Debian's nginx reports them; the $connections_* variables; 405 to other methods."""
import re
import socket

import pytest

from conftest import raw, wait_for, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /status { stub_status; }
        location = /vars { return 200 "$connections_active $connections_reading $connections_writing $connections_waiting\n"; }
        location / { return 200 "ok\n"; }
    }
"""

STATUS_RE = re.compile(rb"^Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) \n"
                       rb"Reading: (\d+) Writing: (\d+) Waiting: (\d+) \n$")


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def status(port):
    head, _, body = raw(port, "GET /status HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")
    m = STATUS_RE.match(body)
    assert m, body
    assert b"Content-Type: text/plain" in head
    return [int(x) for x in m.groups()]


def test_states_of_connections_as_nginx(pair):
    results = []
    for s in pair:
        base = status(s.port)
        idle = socket.create_connection(("127.0.0.1", s.port))
        reading = socket.create_connection(("127.0.0.1", s.port))
        reading.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        seen = []

        def settled():
            seen.append(status(s.port))
            return seen[-1][0] == 3 and seen[-1][4:] == [1, 1, 1]
        wait_for(settled, what="three connections: waiting, reading, writing")
        now = seen[-1]
        # Accepted and handled: the base asker, the two held, and every asker since.
        assert now[1] == now[2] == base[1] + 2 + len(seen)
        # Requests: the base asker's, the one arriving, and the askers'.
        assert now[3] == base[3] + 1 + len(seen)
        idle.close()
        reading.close()
        wait_for(lambda: status(s.port)[0] == 1, what="the held connections closed")
        results.append(status(s.port)[4:])
    assert results[0] == results[1] == [0, 1, 0]


def test_counters_add_up_across_workers(make_server):
    s = make_server(CONF, main_conf="worker_processes 2;")
    before = status(s.port)
    for _ in range(50):
        assert raw(s.port, "GET / HTTP/1.0\r\n\r\n").endswith(b"ok\n")
    after = status(s.port)
    assert after[3] - before[3] == 51 and after[1] - before[1] == 51


def test_variables_and_methods(pair):
    for s in pair:
        body = raw(s.port, "GET /vars HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2]
        assert body == b"1 0 1 0\n", body
        head = raw(s.port, "POST /status HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 405 "), head[:40]
