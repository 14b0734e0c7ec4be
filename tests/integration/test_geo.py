"""geo (#10): the value for an address - the client's, or one a variable holds - by the longest
matching network (IPv4, IPv6, IPv4-mapped), default, delete, include, and X-Forwarded-For from
trusted proxies (recursive or not), answered as Debian's nginx answers; load errors."""
import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

CONF = r"""
    geo $arg_ip $by_arg {
        default none;
        10.0.0.0/8 ten;
        10.1.0.0/16 ten-one;
        10.1.2.3 host;
        10.2.0.0/16 gone;
        delete 10.2.0.0/16;
        192.168.0.0/24 lan;
        2001:db8::/32 doc6;
        2001:db8:1::/48 doc6-one;
        include %%DIR%%/conf/geo.inc;
    }
    geo $client { default other; 127.0.0.0/8 loopback; }
    geo $fwd { default none; proxy 127.0.0.1; 1.2.3.0/24 one-two-three; 10.0.0.0/8 inner; }
    geo $fwdr { default none; proxy 127.0.0.0/8; proxy 10.0.0.0/8; proxy_recursive;
                1.2.3.0/24 one-two-three; 10.0.0.0/8 inner; }
    geo $empty { 10.0.0.0/8 x; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "$by_arg|$client|$fwd|$fwdr|$empty\n"; }
    }
"""

ADDRESSES = ["10.0.0.1", "10.1.9.9", "10.1.2.3", "10.2.0.1", "192.168.0.77", "192.168.1.1",
             "2001:db8::1", "2001:db8:1::5", "2001:db9::1", "::ffff:10.1.2.3", "172.16.5.5",
             "garbage", "", "0.0.0.0", "255.255.255.255", "::1"]


def prepare(s):
    with open(s.path("conf/geo.inc"), "w") as f:
        f.write("172.16.0.0/12 private;\n0.0.0.0/32 zero;\n")


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {}, prepare=prepare)


def ask(port, ip=None, xff=None):
    req = "GET /%s HTTP/1.0\r\n" % ("?ip=" + ip if ip is not None else "")
    if xff is not None:
        req += "X-Forwarded-For: %s\r\n" % xff
    return raw(port, req + "\r\n").partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("ip", ADDRESSES)
def test_addresses_as_nginx(pair, ip):
    weir, nginx = pair
    assert ask(weir.port, ip) == ask(nginx.port, ip)


@pytest.mark.parametrize("xff", [None, "1.2.3.4", "10.0.0.1, 1.2.3.4", "1.2.3.4, 10.0.0.1",
                                 "1.2.3.4, 10.0.0.1, 127.0.0.5", "bogus", "1.2.3.4,bogus"])
def test_forwarded_for_as_nginx(pair, xff):
    weir, nginx = pair
    assert ask(weir.port, "", xff) == ask(nginx.port, "", xff)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert ask(weir.port, "10.1.2.3").startswith(b"host|loopback|")
    assert ask(weir.port, "10.2.0.1").startswith(b"ten|")
    assert ask(weir.port, "2001:db8:1::5").startswith(b"doc6-one|")
    assert ask(weir.port, "", "1.2.3.4, 10.0.0.1").split(b"|")[2:4] == [b"inner", b"one-two-three"]


@pytest.mark.parametrize("conf,error", [
    ("geo $g { 10.0.0.0/33 x; }", 'invalid network "10.0.0.0/33"'),
    ("geo $g { 10.0.0.0/8 x y; }", "invalid number of the geo parameters"),
])
def test_load_errors_as_nginx(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc != 0 and error in err, (binary, err)


def test_ranges_refused_at_load():
    rc, err = check_conf(WEIR, "geo $g { ranges; 10.0.0.1-10.0.0.9 x; }")
    assert rc != 0 and 'the "ranges" parameter of geo is not supported by weir yet' in err
