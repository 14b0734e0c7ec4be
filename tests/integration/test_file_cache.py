"""The default file cache (#15): with no open_file_cache, each worker keeps hot files open (and small
files' bytes), and inotify on every directory on the way keeps it never stale: after a rename over, an
edit in place, a truncate, a delete, a chmod, a directory renamed or made unsearchable, or a symlink
swapped, the very next request is answered from the new state, as nginx without a cache answers it.
A path with a symbolic link on the way is not cached (its target's changes raise no event there).
open_file_cache_auto off (weir's own) and an explicit open_file_cache off open per request."""
import os
import subprocess

import pytest

from conftest import Client, http_get

CONF = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
        location /off/ { open_file_cache_auto off; alias %%DIR%%/html/; }
        location /nginx-off/ { open_file_cache off; alias %%DIR%%/html/; }
        location /linked/ { alias %%DIR%%/current/; }
    }
"""

SMALL = b"small version one\n"
BIG = os.urandom(100000)  # past what the cache keeps in memory: sent from the kept descriptor


def worker_fds(s, target):
    """How many descriptors of target the workers hold."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(s.master_pid())], capture_output=True,
                         text=True).stdout
    n = 0
    for pid in out.split():
        for fd in os.listdir("/proc/%s/fd" % pid):
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    n += 1
            except OSError:
                pass
    return n


@pytest.fixture
def server(make_server):
    s = make_server(CONF, files={"a.txt": SMALL, "big.bin": BIG, "d/in.txt": b"in d\n"})
    # Warm: each path is cached by its first request.
    for path in ("/a.txt", "/big.bin", "/d/in.txt"):
        assert s.get(path).status == 200
        assert s.get(path).status == 200
    return s


def test_hot_files_are_kept_open(server):
    s = server
    assert worker_fds(s, s.path("html/big.bin")) == 1
    assert worker_fds(s, s.path("html/a.txt")) == 1
    assert s.get("/big.bin").body == BIG


@pytest.mark.parametrize("location", ["/off/", "/nginx-off/"])
def test_turned_off_it_opens_per_request(server, location):
    s = server
    before = worker_fds(s, s.path("html/d/in.txt"))
    assert s.get(location + "d/in.txt").body == b"in d\n"
    assert worker_fds(s, s.path("html/d/in.txt")) == before


def test_a_file_renamed_over(server):
    s = server
    new = s.path("html/a.txt.new")
    with open(new, "wb") as f:
        f.write(b"renamed over\n")
    os.rename(new, s.path("html/a.txt"))
    r = s.get("/a.txt")
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"renamed over\n", "13")


def test_an_edit_in_place_and_its_validators(server):
    s = server
    etag = s.get("/a.txt").header("ETag")
    with open(s.path("html/a.txt"), "r+b") as f:
        f.write(b"SMALL")  # the same size, other bytes
    os.utime(s.path("html/a.txt"), (1700000000, 1700000000))
    r = s.get("/a.txt")
    assert r.body == b"SMALL version one\n"
    assert r.header("ETag") != etag and r.header("Last-Modified") == "Tue, 14 Nov 2023 22:13:20 GMT"
    with open(s.path("html/big.bin"), "r+b") as f:
        f.write(b"changed")
    assert s.get("/big.bin").body == b"changed" + BIG[7:]


def test_a_truncate(server):
    s = server
    os.truncate(s.path("html/a.txt"), 5)
    r = s.get("/a.txt")
    assert (r.body, r.header("Content-Length")) == (b"small", "5")
    os.truncate(s.path("html/big.bin"), 0)
    r = s.get("/big.bin")
    assert (r.status, r.body) == (200, b"")


def test_a_delete_and_the_descriptor_let_go(server):
    s = server
    os.unlink(s.path("html/big.bin"))
    assert s.get("/big.bin").status == 404
    # The deleted file's space is free: no worker holds it any more.
    assert worker_fds(s, s.path("html/big.bin") + " (deleted)") == 0
    os.unlink(s.path("html/a.txt"))
    assert s.get("/a.txt").status == 404


def test_a_chmod(server):
    s = server
    os.chmod(s.path("html/a.txt"), 0)
    assert s.get("/a.txt").status == 403
    os.chmod(s.path("html/a.txt"), 0o644)
    assert s.get("/a.txt").body == SMALL


def test_a_directory_renamed_and_another_put_in_its_place(server):
    s = server
    os.rename(s.path("html/d"), s.path("html/d.old"))
    assert s.get("/d/in.txt").status == 404
    os.makedirs(s.path("html/d"))
    os.chmod(s.path("html/d"), 0o755)
    with open(s.path("html/d/in.txt"), "wb") as f:
        f.write(b"the new d\n")
    os.chmod(s.path("html/d/in.txt"), 0o644)
    assert s.get("/d/in.txt").body == b"the new d\n"


def test_a_directory_made_unsearchable(server):
    s = server
    os.chmod(s.path("html/d"), 0)  # the workers may no longer go through it
    assert s.get("/d/in.txt").status == 403
    os.chmod(s.path("html/d"), 0o755)
    assert s.get("/d/in.txt").body == b"in d\n"


def test_the_root_directory_renamed(server):
    s = server
    os.rename(s.path("html"), s.path("html.old"))
    assert s.get("/a.txt").status == 404
    os.rename(s.path("html.old"), s.path("html"))
    assert s.get("/a.txt").body == SMALL


def test_a_change_between_two_requests_on_a_kept_connection(server):
    """The second request's bytes came after the change: it reads the change events again, though
    the first one on the connection read them a moment before."""
    s = server
    c = Client(s.port)
    try:
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().body == SMALL
        with open(s.path("html/a.txt.new"), "wb") as f:
            f.write(b"renamed over\n")
        os.rename(s.path("html/a.txt.new"), s.path("html/a.txt"))
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().body == b"renamed over\n"
    finally:
        c.close()


def worker_reads(s):
    """read() calls the workers made so far (/proc/PID/io syscr, which counts read and pread, not
    the recvmsg that reads a request)."""
    n = 0
    for pid in s.worker_pids():
        with open("/proc/%d/io" % pid) as f:
            n += int(dict(line.split(": ") for line in f.read().splitlines())["syscr"])
    return n


def test_requests_that_came_together_read_the_change_events_once(server):
    """Twenty pipelined requests for a file kept in memory arrive in one read: the first reads the
    change events (inotify), the other nineteen came before that read began and are answered
    without reading them again. A worker under load reads them once per batch of requests, not
    once per request."""
    s = server
    c = Client(s.port)
    try:
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.response().body == SMALL
        before = worker_reads(s)
        c.send("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        for _ in range(20):
            assert c.response().body == SMALL
        reads = worker_reads(s) - before
        assert 1 <= reads <= 3, reads
    finally:
        c.close()


def test_a_symlink_swapped(make_server):
    s = make_server(CONF, files={"v1/x.txt": b"version 1\n", "v2/x.txt": b"version 2\n"})
    os.symlink(s.path("html/v1"), s.path("current"))
    assert http_get(s.port, "/linked/x.txt").body == b"version 1\n"
    assert http_get(s.port, "/linked/x.txt").body == b"version 1\n"
    # A path through a link is not kept: nothing to watch for its target.
    assert worker_fds(s, s.path("html/v1/x.txt")) == 0
    tmp = s.path("current.new")
    os.symlink(s.path("html/v2"), tmp)
    os.rename(tmp, s.path("current"))
    assert http_get(s.port, "/linked/x.txt").body == b"version 2\n"


def test_it_keeps_an_eighth_of_the_workers_descriptors_at_most(make_server):
    # A worker left at a low RLIMIT_NOFILE must still accept connections: 200 / 8 = 25 kept open.
    files = {"f%d.txt" % i: b"file %d\n" % i for i in range(60)}
    s = make_server(CONF, files=files, main_conf="worker_rlimit_nofile 200;")
    for i in range(60):
        for _ in range(2):
            assert s.get("/f%d.txt" % i).body == b"file %d\n" % i
    held = sum(worker_fds(s, s.path("html/f%d.txt" % i)) for i in range(60))
    assert 0 < held <= 25, held


def test_a_path_spelled_with_double_slashes_is_not_kept(make_server):
    # With merge_slashes off "//a.txt" reaches the file system as ".../html//a.txt": kept, it would
    # move the directory's watch to that spelling and hide the next change of "/a.txt".
    s = make_server("merge_slashes off;\n" + CONF, files={"a.txt": SMALL})
    assert s.get("/a.txt").body == SMALL
    assert s.get("//a.txt").body == SMALL
    assert s.get("/a.txt").body == SMALL
    with open(s.path("html/a.txt.new"), "wb") as f:
        f.write(b"changed\n")
    os.rename(s.path("html/a.txt.new"), s.path("html/a.txt"))
    assert s.get("/a.txt").body == b"changed\n"
    assert s.get("//a.txt").body == b"changed\n"


def may(argv):
    """Whether this machine lets the test do what argv does (a mount, a user namespace): where it
    does not (a container without the capability), the test is skipped, and says why."""
    return subprocess.run(argv, capture_output=True).returncode == 0


def test_a_tmpfs_unmounted_underneath(make_server, tmp_path):
    if not may(["sh", "-c", "mount -t tmpfs tmpfs %s && umount %s" % (tmp_path, tmp_path)]):
        pytest.skip("no permission to mount a tmpfs here")
    """A file system mounted on a served directory, then unmounted (lazily: weir holds a file of
    it open): each time the next request is answered from what the path names now (the mount
    table's poll drops what was kept)."""
    s = make_server(CONF, files={"mnt/f.txt": b"under the mount\n"})
    mnt = s.path("html/mnt")
    assert s.get("/mnt/f.txt").body == b"under the mount\n"
    assert worker_fds(s, s.path("html/mnt/f.txt")) == 1  # kept
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", mnt], check=True)
    try:
        # Mounted over: the path names another file, though nothing changed on the way.
        s.write("mnt/f.txt", b"on the tmpfs\n")
        assert s.get("/mnt/f.txt").body == b"on the tmpfs\n"
        assert s.get("/mnt/f.txt").body == b"on the tmpfs\n"  # kept
        assert worker_fds(s, s.path("html/mnt/f.txt")) == 1
    finally:
        subprocess.run(["umount", "-l", mnt], check=True)
    r = s.get("/mnt/f.txt")
    assert (r.status, r.body) == (200, b"under the mount\n")


# Runs weir in a user namespace of its own (identity-mapped, so root stays root and can drop to
# nobody), where only two inotify watches are allowed: the limit of that namespace alone.
TWO_WATCHES = """#!/usr/bin/python3
import ctypes, os, sys
me = os.getpid()
r, w = os.pipe()
if os.fork() == 0:  # still outside: writes the new namespace's maps
    os.read(r, 1)
    for m in ("uid_map", "gid_map"):
        with open("/proc/%d/%s" % (me, m), "w") as f:
            f.write("0 0 4294967295")
    os._exit(0)
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
    sys.exit("unshare: %s" % os.strerror(ctypes.get_errno()))
os.write(w, b"x")
os.wait()
with open("/proc/sys/user/max_inotify_watches", "w") as f:
    f.write("2")
os.execv(WEIR, [WEIR] + sys.argv[1:])
"""


def test_no_watch_left_falls_back_to_opening_per_request(make_server):
    """inotify exhausted (two watches allowed): the tree is served by an open per request, logged
    once, and never stale."""
    if not may(["/usr/bin/python3", "-c", "import ctypes, sys; "
                "sys.exit(ctypes.CDLL(None).unshare(0x10000000) != 0)"]):
        pytest.skip("no permission to make a user namespace here")
    s = make_server(CONF, start=False, files={"a.txt": SMALL})
    wrapper = s.path("weir-with-two-watches")
    with open(wrapper, "w") as f:
        f.write(TWO_WATCHES.replace("WEIR", repr(s.binary)))
    os.chmod(wrapper, 0o755)
    s.binary = wrapper
    s.start()
    assert s.get("/a.txt").body == SMALL
    assert s.get("/a.txt").body == SMALL
    log = s.error_log()
    assert "inotify_add_watch() failed for" in log and "(28: No space left on device)" in log
    assert "files on that way are opened per request, not cached" in log
    assert worker_fds(s, s.path("html/a.txt")) == 0
    with open(s.path("html/a.txt"), "r+b") as f:
        f.write(b"SMALL")  # in place, the same size
    assert s.get("/a.txt").body == b"SMALL" + SMALL[5:]
