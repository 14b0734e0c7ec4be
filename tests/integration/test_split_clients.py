"""split_clients (#10): 300 keys put in the same buckets as Debian's nginx puts them (MurmurHash2
and nginx's cumulative bounds), with "*" and without, and the load errors in nginx's words."""
import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

CONF = r"""
    split_clients "${arg_k}salt" $variant {
        0.5%    .one;
        2.0%    .two;
        30%     three;
        12.25%  four;
        *       "";
    }
    split_clients "$arg_k" $partial {
        10%     ten;
        40.5%   forty;
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "$variant|$partial\n"; }
    }
"""


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def buckets(port, keys):
    out = []
    for k in keys:
        data = raw(port, "GET /?k=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % k)
        out.append(data.partition(b"\r\n\r\n")[2])
    return out


def test_buckets_as_nginx(pair):
    weir, nginx = pair
    keys = ["user%d" % i for i in range(300)] + ["", "a", "ab", "abc", "abcd", "abcde"]
    got = buckets(weir.port, keys)
    assert got == buckets(nginx.port, keys)
    variants = [g.split(b"|")[0] for g in got]
    assert {b".one", b".two", b"three", b"four", b""} >= set(variants) and b"three" in variants
    assert any(g.endswith(b"|\n") for g in got)  # past 50.5 %: empty


@pytest.mark.parametrize("block,error", [
    ('split_clients $uri $v { 60% a; 50% b; }', "percent total is greater than 100%"),
    ('split_clients $uri $v { 0% a; }', 'invalid percent value "0%"'),
    ('split_clients $uri $v { 1.234% a; }', 'invalid percent value "1.234%"'),
    ('split_clients $uri $v { ten a; }', 'invalid percent value "ten"'),
    ('split_clients $uri v { 1% a; }', 'invalid variable name "v"'),
])
def test_load_errors_as_nginx(block, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, block + "\nserver { listen 127.0.0.1:%%PORT%%; }")
        assert rc != 0 and error in err, (binary, err)
