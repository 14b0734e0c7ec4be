"""allow / deny (#10): clients bound to several 127.0.0.x addresses and to ::1 ask weir and Debian's
nginx, on the same configuration, for locations with rules in every form (address, CIDR, a CIDR with
host bits set, IPv6, all, inheritance and replacement, satisfy any); the statuses and the error-log
lines are compared, and the load-time warning and errors too."""
import socket

import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        listen [::1]:%%PORT%%;
        deny 127.0.0.9;
        location / { }
        location /first { deny 127.0.0.2; allow 127.0.0.0/24; deny all; }
        location /only3 { allow 127.0.0.3; deny all; }
        location /none { deny all; }
        location /open { allow all; }
        location /cidr { allow 127.0.0.5/30; deny all; }
        location /v6 { deny ::1; allow all; }
        location /v6net { allow ::/64; deny all; }
        location /v4only { allow 127.0.0.0/8; }
        location /any { satisfy any; deny all; }
        location /nested/ { deny 127.0.0.4;
                           location /nested/in { }
                           location /nested/own { allow all; } }
    }
"""

SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.7", "127.0.0.9", "::1"]
# `return` runs in the rewrite phase, before access: the locations serve files.
FILES = {name: name + "\n" for name in ("index.html", "first", "only3", "none", "open", "cidr",
                                          "v6", "v6net", "v4only", "any", "nested/in",
                                          "nested/own")}
PATHS = ["/", "/first", "/only3", "/none", "/open", "/cidr", "/v6", "/v6net", "/v4only", "/any",
         "/nested/in", "/nested/own"]


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pair():
    if not ipv6_loopback():
        pytest.fail("this machine has no ::1")
    yield from weir_and_nginx(CONF, FILES)


def status(port, source, path):
    data = raw(port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path, source=source)
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("path", PATHS)
def test_statuses_as_nginx(pair, path):
    weir, nginx = pair
    got = [status(weir.port, src, path) for src in SOURCES]
    assert got == [status(nginx.port, src, path) for src in SOURCES], list(zip(SOURCES, got))


def test_what_the_statuses_hold_and_the_log(pair):
    weir, nginx = pair
    assert [status(weir.port, src, "/first") for src in SOURCES] == [200, 403, 200, 200, 200, 200,
                                                                      403]
    assert [status(weir.port, src, "/cidr") for src in SOURCES] == [403, 403, 403, 200, 200, 403,
                                                                     403]
    assert status(weir.port, "127.0.0.9", "/") == 403 and status(weir.port, "::1", "/") == 200
    lines = []
    for s in pair:
        status(s.port, "127.0.0.2", "/first")
        status(s.port, "127.0.0.1", "/any")
        log = [l for l in s.error_log().splitlines() if "forbidden" in l][-2:]
        lines.append([l.split("] ", 1)[1].split(" ", 2)[2] for l in log])
    assert lines[0] == lines[1]
    assert lines[0][0].startswith("access forbidden by rule, client: 127.0.0.2")


def test_low_bits_warning_and_errors_as_nginx():
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; allow 127.0.0.5/30; }")
        assert rc == 0 and "[warn]" in err and "low address bits of 127.0.0.5/30 are meaningless" \
            in err, (binary, err)
        for bad in ("127.0.0.300", "10.0.0.0/33", "::1/129", "nonsense"):
            rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; deny " + bad + "; }")
            assert rc != 0 and 'invalid parameter "%s"' % bad in err, (binary, bad, err)
