"""Processes and signals: reload under continuous load with zero failed requests, a failed reload keeping
the old workers, graceful quit finishing a slow download, fast stop, worker respawn after SIGKILL, log
reopening, master_process off, daemon mode, and running out of worker_connections."""
import os
import signal
import socket
import subprocess
import threading
import time

from conftest import Client, http_get, wait_for


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(x) for x in out.split())


def proc_title(pid):
    try:
        return open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


class Load:
    """Continuous requests from several threads, over new and keep-alive connections."""

    def __init__(self, port, threads=4):
        self.port = port
        self.stop = False
        self.ok = 0
        self.retries = 0
        self.failures = []
        self.bodies = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i % 2 == 0,)) for i in range(threads)]

    def run(self, keepalive):
        c = None
        while not self.stop:
            try:
                if keepalive:
                    if c is None:
                        c = Client(self.port, timeout=10)
                    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    r = c.response()
                    if r.header("Connection") == "close":
                        c.close()
                        c = None
                else:
                    r = http_get(self.port, "/")
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                        self.bodies.add(r.body)
                    else:
                        self.failures.append(r.status)
            except Exception as e:  # noqa: BLE001 - any failure counts
                if c is not None:
                    # An idle keep-alive connection that an old worker closed as it shut down, just as the
                    # next request was sent: clients retry such a request on a new connection. (nginx
                    # closes it with the request unread, which the client sees as a reset.)
                    c.close()
                    c = None
                    if "closed before a full response: b''" in str(e) or \
                            isinstance(e, (BrokenPipeError, ConnectionResetError)):
                        with self.lock:
                            self.retries += 1
                        continue
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        for t in self.threads:
            t.join(30)


def conf(version):
    return 'server { listen 127.0.0.1:%%PORT%%; location / { return 200 "version ' + version + '\\n"; } }'


def test_reload_under_load_loses_nothing(make_server):
    s = make_server(conf("one"), main_conf="worker_processes 2;")
    with Load(s.port) as load:
        time.sleep(0.5)
        for v in ("two", "three"):
            s.set_conf(s.conf_text.replace(s.conf_text[s.conf_text.index("version"):].split("\\n")[0],
                                           "version %s" % v))
            s.send_signal(signal.SIGHUP)
            wait_for(lambda: http_get(s.port, "/").body == ("version %s\n" % v).encode(), what=v)
            time.sleep(0.5)
    assert load.failures == [], load.failures[:10]
    assert load.ok > 100
    # Retries happen only where an old worker closed an idle connection: a few per reload at most.
    assert load.retries <= 8, load.retries
    assert {b"version one\n", b"version two\n", b"version three\n"} <= load.bodies
    log = s.error_log()
    assert log.count("reconfiguring") >= 2 and "gracefully shutting down" in log


def test_failed_reload_keeps_the_old_workers(make_server):
    s = make_server(conf("one"))
    workers = children(s.master_pid())
    s.set_conf(s.conf_text + "\nthis is not valid;\n")
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: 'unknown directive "this"' in s.error_log(), what="the reload error")
    assert children(s.master_pid()) == workers
    assert http_get(s.port, "/").body == b"version one\n"
    # A listen that cannot be bound fails the reload too, keeping the old configuration.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    s.set_conf(conf("two").replace("%%PORT%%", str(s.port)) + "\n")
    text = s.conf_text.replace("server {", "server { listen 127.0.0.1:%d; " % port, 1)
    s.set_conf(("daemon off;\npid %s;\nerror_log %s debug;\nevents {}\nhttp { %s }\n") %
               (s.pid_file, s.path("logs/error.log"), text))
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: "Address already in use" in s.error_log(), what="the bind error")
    time.sleep(0.3)
    assert http_get(s.port, "/").body == b"version one\n"
    assert children(s.master_pid()) == workers
    busy.close()


def test_graceful_quit_finishes_a_slow_download(make_server):
    conf = "server { listen 127.0.0.1:%%PORT%%; location / { limit_rate 200k; } }"
    data = os.urandom(600 * 1024)
    s = make_server(conf, files={"big.bin": data})
    c = Client(s.port, timeout=30)
    c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    idle = Client(s.port)  # an idle keep-alive connection is closed at once
    idle.send("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.response()
    time.sleep(0.3)
    s.send_signal(signal.SIGQUIT)
    assert idle.is_closed(wait=3)
    # New connections are refused once the workers stopped listening.
    wait_for(lambda: connect_fails(s.port), timeout=5, what="listeners closed")
    r = c.response()
    assert r.body == data
    assert s.proc.wait(15) == 0
    log = s.error_log()
    assert "gracefully shutting down" in log and "exited with code 0" in log and "[alert]" not in log


def connect_fails(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_fast_stop(make_server):
    conf = "server { listen 127.0.0.1:%%PORT%%; location / { limit_rate 10k; } }"
    s = make_server(conf, files={"big.bin": b"x" * 500000})
    c = Client(s.port, timeout=10)
    c.send("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    t = time.time()
    s.send_signal(signal.SIGTERM)
    assert s.proc.wait(10) == 0
    assert time.time() - t < 3
    assert not os.path.exists(s.pid_file)


def test_worker_respawn_after_sigkill(make_server):
    s = make_server(conf("one"), main_conf="worker_processes 2;")
    master = s.master_pid()
    # The server answers once one worker is up: wait for the second one's fork too.
    wait_for(lambda: len(children(master)) == 2, what="two workers")
    workers = children(master)
    assert proc_title(master).startswith("weir: master process")
    # A worker just forked shows the master's title until it sets its own: wait for that state.
    wait_for(lambda: proc_title(workers[0]) == "weir: worker process", what="the worker's title")
    # The kernel's name stays the binary's, as nginx's: pidof and pgrep -x find every process.
    for pid in [master] + workers:
        assert open("/proc/%d/comm" % pid).read().strip() == os.path.basename(s.binary)
    found = subprocess.run(["pidof", os.path.basename(s.binary)], capture_output=True, text=True).stdout
    assert {master, *workers} <= {int(p) for p in found.split()}
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: len(children(master)) == 2 and workers[0] not in children(master), what="respawn")
    assert http_get(s.port, "/").body == b"version one\n"
    log = s.error_log()
    assert "worker process %d exited on signal 9" % workers[0] in log
    # A worker killed by a signal is logged at [alert], as nginx does; clear it for the clean-log check.
    with open(s.path("logs/error.log"), "w"):
        pass


def test_reopen_logs(make_server):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { return 200; } }")
    http_get(s.port, "/before")
    wait_for(lambda: "/before" in s.access_log(), what="first line")
    os.rename(s.path("logs/access.log"), s.path("logs/access.log.1"))
    s.send_signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(s.path("logs/access.log")), what="the new log file")
    time.sleep(0.2)
    http_get(s.port, "/after")
    wait_for(lambda: "/after" in s.access_log(), what="second line")
    assert "/after" not in open(s.path("logs/access.log.1")).read()
    assert "reopening logs" in s.error_log()


def test_master_process_off(make_server):
    s = make_server(conf("single"), main_conf="master_process off;")
    assert children(s.master_pid()) == []
    assert http_get(s.port, "/").body == b"version single\n"
    s.set_conf(s.conf_text.replace("version single", "version reloaded"))
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: http_get(s.port, "/").body == b"version reloaded\n", what="single-process reload")


def test_daemon(make_server):
    s = make_server(conf("daemon"), start=False)
    s.set_conf(s.conf_text.replace("daemon off;", "daemon on;"))
    s.start(wait=False)
    assert s.proc.wait(10) == 0  # the started process exits; the daemon runs on
    # ... and only once the daemon has written its pid file and listens: no polling needed.
    pid = s.master_pid()
    assert pid != s.proc.pid
    assert http_get(s.port, "/").body == b"version daemon\n"
    os.kill(pid, signal.SIGQUIT)
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), what="daemon exit")


def test_daemon_that_fails_to_start_exits_non_zero(make_server):
    # nginx's parent exits 0 before its daemon tries the pid file; weir's waits and reports the failure.
    s = make_server(conf("daemon"), start=False)
    s.set_conf(s.conf_text.replace("daemon off;", "daemon on;").replace("logs/server.pid", "no-such-dir/weir.pid"))
    s.start(wait=False)
    assert s.proc.wait(10) == 1
    assert "no-such-dir/weir.pid" in s.error_log()


def test_worker_connections_run_out(make_server):
    s = make_server("server { listen 127.0.0.1:%%PORT%%; client_body_timeout 10s; location / { return 200; } "
                    "location /body { mirror /m; return 200; } location = /m { internal; return 204; } }",
                    events="worker_connections 4;")
    # One connection is the listener; three half-sent request headers hold the rest. A new client is not
    # refused: the connection that has waited longest without a whole header gives way (nginx refuses).
    held = [Client(s.port) for _ in range(3)]
    for c in held:
        c.send("GET / HTTP/1.1\r\n")
        time.sleep(0.05)
    time.sleep(0.3)
    extra = Client(s.port)
    extra.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert extra.response().status == 200
    assert held[0].is_closed(wait=3)
    wait_for(lambda: "closing a connection that has sent no complete request header" in s.error_log(),
             what="the warning")
    for c in held[1:]:
        c.send("Host: x\r\n\r\n")
        assert c.response().status == 200
        c.close()
    # Connections reading a request body are not reclaimed: with every slot taken by them, a new one is
    # refused, as in nginx.
    bodies = [Client(s.port) for _ in range(3)]
    for c in bodies:
        c.send("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    time.sleep(0.3)
    extra = Client(s.port)
    assert extra.is_closed(wait=3)
    wait_for(lambda: "worker_connections are not enough" in s.error_log() and "[alert]" in s.error_log(),
             what="the alert")
    for c in bodies:
        c.send("cde")
        assert c.response().status == 200
    with open(s.path("logs/error.log"), "w"):
        pass


def test_pid_file_means_listening(make_server):
    for _ in range(3):
        s = make_server(conf("ready"))
        # The harness connects as soon as the pid file exists; that must always work.
        assert http_get(s.port, "/").body == b"version ready\n"


def start_on_a_held_port(make_server, server_body):
    """A server started (without waiting) on a port another socket listens on: (server, socket)."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s = make_server("server { listen 127.0.0.1:%%PORT%%; " + server_body + " }", start=False)
    held.bind(("127.0.0.1", s.port))
    held.listen()
    s.start(wait=False)
    return s, held


def test_bind_is_retried_while_the_address_is_in_use(make_server):
    """As nginx: an address in use is tried again 500 ms later, up to 5 times, each failure logged;
    freed after the first failure, it is taken and served. Kept taken, the start fails with nginx's
    'still could not bind()'."""
    s, held = start_on_a_held_port(make_server, "return 200 \"bound\\n\";")
    wait_for(lambda: "bind() to 127.0.0.1:%d failed (98: Address already in use)" % s.port
             in s.read_stderr(), what="the first failure")
    held.close()
    s.wait_started()
    wait_for(lambda: http_get(s.port, "/").body == b"bound\n", what="the server")
    with open(s.path("logs/error.log"), "w"):  # the emerg lines are expected
        pass

    t, held = start_on_a_held_port(make_server, "")
    assert t.proc.wait(20) == 1
    err = t.read_stderr()
    assert err.count("bind() to 127.0.0.1:%d failed (98: Address already in use)" % t.port) == 5
    assert "still could not bind()" in err
    held.close()
    with open(t.path("logs/error.log"), "w"):
        pass
