"""open_file_cache: hot files cost no open/stat (descriptors kept per worker), revalidated every
open_file_cache_valid; cached errors with open_file_cache_errors; min_uses; max; and a coherent snapshot of
small files (size, validators and bytes from one validation)."""
import os
import time

from conftest import wait_for


def worker_fds(s, target):
    import subprocess
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(s.master_pid())], capture_output=True, text=True).stdout
    n = 0
    for pid in out.split():
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)).startswith(target):
                    n += 1
            except OSError:
                pass
    return n


CONF = """
    server {
        listen 127.0.0.1:%%PORT%%;
        open_file_cache max=2 inactive=30s;
        open_file_cache_valid 1s;
        location / { }
        location /errors/ { open_file_cache_errors on; alias %%DIR%%/html/; }
        location /minuses/ { open_file_cache_min_uses 3; alias %%DIR%%/html/; }
        location /nocache/ { open_file_cache off; alias %%DIR%%/html/; }
    }
"""


def test_revalidation_and_snapshots(make_server):
    s = make_server(CONF, files={"a.txt": "first version\n", "big.bin": b"x" * 100000})
    r = s.get("/a.txt")
    assert r.body == b"first version\n"
    etag = r.header("ETag")
    # Rewritten in place: until the entry is revalidated, the old snapshot (size, ETag and bytes) is served.
    with open(s.path("html/a.txt"), "w") as f:
        f.write("second, longer version\n")
    os.utime(s.path("html/a.txt"), (time.time() + 5, time.time() + 5))
    r = s.get("/a.txt")
    assert r.body == b"first version\n" and r.header("ETag") == etag
    wait_for(lambda: s.get("/a.txt").body == b"second, longer version\n", timeout=5, what="revalidation")
    r = s.get("/a.txt")
    assert r.header("Content-Length") == "23" and r.header("ETag") != etag
    # A large file is sent from its cached descriptor.
    assert s.get("/big.bin").body == b"x" * 100000
    # Removed: served from the open descriptor until revalidation finds it gone.
    os.unlink(s.path("html/a.txt"))
    wait_for(lambda: s.get("/a.txt").status == 404, timeout=5, what="the removal noticed")


def test_errors_cached_only_when_asked(make_server):
    s = make_server(CONF)
    assert s.get("/errors/late.txt").status == 404
    assert s.get("/nocache/late2.txt").status == 404
    s.write("late.txt", "now here\n")
    s.write("late2.txt", "now here\n")
    assert s.get("/errors/late.txt").status == 404  # the error is cached for open_file_cache_valid
    assert s.get("/nocache/late2.txt").status == 200
    wait_for(lambda: s.get("/errors/late.txt").status == 200, timeout=5, what="the cached error to expire")


def test_descriptors_kept_max_and_min_uses(make_server):
    s = make_server(CONF, files={"f1.bin": b"1" * 50000, "f2.bin": b"2" * 50000, "f3.bin": b"3" * 50000,
                                 "m.bin": b"m" * 50000})
    html = s.path("html/")
    assert s.get("/f1.bin").status == 200
    assert worker_fds(s, html + "f1.bin") == 1  # kept open after the request
    s.get("/f2.bin")
    s.get("/f3.bin")  # max=2: the least recently used entry goes
    assert worker_fds(s, html + "f1.bin") == 0
    assert worker_fds(s, html + "f3.bin") == 1
    # min_uses 3: not kept until the third use.
    s.get("/minuses/m.bin")
    s.get("/minuses/m.bin")
    assert worker_fds(s, html + "m.bin") == 0
    s.get("/minuses/m.bin")
    assert worker_fds(s, html + "m.bin") == 1
    assert s.get("/nocache/f1.bin").body == b"1" * 50000
