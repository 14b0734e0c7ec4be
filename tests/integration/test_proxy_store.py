"""proxy_store and proxy_store_access (#23): a 200 response read whole is kept as a file - where
root maps the URI, or at a path with variables - with the mode proxy_store_access gives (its
directories made), dated by Last-Modified; other statuses, short bodies and `off` store nothing, and
no temp file is left. A client that leaves early does not stop the file. Checked beside Debian's
nginx on the same config and origin."""
import os
import socket
import stat
import threading

import pytest

from backend import Backend, Close, Send, Wait, chunked, response
from conftest import raw, wait_for, weir_and_nginx

LM = "Wed, 21 Oct 2015 07:28:00 GMT"
LM_EPOCH = 1445412480
BIG = bytes(range(256)) * 4096  # 1 MiB
REST = threading.Event()  # the second half of big.bin waits for it

CONF = r"""
    proxy_temp_path %%DIR%%/proxy_temp;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /mirror/ {
            root %%DIR%%/store;
            proxy_store on;
            proxy_store_access user:rw group:rw all:r;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /named/ {
            proxy_store %%DIR%%/store/by-name$uri.copy;
            proxy_pass http://127.0.0.1:ORIGIN;
        }
        location /off/ { proxy_store off; proxy_pass http://127.0.0.1:ORIGIN; }
    }
"""


def script(b):
    b.script("/mirror/a.txt", [response(200, "hello\n", {"Last-Modified": LM})])
    b.script("/mirror/deep/dir/b.txt", chunked(["chunk one ", "chunk two\n"]))
    b.script("/mirror/empty.txt", [response(200, "")])
    b.script("/mirror/missing.txt", [response(404, "not here\n")])
    b.script("/mirror/short.txt", [Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten.."),
                                   Close()])
    half = len(BIG) // 2
    b.script("/mirror/big.bin", [Send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) +
                                      BIG[:half]), Wait(REST), Send(BIG[half:])])
    b.script("/named/n.txt", [response(200, "named\n")])
    b.script("/off/o.txt", [response(200, "off\n")])


@pytest.fixture(scope="module")
def origin():
    with Backend() as b:
        script(b)
        yield b


def prepare(s):
    os.makedirs(s.path("store"), exist_ok=True)
    os.chmod(s.path("store"), 0o777)  # the workers run as nobody when the tests run as root


@pytest.fixture(scope="module")
def pair(origin):
    yield from weir_and_nginx(CONF.replace("ORIGIN", str(origin.port)), {}, prepare=prepare)


def stored(s, rel):
    p = s.path("store/" + rel)
    if not os.path.exists(p):
        return None
    st = os.stat(p)
    with open(p, "rb") as f:
        return f.read(), stat.S_IMODE(st.st_mode)


def temp_files(s):
    n = 0
    for _, _, files in os.walk(s.path("proxy_temp")):
        n += len(files)
    return n


def test_what_is_stored_as_nginx_stores_it(pair):
    paths = ["/mirror/a.txt", "/mirror/deep/dir/b.txt", "/mirror/empty.txt", "/mirror/missing.txt",
             "/mirror/short.txt", "/named/n.txt", "/off/o.txt"]
    for s in pair:
        for p in paths:
            raw(s.port, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % p)  # whole or cut short
    weir, nginx = pair
    for rel in ["mirror/a.txt", "mirror/deep/dir/b.txt", "mirror/empty.txt", "mirror/missing.txt",
                "mirror/short.txt", "by-name/named/n.txt.copy", "off/o.txt"]:
        assert stored(weir, rel) == stored(nginx, rel), rel
    assert stored(weir, "mirror/a.txt") == (b"hello\n", 0o664)
    assert os.stat(weir.path("store/mirror/a.txt")).st_mtime == LM_EPOCH
    assert stored(weir, "mirror/deep/dir/b.txt") == (b"chunk one chunk two\n", 0o664)
    assert stat.S_IMODE(os.stat(weir.path("store/mirror/deep/dir")).st_mode) == \
        stat.S_IMODE(os.stat(nginx.path("store/mirror/deep/dir")).st_mode)
    assert stored(weir, "mirror/empty.txt") == (b"", 0o664)
    assert stored(weir, "by-name/named/n.txt.copy") == (b"named\n", 0o600)
    for rel in ["mirror/missing.txt", "mirror/short.txt", "off/o.txt"]:
        assert stored(weir, rel) is None, rel
    # Every temp file was moved into place or deleted.
    wait_for(lambda: temp_files(weir) == 0, what="no temp file left")


def test_a_client_that_leaves_does_not_stop_the_file(pair):
    weir, _ = pair
    c = socket.create_connection(("127.0.0.1", weir.port), timeout=10)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(b"GET /mirror/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.recv(100).startswith(b"HTTP/1.1 200")
    c.close()
    REST.set()  # the rest of the body comes after the client has gone
    wait_for(lambda: stored(weir, "mirror/big.bin") is not None, what="the stored file")
    assert stored(weir, "mirror/big.bin") == (BIG, 0o664)
    wait_for(lambda: temp_files(weir) == 0, what="no temp file left")


@pytest.mark.parametrize("directive,error", [
    ("proxy_store_access user:rwx;", 'invalid value "user:rwx"'),
    ("proxy_store_access other:r;", 'invalid value "other:r"'),
    ("proxy_store on; proxy_store off;", '"proxy_store" directive is duplicate'),
])
def test_load_errors_as_nginx(directive, error):
    from conftest import NGINX, WEIR, check_conf
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; location / { " + directive +
                             " proxy_pass http://127.0.0.1:1; } }")
        assert rc != 0 and error in err, (binary, err)
