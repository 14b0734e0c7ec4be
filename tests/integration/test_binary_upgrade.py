"""Binary upgrade as nginx's (#13), under a load of requests: USR2 starts the binary now at the path the
master was started from as a new master that takes the listening sockets (nginx's NGINX variable) while
the pid file becomes <pid>.oldbin; WINCH lets the old master's workers go, QUIT ends the old master; or,
the way back, HUP brings the old workers back and the new master's QUIT renames the pid file back. The
sockets pass between Debian's nginx and weir in both directions, so either can replace the other in
place."""
import os
import shutil
import signal
import time

import pytest

from conftest import NGINX, WEIR, http_get, wait_for
from test_process import Load, children, conf, proc_title


@pytest.fixture
def masters():
    """Every master a test saw; those still running at its end are stopped."""
    seen = []
    yield seen
    for pid in seen:
        if not gone(pid):
            os.kill(pid, signal.SIGTERM)
    for pid in seen:
        wait_for(lambda: gone(pid), timeout=30, what="master %d gone" % pid)


def daemon(make_server, masters, binary, version, name):
    """A daemon started from a copy of binary in its own sbin/, as a package installs one."""
    s = make_server(conf(version), main_conf="worker_processes 2;", start=False, binary=binary)
    os.makedirs(s.path("sbin"))
    s.binary = s.path("sbin/" + name)
    shutil.copy(binary, s.binary)
    s.set_conf(s.conf_text.replace("daemon off;", "daemon on;"))
    s.start(wait=False)
    assert s.proc.wait(15) == 0, s.read_stderr()
    s.wait_started()
    masters.append(s.master_pid())
    return s


def replace_binary(s, binary):
    """What an upgrade does to the file: a new one renamed over it (the running one keeps its inode)."""
    shutil.copy(binary, s.binary + ".new")
    os.replace(s.binary + ".new", s.binary)


def oldbin(s):
    return s.pid_file + ".oldbin"


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return 0


def gone(pid):
    return not os.path.exists("/proc/%d" % pid)


def stop(pid):
    os.kill(pid, signal.SIGQUIT)
    wait_for(lambda: gone(pid), timeout=30, what="master %d gone" % pid)


def upgrade(s, masters, old, new_binary, version):
    """USR2 to the old master, under way until the new master and its workers run, then WINCH and
    QUIT to the old one: the new master is the server."""
    s.set_conf(s.conf_text.replace("version one", "version " + version))
    replace_binary(s, new_binary)
    os.kill(old, signal.SIGUSR2)
    wait_for(lambda: read_pid(oldbin(s)) == old and read_pid(s.pid_file) not in (0, old),
             what="the new master's pid file")
    new = read_pid(s.pid_file)
    masters.append(new)
    wait_for(lambda: len(children(new)) == 2, what="the new master's workers")
    assert new in children(old)  # the new master is the old one's child until it goes
    wait_for(lambda: http_get(s.port, "/").body == ("version %s\n" % version).encode(),
             what="the new workers answering")
    os.kill(old, signal.SIGWINCH)
    wait_for(lambda: children(old) == [new], what="the old workers gone")
    for _ in range(5):
        assert http_get(s.port, "/").body == ("version %s\n" % version).encode()
    stop(old)
    assert not os.path.exists(oldbin(s)) and read_pid(s.pid_file) == new
    return new


def test_binary_upgrade_under_load_loses_nothing(make_server, masters):
    s = daemon(make_server, masters, WEIR, "one", "weir")
    old = s.master_pid()
    with Load(s.port) as load:
        time.sleep(0.3)
        new = upgrade(s, masters, old, WEIR, "two")
        time.sleep(0.3)
    assert load.failures == [], load.failures[:10]
    assert {b"version one\n", b"version two\n"} <= load.bodies and load.ok > 50
    log = s.error_log()
    assert "signal 12 (SIGUSR2) received from" in log and ", changing binary" in log
    assert "start new binary process %d" % new in log
    assert '[notice] %d#%d: using inherited sockets from "' % (new, new) in log
    assert "signal 28 (SIGWINCH) received from" in log and "stop accepting connections" in log
    stop(new)


def test_the_way_back_and_signals_ignored(make_server, masters):
    s = daemon(make_server, masters, WEIR, "one", "weir")
    old = s.master_pid()
    os.kill(old, signal.SIGUSR2)
    wait_for(lambda: read_pid(s.pid_file) not in (0, old), what="the new master")
    new = read_pid(s.pid_file)
    masters.append(new)
    wait_for(lambda: len(children(new)) == 2, what="the new master's workers")
    # A second USR2 to either master is ignored while the other runs.
    os.kill(old, signal.SIGUSR2)
    os.kill(new, signal.SIGUSR2)
    wait_for(lambda: s.error_log().count("(SIGUSR2) received from") == 3, what="the signals logged")
    assert s.error_log().count(", ignoring") == 2
    os.kill(old, signal.SIGWINCH)
    wait_for(lambda: children(old) == [new], what="the old workers gone")
    with Load(s.port) as load:
        # The way back: HUP brings the old master's workers back (nothing read again), the new
        # master goes, and the pid file is the old master's again.
        os.kill(old, signal.SIGHUP)
        wait_for(lambda: len(children(old)) == 3, what="the old workers back")
        stop(new)
        wait_for(lambda: read_pid(s.pid_file) == old, what="the pid file renamed back")
        time.sleep(0.3)
    assert load.failures == [], load.failures[:10]
    assert not os.path.exists(oldbin(s))
    assert "new binary process %d exited with code 0" % new in s.error_log()
    stop(old)
    assert not os.path.exists(s.pid_file)


def test_a_new_binary_that_fails_leaves_the_old_one_serving(make_server, masters):
    s = daemon(make_server, masters, WEIR, "one", "weir")
    old = s.master_pid()
    s.set_conf(s.conf_text + "\nnot a directive;\n")
    os.kill(old, signal.SIGUSR2)
    wait_for(lambda: "new binary process" in s.error_log() and "exited with code 1" in s.error_log(),
             what="the new binary's exit")
    wait_for(lambda: read_pid(s.pid_file) == old and not os.path.exists(oldbin(s)),
             what="the pid file renamed back")
    assert http_get(s.port, "/").body == b"version one\n"
    stop(old)


def test_nginx_replaced_by_weir_in_place_and_back(make_server, masters):
    """Debian's nginx, its binary replaced by weir, USR2: weir takes nginx's sockets; then weir replaced
    by nginx again takes them back. No request fails on the way."""
    s = daemon(make_server, masters, NGINX, "one", "nginx")
    first = s.master_pid()
    with Load(s.port) as load:
        time.sleep(0.3)
        second = upgrade(s, masters, first, WEIR, "weir")
        assert proc_title(second).startswith("weir: master process ")
        s.set_conf(s.conf_text.replace("version weir", "version one"))
        third = upgrade(s, masters, second, NGINX, "nginx")
        assert proc_title(third).startswith("nginx: master process ")
        time.sleep(0.3)
    assert load.failures == [], load.failures[:10]
    assert {b"version one\n", b"version weir\n", b"version nginx\n"} <= load.bodies
    stop(third)
