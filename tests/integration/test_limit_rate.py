"""limit_rate and limit_rate_after, measured over a real socket."""
import time

from conftest import Client


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
