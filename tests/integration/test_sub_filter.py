"""The sub filter (ngx_http_sub_module, in Debian's nginx): every answer compared with Debian's
nginx on the same configuration, files, upstream and requests: strings replaced without regard to
case, once or everywhere, several strings in nginx's order, variables in strings and replacements,
sub_filter_types (text/html always), the headers that go (Content-Length, Last-Modified, ETag) or
stay (sub_filter_last_modified, a weak ETag), inheritance, proxied bodies in many small pieces, with
gzip after it; a string cut by two upstream reads replaced whole; a large body; the load errors."""
import gzip
import re
import socket
import threading

import pytest

from backend import Backend, Send, Wait, chunked, response
from conftest import NGINX, WEIR, check_conf, dechunk, weir_and_nginx
from conftest import parity_answer as answer

PAGE = (b"<html><head><title>Hello World</title></head>\n<body>\n"
        b"<a href=\"http://backend.internal/app/\">HELLO world</a> hello\n"
        b"<p>aaa abz ab aa</p><img src=\"/static/x.png\">\n</body></html>\n")
BIG = (b"<p>Find the needle; NEEDLE again, nEeDlE.</p>\n" * 20000)

FILES = {"page.html": PAGE, "page.txt": PAGE, "page.css": PAGE, "big.html": BIG, "empty.html": b"",
         "ssi.html": b"<h1>hello</h1><!--# include virtual=\"/once/page.html\" --><p>HELLO</p>\n",
         "koi.html": "привет hello мир\n".encode("koi8-r")}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    include /etc/nginx/koi-utf;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        sub_filter "hello" "Bye";
        location /once/ { alias %%DIR%%/html/; }
        location /all/ { alias %%DIR%%/html/; sub_filter_once off; }
        location /many/ { alias %%DIR%%/html/; sub_filter_once off;
                          sub_filter </body> "<footer>$host $uri</footer></body>";
                          sub_filter "http://backend.internal/" "https://$host/";
                          sub_filter World Earth; }
        location /order/ { alias %%DIR%%/html/; sub_filter_once off;
                           sub_filter abz 1; sub_filter ab 2; sub_filter aa 3; }
        location /once-many/ { alias %%DIR%%/html/;
                               sub_filter hello 1; sub_filter world 2; sub_filter aa 3; }
        location /var/ { alias %%DIR%%/html/; set $word "WORLD"; sub_filter_once off;
                         sub_filter $word "[$arg_to]"; }
        location /varempty/ { alias %%DIR%%/html/; sub_filter $arg_none "x"; }
        location /types/ { alias %%DIR%%/html/; sub_filter_types text/css; }
        location /anytype/ { alias %%DIR%%/html/; sub_filter_types *; }
        location /lm/ { alias %%DIR%%/html/; sub_filter_last_modified on; }
        location /big/ { alias %%DIR%%/html/; sub_filter_once off; sub_filter needle pin; }
        location /gz/ { alias %%DIR%%/html/; sub_filter_once off; gzip on; gzip_min_length 1; }
        location /up/ { proxy_pass http://127.0.0.1:%%UPORT%%/; sub_filter_once off;
                        sub_filter "backend.internal" "example.org"; }
        location /upnb/ { proxy_pass http://127.0.0.1:%%UPORT%%/; sub_filter_once off;
                          proxy_buffering off; sub_filter "backend.internal" "example.org"; }
        location /ssi/ { alias %%DIR%%/html/; ssi on; sub_filter_once off; }
        location /cs/ { alias %%DIR%%/html/; charset utf-8; source_charset koi8-r;
                        sub_filter "hello" "привет"; }
        location /upgz/ { proxy_pass http://127.0.0.1:%%UPORT%%/; sub_filter backend.internal x; }
        location /upgunzip/ { proxy_pass http://127.0.0.1:%%UPORT%%/; gunzip on;
                              sub_filter backend.internal x; }
        location = /ret { sub_filter "hello" "HI"; default_type text/html; return 200 "hello there"; }
    }
"""

PATHS = ["/page.html", "/once/page.html", "/all/page.html", "/many/page.html", "/order/page.html",
         "/once-many/page.html", "/var/page.html?to=you", "/varempty/page.html",
         "/once/page.txt", "/types/page.css", "/types/page.html", "/types/page.txt",
         "/anytype/page.txt", "/lm/page.html", "/once/empty.html", "/up/pieces", "/up/plain",
         "/upnb/pieces", "/ret", "/missing.html", "/ssi/ssi.html", "/cs/koi.html",
         "/upgz/gzipped", "/upgunzip/gzipped"]


def pieces(data, n):
    return [data[i:i + n] for i in range(0, len(data), n)]


@pytest.fixture(scope="module")
def pair():
    with Backend() as b:
        b.script("/pieces", chunked(pieces(PAGE, 3), {"Content-Type": "text/html"}))
        b.script("/plain", [response(200, PAGE, {"Content-Type": "text/html"})])
        b.script("/gzipped", [response(200, gzip.compress(PAGE), {"Content-Type": "text/html",
                                                                  "Content-Encoding": "gzip"})])
        yield from weir_and_nginx(CONF.replace("%%UPORT%%", str(b.port)), FILES)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_head_conditional_range_and_gzip_as_nginx(pair):
    weir, nginx = pair
    # The file's own Last-Modified, from a location whose answer keeps it.
    lm = [l for l in answer(nginx.port, "/types/page.txt")[0] if l.startswith("Last-Modified")]
    for extra in ("If-Modified-Since: %s\r\n" % lm[0].split(": ", 1)[1], "Range: bytes=0-9\r\n"):
        assert answer(weir.port, "/once/page.html", extra=extra) == \
            answer(nginx.port, "/once/page.html", extra=extra)
    assert answer(weir.port, "/all/page.html", "HEAD") == answer(nginx.port, "/all/page.html", "HEAD")
    got = [answer(s.port, "/gz/page.html", extra="Accept-Encoding: gzip\r\n") for s in pair]
    assert got[0][0] == got[1][0]
    assert "Content-Encoding: gzip" in got[0][0]
    assert gzip.decompress(got[0][1]) == gzip.decompress(got[1][1]) == re.sub(b"(?i)hello", b"Bye", PAGE)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/once/page.html")
    # Once: the first "hello", whatever its case, and only it.
    assert body == PAGE.replace(b"Hello", b"Bye", 1)
    assert "Transfer-Encoding: chunked" in lines
    assert not any(l.startswith(("Content-Length", "Last-Modified", "ETag")) for l in lines)
    _, body = answer(weir.port, "/all/page.html")
    assert body == re.sub(b"(?i)hello", b"Bye", PAGE)
    _, body = answer(weir.port, "/many/page.html")
    assert b"<footer>localhost /many/page.html</footer></body>" in body
    assert b"https://localhost/app/" in body and b"Earth" in body and b"World" not in body
    # A location's own sub_filter replaces the server's.
    assert b"Bye" not in body and b"Hello" in body
    _, body = answer(weir.port, "/order/page.html")
    assert b"<p>3a 1 2 3</p>" in body  # "aaa": "aa", then "a" stays; "abz" before "ab"
    _, body = answer(weir.port, "/var/page.html?to=you")
    assert body.count(b"[you]") == 2
    lines, body = answer(weir.port, "/lm/page.html")
    assert any(l.startswith("Last-Modified") for l in lines)
    assert any(l.startswith('ETag: W/"') for l in lines)
    assert answer(weir.port, "/types/page.txt")[1] == PAGE  # not a type it takes
    assert answer(weir.port, "/types/page.html")[1] != PAGE  # text/html always
    for path in ("/up/pieces", "/upnb/pieces"):
        assert answer(weir.port, path)[1] == PAGE.replace(b"backend.internal", b"example.org")


def test_a_large_body(pair):
    weir, nginx = pair
    got = [answer(s.port, "/big/big.html")[1] for s in pair]
    assert got[0] == re.sub(b"(?i)needle", b"pin", BIG)
    assert got[0] == got[1]


def test_a_string_cut_between_upstream_reads(make_server):
    """A non-buffered upstream sends the body up to the middle of a string, waits until the client
    has the header, then the rest: the string is replaced whole."""
    seen = threading.Event()
    body = b"<p>see backend.internal now</p>"
    cut = body.index(b"end.int")
    with Backend() as b:
        b.script("/split", [Send("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                 "Content-Length: %d\r\n\r\n" % len(body)),
                            Send(body[:cut]), Wait(seen), Send(body[cut:])])
        s = make_server("""
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; proxy_buffering off;
                              sub_filter backend.internal example.org; } }
        """ % b.port)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        seen.set()
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"Content-Length" not in head
        assert dechunk(rest) == b"<p>see example.org now</p>"


@pytest.mark.parametrize("directives,message", [
    ('sub_filter "" x;', "empty search pattern"),
    ("".join("sub_filter s%d x; " % i for i in range(256)), "number of search patterns exceeds 255"),
    ("sub_filter a;", 'invalid number of arguments in "sub_filter" directive'),
    ("sub_filter_once maybe;", 'invalid value "maybe" in "sub_filter_once" directive'),
])
def test_load_errors_as_nginx(directives, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:1; location / { %s } }" % directives)
        assert rc != 0 and message in err, (binary, err)


def test_255_strings_load():
    conf = "server { listen 127.0.0.1:1; location / { %s } }" % "".join(
        "sub_filter s%d x; " % i for i in range(255))
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc == 0, (binary, err)
