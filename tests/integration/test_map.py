"""map (#10): every answer compared with Debian's nginx on the same configuration and requests -
exact keys (case-blind), escaped keywords, regexes in order with captures and ~*, exact before
regex, hostnames with their three wildcard forms and a trailing dot, values with variables, an
empty source, an empty key (Nextcloud's `"" "";`, looked up as any key, never by a regex), include,
volatile, a map used by another map and in proxy_pass-free locations - and the load errors in
nginx's words."""
import pytest

from conftest import NGINX, WEIR, raw, check_conf, weir_and_nginx

CONF = r"""
    map $http_x_key $exact {
        default        d;
        foo            f;
        Bar            b;
        \default       escaped;
        ~^re(\d+)$     "re-$1";
        ~*^CI          ci;
        re5            exact-before-regex;
        include        %%DIR%%/conf/more.map;
    }
    map $http_host $site {
        hostnames;
        default        none;
        example.com    ex;
        *.example.org  wild-head;
        .example.net   dot;
        www.example.*  wild-tail;
    }
    map $arg_a $withvars {
        default        "$uri-default";
        x              "$arg_b-x";
        ~^(?<word>[a-z]+)-(\d)$ "$word/$2";
    }
    map $exact $chained {
        f              from-f;
        default        "chained:$exact";
    }
    map $v $cached { 1 one; 2 two; default other; }
    map $v $vol { volatile; 1 one; 2 two; default other; }
    map $http_x_none $nodefault { a b; }
    map $arg_v $immutable { "" ""; default ", immutable"; }
    map $http_x_h $hn { hostnames; "" empty; . dot; a.com a; default d; }
    map $http_x_r $re { ~^$ re-empty; ~^x* re-x; default d; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "$exact|$site|$withvars|$chained|$nodefault|$word|$immutable|$hn|$re\n"; }
        location /vol { set $v 1; set $a "$cached $vol"; set $v 2; return 200 "$a $cached $vol\n"; }
    }
"""

REQUESTS = [
    ({}, "/"), ({"X-Key": "foo"}, "/"), ({"X-Key": "FOO"}, "/"), ({"X-Key": "bar"}, "/"),
    ({"X-Key": "default"}, "/"), ({"X-Key": "re42"}, "/"), ({"X-Key": "re5"}, "/"),
    ({"X-Key": "cIx"}, "/"), ({"X-Key": "included"}, "/"), ({"X-Key": "Included2"}, "/"),
    ({"Host": "example.com"}, "/"), ({"Host": "EXAMPLE.com."}, "/"), ({"Host": "a.example.org"}, "/"),
    ({"Host": "example.org"}, "/"), ({"Host": "example.net"}, "/"), ({"Host": "x.y.example.net"}, "/"),
    ({"Host": "www.example.de"}, "/"), ({"Host": "other"}, "/"),
    ({}, "/p?a=x&b=B"), ({}, "/p?a=abc-7"), ({}, "/p?a=X"), ({}, "/p?a="), ({}, "/vol"),
    ({}, "/p?v="), ({}, "/p?v=1"), ({"X-H": "", "X-R": ""}, "/"), ({"X-H": "."}, "/"),
    ({"X-H": "A.com."}, "/"), ({"X-R": "xx"}, "/"),
]


def more_map(server):
    with open(server.path("conf/more.map"), "w") as f:
        f.write("included inc;\nincluded2 inc2;\n")


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {}, prepare=more_map)


def answer(port, headers, path):
    h = {"Host": "localhost"}
    h.update(headers)
    req = "GET %s HTTP/1.1\r\n%sConnection: close\r\n\r\n" % (
        path, "".join("%s: %s\r\n" % kv for kv in h.items()))
    out = raw(port, req)
    return out.partition(b"\r\n")[0], out.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("headers,path", REQUESTS, ids=["%s %s" % (sorted(h.items()), p)
                                                        for h, p in REQUESTS])
def test_answers_as_nginx(pair, headers, path):
    weir, nginx = pair
    assert answer(weir.port, headers, path) == answer(nginx.port, headers, path)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert answer(weir.port, {"X-Key": "FOO"}, "/")[1].startswith(b"f|none|/-default|from-f|")
    assert answer(weir.port, {"X-Key": "re42"}, "/")[1].startswith(b"re-42|")
    assert answer(weir.port, {"X-Key": "re5"}, "/")[1].startswith(b"exact-before-regex|")
    assert answer(weir.port, {"Host": "x.y.example.net"}, "/")[1].split(b"|")[1] == b"dot"
    assert answer(weir.port, {}, "/p?a=abc-7")[1].split(b"|")[2] == b"abc/7"
    assert answer(weir.port, {}, "/vol")[1] == b"one one one two\n"
    assert answer(weir.port, {}, "/")[1].split(b"|")[6:] == [b"", b"empty", b"d\n"]
    assert answer(weir.port, {}, "/p?v=2")[1].split(b"|")[6] == b", immutable"


@pytest.mark.parametrize("block,error", [
    ("map $uri $b { default x; default y; }", "duplicate default map parameter"),
    ("map $uri $b { k v extra; }", "invalid number of the map parameters"),
    ("map $uri $b { k v; K w; }", 'conflicting parameter "k"'),
    ("map $uri b { k v; }", 'invalid variable name "b"'),
    ("map $uri $b { hostnames; *.a.* v; }", 'invalid hostname or wildcard "*.a.*"'),
    ("map $uri $b { hostnames; a..b v; }", 'invalid hostname or wildcard "a..b"'),
    ("map $uri $b { ~( v; }", "pcre2_compile() failed: missing closing parenthesis"),
])
def test_load_errors_as_nginx(block, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, block + "\nserver { listen 127.0.0.1:%%PORT%%; }")
        assert rc != 0 and error in err and "nginx.conf:" in err, (binary, err)
