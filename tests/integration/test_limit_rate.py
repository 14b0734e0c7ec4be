"""limit_rate and limit_rate_after, measured over a real socket."""
import os
import socket
import time

import pytest

from conftest import NGINX, Client, read_to_end


def timed_get(port, path):
    c = Client(port, timeout=30)
    t = time.time()
    c.send("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
    r = c.response()
    return r, time.time() - t


def test_limit_rate_is_measured(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /slow/ { limit_rate 100k; alias %%DIR%%/html/; }
        location /after/ { limit_rate 100k; limit_rate_after 200k; alias %%DIR%%/html/; }
        location /var/ { set $limit_rate 200k; alias %%DIR%%/html/; }
        location / { }
    }
    """
    data = b"z" * (300 * 1024)
    s = make_server(conf, files={"f.bin": data})
    r, fast = timed_get(s.port, "/f.bin")
    assert r.body == data and fast < 1.0
    # 300 KiB at 100 KiB/s: nginx's algorithm sends a second's worth at once, then paces: ~2 s.
    r, slow = timed_get(s.port, "/slow/f.bin")
    assert r.body == data
    assert 1.6 < slow < 3.5, slow
    # The first 200 KiB at full speed, then 100 KiB at 100 KiB/s: ~1 s.
    r, after = timed_get(s.port, "/after/f.bin")
    assert r.body == data
    assert 0.6 < after < 2.2, after
    r, var = timed_get(s.port, "/var/f.bin")
    assert r.body == data
    assert 0.4 < var < 1.8, var


@pytest.mark.parametrize("binary", [None, NGINX], ids=["weir", "nginx"])
def test_a_paced_proxied_response_keeps_its_pace(make_server, binary):
    """limit_rate on a buffered proxied response whose client's socket fills (sndbuf=16k): each
    pause is limit_rate's own. It used to be replaced by send_timeout, so every pause lasted 60 s
    and a 2 MiB answer at 1 MiB/s never came within the 30 s this client waits."""
    data = os.urandom(2 << 20)
    origin = make_server("server { listen 127.0.0.1:%%PORT%%; root %%DIR%%/html; }",
                         binary=NGINX, files={"2m.bin": data})
    s = make_server("""
        server {
            listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
            location / { limit_rate 1m; proxy_pass http://127.0.0.1:%d; }
        }
    """ % origin.port, binary=binary)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    c.sendall(b"GET /2m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = read_to_end(c).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == data
    s.check_clean()
