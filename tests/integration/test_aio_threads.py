"""aio threads and thread_pool (#13): a worker's pools of threads read file ranges before the event
loop sends them (sendfile) or copies them (sendfile off), so a slow disk never stalls the loop. What
the threads read is seen in the kernel's per-thread I/O accounting (/proc/PID/task/TID/io); what
clients get is compared with Debian's nginx on the same configuration; the configuration's errors
are nginx's."""
import hashlib
import os
import signal
import socket
import subprocess

import pytest

from conftest import NGINX, WEIR, check_conf, http_get, read_to_end, slow_client, wait_for

BODY = os.urandom(5 << 20)

CONF = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { aio threads; sendfile on; }
        location /copy/ { alias %%DIR%%/html/; aio threads=small; sendfile off; }
        location /var/ { alias %%DIR%%/html/; set $pool small; aio threads=$pool; }
        location /arg/ { alias %%DIR%%/html/; aio threads=$arg_pool; }
        location /one/ { alias %%DIR%%/html/; aio threads=one; sendfile off; }
        location /plain/ { alias %%DIR%%/html/; sendfile on; }
    }
"""
MAIN = "thread_pool small threads=2; thread_pool one threads=1 max_queue=0; worker_processes 1;"


def thread_io(pid, field):
    """{thread name: [its /proc io field, per thread]} for each thread of a worker but its main one:
    rchar is what its read calls took, wchar what its write calls gave."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        if int(tid) == pid:
            continue
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            name = f.read().strip()
        with open("/proc/%d/task/%s/io" % (pid, tid)) as f:
            value = int([l for l in f.read().splitlines() if l.startswith(field + ":")][0].split()[1])
        out.setdefault(name, []).append(value)
    return out


def threads_of(pid):
    return thread_io(pid, "rchar")


def read_by(pid):
    return {name: sum(v) for name, v in threads_of(pid).items()}


def uncache(path):
    """Out of the page cache, so the next read goes to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


POOLS = {"default": 32, "small": 2, "one": 1}


def pools_started(s, pools=None):
    """Each pool's threads, once the worker has made them all (it may accept before)."""
    def counts():
        pids = s.worker_pids()
        return len(pids) == 1 and {k: len(v) for k, v in threads_of(pids[0]).items()}
    wait_for(lambda: counts() == (pools or POOLS), what="the pools' threads")
    return s


@pytest.fixture
def server(make_server):
    return pools_started(make_server(CONF, main_conf=MAIN, files={"5m.bin": BODY, "small.txt": b"hello\n"}))


def test_each_pool_has_its_threads(server):
    (pid,) = server.worker_pids()
    assert {k: len(v) for k, v in threads_of(pid).items()} == POOLS


@pytest.mark.parametrize("path,pool", [("/5m.bin", "default"), ("/copy/5m.bin", "small"),
                                       ("/var/5m.bin", "small"), ("/arg/5m.bin?pool=small", "small")],
                         ids=["sendfile", "copied", "pool-in-variable", "pool-from-argument"])
def test_the_pool_reads_the_file(server, path, pool):
    (pid,) = server.worker_pids()
    uncache(server.path("html/5m.bin"))
    before = read_by(pid)
    r = http_get(server.port, path)
    assert r.status == 200 and hashlib.sha256(r.body).digest() == hashlib.sha256(BODY).digest()
    after = read_by(pid)
    grown = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    # The pool's threads read it all (the loop then sent it from the page cache).
    assert list(grown) == [pool] and grown[pool] >= len(BODY), grown
    # Without aio no thread reads.
    before = read_by(pid)
    r = http_get(server.port, "/plain/5m.bin")
    assert r.status == 200 and len(r.body) == len(BODY)
    assert read_by(pid) == before
    server.check_clean()


def ranges_as_nginx(servers, path):
    """The whole file and ranges of it (aligned or not, at the ends, several) as weir and nginx
    answer them (a multipart body by its length: the boundary differs)."""
    for rng in (None, "bytes=0-0", "bytes=1000-2000999", "bytes=-70001", "bytes=5000000-",
                "bytes=4999999-", "bytes=0-1,4242424-4343434"):
        answers = []
        for s in servers:
            r = http_get(s.port, path, headers={"Range": rng} if rng else None)
            ctype = r.header("content-type", "").split("boundary=")[0]
            body = r.body if "multipart" not in ctype else len(r.body)
            answers.append((r.status, r.header("content-range"), r.header("content-length"), ctype,
                            body))
        assert answers[0] == answers[1], (path, rng)


def test_ranges_and_small_files_as_nginx(make_server):
    files = {"5m.bin": BODY, "small.txt": b"hello\n"}
    servers = [make_server(CONF, main_conf=MAIN, files=files, binary=b) for b in (WEIR, NGINX)]
    for prefix in ("/", "/copy/"):
        ranges_as_nginx(servers, prefix + "5m.bin")
        for r in [http_get(s.port, prefix + "small.txt") for s in servers]:
            assert r.status == 200 and r.body == b"hello\n"
        for r in [http_get(s.port, prefix + "5m.bin", method="HEAD") for s in servers]:
            assert r.status == 200 and r.body == b"" and r.header("content-length") == str(len(BODY))
    servers[0].check_clean()


def test_a_full_queue_is_logged_and_the_loop_reads(server):
    # max_queue=0: no task is ever taken. nginx fails the request; weir reads the file itself.
    r = http_get(server.port, "/one/5m.bin")
    assert r.status == 200 and r.body == BODY
    wait_for(lambda: 'thread pool "one" queue overflow: 0 tasks waiting' in server.error_log(),
             what="the overflow logged")
    assert "[error]" in [l for l in server.error_log().splitlines() if "overflow" in l][0]


def test_a_pool_named_by_a_variable_that_does_not_exist(server):
    c = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    c.sendall(b"GET /arg/5m.bin?pool=nope HTTP/1.0\r\n\r\n")
    got = read_to_end(c)
    assert len(got) < len(BODY)
    wait_for(lambda: 'thread pool "nope" not found' in server.error_log(), what="the error line")
    assert http_get(server.port, "/arg/small.txt?pool=small").body == b"hello\n"


def test_clients_that_leave_while_the_thread_reads(server):
    # Each client asks for the file out of the page cache and leaves at once: the thread's read
    # ends after its request. The worker stays clean and serves the next one.
    for i in range(40):
        uncache(server.path("html/5m.bin"))
        c = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        c.sendall(("GET /%s5m.bin HTTP/1.1\r\nHost: t\r\n\r\n" % ("copy/" if i % 2 else "")).encode())
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    r = http_get(server.port, "/copy/5m.bin")
    assert r.status == 200 and r.body == BODY
    server.check_clean()


def test_quit_and_reload_with_threads(server):
    (pid,) = server.worker_pids()
    server.send_signal(signal.SIGHUP)
    wait_for(lambda: server.worker_pids() and pid not in server.worker_pids(), what="a new worker")
    pools_started(server)
    assert http_get(server.port, "/copy/5m.bin").body == BODY


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
@pytest.mark.parametrize("main,http,message", [
    ("thread_pool x;", "", 'invalid number of arguments in "thread_pool" directive'),
    ("thread_pool x threads=0;", "", 'invalid threads value "threads=0"'),
    ("thread_pool x threads=2 max_queue=a;", "", 'invalid max_queue value "max_queue=a"'),
    ("thread_pool x max_queue=4;", "", '"thread_pool" must have "threads" parameter'),
    ("thread_pool x threads=2; thread_pool x threads=3;", "", 'duplicate thread pool "x"'),
    ("", "aio sometimes;", '"aio" directive invalid value'),
    ("", "aio threads; aio off;", '"aio" directive is duplicate'),
    ("", "aio_write maybe;", 'invalid value "maybe" in "aio_write" directive'),
])
def test_configuration_errors_as_nginx(binary, main, http, message):
    conf = ("daemon off; pid %%DIR%%/logs/p; error_log %%DIR%%/logs/error.log;" + main +
            " events {} http { " + http + " }")
    rc, err = check_conf(binary, full_conf=conf)
    assert rc == 1 and message in err, err


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_an_unknown_pool_fails_the_load(binary):
    conf = ("daemon off; pid %%DIR%%/logs/p; error_log %%DIR%%/logs/error.log; events {} http {\n"
            " server { location / {\n aio threads=nope; } } }")
    rc, err = check_conf(binary, full_conf=conf)
    assert rc == 1 and 'unknown thread pool "nope" in ' in err and "nginx.conf:3" in err, err


def written_by(pid):
    return {name: sum(v) for name, v in thread_io(pid, "wchar").items()}


PROXY = """
    server {
        listen 127.0.0.1:%%%%PORT%%%% sndbuf=16k;
        proxy_max_temp_file_size 1g;
        proxy_temp_file_write_size 64k;
        location / { proxy_pass http://127.0.0.1:%d; aio threads; aio_write on; }
        location /sync/ { proxy_pass http://127.0.0.1:%d/; aio threads; }
    }
"""


@pytest.mark.parametrize("prefix,pool_writes", [("", True), ("/sync", False)],
                         ids=["aio_write", "aio_write-off"])
def test_temp_file_writes_in_the_pool(make_server, prefix, pool_writes):
    origin = make_server("server { listen 127.0.0.1:%%PORT%%; }", binary=NGINX,
                         files={"5m.bin": BODY})
    s = pools_started(make_server(PROXY % (origin.port, origin.port), main_conf="worker_processes 1;"),
                      {"default": 32})
    (pid,) = s.worker_pids()
    before = written_by(pid)
    # A client that reads nothing at first: the upstream's 5 MiB go to the temp file.
    c = slow_client(s.port, prefix + "/5m.bin")
    wait_for(lambda: "buffered to a temporary file" in s.error_log(), what="the spill")
    got = read_to_end(c)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == BODY
    grown = written_by(pid)["default"] - before["default"]
    if pool_writes:
        assert grown > len(BODY) // 2, grown  # most of it spilled, through the pool
    else:
        assert grown < 65536, grown  # only the 8-byte notes of finished reads to the loop
    s.check_clean()


def test_clients_that_leave_while_the_thread_writes(make_server):
    origin = make_server("server { listen 127.0.0.1:%%PORT%%; }", binary=NGINX,
                         files={"5m.bin": BODY})
    s = make_server(PROXY % (origin.port, origin.port), main_conf="worker_processes 1;")
    for _ in range(20):
        c = slow_client(s.port, "/5m.bin")
        c.recv(100)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    r = http_get(s.port, "/5m.bin")
    assert r.status == 200 and r.body == BODY
    s.check_clean()


DIRECTIO = """
    server {
        listen 127.0.0.1:%%PORT%% sndbuf=16k;
        location / { directio 1m; }
        location /t/ { alias %%DIR%%/html/; directio 1m; aio threads=small; }
        location /k/ { alias %%DIR%%/html/; directio 1m; directio_alignment 4k; output_buffers 1 100k; }
    }
"""
DIRECTIO_ON = """
    server {
        listen 127.0.0.1:%%PORT%% sndbuf=16k;
        location / { directio 1m; aio on; }
    }
"""
O_DIRECT = 0o40000


def direct_fds(pid):
    """The worker's descriptors opened with O_DIRECT."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = int([l for l in f.read().splitlines() if l.startswith("flags:")][0].split()[1], 8)
        except (OSError, IndexError):
            continue
        n += bool(flags & O_DIRECT)
    return n


@pytest.mark.parametrize("prefix", ["/", "/t/", "/k/"], ids=["directio", "with-threads", "aligned-4k"])
def test_directio_as_nginx(make_server, prefix):
    files = {"5m.bin": BODY, "small.txt": b"hello\n"}
    servers = [make_server(DIRECTIO, main_conf=MAIN, files=files, binary=b) for b in (WEIR, NGINX)]
    ranges_as_nginx(servers, prefix + "5m.bin")
    assert http_get(servers[0].port, prefix + "small.txt").body == b"hello\n"
    servers[0].check_clean()


@pytest.mark.parametrize("conf,prefix,pool", [(DIRECTIO, "/", None), (DIRECTIO, "/t/", "small"),
                                              (DIRECTIO_ON, "/", "default")],
                         ids=["in-the-loop", "aio-threads", "aio-on"])
def test_directio_reads_bypass_the_cache(make_server, conf, prefix, pool):
    s = make_server(conf, main_conf=MAIN, files={"5m.bin": BODY, "small.txt": b"hello\n"})
    # (the default pool exists when named: by aio on with directio, here)
    pools_started(s, {"small": 2, "one": 1} if conf == DIRECTIO else POOLS)
    (pid,) = s.worker_pids()
    before = read_by(pid)
    # A client that reads slowly: the response is under way, through an O_DIRECT descriptor.
    c = slow_client(s.port, prefix + "5m.bin")
    first = c.recv(1000)
    wait_for(lambda: direct_fds(pid) == 1, what="an O_DIRECT descriptor")
    head, _, body = (first + read_to_end(c)).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == BODY
    wait_for(lambda: direct_fds(pid) == 0, what="the descriptor closed with the request")
    grown = {k: v - before.get(k, 0) for k, v in read_by(pid).items() if v != before.get(k, 0)}
    if pool is None:
        assert grown == {}
    else:
        assert list(grown) == [pool] and grown[pool] >= len(BODY), grown
    # A file below the directio size is sent as any other.
    assert http_get(s.port, prefix + "small.txt").body == b"hello\n"
    assert direct_fds(pid) == 0
    s.check_clean()


def test_aio_on_with_one_aio_request_at_a_time(make_server):
    # worker_aio_requests 1: one directio read in a thread at a time (nginx's AIO context of one);
    # a read asked for meanwhile is made in the loop, as nginx makes it when io_submit() says
    # EAGAIN. Four downloads at once each get the whole file, and the first read, with nothing in
    # flight, is the pool's.
    s = make_server(DIRECTIO_ON, main_conf=MAIN, events="worker_aio_requests 1;",
                    files={"5m.bin": BODY})
    pools_started(s)
    (pid,) = s.worker_pids()
    before = read_by(pid)
    clients = [slow_client(s.port, "/5m.bin") for _ in range(4)]
    for c in clients:
        head, _, body = read_to_end(c).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == BODY
    assert read_by(pid)["default"] > before.get("default", 0)
    s.check_clean()


@pytest.mark.parametrize("http,message", [
    ("directio sometimes;", '"directio" directive invalid value'),
    ("directio 1m; directio off;", '"directio" directive is duplicate'),
    ("directio_alignment 3k;", '"directio_alignment" directive must be a power of two up to 4096'),
])
def test_directio_configuration_errors(http, message):
    conf = ("daemon off; pid %%DIR%%/logs/p; error_log %%DIR%%/logs/error.log; events {} http { "
            + http + " }")
    rc, err = check_conf(WEIR, full_conf=conf)
    assert rc == 1 and message in err, err
    if "alignment" not in http:  # nginx takes any alignment
        rc, err = check_conf(NGINX, full_conf=conf)
        assert rc == 1 and message in err, err


def test_subrequests_wait_for_their_ranges(make_server):
    # SSI includes of large files, sent and copied: each subrequest waits for its thread in turn.
    page = b'head\n<!--# include virtual="/5m.bin" -->\nmid\n<!--# include virtual="/copy/5m.bin" -->\n'
    s = make_server(CONF.replace("location / {", 'location ~ \\.shtml$ { ssi on; ssi_types *; }\n'
                                 "        location / {"),
                    main_conf=MAIN, files={"5m.bin": BODY, "page.shtml": page})
    r = http_get(s.port, "/page.shtml")
    assert r.status == 200 and r.body == b"head\n" + BODY + b"\nmid\n" + BODY + b"\n"
    s.check_clean()


def test_http2_streams_wait_for_their_ranges(make_server, tmp_path):
    # Three streams on one HTTP/2 connection at once, sent, copied and read with directio: each
    # stream's write event brings it on when its thread is done.
    conf = CONF.replace("listen 127.0.0.1:%%PORT%%;", "listen 127.0.0.1:%%PORT%%; http2 on;").replace(
        "location /plain/", "location /d/ { alias %%DIR%%/html/; aio threads; directio 1m; }\n"
        "        location /plain/")
    s = pools_started(make_server(conf, main_conf=MAIN, files={"5m.bin": BODY}))
    paths = ["/5m.bin", "/copy/5m.bin", "/d/5m.bin"]
    cmd = ["curl", "-s", "--http2-prior-knowledge", "--parallel", "--parallel-immediate"]
    for i, p in enumerate(paths):
        cmd += ["-o", str(tmp_path / str(i)), "http://127.0.0.1:%d%s" % (s.port, p)]
    subprocess.run(cmd, check=True, timeout=60)
    for i in range(len(paths)):
        assert (tmp_path / str(i)).read_bytes() == BODY, paths[i]
    s.check_clean()
