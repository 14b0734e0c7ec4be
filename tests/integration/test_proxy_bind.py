"""proxy_bind (#23): the local address of the upstream connection - a fixed one, one from variables
(empty: none; not an address: none, and nginx's error line), `off` below a level that sets one -
seen by a real back end (Debian's nginx answering $remote_addr), with weir in front answering as
nginx in front does."""
import os

import pytest

from conftest import NGINX, WEIR, Server, http_get, wait_for, weir_and_nginx

FRONT = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        proxy_bind 127.0.0.3;
        location / { proxy_pass http://127.0.0.1:BACKEND; }
        location /static/ { proxy_bind 127.0.0.2; proxy_pass http://127.0.0.1:BACKEND/; }
        location /var/ { proxy_bind $arg_from; proxy_pass http://127.0.0.1:BACKEND/; }
        location /mixed/ { proxy_bind 127.0.0.$arg_n; proxy_pass http://127.0.0.1:BACKEND/; }
        location /off/ { proxy_bind off; proxy_pass http://127.0.0.1:BACKEND/; }
    }
"""
BACKEND = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "$remote_addr\n"; }
    }
"""

CASES = [
    ("/", b"127.0.0.3\n"),
    ("/static/", b"127.0.0.2\n"),
    ("/var/?from=127.0.0.4", b"127.0.0.4\n"),
    ("/var/?from=127.0.0.5:0", b"127.0.0.1\n"),  # port 0 is no address to nginx either
    ("/var/", b"127.0.0.1\n"),
    ("/var/?from=bogus", b"127.0.0.1\n"),
    ("/mixed/?n=6", b"127.0.0.6\n"),
    ("/off/", b"127.0.0.1\n"),
]


@pytest.fixture(scope="module")
def backend():
    s = Server(BACKEND, binary=NGINX)
    s.start()
    yield s
    s.stop()
    s.cleanup()


@pytest.fixture(scope="module")
def pair(backend):
    yield from weir_and_nginx(FRONT.replace("BACKEND", str(backend.port)), {})


@pytest.mark.parametrize("path,seen", CASES)
def test_the_back_end_sees_the_bound_address(pair, path, seen):
    for front in pair:
        r = http_get(front.port, path)
        assert (r.status, r.body) == (200, seen), (front, path)


def test_an_invalid_address_is_logged_as_nginx_logs_it(pair):
    for front in pair:
        http_get(front.port, "/var/?from=not-an-address")
        wait_for(lambda: 'invalid local address "not-an-address"' in front.error_log(), what="the line")
        line = [l for l in front.error_log().splitlines() if "invalid local address" in l][-1]
        assert "[error]" in line, line


def cap_eff(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)


def test_transparent_binds_an_address_of_another_host_as_nginx(backend, make_server):
    """proxy_bind ... transparent: the socket takes IP_TRANSPARENT before bind(), so an address this
    host does not have (TEST-NET-1's, as a client's would be behind TPROXY) binds; here nothing
    routes the answer back, so the connect times out (504), as with nginx. The workers that gave up
    root keep CAP_NET_RAW for it, and only it, as nginx's do; without transparent the bind fails
    (500, nginx's line) and the workers keep nothing."""
    conf = r"""
        server {
            listen 127.0.0.1:%%%%PORT%%%%;
            proxy_connect_timeout 1s;
            location /transparent/ { proxy_bind 192.0.2.1 transparent; proxy_pass http://127.0.0.1:%d/; }
            location /client/ { proxy_bind $arg_from transparent; proxy_pass http://127.0.0.1:%d/; }
            location / { proxy_pass http://127.0.0.1:%d/; }
        }""" % ((backend.port,) * 3)
    plain = conf.replace(" transparent;", ";")
    seen = {}
    for binary in (WEIR, NGINX):
        got = []
        for text in (conf, plain):
            s = make_server(text, binary=binary)
            statuses = [http_get(s.port, path).status
                        for path in ("/transparent/", "/client/?from=192.0.2.7", "/client/?from=127.0.0.9", "/")]
            caps = {cap_eff(pid) for pid in s.worker_pids()}  # a worker that has served is past its set-up
            log = s.error_log()
            got.append((caps, statuses, "upstream timed out (110: Connection timed out) while connecting" in log,
                        'bind(192.0.2.1) failed (99: Cannot assign requested address)' in log,
                        'bind(192.0.2.7) failed (99: Cannot assign requested address)' in log))
            s.stop()
        seen[binary] = got
    assert seen[WEIR] == seen[NGINX], seen
    (caps, statuses, timed_out, bind_failed, _), (plain_caps, plain_statuses, _, plain_failed, made_failed) = seen[WEIR]
    if os.geteuid() == 0:
        assert caps == {1 << 13} and plain_caps == {0}, (caps, plain_caps)  # CAP_NET_RAW
    assert statuses == [504, 504, 200, 200] and timed_out and not bind_failed
    assert plain_statuses == [500, 500, 200, 200] and plain_failed and made_failed
