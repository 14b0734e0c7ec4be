"""The harness every integration test uses: a server (weir, or Debian's nginx as the reference) started in
its own temp prefix with its own config on free ports, real sockets to talk to it, and checks that its
error log holds no [alert] and its stderr no sanitizer report."""
import fcntl
import os
import resource
import re
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEIR = os.environ.get("WEIR_BIN", os.path.join(ROOT, "build", "weir"))
if not os.path.isabs(WEIR):
    WEIR = os.path.join(ROOT, WEIR)
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIME = os.path.join(ROOT, "conf", "mime.types")
SANITIZED = "asan" in WEIR



def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: runs after the parallel tests, alone on the machine (scripts/test.sh)")

def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


EPHEMERAL_LOW = _ephemeral_low()


PORT_LOW = 10000
# Every test process (the release and the ASan runs, each with its xdist workers) takes the next port
# from one shared counter, so two of them are never handed the same port between free_port() and the
# server's bind(); a port is handed out again only after the whole range has gone round.
PORT_COUNTER = os.path.join(tempfile.gettempdir(), "weir-test-port-counter")


def _next_port_candidate():
    fd = os.open(PORT_COUNTER, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 16).decode(errors="replace").strip()
        last = int(text) if text.isdigit() else random.randint(PORT_LOW, EPHEMERAL_LOW - 1)
        port = last + 1 if PORT_LOW <= last < EPHEMERAL_LOW - 1 else PORT_LOW
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(port).encode())
        return port
    finally:
        os.close(fd)


def free_port():
    """A port nothing holds, below the kernel's ephemeral range: an outgoing connection made meanwhile
    (a proxied request, a health check, Prometheus scraping) is never given it before the server
    binds it, as a port the kernel picked (bind to 0) could be."""
    if EPHEMERAL_LOW > PORT_LOW + 1000:
        for _ in range(200):
            try:
                port = _next_port_candidate()
            except OSError:
                port = random.randint(PORT_LOW, EPHEMERAL_LOW - 1)
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                s.close()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw = raw

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_list(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:80])


def parse_one(data, head_request=False):
    """Parses one response from data; returns (Response, rest) or (None, data) if incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, data
    head = data[:end].decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/(\d\.\d) (\d{3}) ?(.*)", head[0])
    if not m:
        raise ValueError("bad status line %r" % head[0])
    status = int(m.group(2))
    headers = []
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    rest = data[end + 4:]
    resp = Response(status, m.group(3), headers, b"", data)
    if head_request or status in (204, 304) or 100 <= status < 200:
        return resp, rest
    te = resp.header("Transfer-Encoding")
    cl = resp.header("Content-Length")
    if te and te.lower() == "chunked":
        body = b""
        pos = 0
        while True:
            nl = rest.find(b"\r\n", pos)
            if nl < 0:
                return None, data
            size = int(rest[pos:nl].split(b";")[0], 16)
            pos = nl + 2
            if size == 0:
                trailer_end = rest.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None, data
                # skip trailers
                while rest[pos:pos + 2] != b"\r\n":
                    nxt = rest.find(b"\r\n", pos)
                    if nxt < 0:
                        return None, data
                    pos = nxt + 2
                pos += 2
                resp.body = body
                return resp, rest[pos:]
            if len(rest) < pos + size + 2:
                return None, data
            body += rest[pos:pos + size]
            pos += size + 2
    if cl is not None:
        n = int(cl)
        if len(rest) < n:
            return None, data
        resp.body = rest[:n]
        return resp, rest[n:]
    # Until close.
    resp.body = rest
    resp.until_close = True
    return resp, b""


class Client:
    """A connection that can send raw bytes and read responses (keep-alive, pipelining)."""

    def __init__(self, port, timeout=10, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def recv_more(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.closed = True
        self.buf += chunk
        return chunk

    def response(self, head=False):
        while True:
            resp, rest = parse_one(self.buf, head)
            if resp is not None and not getattr(resp, "until_close", False):
                self.buf = rest
                return resp
            if self.closed:
                if resp is not None:
                    self.buf = b""
                    return resp
                raise ConnectionError("closed before a full response: %r" % self.buf[:200])
            self.recv_more()

    def read_until_close(self):
        while not self.closed:
            self.recv_more()
        return self.buf

    def is_closed(self, wait=2.0):
        """True if the server closes the connection within `wait` seconds (no more data expected)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
            self.buf += data
            return data == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def http_get(port, path, headers=None, method="GET", body=None, version="1.1", host="localhost"):
    """One request on a new connection; returns the Response."""
    h = {"Host": host, "Connection": "close"}
    h.update(headers or {})
    req = "%s %s HTTP/%s\r\n" % (method, path, version)
    for k, v in h.items():
        if v is not None:
            req += "%s: %s\r\n" % (k, v)
    data = req.encode("latin-1") + b"\r\n"
    if body is not None:
        data = data.replace(b"\r\n\r\n", b"\r\nContent-Length: %d\r\n\r\n" % len(body), 1) + body
    c = Client(port)
    c.send(data)
    r = c.response(head=(method == "HEAD"))
    c.close()
    return r


def slow_client(port, path, timeout=30):
    """A connection with a small receive window that has asked for path (Connection: close) and
    reads nothing yet: the server's socket buffers fill and the rest waits in the server."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    return s


def slow_get(port, path, pause=0.5):
    """A slow client that waits before reading (a proxy spills what it holds to a temp file).
    Returns the Response."""
    s = slow_client(port, path)
    time.sleep(pause)
    return parse_one(read_to_end(s))[0]


def status_codes(out):
    """The status codes of every response in out (raw bytes from a connection), in order."""
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.1 (\d{3}) ", out)]


def raw(port, data, timeout=5, half_close=False, source=None):
    """Sends raw bytes (then half-closes if asked), returns everything until the server closes. source:
    the client's address (another 127.0.0.x, or an IPv6 one, which then connects to itself)."""
    if isinstance(data, str):
        data = data.encode("latin-1")
    if source is None:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    else:
        v6 = ":" in source
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((source if v6 else "127.0.0.1", port))
    s.sendall(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    return read_to_end(s)


def read_to_end(s, close=True):
    """Everything the server sends until it closes (or resets, or times out); closes the socket
    unless told not to (to ask it something afterwards)."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    if close:
        s.close()
    return out


class Server:
    def __init__(self, http_conf="", main_conf="", events="", files=None, binary=None, ports=1,
                 full_conf=None, name=None):
        self.binary = binary or WEIR
        self.name = name or ("nginx" if self.binary == NGINX else "weir")
        self.dir = tempfile.mkdtemp(prefix="%s-test-" % self.name)
        os.chmod(self.dir, 0o755)
        for sub in ("logs", "conf", "html"):
            os.makedirs(os.path.join(self.dir, sub))
            os.chmod(os.path.join(self.dir, sub), 0o755)
        self.ports = [free_port() for _ in range(ports)]
        self.port = self.ports[0]
        for path, content in (files or {}).items():
            self.write(path, content)
        shutil.copy(MIME, os.path.join(self.dir, "conf", "mime.types"))
        if full_conf is None:
            full_conf = (
                "daemon off;\n"
                "pid %%DIR%%/logs/server.pid;\n"
                "error_log %%DIR%%/logs/error.log info;\n"
                + main_conf + "\n"
                "events { " + (events if "worker_connections" in events else
                               "worker_connections 1024; " + events) + " }\n"
                "http {\n"
                "    access_log %%DIR%%/logs/access.log;\n"
                "    client_body_temp_path %%DIR%%/client_body_temp;\n"
                "    root %%DIR%%/html;\n"
                + http_conf + "\n}\n")
        self.conf_path = os.path.join(self.dir, "conf", "nginx.conf")
        self.set_conf(full_conf)
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "logs", "stderr")

    def subst(self, text):
        text = text.replace("%%DIR%%", self.dir)
        for i, p in enumerate(self.ports):
            text = text.replace("%%%%PORT%d%%%%" % i, str(p))
        return text.replace("%%PORT%%", str(self.port))

    def set_conf(self, text):
        self.conf_text = self.subst(text)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def write(self, rel, content, mode=0o644):
        p = os.path.join(self.dir, "html", rel) if not rel.startswith("/") else rel
        os.makedirs(os.path.dirname(p), exist_ok=True)
        d = os.path.dirname(p)
        while d.startswith(self.dir) and len(d) > len(self.dir):
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        os.chmod(p, mode)
        return p

    @property
    def pid_file(self):
        return os.path.join(self.dir, "logs", "server.pid")

    def master_pid(self):
        with open(self.pid_file) as f:
            return int(f.read().strip())

    def start(self, args=(), wait=True):
        cmd = [self.binary, "-p", self.dir + "/", "-c", self.conf_path, "-e", self.path("logs/error.log")]
        cmd += list(args)
        self.stderr = open(self.stderr_path, "ab")
        env = dict(os.environ, **getattr(self, "extra_env", {}))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr, env=env)
        if wait:
            self.wait_started()
        return self

    def wait_started(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(self.pid_file):
                try:
                    if self.master_pid() > 0:
                        return
                except ValueError:
                    pass
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s: %s\n%s" % (
                    self.name, self.proc.returncode, self.read_stderr(), self.error_log()[-2000:]))
            time.sleep(0.02)
        raise RuntimeError("%s did not start: %s" % (self.name, self.read_stderr()))

    def send_signal(self, sig):
        os.kill(self.master_pid(), sig)

    def stop(self, sig=signal.SIGQUIT, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not stop within %ss after signal %d" % (self.name, timeout, sig))
        self.stderr.close()
        return self.proc.returncode

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def error_log(self):
        try:
            with open(self.path("logs/error.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def access_log(self, name="logs/access.log"):
        try:
            with open(self.path(name), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def check_clean(self):
        """No [alert] (nginx's harness checks the same) and no sanitizer report."""
        log = self.error_log()
        alerts = [l for l in log.splitlines() if "[alert]" in l]
        assert not alerts, "alerts in error log:\n" + "\n".join(alerts[:20])
        err = self.read_stderr()
        if getattr(self, "descriptors_exhausted", False):
            # UBSan probes an object's vtable through a pipe: with no descriptor left the probe fails
            # and it reports a bad vptr with "<memory cannot be printed>". Only those reports go.
            err = re.sub(r"[^\n]*runtime error: member (call|access) on address 0x[0-9a-f]+ which does "
                         r"not point to an object of type '[^']+'\n0x[0-9a-f]+: note: object has "
                         r"invalid vptr\n<memory cannot be printed>\n", "", err)
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehaviorSanitizer"):
            assert marker not in err and marker not in log, "sanitizer report:\n" + err[-4000:]

    def get(self, path, **kw):
        return http_get(self.port, path, **kw)

    def worker_pids(self):
        master = self.master_pid()
        with open("/proc/%d/task/%d/children" % (master, master)) as f:
            return [int(p) for p in f.read().split()]

    def fd_counts(self):
        """Open descriptors of each worker: (sockets, files)."""
        out = []
        for pid in self.worker_pids():
            socks = files = 0
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if target.startswith("socket:"):
                    socks += 1
                elif target.startswith("/"):
                    files += 1
            out.append((socks, files))
        return out

    def idle_fd_counts(self, settle=0.3):
        """fd_counts once they have stopped changing: a connection just answered may still be
        closing (lingering close) when the client has its response."""
        last = self.fd_counts()
        deadline = time.time() + 10
        while time.time() < deadline:
            time.sleep(settle)
            now = self.fd_counts()
            if now == last:
                return now
            last = now
        raise AssertionError("worker descriptors never settled: %r" % (last,))

    def client(self, port=None):
        return Client(port or self.port)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def enough_fds():
    """Raises this process's descriptor limit for tests that hold a thousand sockets or more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def make_server():
    """Builds servers; each is stopped (gracefully) and checked for alerts/sanitizer reports afterwards."""
    servers = []

    def make(*args, start=True, **kw):
        s = Server(*args, **kw)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in servers:
        try:
            s.stop()
            s.check_clean()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            if not errors:
                s.cleanup()
    if errors:
        pytest.fail("\n".join(errors))


def weir_and_nginx(conf, files, mtime=None, prepare=None, ports=1, main_conf=""):
    """A generator for module-scoped fixtures: weir and Debian's nginx started on the same config; after
    the module both are stopped and weir is checked clean. mtime: the files' time on both (the same
    Last-Modified and ETag; by default ten seconds ago); prepare(server): called for each before it starts; ports: how many
    (%%PORT%% is %%PORT0%%, then %%PORT1%% ...); main_conf: lines for the main context of both."""
    if not os.path.exists(NGINX):
        pytest.fail("Debian's nginx is not installed (make deps installs it)")
    pair = [Server(conf, main_conf, files=files, ports=ports),
            Server(conf, main_conf, files=files, binary=NGINX, ports=ports)]
    if mtime is None:
        # One time for both copies of a file: written a second apart, their Last-Modified and ETag
        # would differ, and a parity test comparing them would fail for nothing.
        mtime = int(time.time()) - 10
    for s in pair:
        for f in files:
            os.utime(s.path("html/" + f), (mtime, mtime))
        if prepare is not None:
            prepare(s)
        s.start()
    yield pair
    for s in pair:
        s.stop()
    pair[0].check_clean()
    for s in pair:
        s.cleanup()


def check_conf(binary, http_conf=None, full_conf=None):
    """Runs `binary -t` on a configuration; returns (exit status, stderr)."""
    s = Server(http_conf or "", binary=binary, full_conf=full_conf)
    try:
        out = subprocess.run([binary, "-t", "-p", s.dir + "/", "-c", s.conf_path],
                             capture_output=True, text=True, timeout=30)
        return out.returncode, out.stderr
    finally:
        s.cleanup()


def dechunk(body, trailer=False):
    """The data of a chunked body; with trailer=True, (data, the trailer's lines), the framing checked
    up to the empty line that ends it."""
    plain, rest = b"", body
    while True:
        size, _, rest = rest.partition(b"\r\n")
        size = int(size, 16)
        if size == 0:
            break
        plain += rest[:size]
        assert not trailer or rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]
    if not trailer:
        return plain
    assert rest.endswith(b"\r\n"), rest
    return plain, [line for line in rest[:-2].split(b"\r\n") if line]


def unname_server(lines, body):
    """Built-in pages name the server: the body without the name, and its Content-Length to match,
    so that weir's and nginx's compare."""
    named = body.replace(b"nginx/1.22.1", b"SERVER").replace(b"weir/0.1.0", b"SERVER")
    if named != body:
        lines = [l if not l.startswith("Content-Length:") else "Content-Length: %d" % len(named)
                 for l in lines]
    return lines, named


def answer(port, req):
    """A raw request's answer as the parity tests compare it: the header lines without Date and
    Server, and the body, both without the server's name (unname_server)."""
    head, _, body = raw(port, req).partition(b"\r\n\r\n")
    lines = [l for l in head.decode("latin-1").split("\r\n")
             if not l.lower().startswith(("date:", "server:"))]
    return unname_server(lines, body)


def load_error(d, text, binary, line, level="emerg"):
    """The [emerg] (or other level) a configuration (text, written in directory d) fails `-t`
    with, without its place, which must be line of the file."""
    path = d / "nginx.conf"
    path.write_text(text)
    os.chmod(d, 0o755)
    p = subprocess.run([binary, "-p", str(d) + "/", "-c", str(path), "-t"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, (binary, p.returncode, p.stderr)
    mark = "[%s] " % level
    emerg = [l for l in p.stderr.splitlines() if mark in l][0]
    place = " in %s:%d" % (path, line)
    assert emerg.endswith(place), emerg
    # (nginx names its process in some: "[emerg] 123#123: ...")
    return re.sub(r"^\d+#\d+: ", "", emerg.split(mark)[1][:-len(place)])


def parity_answer(port, path, method="GET", extra=""):
    """A request for path as the filter parity tests compare answers: the header lines without Date
    and Server, and the body (dechunked), without the server's name. extra: more header lines."""
    head, _, body = raw(port, "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n"
                        % (method, path, extra), timeout=10).partition(b"\r\n\r\n")
    lines = [l for l in head.decode("latin-1").split("\r\n")
             if not l.lower().startswith(("date:", "server:"))]
    if "Transfer-Encoding: chunked" in lines and method != "HEAD":
        body = dechunk(body)
    return unname_server(lines, body)


def peak_rss(pid):
    """A process's peak resident memory (VmHWM) in bytes."""
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmHWM:")][0].split()[1]) * 1024


def make_certificate(d, name, extra=()):
    """A self-signed ECDSA P-256 certificate for CN=localhost in directory d, readable by the
    workers: (certificate, key) paths. extra: more `openssl req` arguments (-addext ...)."""
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", *extra,
                    "-keyout", key, "-out", crt], check=True, capture_output=True)
    for f in (key, crt):
        os.chmod(f, 0o644)
    return crt, key


def wait_for(cond, timeout=10, step=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


class BackendProcess:
    """A backend server from a Debian package that a test starts (php-fpm, uWSGI ...): up once its TCP
    port takes a connection and its unix socket (if it has one) exists; stopped by stop_signal (killed
    after 20 s), its directory removed."""

    def __init__(self, argv, port, socket_path, directory, stop_signal=signal.SIGTERM):
        self.port, self.socket, self.dir, self.stop_signal = port, socket_path, directory, stop_signal
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._up, what="%s listening" % os.path.basename(argv[0]))

    def _up(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return self.socket is None or os.path.exists(self.socket)
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class ScriptedBackend:
    """A scripted upstream on 127.0.0.1 for protocol tests: on each connection read_request(conn) reads
    one request (what it returns is kept in .requests), then `answer` goes out `step` bytes at a time
    and the connection closes. close() stops it."""

    def __init__(self, answer, read_request, step=65536):
        self.answer, self.read_request, self.step = answer, read_request, step
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                self.requests.append(self.read_request(c))
                for i in range(0, len(self.answer), self.step):
                    c.sendall(self.answer[i:i + self.step])

    def close(self):
        self.sock.close()
