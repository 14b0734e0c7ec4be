#!/usr/bin/python3
"""make bench: weir beside Debian's nginx and h2o, each with one worker pinned to CPU 0 and wrk pinned to
CPU 1, servers interleaved and rotated for several rounds. Reports medians (min-max) of req/s and of server CPU
time per request (utime+stime from /proc, the figure that survives a noisy machine), ratios paired round by
round, and exact cost figures: syscalls per request (strace), user-space instructions per request
(callgrind, two runs so start-up cancels) and user memory per idle keep-alive connection.
Writes bench/results/YYYY-MM-DD.md.

    bench/bench.py [--rounds N] [--seconds S] [--quick]
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIR = os.environ.get("WEIR_BIN", os.path.join(ROOT, "build", "weir"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
H2O = shutil.which("h2o") or "/usr/bin/h2o"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SERVER_CPU = "0"
CLIENT_CPU = "1"

NGINX_CONF = """
daemon off;
master_process {master};
worker_processes 1;
worker_rlimit_nofile 30000;
pid {dir}/logs/server.pid;
error_log {dir}/logs/error.log error;
events {{ worker_connections 20000; }}
http {{
    include {root}/conf/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    {access_log}
    {http_extra}
    client_body_temp_path {dir}/client_body_temp;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/html;
    }}
{logged_server}}}
"""

# For the access log's price: the same worker serves a second port with the log on, so that both sides of
# the comparison share one process (two processes differ by up to 15 % in CPU per request on their own).
LOGGED_SERVER = """    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/html;
        access_log {dir}/logs/access.log combined buffer=64k flush=1s;
    }}
"""

H2O_CONF = """
listen:
  host: 127.0.0.1
  port: {port}
num-threads: 1
{user}error-log: {dir}/logs/error.log
{access_log}
hosts:
  default:
    paths:
      /:
        file.dir: {dir}/html
"""

SCENARIOS = [
    # name, path, connections, extra wrk args, access log
    ("1 KiB, 50 connections", "/1k.bin", 50, [], False),
    ("1 KiB, 1 connection", "/1k.bin", 1, [], False),
    ("100 KiB, 1 connection", "/100k.bin", 1, [], False),
    ("10 MiB, 4 connections", "/10m.bin", 4, [], False),
    ("1 KiB, 50 conns, access log", "/1k.bin", 50, [], True),
    ("1 KiB, 50 conns, Connection: close", "/1k.bin", 50, ["-H", "Connection: close"], False),
]


# Proxied: weir and nginx each proxy to one origin (Debian's nginx serving the same files, pinned to the
# client's CPU) through a keep-alive upstream.
PROXY_SERVER = """    upstream origin {{ server 127.0.0.1:{origin}; keepalive {keepalive}; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ proxy_pass http://origin; proxy_http_version 1.1;
                     proxy_set_header Connection ""; {extra} }}
        location /nb/ {{ proxy_pass http://origin/; proxy_http_version 1.1;
                        proxy_set_header Connection ""; proxy_buffering off; }}
    }}
"""

# HAProxy beside them in the proxied scenarios: one thread, connections to the origin reused
# (`http-reuse always`) and kept idle up to the same count as the others' `keepalive`; /nb/ is the
# same path without the prefix (HAProxy never buffers a body whole, there is no switch to turn).
HAPROXY_CONF = """global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend front
    bind 127.0.0.1:{port}
    http-request replace-path ^/nb(/.*) \\1
    default_backend origin
backend origin
    server o 127.0.0.1:{origin} pool-max-conn {keepalive}
"""

# The cache (#12): the proxy's location keeps what the origin sends; every request after the first is a HIT.
CACHE_PATH = "    proxy_cache_path {dir}/cache levels=1:2 keys_zone=one:{zone};\n"
# Distinct URIs, each a MISS that adds an entry (the cache manager's cost at many entries).
DISTINCT_URIS_LUA = """counter = 0
init = function(args)
  counter = tonumber(args[1]) or 0
end
request = function()
  counter = counter + 1
  return wrk.format("GET", "/1k.bin?n=" .. counter)
end
"""
CACHE_LOCATION = "proxy_cache one; proxy_cache_valid 10m;"
CACHE_SCENARIOS = [
    ("cache HIT 1 KiB, 50 connections", "/1k.bin", 50),
    ("cache HIT 100 KiB, 50 connections", "/100k.bin", 50),
]

PROXIED_SCENARIOS = [
    # name, path, connections, the upstream's keepalive
    ("proxied 1 KiB, 50 connections", "/1k.bin", 50, 32),
    # More kept connections than clients: no server opens upstream connections during the run, so this
    # row is the per-request cost alone (above, 50 clients over `keepalive 32` make nginx connect and
    # close for a part of its requests, where weir keeps the surplus; see keepalive.cc).
    ("proxied 1 KiB, 50 connections, keepalive 64", "/1k.bin", 50, 64),
    ("proxied 1 MiB buffered, 4 connections", "/1m.bin", 4, 32),
    ("proxied 1 MiB proxy_buffering off, 4 connections", "/nb/1m.bin", 4, 32),
]


# PHP (#11): weir and nginx each in front of a php-fpm (pm static, 2 children, on the client's CPU),
# with a new connection per request and with fastcgi_keep_conn through a keepalive cache. The script
# says its length, so that the sequential client of the instruction counts reads it as it reads a file.
HELLO_PHP = '<?php\nheader("Content-Length: 13");\necho "Hello, world\\n";\n'
PHP_SERVER = """    upstream php {{ server 127.0.0.1:{php}; }}
    upstream php_ka {{ server 127.0.0.1:{php}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/html;
        include {root}/conf/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME {dir}/html/hello.php;
        location = /hello.php {{ fastcgi_pass php; }}
        location = /ka/hello.php {{ fastcgi_pass php_ka; fastcgi_keep_conn on; }}
    }}
"""
PHP_SCENARIOS = [
    # name, path, connections
    ("PHP hello world, 50 connections", "/hello.php", 50),
    ("PHP hello world, fastcgi_keep_conn, 50 connections", "/ka/hello.php", 50),
]
PHP_FPM = shutil.which("php-fpm8.2") or "/usr/sbin/php-fpm8.2"


class PhpFpm:
    """php-fpm on 127.0.0.1, pinned to the client's CPU: pm static with 2 children, run as nobody when
    started as root."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weir-bench-fpm-")
        self.port = free_port()
        conf = os.path.join(self.dir, "fpm.conf")
        with open(conf, "w") as f:
            f.write("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm.log\ndaemonize = no\n"
                    "[www]\nuser = nobody\ngroup = nogroup\nlisten = 127.0.0.1:%d\nlisten.backlog = 4096\n"
                    "pm = static\npm.max_children = 2\n" % (self.dir, self.dir, self.port))
        self.proc = subprocess.Popen(["taskset", "-c", CLIENT_CPU, PHP_FPM, "-n", "-y", conf, "-F", "-R"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_listening(self.port, self.proc):
            self.stop()
            raise RuntimeError("php-fpm did not start")

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_php(rounds, seconds, log):
    """weir and nginx in front of one php-fpm: req/s and front CPU per request under 50 connections,
    and the front's user instructions per request (callgrind, one sequential client)."""
    results, instructions = {}, {}
    # One php-fpm per front: a child serving a kept connection waits on it, so a front at rest
    # would hold the other's children.
    fpms = {}
    try:
        for k in ("weir", "nginx"):
            fpms[k] = PhpFpm()
        for name, path, conns in PHP_SCENARIOS:
            servers = {k: Server(k, php=fpms[k].port).start() for k in ("weir", "nginx")}
            results[name] = measure_rounds(name, servers, path, conns, [], rounds, seconds, log)
            for k in ("weir", "nginx"):
                def client(port, n, path=path):
                    sequential_client(port, path, n)
                a = callgrind_instructions(k, 200, client=client, php=fpms[k].port)
                b = callgrind_instructions(k, 600, client=client, php=fpms[k].port)
                instructions[(name, k)] = (b - a) / 400
            log("  %-36s instructions/request: weir %.0f, nginx %.0f" % (
                name, instructions[(name, "weir")], instructions[(name, "nginx")]))
    finally:
        for f in fpms.values():
            f.stop()
    return results, instructions


def wait_listening(port, proc, timeout=30):
    """Whether proc listens on 127.0.0.1:port within timeout (False when it exits first)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            if proc.poll() is not None:
                return False
            time.sleep(0.05)
    return False


def make_text(size):
    """Text that compresses as prose does (words drawn from a small vocabulary, lines of varied length)."""
    import random
    rng = random.Random(1)
    words = ("the of and to in is that it for was on are as with his they at be this from have or by one "
             "had not but what all were when we there can an your which their said if do will each about how "
             "up out them then she many some so these would other into has more her two like him see time "
             "could no make than first been its who now people my made over did down only way find use may "
             "water long little very after words called just where most know server request filter buffer "
             "stream response header connection upstream worker").split()
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) + ".\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


TEXT_100K = make_text(100 * 1024)


def stop_process(proc, sig):
    """Stops a server the benchmark started: sig, then SIGKILL after 20 s."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, kind, access_log=False, master=True, logged_port=False, sendfile=True, origin=None,
                 cpu=None, extra="", http_extra="", php=None, cache=False, cache_zone="10m", file_cache=True,
                 keepalive=32):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix="weir-bench-%s-" % kind)
        os.chmod(self.dir, 0o755)
        for sub in ("logs", "html", "conf"):
            os.makedirs(os.path.join(self.dir, sub))
        # h2o (and weir/nginx workers) run as nobody when started as root: let them write their logs.
        os.chmod(os.path.join(self.dir, "logs"), 0o777)
        html = os.path.join(self.dir, "html")
        self.cpu = cpu or SERVER_CPU
        for name, size in (("1k.bin", 1024), ("100k.bin", 100 * 1024), ("1m.bin", 1024 * 1024),
                           ("10m.bin", 10 * 1024 * 1024)):
            with open(os.path.join(html, name), "wb") as f:
                f.write(os.urandom(size))
        with open(os.path.join(html, "100k.txt"), "wb") as f:
            f.write(TEXT_100K)
        with open(os.path.join(html, "hello.php"), "w") as f:
            f.write(HELLO_PHP)
        os.chmod(html, 0o755)
        for name in os.listdir(html):
            os.chmod(os.path.join(html, name), 0o644)
        self.port = free_port()
        if kind == "haproxy":
            self.conf = os.path.join(self.dir, "conf", "haproxy.cfg")
            conf = HAPROXY_CONF.format(port=self.port, origin=origin, keepalive=keepalive)
        elif kind == "h2o":
            log = "access-log: %s/logs/access.log" % self.dir if access_log else ""
            # Under callgrind the process must keep the uid that created valgrind's vgdb FIFOs (root-only),
            # or `callgrind_control -d` waits forever; nginx and weir keep it with master_process off.
            user = "" if master or os.geteuid() != 0 else "user: root\n"
            conf = H2O_CONF.format(port=self.port, dir=self.dir, access_log=log, user=user)
            self.conf = os.path.join(self.dir, "conf", "h2o.conf")
        else:
            log = ("access_log %s/logs/access.log combined buffer=64k flush=1s;" % self.dir) if access_log \
                else "access_log off;"
            self.logged_port = free_port() if logged_port else None
            logged = LOGGED_SERVER.format(port=self.logged_port, dir=self.dir) if logged_port else ""
            conf = NGINX_CONF.format(port=self.port, dir=self.dir, root=ROOT, access_log=log,
                                     master="on" if master else "off", logged_server=logged,
                                     http_extra=http_extra)
            if not sendfile:
                conf = conf.replace("sendfile on;", "sendfile off; output_buffers %s;" % READ_BUFFERS)
            if not file_cache:
                # The stock nginx.conf shape: no open_file_cache (weir's own never-stale cache is on).
                conf = conf.replace("    open_file_cache max=1000 inactive=60s;\n    open_file_cache_valid 60s;\n", "")
            if extra:
                conf = conf.replace("        root {dir}/html;\n    }}".format(dir=self.dir),
                                    "        root {dir}/html;\n        {extra}\n    }}".format(dir=self.dir, extra=extra), 1)
            if origin is not None or php is not None:
                # The static server block becomes the proxy, or the FastCGI front.
                static = conf[conf.index("    server {"):conf.index("\n    }\n", conf.index("    server {")) + 7]
                front = PROXY_SERVER.format(origin=origin, port=self.port, keepalive=keepalive,
                                            extra=CACHE_LOCATION if cache else "") if php is None else \
                    PHP_SERVER.format(php=php, port=self.port, dir=self.dir, root=ROOT)
                if cache:
                    front = CACHE_PATH.format(dir=self.dir, zone=cache_zone) + front
                conf = conf.replace(static, front + "    proxy_temp_path %s/proxy_temp;\n" % self.dir +
                                    "    fastcgi_temp_path %s/fastcgi_temp;\n" % self.dir)
            self.conf = os.path.join(self.dir, "conf", "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc = None

    def command(self):
        if self.kind == "weir":
            return [WEIR, "-p", self.dir + "/", "-c", self.conf]
        if self.kind == "nginx":
            return [NGINX, "-p", self.dir + "/", "-c", self.conf]
        if self.kind == "haproxy":
            return [HAPROXY, "-db", "-f", self.conf]
        return [H2O, "-c", self.conf]

    def start(self, prefix=()):
        cmd = ["taskset", "-c", self.cpu] + list(prefix) + self.command()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "logs", "stderr"), "w"))
        if wait_listening(self.port, self.proc):
            return self
        raise RuntimeError("%s did not start: %s" % (self.kind, open(os.path.join(self.dir, "logs", "stderr")).read()))

    def pids(self):
        pids = [self.proc.pid]
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
        return pids

    def worker_pid(self):
        if self.kind == "h2o":
            return self.proc.pid
        kids = self.pids()[1:]
        return kids[0] if kids else self.proc.pid

    def cpu_seconds(self):
        total = 0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids():
            for tid in os.listdir("/proc/%d/task" % pid) if os.path.exists("/proc/%d/task" % pid) else []:
                try:
                    fields = open("/proc/%d/task/%s/stat" % (pid, tid)).read().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])
                except (FileNotFoundError, IndexError):
                    pass
        return total / tick

    def rss_kib(self, pid):
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        stop_process(self.proc, signal.SIGTERM if self.kind in ("h2o", "haproxy") else signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk(port, path, conns, seconds, extra, scheme="http", script_args=()):
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds] + extra + \
          ["%s://127.0.0.1:%d%s" % (scheme, port, path)] + (["--"] + list(script_args) if script_args else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return int(m.group(1)), float(rps.group(1)), (errors.group(0) if errors else "")


def sequential_client(port, path, n, latencies=None, tls=False):
    """n requests one after another on one keep-alive connection (TLS with tls); optionally per-request
    latencies (s)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
    buf = b""
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(req)
        while True:
            h = buf.find(b"\r\n\r\n")
            if h >= 0:
                m = re.search(rb"[Cc]ontent-[Ll]ength: (\d+)", buf[:h])
                need = h + 4 + int(m.group(1))
                if len(buf) >= need:
                    buf = buf[need:]
                    break
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        if latencies is not None:
            latencies.append(time.perf_counter() - t)
    s.close()


def median_range(values, fmt="{:.0f}"):
    return "%s (%s–%s)" % (fmt.format(statistics.median(values)), fmt.format(min(values)), fmt.format(max(values)))


def measure_rounds(name, servers, path, conns, extra, rounds, seconds, log, client=None):
    """Loads each of the started servers (a dict, name -> Server) in turn for `rounds` rounds, the order rotated
    every round, after a warm-up (page cache, open file caches); stops them. Per server: req/s and CPU µs per
    request of every round, and what wrk reported as errors. client(server, seconds) -> (requests, req/s,
    errors) loads a server in place of wrk on path."""
    kinds = list(servers)
    if client is None:
        def client(s, secs):
            return wrk(s.port, path, conns, secs, extra)
    try:
        per = {k: {"rps": [], "cpu_us": [], "errors": ""} for k in kinds}
        for k in kinds:
            client(servers[k], 1)
        for r in range(rounds):
            for k in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
                s = servers[k]
                c0 = s.cpu_seconds()
                n, rps, errors = client(s, seconds)
                per[k]["rps"].append(rps)
                per[k]["cpu_us"].append((s.cpu_seconds() - c0) / max(n, 1) * 1e6)
                if errors:
                    per[k]["errors"] = errors
        log("  %-36s " % name + "  ".join("%s %s req/s %s µs" % (k, median_range(per[k]["rps"]),
                                                                     median_range(per[k]["cpu_us"], "{:.1f}"))
                                             for k in kinds))
        return per
    finally:
        for s in servers.values():
            s.stop()


def run_throughput(kinds, rounds, seconds, log, only=()):
    results = {}
    for name, path, conns, extra, access in SCENARIOS:
        if only and not any(name.startswith(o) for o in only):
            continue
        servers = {k: Server(k, access_log=access).start() for k in kinds}
        results[name] = measure_rounds(name, servers, path, conns, extra, rounds, seconds, log)
    return results


def run_proxied(rounds, seconds, log):
    """weir, nginx and HAProxy (when installed) as reverse proxies in front of one origin (nginx on the
    client's CPU)."""
    results = {}
    kinds = ["weir", "nginx"] + (["haproxy"] if os.path.exists(HAPROXY) else [])
    origin = Server("nginx", cpu=CLIENT_CPU).start()
    try:
        for name, path, conns, keepalive in PROXIED_SCENARIOS:
            servers = {k: Server(k, origin=origin.port, keepalive=keepalive).start() for k in kinds}
            results[name] = measure_rounds(name, servers, path, conns, [], rounds, seconds, log)
    finally:
        origin.stop()
    return results


def run_cache(rounds, seconds, log):
    """weir and nginx as caches in front of one origin: req/s and CPU per HIT under 50 connections, and the
    syscalls of a HIT beside the static path's for the same file (one keep-alive connection)."""
    results, syscalls = {}, {}
    origin = Server("nginx", cpu=CLIENT_CPU).start()
    try:
        for name, path, conns in CACHE_SCENARIOS:
            servers = {k: Server(k, origin=origin.port, cache=True).start() for k in ("weir", "nginx")}
            results[name] = measure_rounds(name, servers, path, conns, [], rounds, seconds, log)
        for k in ("weir", "nginx"):
            for what, server in (("HIT", Server(k, origin=origin.port, cache=True)), ("static", Server(k))):
                server.start()
                try:
                    sequential_client(server.port, "/1k.bin", 200)  # stored, warm
                    pid = server.worker_pid()
                    t1, _ = strace_counts(pid, lambda: sequential_client(server.port, "/1k.bin", 1000))
                    t2, calls = strace_counts(pid, lambda: sequential_client(server.port, "/1k.bin", 3000))
                    syscalls[(k, what)] = ((t2 - t1) / 2000, {c: round(n / 3000, 2) for c, n in calls.items()
                                                              if n >= 1000})
                finally:
                    server.stop()
            log("  %-6s syscalls per 1 KiB request: HIT %.2f %s, static %.2f" % (
                k, syscalls[(k, "HIT")][0], syscalls[(k, "HIT")][1], syscalls[(k, "static")][0]))
        manager = cache_manager_cost(origin, log)
    finally:
        origin.stop()
    return results, syscalls, manager


def cache_files(s):
    return sum(len(files) for _, _, files in os.walk(os.path.join(s.dir, "cache")))


def cache_manager_cost(origin, log, seconds=10):
    """The cache manager's CPU while the index holds 100k entries (distinct MISSes, for at most 40 s),
    no entry expiring: % of a core over `seconds`; then, reloaded with a max_size far below what is
    kept, while it deletes (its default pace: manager_files=100 every manager_sleep=50ms): % of a core
    and files deleted over `seconds`. {kind: (entries, % at rest, % deleting, files deleted)}"""
    out = {}
    script = tempfile.mktemp(suffix=".lua")
    with open(script, "w") as f:
        f.write(DISTINCT_URIS_LUA)

    def cpu(pid):
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def manager(s, other_than=None):
        for p in s.pids()[1:]:
            try:
                if b"cache manager" in open("/proc/%d/cmdline" % p, "rb").read() and p != other_than:
                    return p
            except FileNotFoundError:
                pass
        return None

    try:
        for k in ("weir", "nginx"):
            s = Server(k, origin=origin.port, cache=True, cache_zone="64m").start()
            try:
                n, started = 0, time.time()
                while n < 100000 and time.time() - started < 40:
                    n += wrk(s.port, "/", 50, 4, ["-s", script], script_args=[str(n + 1000000)])[0]
                at_rest = manager(s)
                if at_rest is None:
                    raise RuntimeError("%s: no cache manager process" % k)
                c0 = cpu(at_rest)
                time.sleep(seconds)
                rest = (cpu(at_rest) - c0) / seconds * 100
                # Deleting: the same zone reloaded with max_size=1m; the new manager evicts.
                with open(s.conf) as f:
                    conf = f.read()
                with open(s.conf, "w") as f:
                    f.write(conf.replace("keys_zone=one:64m", "keys_zone=one:64m max_size=1m"))
                before = cache_files(s)
                os.kill(s.proc.pid, signal.SIGHUP)
                deadline = time.time() + 30
                deleting = None
                while deleting is None and time.time() < deadline:
                    deleting = manager(s, other_than=at_rest)
                    time.sleep(0.05)
                if deleting is None:
                    raise RuntimeError("%s: no cache manager after the reload" % k)
                f0, c0 = cache_files(s), cpu(deleting)
                time.sleep(seconds)
                busy = (cpu(deleting) - c0) / seconds * 100
                deleted = f0 - cache_files(s)
                out[k] = (n, rest, busy, deleted)
                log("  %-6s cache manager at %d entries: %.2f%% of a core at rest; deleting (%d files "
                    "before the reload): %.2f%% of a core, %d files in %d s" % (
                        k, n, rest, before, busy, deleted, seconds))
            finally:
                s.stop()
    finally:
        os.unlink(script)
    return out


# TLS and HTTP/2 (#14): a second server block with `listen ... ssl http2` and an ECDSA P-256 certificate.
TLS_SERVER = """    server {{
        listen 127.0.0.1:{port} ssl http2 backlog=4096;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;  # the same on both (nginx 1.22 leaves TLSv1.3 out by default)
        {ssl_extra}
    }}
"""


def h2load(port, path, conns, streams, seconds):
    cmd = ["taskset", "-c", CLIENT_CPU, "h2load", "-t1", "-c%d" % conns, "-m%d" % streams, "-D%d" % seconds,
           "https://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not done or not rps:
        raise RuntimeError("h2load: " + out[-500:])
    return int(done.group(2)), float(rps.group(1)), ("%s failed" % done.group(3) if int(done.group(3)) else "")


def make_certificate():
    """An ECDSA P-256 certificate for localhost in a temp dir readable by the workers: (dir, cert, key)."""
    d = tempfile.mkdtemp(prefix="weir-bench-tls-")
    os.chmod(d, 0o755)
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    for f in (cert, key):
        os.chmod(f, 0o644)
    return d, cert, key


def run_tls(kinds, rounds, seconds, log):
    """Full TLS handshakes (every request on a new connection, ECDSA P-256), 1 KiB over TLS keep-alive (wrk),
    and 1 KiB over HTTP/2 with 100 streams on each of 4 connections (h2load), weir beside nginx."""
    d, cert, key = make_certificate()
    close = ["-H", "Connection: close"]
    scenarios = [
        # wrk resumes its sessions: with no cache and no tickets every handshake is a full one.
        ("TLS full handshakes (Connection: close)", "ssl_session_cache off; ssl_session_tickets off;",
         lambda s, secs: wrk(s.tls_port, "/1k.bin", 50, secs, close, "https")),
        ("TLS resumed handshakes (tickets)", "",
         lambda s, secs: wrk(s.tls_port, "/1k.bin", 50, secs, close, "https")),
        ("TLS 1 KiB keep-alive, 50 connections", "",
         lambda s, secs: wrk(s.tls_port, "/1k.bin", 50, secs, [], "https")),
        ("HTTP/2 1 KiB, 4 conns x 100 streams", "",
         lambda s, secs: h2load(s.tls_port, "/1k.bin", 4, 100, secs)),
    ]
    results = {}
    try:
        for name, ssl_extra, client in scenarios:
            servers = {}
            for k in kinds:
                if k == "h2o":
                    continue
                port = free_port()
                # Its root is the default one, the prefix's html: the server's own files.
                s = Server(k, http_extra=TLS_SERVER.format(port=port, cert=cert, key=key,
                                                           ssl_extra=ssl_extra))
                s.tls_port = port
                servers[k] = s.start()
            results[name] = measure_rounds(name, servers, None, 0, [], rounds, seconds, log, client)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return results


def run_tls_instructions(log):
    """User-space instructions per request outside OpenSSL (and nghttp2, which weir's HTTP/2 is built
    on; nginx's HTTP/2 framing is its own code and counts): 1 KiB over one TLS keep-alive connection
    and over HTTP/2 (one connection, 10 streams at a time); two runs, so start-up cancels."""
    d, cert, key = make_certificate()
    libs = ("libssl", "libcrypto", "libnghttp2")
    res = {}
    try:
        for name, make_client in (
                ("TLS keep-alive", lambda port: lambda _, n: sequential_client(port, "/1k.bin", n, tls=True)),
                ("HTTP/2", lambda port: lambda _, n: subprocess.run(
                    ["h2load", "-n%d" % n, "-c1", "-m10", "https://127.0.0.1:%d/1k.bin" % port],
                    capture_output=True, timeout=600))):
            for k in ("weir", "nginx"):
                runs = []
                for n in (300, 900):
                    port = free_port()
                    extra = TLS_SERVER.format(port=port, cert=cert, key=key, ssl_extra="")
                    total, in_libs = callgrind_instructions(k, n, http_extra=extra, client=make_client(port),
                                                            library=libs)
                    runs.append((total, total - in_libs))
                per = [(runs[1][i] - runs[0][i]) / 600 for i in (0, 1)]
                res[(name, k)] = per
                log("  %-16s %-6s instructions/request: %.0f, outside OpenSSL and nghttp2 %.0f" %
                    (name, k, per[0], per[1]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return res


# On-the-fly compression of a 100 KiB text file, 1 connection, Accept-Encoding set by wrk.
COMPRESSION = [
    # name, extra directives, Accept-Encoding, servers
    ("gzip level 1", "gzip on; gzip_comp_level 1; gzip_types text/plain;", "gzip", ("weir", "nginx")),
    ("brotli level 1", "brotli on; brotli_comp_level 1; brotli_types text/plain;", "br", ("weir",)),
    ("zstd level 1", "zstd on; zstd_comp_level 1; zstd_types text/plain;", "zstd", ("weir",)),
]


def codec_alone_us(coding):
    """The codec's own CPU for the 100 KiB text at level 1 in this process (the same library)."""
    import zlib
    if coding == "gzip":
        def one():
            c = zlib.compressobj(1, zlib.DEFLATED, 31)
            return c.compress(TEXT_100K) + c.flush()
    elif coding == "br":
        import brotli
        def one():
            return brotli.compress(TEXT_100K, quality=1)
    else:
        import zstandard
        z = zstandard.ZstdCompressor(level=1)
        def one():
            return z.compress(TEXT_100K)
    one()
    t0 = time.process_time()
    n = 0
    while time.process_time() - t0 < 1.0:
        one()
        n += 1
    return (time.process_time() - t0) / n * 1e6


def encoded_size(port, coding):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(("GET /100k.txt HTTP/1.1\r\nHost: b\r\nAccept-Encoding: %s\r\nConnection: close\r\n\r\n"
               % coding).encode())
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert ("Content-Encoding: %s" % coding).encode() in head, head[:300]
    if b"Transfer-Encoding: chunked" in head:
        plain, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            plain += rest[:n]
            rest = rest[n + 2:]
        body = plain
    return len(body)


def encoded_client(coding):
    """n requests of the 100 KiB text one after another on one keep-alive connection (chunked answers)."""
    def run(port, n):
        c = socket.create_connection(("127.0.0.1", port))
        req = ("GET /100k.txt HTTP/1.1\r\nHost: b\r\nAccept-Encoding: %s\r\n\r\n" % coding).encode()
        buf = b""
        for _ in range(n):
            c.sendall(req)
            while b"\r\n0\r\n\r\n" not in buf:
                d = c.recv(1 << 20)
                if not d:
                    raise ConnectionError("closed")
                buf += d
            buf = buf[buf.index(b"\r\n0\r\n\r\n") + 7:]
        c.close()
    return run


CODEC_LIBRARIES = {"gzip": "libz.so", "br": "libbrotlienc.so", "zstd": "libzstd.so"}


def codec_share(extra, coding):
    """weir's user instructions per compressed request, and the codec library's own part of them (what the
    library's callees in libc, memcpy and memset, do is counted outside it)."""
    a = callgrind_instructions("weir", 10, extra=extra, client=encoded_client(coding),
                               library=CODEC_LIBRARIES[coding])
    b = callgrind_instructions("weir", 30, extra=extra, client=encoded_client(coding),
                               library=CODEC_LIBRARIES[coding])
    return (b[0] - a[0]) / 20, (b[1] - a[1]) / 20


def run_compression(rounds, seconds, log):
    res = {}
    for name, extra, coding, kinds in COMPRESSION:
        servers = {k: Server(k, extra=extra).start() for k in kinds}
        size = encoded_size(servers["weir"].port, coding)
        per = measure_rounds(name, servers, "/100k.txt", 1, ["-H", "Accept-Encoding: " + coding], rounds,
                             seconds, log)
        alone = codec_alone_us(coding)
        total, in_codec = codec_share(extra, coding)
        log("  %-36s %s alone %.0f µs, ratio %.2f; weir %.0f instructions/request, %.3f of the codec's" %
            ("", coding, alone, len(TEXT_100K) / size, total, total / in_codec))
        res[name] = (per, alone, len(TEXT_100K) / size, total / in_codec)
    return res


def run_headers_cost(log):
    """add_header + expires on the 1 KiB static path: user instructions per request with and without, for
    weir and nginx."""
    extra = "add_header X-Frame-Options SAMEORIGIN; expires 1h;"
    res = {}
    for k in ("weir", "nginx"):
        per = []
        for e in ("", extra):
            a = callgrind_instructions(k, 1000, extra=e)
            b = callgrind_instructions(k, 3000, extra=e)
            per.append((b - a) / 2000)
        res[k] = per
        log("  %-6s instructions/request: %.0f plain, %.0f with add_header + expires (+%.0f, %.3f)" %
            (k, per[0], per[1], per[1] - per[0], per[1] / per[0]))
    return res


# limit_req + limit_conn + a 20-entry map on the 1 KiB static path (limits never reached: one
# sequential client): what the request modules cost when a configuration uses them.
MODULES_HTTP = ("map $uri $limit_key { default $binary_remote_addr; " +
                " ".join("/page%d.html k%d;" % (i, i) for i in range(19)) + " } "
                "limit_conn_zone $limit_key zone=conns:1m; "
                "limit_req_zone $binary_remote_addr zone=reqs:1m rate=1000000r/s;")
MODULES_SERVER = "limit_req zone=reqs burst=1000 nodelay; limit_conn conns 1000;"


def run_modules_cost(rounds, seconds, log):
    """User instructions per request with and without the request modules (callgrind), and CPU per
    request under 50 connections, where each request takes both zones' locks."""
    res = {}
    for k in ("weir", "nginx"):
        per = []
        for http_extra, extra in (("", ""), (MODULES_HTTP, MODULES_SERVER)):
            a = callgrind_instructions(k, 1000, extra=extra, http_extra=http_extra)
            b = callgrind_instructions(k, 3000, extra=extra, http_extra=http_extra)
            per.append((b - a) / 2000)
        res[k] = per
        log("  %-6s instructions/request: %.0f plain, %.0f with limit_req + limit_conn + map "
            "(+%.0f, %.3f)" % (k, per[0], per[1], per[1] - per[0], per[1] / per[0]))
    servers = {}
    for k in ("weir", "nginx"):
        servers[k] = Server(k).start()
        servers[k + " limits"] = Server(k, extra=MODULES_SERVER, http_extra=MODULES_HTTP).start()
    load = measure_rounds("1 KiB, 50 conns, limits", servers, "/1k.bin", 50, [], rounds, seconds, log)
    return res, load


# weir's own metrics (`prometheus;` somewhere in the configuration): every request is counted in the
# log phase into the worker's slot of the metrics zone.
METRICS_SERVER = "location = /metrics { prometheus; }"


def run_metrics_cost(rounds, seconds, log):
    """User instructions per 1 KiB request with and without weir's metrics (callgrind), and CPU per
    request under 50 connections."""
    per = []
    for extra in ("", METRICS_SERVER):
        a = callgrind_instructions("weir", 1000, extra=extra)
        b = callgrind_instructions("weir", 3000, extra=extra)
        per.append((b - a) / 2000)
    log("  weir   instructions/request: %.0f plain, %.0f with prometheus (+%.0f, %.3f)" %
        (per[0], per[1], per[1] - per[0], per[1] / per[0]))
    servers = {"weir": Server("weir").start(), "weir metrics": Server("weir", extra=METRICS_SERVER).start()}
    load = measure_rounds("1 KiB, 50 conns, metrics", servers, "/1k.bin", 50, [], rounds, seconds, log)
    return per, load


# The buffered path that sendfile is measured against: pread into two 256k buffers, then writev (the best of
# 32k, 256k and 1m in a trial on this machine).
READ_BUFFERS = "2 256k"
SENDFILE_SCENARIOS = [("100 KiB, 1 connection", "/100k.bin", 1), ("10 MiB, 4 connections", "/10m.bin", 4)]


def run_sendfile_choice(rounds, seconds, log):
    """weir with sendfile against weir reading files into output buffers (pread + writev), per file size."""
    results = {}
    for name, path, conns in SENDFILE_SCENARIOS:
        servers = {"sendfile": Server("weir").start(), "pread": Server("weir", sendfile=False).start()}
        results[name] = measure_rounds(name, servers, path, conns, [], rounds, seconds, log)
    return results


def run_log_cost(kinds, rounds, seconds, log):
    """The access log's price: one worker serves a port without and a port with `access_log ... buffer=64k
    flush=1s`; the two are loaded in turn, round by round, and CPU per request is paired."""
    res = {}
    for k in kinds:
        if k == "h2o":
            continue
        s = Server(k, logged_port=True).start()
        try:
            for port in (s.port, s.logged_port):
                wrk(port, "/1k.bin", 50, 1, [])
            cpu = {"off": [], "on": []}
            for r in range(rounds + 2):
                pairs = (("off", s.port), ("on", s.logged_port))
                for name, port in (pairs if r % 2 == 0 else pairs[::-1]):
                    c0 = s.cpu_seconds()
                    n, _, _ = wrk(port, "/1k.bin", 50, seconds, [])
                    cpu[name].append((s.cpu_seconds() - c0) / max(n, 1) * 1e6)
            paired = statistics.median([y / x for x, y in zip(cpu["off"], cpu["on"])])
            res[k] = (statistics.median(cpu["off"]), statistics.median(cpu["on"]), paired)
            log("  %-6s access log: %.2f -> %.2f µs/request, paired ratio %.3f" % ((k,) + res[k]))
        finally:
            s.stop()
    return res


def strace_counts(pid, action):
    out = tempfile.mktemp()
    tracer = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    action()
    time.sleep(0.3)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(20)
    total = 0
    calls = {}
    for line in open(out):
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            n = int(parts[3])
            calls[parts[-1]] = n
            total += n
    os.unlink(out)
    return total, calls


# The configuration most nginx users run: no open_file_cache.
DEFAULT_SCENARIOS = [
    ("default: 1 KiB, 50 connections", "/1k.bin", 50, []),
    ("default: 1 KiB, Connection: close", "/1k.bin", 50, ["-H", "Connection: close"]),
    ("default: 100 KiB, 50 connections", "/100k.bin", 50, []),
]


def run_default(kinds, rounds, seconds, log):
    """The static path on the stock configuration (no open_file_cache): req/s and CPU per request, and
    syscalls per request of weir and nginx (h2o serves its own configuration, as elsewhere)."""
    results = {}
    for name, path, conns, extra in DEFAULT_SCENARIOS:
        servers = {k: Server(k, file_cache=False).start() for k in kinds}
        results[name] = measure_rounds(name, servers, path, conns, extra, rounds, seconds, log)
    calls = run_syscalls([k for k in kinds if k != "h2o"], log, file_cache=False)
    instructions = {}
    for k in ("weir", "nginx"):
        a = callgrind_instructions(k, 1000, file_cache=False)
        b = callgrind_instructions(k, 3000, file_cache=False)
        instructions[k] = (b - a) / 2000
        log("  %-6s user instructions per 1 KiB request, stock configuration: %.0f" % (k, instructions[k]))
    return results, calls, instructions


def run_syscalls(kinds, log, file_cache=True):
    res = {}
    for k in kinds:
        s = Server(k, file_cache=file_cache).start()
        try:
            sequential_client(s.port, "/1k.bin", 200)  # warm
            pid = s.worker_pid()
            t1, _ = strace_counts(pid, lambda: sequential_client(s.port, "/1k.bin", 1000))
            t2, calls = strace_counts(pid, lambda: sequential_client(s.port, "/1k.bin", 3000))
            one_conn = (t2 - t1) / 2000
            holder = {}
            t3, calls_load = strace_counts(pid, lambda: holder.update(n=wrk(s.port, "/1k.bin", 50, 3, [])[0]))
            under_load = t3 / holder["n"]
            per_req = {c: round(n / 3000, 2) for c, n in calls.items() if n >= 1000}
            res[k] = (one_conn, under_load, per_req)
            log("  %-6s syscalls/request: %.2f at one connection, %.2f under load  %s" % (k, one_conn, under_load, per_req))
        finally:
            s.stop()
    return res


def callgrind_instructions(kind, n, access_log=False, extra="", http_extra="", client=None, library=None,
                           php=None, file_cache=True):
    """User-space instructions for start-up plus n requests (callgrind dumps on request, then the server is
    killed: a signalled nginx under valgrind does not always exit). client(port, n) makes the requests
    (default: n of /1k.bin); with library (a file name's part, "libz.so"), returns (all, in that
    library's own code)."""
    s = Server(kind, access_log=access_log, master=False, extra=extra, http_extra=http_extra, php=php,
               file_cache=file_cache)
    out = os.path.join(s.dir, "callgrind.out")
    try:
        s.start(prefix=["valgrind", "--tool=callgrind", "--vgdb-prefix=" + os.path.join(s.dir, "vgdb"),
                        "--callgrind-out-file=" + out])
        (client or (lambda port, k: sequential_client(port, "/1k.bin", k)))(s.port, n)
        dump = subprocess.Popen(["callgrind_control", "--vgdb-prefix=" + os.path.join(s.dir, "vgdb"),
                                 "-d", str(s.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            dump.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dump.pid, signal.SIGKILL)  # vgdb is a grandchild: kill the whole group
            dump.wait()
            raise RuntimeError("callgrind dump of %s timed out" % kind)
        total = in_library = 0
        for f in os.listdir(s.dir):
            if not f.startswith("callgrind.out."):
                continue
            for line in open(os.path.join(s.dir, f)):
                if line.startswith("summary:"):
                    total += int(line.split()[1])
            if library:
                # Each function's own instructions, with its object in brackets.
                ann = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100",
                                      os.path.join(s.dir, f)], capture_output=True, text=True).stdout
                libs = "|".join(re.escape(x) for x in ([library] if isinstance(library, str) else library))
                for m in re.finditer(r"^\s*([\d,]+) .*\[[^\]]*(?:%s)[^\]]*\]$" % libs, ann, re.M):
                    in_library += int(m.group(1).replace(",", ""))
        return (total, in_library) if library else total
    finally:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        shutil.rmtree(s.dir, ignore_errors=True)


def run_instructions(kinds, log):
    res = {}
    for k in kinds:
        per = []
        for access_log in (False, True):
            a = callgrind_instructions(k, 1000, access_log)
            b = callgrind_instructions(k, 3000, access_log)
            per.append((b - a) / 2000)
        res[k] = tuple(per)
        log("  %-6s instructions/request: %.0f, with access log %.0f" % (k, per[0], per[1]))
    return res


def run_memory(kinds, log, count=10000):
    res = {}
    for k in kinds:
        s = Server(k).start()
        socks = []
        try:
            pid = s.worker_pid()
            sequential_client(s.port, "/1k.bin", 10)
            time.sleep(0.3)
            before = s.rss_kib(pid)
            req = b"GET /1k.bin HTTP/1.1\r\nHost: bench\r\n\r\n"
            for i in range(count):
                c = socket.create_connection(("127.0.0.1", s.port))
                c.sendall(req)
                socks.append(c)
                if len(socks) % 200 == 0:
                    for x in socks[-200:]:
                        x.recv(65536)
            for x in socks[len(socks) - len(socks) % 200:]:
                x.recv(65536)
            time.sleep(1.0)
            after = s.rss_kib(pid)
            res[k] = (after - before) * 1024 / count
            log("  %-6s user memory per idle keep-alive connection: %.0f bytes" % (k, res[k]))
        finally:
            for c in socks:
                c.close()
            s.stop()
    return res


def p99_latency(kinds, log, n=3000):
    res = {}
    for k in kinds:
        s = Server(k).start()
        try:
            lat = []
            sequential_client(s.port, "/100k.bin", 200)
            sequential_client(s.port, "/100k.bin", n, lat)
            lat.sort()
            res[k] = (lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3,
                      sum(1 for x in lat if x > 0.02))
            log("  %-6s 100 KiB per-request latency: p50 %.3f ms, p99 %.3f ms, max %.1f ms, %d over 20 ms" % ((k,) + res[k]))
        finally:
            s.stop()
    return res


# aio threads on a cold page cache: two clients download large files that were just dropped from the
# page cache (a read from the disk for each of them) while one client times 1 KiB requests on the same
# worker. Without aio the worker waits for the disk in sendfile and the small requests wait with it.
COLD_FILES = 4
COLD_SIZE = 64 << 20
COLD_CLIENT = """
import os, socket, sys, time
port, root, until = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
i, got = int(sys.argv[4]), 0
while time.time() < until:
    name = "cold%d.bin" % (i % {files})
    i += 1
    fd = os.open(os.path.join(root, name), os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /cold/%s HTTP/1.0\\r\\n\\r\\n" % name).encode())
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    s.close()
print(got)
""".format(files=COLD_FILES)


def run_cold_cache(rounds, seconds, log):
    """1 KiB latency beside cold large downloads, aio off and `aio threads`, weir and nginx."""
    cold = tempfile.mkdtemp(prefix="weir-bench-cold-")
    os.chmod(cold, 0o755)
    for i in range(COLD_FILES):
        with open(os.path.join(cold, "cold%d.bin" % i), "wb") as f:
            for _ in range(COLD_SIZE >> 20):
                f.write(os.urandom(1 << 20))
        os.chmod(os.path.join(cold, "cold%d.bin" % i), 0o644)
    location = "location /cold/ {{ alias {}/; {} }}"
    res = {}
    try:
        for r in range(rounds):
            for kind in ("weir", "nginx"):
                for aio in ("off", "threads"):
                    s = Server(kind, extra=location.format(cold, "aio %s;" % aio)).start()
                    try:
                        sequential_client(s.port, "/1k.bin", 200)
                        until = time.time() + seconds
                        loaders = [subprocess.Popen(
                            ["taskset", "-c", CLIENT_CPU, sys.executable, "-c", COLD_CLIENT, str(s.port),
                             cold, str(until), str(j)], stdout=subprocess.PIPE, text=True) for j in range(2)]
                        lat = []
                        while time.time() < until:
                            sequential_client(s.port, "/1k.bin", 50, lat)
                        cold_bytes = sum(int(p.communicate(timeout=seconds + 60)[0] or 0) for p in loaders)
                        lat.sort()
                        key = "%s aio %s" % (kind, aio)
                        res.setdefault(key, []).append((lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3,
                                                        lat[-1] * 1e3, cold_bytes / seconds / 1e6))
                    finally:
                        s.stop()
        for key, rows in res.items():
            med = [statistics.median(x[i] for x in rows) for i in range(4)]
            log("  %-18s 1 KiB beside cold downloads: p50 %.3f ms, p99 %.3f ms, max %.1f ms; cold %.0f MB/s" %
                ((key,) + tuple(med)))
    finally:
        shutil.rmtree(cold, ignore_errors=True)
    return res


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(open("/proc/meminfo").readline().split()[1]) // 1024 // 1024
    versions = []
    for cmd in ([WEIR, "-v"], [NGINX, "-v"], [H2O, "--version"]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            versions.append((p.stderr + p.stdout).splitlines()[0])
        except OSError:
            pass
    return "%s, %d CPUs, %d GiB, Linux %s; %s" % (cpu, os.cpu_count(), mem, platform.release(), "; ".join(versions))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--only", default="")
    ap.add_argument("--scenarios", default="", help="comma-separated scenario name prefixes")
    args = ap.parse_args()
    kinds = ["weir", "nginx", "h2o"]
    lines = []
    if not os.path.exists(H2O):  # make bench installs it; a partial run goes on without it
        kinds.remove("h2o")

    def log(s):
        print(s, flush=True)
        lines.append(s)

    started = time.time()
    log("machine: " + machine())
    parts = args.only.split(",") if args.only else ["throughput", "proxied", "tls", "sendfile", "logcost", "latency",
                                                     "syscalls", "instructions", "memory", "compression",
                                                     "headers", "modules", "coldcache", "php", "cache",
                                                     "default", "metrics"]
    only = [x for x in args.scenarios.split(",") if x]
    tp = run_throughput(kinds, args.rounds, args.seconds, log, only) if "throughput" in parts else {}
    proxied = run_proxied(args.rounds, args.seconds, log) if "proxied" in parts else {}
    if "tls" in parts:
        tp.update(run_tls(kinds, args.rounds, args.seconds, log))
    tls_ins = run_tls_instructions(log) if "tls" in parts else {}
    sf = run_sendfile_choice(args.rounds, args.seconds, log) if "sendfile" in parts else {}
    lc = run_log_cost(kinds, args.rounds, args.seconds, log) if "logcost" in parts else {}
    lat = p99_latency(kinds, log) if "latency" in parts else {}
    sc = run_syscalls(kinds, log) if "syscalls" in parts else {}
    ins = run_instructions(kinds, log) if "instructions" in parts else {}
    mem = run_memory(kinds, log) if "memory" in parts else {}
    comp = run_compression(args.rounds, args.seconds, log) if "compression" in parts else {}
    hdr = run_headers_cost(log) if "headers" in parts else {}
    mods = run_modules_cost(args.rounds, args.seconds, log) if "modules" in parts else {}
    cold = run_cold_cache(args.rounds, args.seconds, log) if "coldcache" in parts else {}
    php = run_php(args.rounds, args.seconds, log) if "php" in parts else None
    cache = run_cache(args.rounds, args.seconds, log) if "cache" in parts else None
    default = run_default(kinds, args.rounds, args.seconds, log) if "default" in parts else None
    metrics = run_metrics_cost(args.rounds, args.seconds, log) if "metrics" in parts else None
    name = datetime.date.today().isoformat() + ("-" + "-".join(parts) if args.only else "")
    write_report(args, tp, sf, lc, lat, sc, ins, mem, time.time() - started, comp, hdr, name, mods, tls_ins,
                 cold, php, cache, default, metrics, proxied)


def ratio(a, b):
    return [x / y for x, y in zip(a, b) if y]


def write_report(args, tp, sf, lc, lat, sc, ins, mem, elapsed, comp=None, hdr=None, report=None,
                 mods=None, tls_ins=None, cold=None, php=None, cache=None, default=None, metrics=None,
                 proxied=None):
    today = datetime.date.today().isoformat()
    out = ["# weir benchmark, %s" % today, "",
           "Machine: " + machine() + ".",
           "",
           "Each server runs one worker pinned to CPU %s; wrk (1 thread) is pinned to CPU %s. The same nginx.conf for "
           "weir and nginx (sendfile, tcp_nopush, tcp_nodelay, keep-alive, open_file_cache, access_log off unless "
           "stated); h2o serves the same files. %d rounds of %d s per server and scenario, servers interleaved and "
           "rotated. Figures are medians (min–max); ratios are computed round by round, then the median taken. "
           "CPU is the server's utime+stime per request from /proc." % (SERVER_CPU, CLIENT_CPU, args.rounds, args.seconds),
           ""]
    if tp:
        out += ["| scenario | weir req/s | nginx req/s | h2o req/s | weir/nginx | weir/h2o | weir CPU µs/req | nginx CPU µs/req | h2o CPU µs/req | CPU weir/nginx |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, per in tp.items():
            w, n, h = per["weir"], per["nginx"], per.get("h2o")
            out.append("| %s | %s | %s | %s | %.2f | %s | %s | %s | %s | %.2f |" % (
                name, median_range(w["rps"]), median_range(n["rps"]), median_range(h["rps"]) if h else "-",
                statistics.median(ratio(w["rps"], n["rps"])),
                "%.2f" % statistics.median(ratio(w["rps"], h["rps"])) if h else "-",
                median_range(w["cpu_us"], "{:.2f}"), median_range(n["cpu_us"], "{:.2f}"),
                median_range(h["cpu_us"], "{:.2f}") if h else "-",
                statistics.median(ratio(w["cpu_us"], n["cpu_us"]))))
        for name, per in tp.items():
            errs = ["%s: %s" % (k, v["errors"]) for k, v in per.items() if v["errors"]]
            if errs:
                out.append("")
                out.append("wrk reported for %s: %s" % (name, "; ".join(errs)))
        out.append("")
    if proxied:
        out += ["Proxied, in front of one origin (Debian's nginx on the client's CPU); HAProxy with one thread "
                "and `http-reuse always`:", "",
                "| scenario | weir req/s | nginx req/s | HAProxy req/s | weir CPU µs/req | nginx CPU µs/req | "
                "HAProxy CPU µs/req | CPU weir/nginx | CPU weir/HAProxy |",
                "|---|---|---|---|---|---|---|---|---|"]
        for name, per in proxied.items():
            w, n, h = per["weir"], per["nginx"], per.get("haproxy")
            out.append("| %s | %s | %s | %s | %s | %s | %s | %.2f | %s |" % (
                name, median_range(w["rps"]), median_range(n["rps"]), median_range(h["rps"]) if h else "-",
                median_range(w["cpu_us"], "{:.2f}"), median_range(n["cpu_us"], "{:.2f}"),
                median_range(h["cpu_us"], "{:.2f}") if h else "-",
                statistics.median(ratio(w["cpu_us"], n["cpu_us"])),
                "%.2f" % statistics.median(ratio(w["cpu_us"], h["cpu_us"])) if h else "-"))
        for name, per in proxied.items():
            errs = ["%s: %s" % (k, v["errors"]) for k, v in per.items() if v["errors"]]
            if errs:
                out += ["", "wrk reported for %s: %s" % (name, "; ".join(errs))]
        out.append("")
    if sf:
        out += ["sendfile against buffered reads (weir alone; `sendfile on` against `sendfile off; output_buffers "
                "%s`, i.e. pread + writev), paired rounds:" % READ_BUFFERS, "",
                "| file | sendfile req/s | pread req/s | req/s sendfile/pread | sendfile CPU µs/req | pread CPU µs/req |",
                "|---|---|---|---|---|---|"]
        for name, per in sf.items():
            a, b = per["sendfile"], per["pread"]
            out.append("| %s | %s | %s | %.2f | %s | %s |" % (
                name, median_range(a["rps"]), median_range(b["rps"]), statistics.median(ratio(a["rps"], b["rps"])),
                median_range(a["cpu_us"], "{:.1f}"), median_range(b["cpu_us"], "{:.1f}")))
        cheaper = [name for name, per in sf.items()
                   if statistics.median(per["sendfile"]["cpu_us"]) < statistics.median(per["pread"]["cpu_us"])]
        out += ["", "sendfile costs less server CPU per request at %s of %d sizes measured%s." % (
            len(cheaper), len(sf), ": no size threshold is warranted" if len(cheaper) == len(sf) else
            " (a size threshold may be warranted)")]
        out.append("")
    if lc:
        out += ["The access log's price (1 KiB, 50 connections; one worker serving a port without and a port with "
                "`access_log ... combined buffer=64k flush=1s`, loaded in turn, CPU per request paired):", "",
                "| server | no log µs/req | log µs/req | paired ratio |", "|---|---|---|---|"]
        for k, (off, on, paired) in lc.items():
            out.append("| %s | %.2f | %.2f | %.3f |" % (k, off, on, paired))
        out.append("")
    if lat:
        out += ["100 KiB over one keep-alive connection, per-request latency from a plain sequential client "
                "(tcp_nopush on):", "", "| server | p50 ms | p99 ms | max ms | requests over 20 ms |", "|---|---|---|---|---|"]
        for k, (p50, p99, mx, slow) in lat.items():
            out.append("| %s | %.3f | %.3f | %.1f | %d |" % (k, p50, p99, mx, slow))
        out.append("")
    if sc or ins or mem:
        out += ["Exact cost figures (1 KiB static):", "", "| server | syscalls/req, 1 conn | syscalls/req, 50 conns | "
                "user instructions/req | the same with access log | user bytes per idle keep-alive conn |",
                "|---|---|---|---|---|---|"]
        for k in ("weir", "nginx", "h2o"):
            s = sc.get(k)
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                k, "%.2f" % s[0] if s else "-", "%.2f" % s[1] if s else "-",
                "%.0f" % ins[k][0] if k in ins else "-", "%.0f" % ins[k][1] if k in ins else "-",
                "%.0f" % mem[k] if k in mem else "-"))
        out.append("")
        for k, s in sc.items():
            out.append("- %s syscalls per request at one connection: %s" % (k, ", ".join("%s %s" % kv for kv in s[2].items())))
        out.append("")
    if comp:
        out += ["On-the-fly compression of a 100 KiB text file (level 1, one connection; the codec alone is the same "
                "library called once on the whole file in the benchmark's process, without the kernel's cost of "
                "sending the answer; user instructions: weir's per request over the codec library's own, from "
                "callgrind):", "",
                "| coding | weir CPU µs/req | nginx CPU µs/req | CPU weir/nginx | codec alone µs | weir / codec alone "
                "| user instructions / codec's | compression ratio |", "|---|---|---|---|---|---|---|---|"]
        for name, (per, alone, cratio, share) in comp.items():
            w, n = per["weir"], per.get("nginx")
            out.append("| %s | %s | %s | %s | %.0f | %.2f | %.3f | %.2f |" % (
                name, median_range(w["cpu_us"], "{:.0f}"), median_range(n["cpu_us"], "{:.0f}") if n else "-",
                "%.2f" % statistics.median(ratio(w["cpu_us"], n["cpu_us"])) if n else "-", alone,
                statistics.median(w["cpu_us"]) / alone, share, cratio))
        out.append("")
    if hdr:
        out += ["`add_header X-Frame-Options SAMEORIGIN; expires 1h;` on the 1 KiB static path, user instructions per "
                "request:", "", "| server | without | with | added | ratio |", "|---|---|---|---|---|"]
        for k, (a, b) in hdr.items():
            out.append("| %s | %.0f | %.0f | %.0f | %.3f |" % (k, a, b, b - a, b / a))
        out.append("")
    if mods:
        out += ["limit_req + limit_conn (keyed by a 20-entry map) on the 1 KiB static path, limits never "
                "reached, user instructions per request:", "", "| server | without | with | added | ratio |",
                "|---|---|---|---|---|"]
        cost, load = mods
        for k, (a, b) in cost.items():
            out.append("| %s | %.0f | %.0f | %.0f | %.3f |" % (k, a, b, b - a, b / a))
        out += ["", "The same under 50 connections (each request takes both zones' locks; one worker):", "",
                "| server | req/s without | req/s with | CPU µs/req without | CPU µs/req with | CPU with/without |",
                "|---|---|---|---|---|---|"]
        for k in ("weir", "nginx"):
            a, b = load[k], load[k + " limits"]
            out.append("| %s | %s | %s | %s | %s | %.2f |" % (
                k, median_range(a["rps"]), median_range(b["rps"]), median_range(a["cpu_us"], "{:.1f}"),
                median_range(b["cpu_us"], "{:.1f}"), statistics.median(ratio(b["cpu_us"], a["cpu_us"]))))
        out.append("")
    if metrics:
        (a, b), load = metrics
        out += ["weir's metrics (`prometheus;` in the configuration: each request counted in the worker's slot of "
                "the metrics zone) on the 1 KiB static path, user instructions per request:", "",
                "| without | with | added | ratio |", "|---|---|---|---|",
                "| %.0f | %.0f | %.0f | %.3f |" % (a, b, b - a, b / a), "",
                "The same under 50 connections (one worker):", "",
                "| req/s without | req/s with | CPU µs/req without | CPU µs/req with | CPU with/without |",
                "|---|---|---|---|---|"]
        w, m = load["weir"], load["weir metrics"]
        out.append("| %s | %s | %s | %s | %.2f |" % (
            median_range(w["rps"]), median_range(m["rps"]), median_range(w["cpu_us"], "{:.1f}"),
            median_range(m["cpu_us"], "{:.1f}"), statistics.median(ratio(m["cpu_us"], w["cpu_us"]))))
        out.append("")
    if tls_ins:
        out += ["User-space instructions per 1 KiB request over TLS (callgrind, two runs): all of them, and those "
                "outside OpenSSL and nghttp2 (nginx's HTTP/2 framing is its own code and counts):", "",
                "| | weir | nginx | weir outside | nginx outside | outside weir/nginx |", "|---|---|---|---|---|---|"]
        for name in dict.fromkeys(n for n, _ in tls_ins):
            w, n = tls_ins[(name, "weir")], tls_ins[(name, "nginx")]
            out.append("| %s | %.0f | %.0f | %.0f | %.0f | %.2f |" % (name, w[0], n[0], w[1], n[1], w[1] / n[1]))
        out.append("")
    if cold:
        out += ["1 KiB requests timed one after another while two clients download %d MiB files just dropped "
                "from the page cache (`posix_fadvise(DONTNEED)`), one worker; medians of %d rounds:" % (
                    COLD_SIZE >> 20, args.rounds), "",
                "| server | 1 KiB p50 ms | 1 KiB p99 ms | 1 KiB max ms | cold MB/s |", "|---|---|---|---|---|"]
        for key, rows in cold.items():
            med = [statistics.median(x[i] for x in rows) for i in range(4)]
            out.append("| %s | %.3f | %.3f | %.1f | %.0f |" % ((key,) + tuple(med)))
        out.append("")
    if php:
        load, counts = php
        out += ["PHP hello world through one php-fpm (`pm static`, 2 children, pinned with wrk to CPU %s), weir and "
                "nginx in front with the same configuration; front CPU per request from /proc, the front's user "
                "instructions per request from callgrind (one sequential client, two runs):" % CLIENT_CPU, "",
                "| scenario | weir req/s | nginx req/s | weir/nginx | weir CPU µs/req | nginx CPU µs/req | "
                "CPU weir/nginx | weir instructions | nginx instructions | instructions weir/nginx |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for name, per in load.items():
            w, n = per["weir"], per["nginx"]
            iw, inx = counts[(name, "weir")], counts[(name, "nginx")]
            out.append("| %s | %s | %s | %.2f | %s | %s | %.2f | %.0f | %.0f | %.2f |" % (
                name, median_range(w["rps"]), median_range(n["rps"]), statistics.median(ratio(w["rps"], n["rps"])),
                median_range(w["cpu_us"], "{:.1f}"), median_range(n["cpu_us"], "{:.1f}"),
                statistics.median(ratio(w["cpu_us"], n["cpu_us"])), iw, inx, iw / inx))
            errs = ["%s: %s" % (k, v["errors"]) for k, v in per.items() if v["errors"]]
            if errs:
                out += ["", "wrk reported for %s: %s" % (name, "; ".join(errs)), ""]
        out.append("")
    if cache:
        load, calls, manager = cache
        out += ["The cache: weir and nginx with `proxy_cache` in front of one nginx origin (pinned with wrk to CPU "
                "%s); every request after the first is a HIT. Syscalls per request at one keep-alive connection "
                "(strace), a HIT beside the static path's for the same 1 KiB file:" % CLIENT_CPU, "",
                "| scenario | weir req/s | nginx req/s | weir/nginx | weir CPU µs/req | nginx CPU µs/req | "
                "CPU weir/nginx |", "|---|---|---|---|---|---|---|"]
        for name, per in load.items():
            w, n = per["weir"], per["nginx"]
            out.append("| %s | %s | %s | %.2f | %s | %s | %.2f |" % (
                name, median_range(w["rps"]), median_range(n["rps"]), statistics.median(ratio(w["rps"], n["rps"])),
                median_range(w["cpu_us"], "{:.1f}"), median_range(n["cpu_us"], "{:.1f}"),
                statistics.median(ratio(w["cpu_us"], n["cpu_us"]))))
        out += ["", "| server | syscalls per HIT | per static request | HIT's calls |", "|---|---|---|---|"]
        for k in ("weir", "nginx"):
            hit, per_call = calls[(k, "HIT")]
            out.append("| %s | %.2f | %.2f | %s |" % (k, hit, calls[(k, "static")][0],
                                                     ", ".join("%s %.2f" % kv for kv in sorted(per_call.items()))))
        out += ["", "The cache manager process at rest over 10 s, after distinct MISSes filled the index (up to "
                "100k entries or 40 s; inactive 10 m: nothing expires): " + "; ".join(
                    "%s %.2f%% of a core at %d entries" % (k, rest, n) for k, (n, rest, _, _) in manager.items()),
                "", "Then, reloaded with `max_size=1m`, while the new manager deletes at its default pace "
                "(`manager_files=100`, `manager_sleep=50ms`), over 10 s: " + "; ".join(
                    "%s %.2f%% of a core, %d files deleted" % (k, busy, deleted)
                    for k, (_, _, busy, deleted) in manager.items()), ""]
    if default:
        load, calls, instructions = default
        kinds_d = list(next(iter(load.values())))
        out += ["The stock configuration (no `open_file_cache`; weir's never-stale file cache on by default): CPU "
                "µs per request and its ratio to nginx's, medians of the rounds:", "",
                "| scenario | " + " | ".join("%s req/s | %s CPU µs/req" % (k, k) for k in kinds_d) +
                " | req/s weir/nginx | CPU weir/nginx |" + (" CPU weir/h2o |" if "h2o" in kinds_d else ""),
                "|---" * (1 + 2 * len(kinds_d) + 2 + ("h2o" in kinds_d)) + "|"]
        for name, per in load.items():
            row = "| %s | " % name + " | ".join("%s | %s" % (median_range(per[k]["rps"]),
                                                           median_range(per[k]["cpu_us"], "{:.1f}")) for k in kinds_d)
            row += " | %.2f | %.2f |" % (statistics.median(ratio(per["weir"]["rps"], per["nginx"]["rps"])),
                                         statistics.median(ratio(per["weir"]["cpu_us"], per["nginx"]["cpu_us"])))
            if "h2o" in per:
                row += " %.2f |" % statistics.median(ratio(per["weir"]["cpu_us"], per["h2o"]["cpu_us"]))
            out.append(row)
        out += ["", "| server | syscalls per 1 KiB request, one connection | under load (50 connections) | calls |",
                "|---|---|---|---|"]
        for k, (one, loaded, per_call) in calls.items():
            out.append("| %s | %.2f | %.2f | %s |" % (k, one, loaded, ", ".join(
                "%s %.2f" % kv for kv in sorted(per_call.items()))))
        out += ["", "User instructions per 1 KiB request (callgrind, one sequential client, start-up cancelled): " +
                "; ".join("%s %.0f" % kv for kv in instructions.items()), ""]
    out.append("Reproduce: `make bench` (whole run %.0f s)." % elapsed)
    path = os.path.join(ROOT, "bench", "results", "%s.md" % (report or today))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("\nwrote " + path)


if __name__ == "__main__":
    main()
