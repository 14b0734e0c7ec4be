"""geo (#10): the value for an address - the client's, or one a variable holds - by the longest
matching network (IPv4, IPv6, IPv4-mapped), default, delete, include, and X-Forwarded-For from
trusted proxies (recursive or not), and `ranges` (nginx's rules for splitting, replacing and
deleting ranges, across /16 blocks) - answered as Debian's nginx answers; load errors and warnings."""
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
    geo $arg_ip $range {
        ranges;
        default zz;
        10.0.0.0-10.0.255.255 ten0;
        10.0.3.0-10.0.3.255 three;
        10.0.3.0-10.0.3.9 three-low;
        10.0.3.250-10.0.3.255 three-high;
        10.0.4.0-10.0.4.255 four;
        10.0.4.0-10.0.4.255 four-again;
        10.1.255.0-10.3.0.255 across;
        10.5.0.0-10.5.0.255 deleted;
        delete 10.5.0.0-10.5.0.255;
        192.168.0.1-192.168.0.1 one;
        255.255.255.0-255.255.255.254 top;
        include %%DIR%%/conf/ranges.inc;
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "$by_arg|$client|$fwd|$fwdr|$empty|$range\n"; }
    }
"""

ADDRESSES = ["10.0.0.1", "10.1.9.9", "10.1.2.3", "10.2.0.1", "192.168.0.77", "192.168.1.1",
             "2001:db8::1", "2001:db8:1::5", "2001:db9::1", "::ffff:10.1.2.3", "172.16.5.5",
             "garbage", "", "0.0.0.0", "255.255.255.255", "::1",
             # ranges
             "10.0.0.0", "10.0.2.255", "10.0.3.0", "10.0.3.9", "10.0.3.10", "10.0.3.249", "10.0.3.250",
             "10.0.4.7", "10.0.255.255", "10.1.254.255", "10.1.255.0", "10.2.128.1", "10.3.0.255",
             "10.3.1.0", "10.5.0.1", "192.168.0.1", "192.168.0.2", "172.20.0.1", "::ffff:10.0.3.5",
             "2001:db8::5", "255.255.255.1", "255.255.255.254"]


def prepare(s):
    with open(s.path("conf/geo.inc"), "w") as f:
        f.write("172.16.0.0/12 private;\n0.0.0.0/32 zero;\n")
    with open(s.path("conf/ranges.inc"), "w") as f:
        f.write("172.16.0.0-172.31.255.255 private;\n")


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
    ranges = {"10.0.2.255": b"ten0", "10.0.3.5": b"three-low", "10.0.3.100": b"three",
              "10.0.3.251": b"three-high", "10.0.4.1": b"four-again", "10.2.0.0": b"across",
              "10.5.0.1": b"zz", "172.31.0.1": b"private", "::1": b"zz"}
    for ip, value in ranges.items():
        assert ask(weir.port, ip).rstrip(b"\n").split(b"|")[5] == value, ip


@pytest.mark.parametrize("conf,error", [
    ("geo $g { 10.0.0.0/33 x; }", 'invalid network "10.0.0.0/33"'),
    ("geo $g { 10.0.0.0/8 x y; }", "invalid number of the geo parameters"),
    ("geo $g { default x; ranges; }", 'the "ranges" directive must be the first directive inside "geo" block'),
    ("geo $g { ranges; 10.0.0.0/8 x; }", 'invalid range "10.0.0.0/8"'),
    ("geo $g { ranges; 10.0.0.9-10.0.0.1 x; }", 'invalid range "10.0.0.9-10.0.0.1"'),
    ("geo $g { ranges; 10.0.0.1-10.0.0.256 x; }", 'invalid range "10.0.0.1-10.0.0.256"'),
    ("geo $g { ranges; ::1-::2 x; }", 'invalid range "::1-::2"'),
    ("geo $g { ranges; 255.255.255.0-255.255.255.255 x; }", 'invalid range "255.255.255.0-255.255.255.255"'),
    ("geo $g { ranges; 10.0.0.5-10.0.0.9 a; 10.0.0.1-10.0.0.6 b; }",
     'range "10.0.0.1-10.0.0.6" overlaps "10.0.0.5-10.0.0.9"'),
    ("geo $g { ranges; 10.0.0.5-10.0.0.9 a; 10.0.0.1-10.0.0.20 b; }",
     'range "10.0.0.1-10.0.0.20" overlaps "10.0.0.5-10.0.0.9"'),
])
def test_load_errors_as_nginx(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc != 0 and error in err, (binary, err)


@pytest.mark.parametrize("conf,warning", [
    ("geo $g { ranges; 10.0.0.1-10.0.0.9 a; 10.0.0.1-10.0.0.9 b; }",
     'duplicate range "10.0.0.1-10.0.0.9", value: "b", old value: "a"'),
    ("geo $g { ranges; delete 10.0.0.1-10.0.0.9; }", 'no address range "10.0.0.1-10.0.0.9" to delete'),
    ("geo $g { ranges; 10.0.0.0-10.0.0.255 a; delete 10.0.0.1-10.0.0.9; }",
     'no address range "10.0.0.1-10.0.0.9" to delete'),
    ("geo $g { ranges; default a; default b; }", 'duplicate default geo range value: "b", old value: "a"'),
])
def test_load_warnings_as_nginx(conf, warning):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc == 0 and "[warn]" in err and warning in err, (binary, err)
