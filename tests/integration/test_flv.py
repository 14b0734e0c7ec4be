"""flv (ngx_http_flv_module, in Debian's nginx): every answer compared with Debian's nginx on the
same configuration, file and requests: the file whole, from ?start=N with the FLV header before it
(its length and ETag made from what is sent), a start that is not a number or past the end,
HEAD, POST, a range over a seek, a missing file and a directory; with and without sendfile and
open_file_cache (the small file's bytes held in memory)."""
import pytest

from conftest import parity_answer as answer
from conftest import weir_and_nginx

VIDEO = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + bytes(range(256)) * 40

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /v/ { flv; }
        location /nosf/ { flv; sendfile off; alias %%DIR%%/html/v/; }
        location /cached/ { flv; open_file_cache max=10; alias %%DIR%%/html/v/; }
    }
"""

PATHS = ["/v/clip.flv", "/v/clip.flv?start=1000", "/v/clip.flv?start=0", "/v/clip.flv?start=abc",
         "/v/clip.flv?start=%d" % len(VIDEO), "/v/clip.flv?start=%d" % (len(VIDEO) - 1),
         "/v/clip.flv?x=1&start=13", "/v/missing.flv", "/v/",
         "/nosf/clip.flv?start=1000", "/cached/clip.flv?start=1000", "/cached/clip.flv"]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {"v/clip.flv": VIDEO})


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


@pytest.mark.parametrize("method,extra", [("HEAD", ""), ("POST", ""),
                                          ("GET", "Range: bytes=0-20\r\n"),
                                          ("GET", "Range: bytes=-5\r\n")])
def test_methods_and_ranges_as_nginx(pair, method, extra):
    weir, nginx = pair
    path = "/v/clip.flv?start=1000"
    assert answer(weir.port, path, method, extra) == answer(nginx.port, path, method, extra)


def test_a_seek(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/v/clip.flv?start=1000")
    assert body == VIDEO[:13] + VIDEO[1000:]
    assert "Content-Type: video/x-flv" in lines
    assert "Content-Length: %d" % (13 + len(VIDEO) - 1000) in lines
