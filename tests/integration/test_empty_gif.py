"""empty_gif (#9): GET, HEAD, a conditional GET and a POST answered as Debian's nginx answers them,
the body byte for byte."""
import pytest

from conftest import answer, weir_and_nginx

CONF = """
    server { listen 127.0.0.1:%%PORT%%; location = /pixel.gif { empty_gif; } }
"""

REQUESTS = [
    "GET /pixel.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "HEAD /pixel.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /pixel.gif HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 28 Sep 1970 06:00:00 GMT\r\n"
    "Connection: close\r\n\r\n",
    "POST /pixel.gif HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


@pytest.mark.parametrize("req", REQUESTS, ids=["get", "head", "conditional", "post"])
def test_as_nginx(pair, req):
    weir, nginx = pair
    assert answer(weir.port, req) == answer(nginx.port, req)


def test_the_pixel(pair):
    weir, _ = pair
    lines, body = answer(weir.port, REQUESTS[0])
    assert body.startswith(b"GIF89a") and len(body) == 43 and "Content-Type: image/gif" in lines
