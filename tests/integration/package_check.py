"""The .deb `make package` builds (#13), installed on this machine with dpkg as an operator would:
its contents and dependencies, the Debian layout it installs (/usr/sbin/weir, /etc/weir with
sites-available and sites-enabled, a systemd unit, logrotate, a man page), the build-time paths -V
shows, the unit checked by systemd-analyze and its command lines (start, reload, stop) serving a site
added in conf.d, logrotate's postrotate reopening the logs, and a purge that leaves nothing - and an
installed nginx untouched. Run by scripts/test.sh's package phase (WEIR_DEB names the file);
it needs root or password-less sudo, as dpkg does."""
import os
import shlex
import subprocess

import pytest

from conftest import free_port, http_get, wait_for

DEB = os.environ.get("WEIR_DEB", "")


def root(cmd, **kw):
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return subprocess.run(prefix + cmd, capture_output=True, text=True, timeout=120, **kw)


def unit_commands(path):
    """A systemd unit's [Service] settings, each split as systemd splits a command line (a leading
    "-", which lets the command fail, dropped)."""
    out = {}
    for line in open(path):
        key, eq, value = line.strip().partition("=")
        if eq:
            out[key] = shlex.split(value.removeprefix("-"))
    return out


def postrotate(path):
    """The shell lines between a logrotate file's postrotate and endscript."""
    lines = open(path).read().split("postrotate", 1)[1].split("endscript", 1)[0]
    return lines.strip()


@pytest.fixture(scope="module")
def deb():
    if not DEB or not os.path.exists(DEB):
        pytest.fail("WEIR_DEB names no package: run through scripts/test.sh (make test)")
    if os.geteuid() != 0 and root(["true"]).returncode != 0:
        pytest.fail("installing the package needs root or password-less sudo")
    if root(["dpkg", "-s", "weir"]).returncode == 0:
        pytest.fail("a weir package is installed already: this test would replace it")
    return DEB


def test_package_installs_runs_and_purges(deb):
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
    for f in ("./usr/sbin/weir", "./etc/weir/weir.conf", "./etc/weir/mime.types",
              "./etc/weir/sites-available/default", "./lib/systemd/system/weir.service",
              "./etc/logrotate.d/weir", "./usr/share/man/man8/weir.8", "./etc/weir/fastcgi_params",
              "./etc/weir/fastcgi.conf", "./etc/weir/scgi_params", "./etc/weir/uwsgi_params",
              "./etc/weir/proxy_params", "./etc/weir/snippets/fastcgi-php.conf",
              "./etc/weir/snippets/snakeoil.conf", "./usr/share/weir/html/index.html"):
        assert f in listing, (f, listing)
    info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True).stdout
    assert "libssl3" in info and "libnghttp2" in info, info
    nginx_before = root(["dpkg", "-s", "nginx"]).stdout

    p = root(["dpkg", "-i", deb])
    assert p.returncode == 0, p.stdout + p.stderr
    pid_file = "/run/weir.pid"
    try:
        assert os.path.islink("/etc/weir/sites-enabled/default")
        assert os.path.exists("/var/www/html/index.weir-debian.html")
        v = subprocess.run(["/usr/sbin/weir", "-V"], capture_output=True, text=True).stderr
        assert "--conf-path=/etc/weir/weir.conf" in v and "--pid-path=/run/weir.pid" in v, v
        t = root(["/usr/sbin/weir", "-t", "-q"])
        assert t.returncode == 0, t.stderr
        # The operator's own site instead of the default one (port 80 may be another server's).
        port = free_port()
        root(["rm", "/etc/weir/sites-enabled/default"])
        # It serves the default page the package put in /var/www/html, and proxies with proxy_params.
        conf = ('server { listen 127.0.0.1:%d; root /var/www/html; index index.weir-debian.html; '
                'location = /packaged { return 200 "packaged $http_x_forwarded_proto\\n"; } '
                'location = /p { include proxy_params; proxy_pass http://127.0.0.1:%d/packaged; } }\n'
                % (port, port))
        root(["sh", "-c", "cat > /etc/weir/conf.d/test.conf"], input=conf)
        # The unit as systemd reads it, then its command lines as systemd runs them (systemd does
        # not run here): ExecStartPre, ExecStart (Type=forking: it returns once the master is
        # up and has written PIDFile), ExecReload, the logrotate postrotate, ExecStop.
        unit = "/lib/systemd/system/weir.service"
        v = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True,
                           text=True, timeout=60)
        assert v.returncode == 0, v.stdout + v.stderr
        cmd = unit_commands(unit)
        assert cmd["Type"] == ["forking"] and cmd["PIDFile"] == [pid_file]
        assert root(cmd["ExecStartPre"]).returncode == 0
        start = root(cmd["ExecStart"])
        assert start.returncode == 0, start.stderr
        wait_for(lambda: os.path.exists(pid_file), what="the pid file")
        master = int(open(pid_file).read())
        assert open("/proc/%d/comm" % master).read() == "weir\n"
        wait_for(lambda: http_get(port, "/p").body == b"packaged http\n", what="the site")
        assert b"weir" in http_get(port, "/").body
        root(["sh", "-c", "cat > /etc/weir/conf.d/test.conf"],
             input=conf.replace("packaged $http", "reloaded $http"))
        reload = root(cmd["ExecReload"])
        assert reload.returncode == 0, reload.stderr
        # Old workers may still take a connection while they learn to quit.
        wait_for(lambda: http_get(port, "/p").body == b"reloaded http\n", what="the reloaded site")
        assert int(open(pid_file).read()) == master
        # logrotate moves the logs, then its postrotate makes the master reopen them (USR1).
        root(["mv", "/var/log/weir/access.log", "/var/log/weir/access.log.1"])
        post = root(["sh", "-c", postrotate("/etc/logrotate.d/weir")])
        assert post.returncode == 0, post.stderr
        # Each worker reopens when the master tells it: a request may still land in the moved file
        # until then. Wait until ten requests in a row, each on a new connection and with a path of
        # its own, land in the new file and none in the moved one.
        marks = iter(range(1000000))

        def reopened():
            sent = ["/after-rotate-%d" % next(marks) for _ in range(10)]
            for path in sent:
                assert http_get(port, path).status == 404
            new = root(["cat", "/var/log/weir/access.log"]).stdout
            old = root(["cat", "/var/log/weir/access.log.1"]).stdout
            return all(p + " " in new and p + " " not in old for p in sent)
        wait_for(reopened, what="the access log reopened by every worker")
        # The moved file keeps what came before the rotation.
        assert "/p " in root(["cat", "/var/log/weir/access.log.1"]).stdout
        stop = root(cmd["ExecStop"])
        assert stop.returncode == 0, stop.stderr
        # start-stop-daemon --retry returns once the master has gone.
        assert not os.path.exists("/proc/%d" % master) or \
            open("/proc/%d/stat" % master).read().split()[2] == "Z"
        wait_for(lambda: not os.path.exists(pid_file), timeout=20, what="the pid file removed")
    finally:
        if os.path.exists(pid_file):
            root(["/usr/sbin/weir", "-s", "stop"])
        p = root(["dpkg", "--purge", "weir"])
    assert p.returncode == 0, p.stdout + p.stderr
    for gone in ("/usr/sbin/weir", "/etc/weir", "/var/log/weir", "/lib/systemd/system/weir.service",
                 "/var/www/html/index.weir-debian.html"):
        assert not os.path.exists(gone), gone
    assert root(["dpkg", "-s", "nginx"]).stdout == nginx_before
