"""Timeouts (send_timeout, client_body_timeout, keepalive_timeout), lingering close, and main-context
directives (worker_processes auto, worker_rlimit_nofile, working_directory, error_log to stderr)."""
import os
import socket
import subprocess
import time

from conftest import Client, wait_for


def test_send_timeout_closes_a_stalled_client(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; send_timeout 1s; location / { } }
    """
    s = make_server(conf, files={"big.bin": b"z" * (8 << 20)})
    c = socket.create_connection(("127.0.0.1", s.port))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(3)  # never read: the server's writes stall, then time out
    wait_for(lambda: "client timed out" in s.error_log(), timeout=5, what="send timeout")
    wait_for(lambda: '"GET /big.bin HTTP/1.1" 200' in s.access_log(), timeout=5, what="the log line")
    c.close()


def test_body_timeout_and_keepalive_timeout(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        client_body_timeout 1s;
        keepalive_timeout 1s;
        location / { return 200 "ok\\n"; }
    }
    """
    s = make_server(conf)
    c = Client(s.port)
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().status == 200
    t = time.time()
    assert c.is_closed(wait=4)  # keepalive_timeout
    assert 0.7 < time.time() - t < 3
    # A body that stops arriving while it is being discarded after the response.
    c = Client(s.port)
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    assert c.response().status == 200
    assert c.is_closed(wait=8)


def test_lingering_close_lets_the_client_read_the_answer(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; client_max_body_size 1k; location / { return 200; } }
    """
    s = make_server(conf)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 65536)
    data = c.recv(65536)
    assert data.startswith(b"HTTP/1.1 413 ")
    # The server keeps reading (and dropping) what is still coming instead of resetting the connection.
    sent = 65536
    try:
        while sent < 2000000:
            c.sendall(b"y" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert sent >= 1000000
    c.close()


def test_main_context_directives(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 "ok\\n"; } }
    """
    s = make_server(conf, main_conf="worker_processes auto;\nworker_rlimit_nofile 4321;\n"
                                    "working_directory %%DIR%%/logs;\nenv WEIR_TEST_ENV=hello;")
    assert s.get("/").status == 200
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(s.master_pid())], capture_output=True,
                          text=True).stdout.split()
    assert len(kids) == os.cpu_count()
    pid = kids[0]
    limits = open("/proc/%s/limits" % pid).read()
    assert [l for l in limits.splitlines() if l.startswith("Max open files")][0].split()[3] == "4321"
    assert os.readlink("/proc/%s/cwd" % pid) == s.path("logs")


def test_error_log_to_stderr(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; error_log stderr; location / { } }
    """
    s = make_server(conf)
    s.get("/nope")
    wait_for(lambda: "No such file or directory" in s.read_stderr(), what="the error on stderr")


def test_one_event_per_wait_still_serves_every_connection(make_server):
    # epoll_events 1: each epoll_wait() returns one event; the others wait for the next rounds.
    s = make_server("server { listen 127.0.0.1:%%PORT%%; location / { return 200 \"ok\\n\"; } }",
                    events="epoll_events 1;")
    clients = [Client(s.port) for _ in range(8)]
    for _ in range(3):
        for c in clients:
            c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in clients:
            r = c.response()
            assert r.status == 200 and r.body == b"ok\n"
    for c in clients:
        c.close()


def test_epoll_events_must_be_positive(make_server):
    # nginx takes 0 and then fails every wait; weir refuses it at load.
    s = make_server("", events="epoll_events 0;", start=False)
    out = subprocess.run([s.binary, "-t", "-p", s.dir + "/", "-c", s.conf_path], capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert '[emerg] "epoll_events" must be positive in %s:' % s.conf_path in out.stderr
