"""autoindex (#9): directory listings in HTML (exact and scaled sizes, a UTF-8 charset that counts
characters, names to escape and to cut at 50 columns), XML, JSON and JSONP (with good and bad
callbacks) answered byte for byte as Debian's nginx answers them on the same files."""
import os

import pytest

from conftest import answer, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        autoindex on;
        location / { }
        location /scaled/ { autoindex_exact_size off; alias %%DIR%%/html/; }
        location /utf/ { charset utf-8; alias %%DIR%%/html/; }
        location /xml/ { autoindex_format xml; alias %%DIR%%/html/; }
        location /json/ { autoindex_format json; alias %%DIR%%/html/; }
        location /jsonp/ { autoindex_format jsonp; alias %%DIR%%/html/; }
        location /off/ { autoindex off; alias %%DIR%%/html/; }
        location /local/ { autoindex_localtime on; alias %%DIR%%/html/; }
    }
"""

LONG = "a-name-that-is-longer-than-fifty-characters-for-sure.txt"
FILES = {
    "small.txt": b"x" * 10,
    "big.bin": b"b" * 20000,
    "mid.bin": b"m" * 9999,
    "two-mb.bin": b"2" * (2 * 1024 * 1024 + 600 * 1024),
    LONG: b"l",
    "fifty-chars-exactly-" + "x" * 30: b"f",
    "<tag> & \"quote\".txt": b"q",
    "space name.txt": b"s",
    "привет-мир-это-длинное-имя-файла-на-русском-языке-ещё.txt": b"r",
    "кот.txt": b"k",
    ".hidden": b"h",
    "sub/inner.txt": b"i",
    "zdir/keep.txt": b"z",
    "adir" + "d" * 50 + "/x.txt": b"x",
}
MTIME = 1700000000


def fix_times(server):
    for root, dirs, files in os.walk(server.path("html")):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (MTIME, MTIME))
    os.utime(server.path("html"), (MTIME, MTIME))


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, prepare=fix_times)


PATHS = ["/", "/sub/", "/scaled/", "/utf/", "/xml/", "/json/", "/jsonp/", "/jsonp/?callback=cb.x_1",
         "/jsonp/?callback=bad(", "/off/", "/local/", "/missing/", "/small.txt"]


def listing(port, path, method="GET"):
    return answer(port, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (method, path))


@pytest.mark.parametrize("path", PATHS)
def test_listing_as_nginx(pair, path):
    weir, nginx = pair
    assert listing(weir.port, path) == listing(nginx.port, path)
    if listing(weir.port, path)[0][0].startswith("HTTP/1.1 200"):  # a HEAD error page names no body
        assert listing(weir.port, path, "HEAD") == listing(nginx.port, path, "HEAD")


def test_what_the_listing_holds(pair):
    weir, _ = pair
    _, body = listing(weir.port, "/")
    assert b'<a href="sub/">sub/</a>' in body and b".hidden" not in body
    assert b">" + LONG[:47].encode() + b"..&gt;</a>" in body
    assert b"&lt;tag&gt; &amp; &quot;quote&quot;.txt" in body
    assert body.index(b"sub/") < body.index(b"big.bin")  # directories first
