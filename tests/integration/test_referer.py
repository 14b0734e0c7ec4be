"""valid_referers and $invalid_referer (#10): Referer values against every kind of entry (none,
blocked, server_names with exact, wildcard and regex names, host names with wildcards and URI
prefixes, case-blind regexes), answered as Debian's nginx answers them; and the load errors."""
import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name site.test *.wild.test ~^re\d+\.test$;
        valid_referers none blocked server_names example.com *.example.org .example.net
                       www.example.* good.com/gallery/ ~\.google\. ~bing;
        location / { return 200 "[$invalid_referer]\n"; }
        location /strict/ { valid_referers example.com; return 200 "[$invalid_referer]\n"; }
        location /names/ { valid_referers server_names; return 200 "[$invalid_referer]\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name none.test;
        location / { return 200 "[$invalid_referer]\n"; }
    }
"""

REFERERS = [None, "", "garbage", "ftp://example.com/", "http://example.com", "http://EXAMPLE.com/x",
            "https://example.com:8443/", "http://evil.com/", "http://a.example.org/",
            "http://example.org/", "http://example.net/", "http://x.y.example.net/",
            "http://www.example.de/", "http://good.com/gallery/a.jpg", "http://good.com/other",
            "http://good.com:80/gallery/", "http://www.google.com/search", "http://BING.com/",
            "http://site.test/", "http://a.wild.test/", "http://re42.test/", "http://re.test/",
            "http://i.ru", "http://" + "a" * 300 + ".com/"]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def answer(port, path, referer, host="site.test"):
    req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (path, host)
    if referer is not None:
        req += "Referer: %s\r\n" % referer
    return raw(port, req + "\r\n").partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/", "/strict/", "/names/"])
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    got = [answer(weir.port, path, ref) for ref in REFERERS]
    assert got == [answer(nginx.port, path, ref) for ref in REFERERS], list(zip(REFERERS, got))


def test_what_the_answers_hold(pair):
    weir, nginx = pair
    assert answer(weir.port, "/", None) == b"[]\n" and answer(weir.port, "/", "http://evil.com/") \
        == b"[1]\n"
    assert answer(weir.port, "/", "http://good.com/other") == b"[1]\n"
    assert answer(weir.port, "/", "http://a.wild.test/") == b"[]\n"
    for s in pair:  # no valid_referers: always valid
        assert answer(s.port, "/", "http://evil.com/", host="none.test") == b"[]\n"


@pytest.mark.parametrize("entry,error", [
    ('""', 'invalid referer ""'),
    ("*.a.*", 'invalid hostname or wildcard "*.a.*"'),
    ("a.com a.com", 'conflicting parameter "a.com"'),
    ("~", 'empty regex in "~"'),
    ("none blocked", 'the "none" or "blocked" referers are specified in the "valid_referers" '
                     'directive without any valid referer'),
])
def test_load_errors_as_nginx(entry, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; valid_referers " +
                             entry + "; }")
        assert rc != 0 and error in err, (binary, err)
