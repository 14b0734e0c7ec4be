"""random_index (ngx_http_random_index_module, in Debian's nginx): a directory's request answered by
one of its files drawn at random - every file in turn over enough requests, symbolic links by what
they point to, never a hidden name, a directory or a dangling link; and the answers that do not
depend on the draw compared with Debian's nginx: a directory of one file, one with none (index
takes it), a missing one, random_index off, HEAD and POST."""
import os

import pytest

from conftest import parity_answer as answer
from conftest import weir_and_nginx

FILES = {"r/a.html": b"A\n", "r/b.html": b"B\n", "r/c.txt": b"C\n", "r/.hidden": b"hidden\n",
         "r/sub/x.html": b"X\n", "one/only.html": b"only\n", "none/sub/y.html": b"Y\n",
         "withindex/index.html": b"index\n", "off/a.html": b"a\n"}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location / { random_index on; }
        location /off/ { random_index off; }
    }
"""


def prepare(s):
    os.symlink("a.html", s.path("html/r/link.html"))
    os.symlink("missing.html", s.path("html/r/dangling.html"))


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, prepare=prepare)


@pytest.mark.parametrize("path", ["/one/", "/one/?x=1", "/none/", "/missing/", "/off/",
                                  "/one/only.html", "/withindex/"])
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


@pytest.mark.parametrize("method", ["HEAD", "POST"])
def test_methods_as_nginx(pair, method):
    weir, nginx = pair
    assert answer(weir.port, "/one/", method) == answer(nginx.port, "/one/", method)


def test_each_file_is_drawn(pair):
    weir, _ = pair
    seen = {}
    for _ in range(80):
        lines, body = answer(weir.port, "/r/")
        assert lines[0] == "HTTP/1.1 200 OK", lines
        seen[body] = seen.get(body, 0) + 1
    # a.html twice over (itself and link.html); never .hidden, sub/ or the dangling link.
    assert set(seen) == {b"A\n", b"B\n", b"C\n"}, seen
