"""The addition filter (ngx_http_addition_module, in Debian's nginx): every answer compared with
Debian's nginx on the same configuration, files, upstream and requests: a page with what
add_before_body and add_after_body name around it (files, a proxied answer, a missing one),
addition_types (text/html always), only 200 answers of the main request, HEAD, ranges and gzip."""
import gzip

import pytest

from backend import Backend, chunked, response
from conftest import parity_answer as answer
from conftest import weir_and_nginx

PAGE = b"<html><body>\n<p>the page</p>\n</body></html>\n"
FILES = {"page.html": PAGE, "page.txt": b"plain text\n", "before.html": b"<header>top</header>\n",
         "after.html": b"<footer>end</footer>\n", "inc/b.html": b"[b]",
         "big.html": b"<p>" + b"x" * 200000 + b"</p>\n"}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        add_before_body /before.html;
        add_after_body /after.html;
        location /only-before/ { alias %%DIR%%/html/; add_after_body ""; }
        location /only-after/ { alias %%DIR%%/html/; add_before_body ""; }
        location /types/ { alias %%DIR%%/html/; addition_types text/plain; }
        location /missing/ { alias %%DIR%%/html/; add_after_body /nothing-here.html; }
        location /proxied/ { add_before_body /up/before; add_after_body /inc/b.html;
                             proxy_pass http://127.0.0.1:%%UPORT%%/; }
        location /up/ { proxy_pass http://127.0.0.1:%%UPORT%%/; }
        location /gz/ { alias %%DIR%%/html/; gzip on; gzip_min_length 1; }
        location = /ret { default_type text/html; return 200 "returned\n"; }
    }
"""

PATHS = ["/page.html", "/page.txt", "/only-before/page.html", "/only-after/page.html",
         "/types/page.txt", "/types/page.html", "/missing/page.html", "/proxied/page",
         "/proxied/chunks", "/nothing.html", "/ret", "/big.html"]


@pytest.fixture(scope="module")
def pair():
    with Backend() as b:
        b.script("/page", [response(200, PAGE, {"Content-Type": "text/html"})])
        b.script("/chunks", chunked([b"<p>one", b" two", b" three</p>\n"],
                                    {"Content-Type": "text/html"}))
        b.script("/before", [response(200, b"<nav>proxied</nav>", {"Content-Type": "text/html"})])
        yield from weir_and_nginx(CONF.replace("%%UPORT%%", str(b.port)), FILES)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_head_range_and_gzip_as_nginx(pair):
    weir, nginx = pair
    assert answer(weir.port, "/page.html", "HEAD") == answer(nginx.port, "/page.html", "HEAD")
    extra = "Range: bytes=0-5\r\n"
    assert answer(weir.port, "/page.html", extra=extra) == answer(nginx.port, "/page.html", extra=extra)
    got = [answer(s.port, "/gz/page.html", extra="Accept-Encoding: gzip\r\n") for s in pair]
    assert got[0][0] == got[1][0] and "Content-Encoding: gzip" in got[0][0]
    assert gzip.decompress(got[0][1]) == gzip.decompress(got[1][1])


def test_what_the_answers_hold(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/page.html")
    assert body == FILES["before.html"] + PAGE + FILES["after.html"]
    assert not any(l.startswith(("Content-Length", "Accept-Ranges")) for l in lines)
    assert answer(weir.port, "/only-after/page.html")[1] == PAGE + FILES["after.html"]
    assert answer(weir.port, "/page.txt")[1] == b"plain text\n"
    assert answer(weir.port, "/proxied/chunks")[1] == b"<nav>proxied</nav><p>one two three</p>\n[b]"
