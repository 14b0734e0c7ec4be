"""proxy_bind (#23): the local address of the upstream connection - a fixed one, one from variables
(empty: none; not an address: none, and nginx's error line), `off` below a level that sets one -
seen by a real back end (Debian's nginx answering $remote_addr), with weir in front answering as
nginx in front does."""
import pytest

from conftest import NGINX, Server, http_get, wait_for, weir_and_nginx

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
