"""disable_symlinks (#15: the rules every file lookup follows): on, if_not_owner and from= (a path,
a variable, with and without its trailing slash), through the static handler, index, try_files,
`if (-f ...)` and with open_file_cache on. Every answer and every error-log line compared with
Debian's nginx on the same tree of links: a link to a file is refused with 403 and "(40: Too many
levels of symbolic links)", a link to a directory with 404 and "(20: Not a directory)", a link
whose owner is not its target's under if_not_owner; the load errors in nginx's words."""
import os
import re

import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

FILES = {"real/f.txt": b"f\n", "real/sub/g.txt": b"g\n", "real/index.html": b"index\n"}

CONF = r"""
    default_type text/plain;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /on/ { disable_symlinks on; alias %%DIR%%/html/; }
        location /own/ { disable_symlinks if_not_owner; alias %%DIR%%/html/; }
        location /from/ { disable_symlinks on from=%%DIR%%/html; alias %%DIR%%/html/; }
        location /fromslash/ { disable_symlinks on from=%%DIR%%/html/; alias %%DIR%%/html/; }
        location /fromdoc/ { disable_symlinks on from=$document_root; alias %%DIR%%/html/; }
        location /fromother/ { disable_symlinks on from=/elsewhere; alias %%DIR%%/html/; }
        location /tf/ { disable_symlinks on; alias %%DIR%%/html/; try_files $uri =418; }
        location /idx/ { disable_symlinks on; alias %%DIR%%/html/dirlink/; }
        location /if/ { disable_symlinks on; alias %%DIR%%/html/;
                        if (-f $request_filename) { return 200 "file\n"; } return 200 "none\n"; }
        location /cached/ { open_file_cache max=16; disable_symlinks on; alias %%DIR%%/html/; }
        location /cachedoff/ { open_file_cache max=16; alias %%DIR%%/html/; }
        location /off/ { disable_symlinks off; alias %%DIR%%/html/; }
    }
"""

PREFIXES = ["/on/", "/own/", "/from/", "/fromslash/", "/fromdoc/", "/fromother/", "/tf/", "/if/",
            "/cachedoff/", "/cached/", "/off/"]
NAMES = ["real/f.txt", "dirlink/f.txt", "flink.txt", "nobodylink.txt", "abslink/f.txt", "dirlink/",
         "real/", "dirlink", "missing.txt", "real/sub/g.txt", "dirlink/sub/g.txt"]
PATHS = [p + n for p in PREFIXES for n in NAMES] + ["/idx/", "/idx/f.txt"]


def make_links(server):
    html = server.path("html")
    os.symlink("real", os.path.join(html, "dirlink"))
    os.symlink("real/f.txt", os.path.join(html, "flink.txt"))
    os.symlink("real/f.txt", os.path.join(html, "nobodylink.txt"))
    os.lchown(os.path.join(html, "nobodylink.txt"), 65534, -1)  # not the target's owner
    os.symlink(os.path.join(html, "real"), os.path.join(html, "abslink"))


@pytest.fixture(scope="module")
def pair():
    if os.geteuid() != 0:
        pytest.fail("the if_not_owner cases give a link another owner: run as root (as CI does)")
    yield from weir_and_nginx(CONF, FILES, prepare=make_links)


def answer(port, path):
    out = raw(port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
    head, _, body = out.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0]
    location = [l.split(b":", 1)[1].strip().split(b"/", 3)[-1] for l in head.split(b"\r\n")
                if l.lower().startswith(b"location:")]
    # Built-in error pages name the server; the status says what they are.
    return status, location, body if status.startswith(b"HTTP/1.1 200") else b""


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert answer(weir.port, "/on/real/f.txt")[0] == b"HTTP/1.1 200 OK"
    assert answer(weir.port, "/on/flink.txt")[0] == b"HTTP/1.1 403 Forbidden"
    assert answer(weir.port, "/on/dirlink/f.txt")[0] == b"HTTP/1.1 404 Not Found"
    assert answer(weir.port, "/off/flink.txt")[0] == b"HTTP/1.1 200 OK"
    assert answer(weir.port, "/own/flink.txt")[0] == b"HTTP/1.1 200 OK"  # same owner
    assert answer(weir.port, "/own/nobodylink.txt")[0] == b"HTTP/1.1 403 Forbidden"
    assert answer(weir.port, "/tf/flink.txt")[0] == b"HTTP/1.1 418 "
    assert answer(weir.port, "/if/flink.txt")[2] == b"none\n"
    # A file the open-file cache holds from a location without the rule is not served through one
    # with it.
    assert answer(weir.port, "/cachedoff/flink.txt")[0] == b"HTTP/1.1 200 OK"
    assert answer(weir.port, "/cached/flink.txt")[0] == b"HTTP/1.1 403 Forbidden"


def test_log_lines_as_nginx(pair):
    lines = []
    for s in pair:
        for path in ("/on/flink.txt", "/on/dirlink/f.txt", "/own/nobodylink.txt", "/from/missing.txt"):
            answer(s.port, path)
        log = s.error_log().replace(s.dir, "DIR")
        lines.append([re.sub(r"^.*?\*\d+ ", "", l).split(", client")[0]
                      for l in log.splitlines() if "[error]" in l][-4:])
    assert lines[0] == lines[1]
    assert lines[0][0] == 'openat() "DIR/html/flink.txt" failed (40: Too many levels of symbolic links)'


@pytest.mark.parametrize("directive,error", [
    ("disable_symlinks maybe;", 'invalid parameter "maybe"'),
    ("disable_symlinks from=/x;", '"disable_symlinks" must have "off", "on" or "if_not_owner" parameter'),
    ("disable_symlinks on off;", 'duplicate parameters "on off"'),
    ("disable_symlinks off from=/x;", '"from=" cannot be used with "off" parameter'),
    ("disable_symlinks on; disable_symlinks off;", '"disable_symlinks" directive is duplicate'),
])
def test_load_errors_as_nginx(directive, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, directive + "\nserver { listen 127.0.0.1:%%PORT%%; }")
        assert rc != 0 and error in err and "nginx.conf:" in err, (binary, err)
