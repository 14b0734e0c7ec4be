"""limit_conn (#10): one request at a time per client address (a zone in shared memory), the second
answered limit_conn_status with nginx's log line, passed with limit_conn_dry_run; the count given
back when a request ends - answered, or the client gone mid-way; $limit_conn_status; load errors
as nginx's."""
import signal
import socket
import threading

import pytest

from backend import Backend, Send, Wait
from conftest import NGINX, WEIR, check_conf, http_get, raw, wait_for

CONF = r"""
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    log_format lc '$uri $status $limit_conn_status';
    access_log %%%%DIR%%%%/logs/lc.log lc;
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        limit_conn addr 1;
        location /slow { proxy_pass http://127.0.0.1:%d; }
        location /dry/ { limit_conn_dry_run on; proxy_pass http://127.0.0.1:%d/; }
        location /status429/ { limit_conn_status 429; limit_conn_log_level warn;
                               proxy_pass http://127.0.0.1:%d/; }
        location /free/ { limit_conn addr 5; return 200 "free\n"; }
        location / { root %%%%DIR%%%%/html; }
    }
"""


def hold(port, path):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
    return c


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_internal_redirect_counts_once(make_server, binary):
    # "/" reaches index.html by an internal redirect: the request holds one count, not two, so a
    # limit of 1 lets it in; $limit_conn_status stays what the first location decided.
    conf = """
        limit_conn_zone $binary_remote_addr zone=addr:1m;
        server {
            listen 127.0.0.1:%%PORT%%;
            limit_conn addr 1;
            location / { root %%DIR%%/html; }
            location /t { try_files /nothere /s; }
            location = /s { return 200 "$limit_conn_status\\n"; }
        }
    """
    s = make_server(conf, binary=binary, files={"index.html": b"home\n"})
    for _ in range(2):
        got = raw(s.port, "GET / HTTP/1.0\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"home\n"), got[:60]
    assert raw(s.port, "GET /t HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nPASSED\n")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_one_at_a_time(make_server, binary):
    gate = threading.Event()
    with Backend() as b:
        for p in ("/slow", "/slowest"):
            b.script(p, [Wait(gate), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslow\n")])
        s = make_server(CONF % (b.port, b.port, b.port), binary=binary, files={"ok.txt": b"ok\n"})
        first = hold(s.port, "/slow")
        wait_for(lambda: len(b.requests) == 1, what="the first request at the backend")
        second = raw(s.port, "GET /ok.txt HTTP/1.0\r\n\r\n")
        assert second.startswith(b"HTTP/1.1 503 "), second[:40]
        assert http_get(s.port, "/free/").status == 200  # its own limit: 5
        gate.set()
        assert first.recv(4096).startswith(b"HTTP/1.1 200 ")
        first.close()
        wait_for(lambda: raw(s.port, "GET /ok.txt HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 "),
                 what="the count given back")
        wait_for(lambda: "limiting connections by zone \"addr\"" in s.error_log(),
                 what="the log line")
        log = s.access_log("logs/lc.log")
        assert "/ok.txt 503 REJECTED" in log and "/slow 200 PASSED" in log


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_dry_run_status_and_a_client_gone(make_server, binary):
    gate = threading.Event()
    with Backend() as b:
        b.script("/x", [Wait(gate), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx\n")])
        s = make_server(CONF % (b.port, b.port, b.port), binary=binary, files={"ok.txt": b"ok\n"})
        first = hold(s.port, "/dry/x")
        wait_for(lambda: len(b.requests) == 1, what="the first request at the backend")
        dry = raw(s.port, "GET /dry/y HTTP/1.0\r\n\r\n")
        assert dry.startswith(b"HTTP/1.1 200 ")  # the backend answers /y at once
        assert raw(s.port, "GET /status429/y HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 429 ")
        wait_for(lambda: "limiting connections, dry run, by zone \"addr\"" in s.error_log(),
                 what="the dry-run line")
        assert "[warn]" in [l for l in s.error_log().splitlines()
                            if "limiting connections by zone" in l][0]
        # The first client goes away while its request waits: its count comes back.
        first.close()
        wait_for(lambda: raw(s.port, "GET /ok.txt HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 "),
                 what="the count given back")
        gate.set()
        wait_for(lambda: "/dry/y 200 REJECTED_DRY_RUN" in s.access_log("logs/lc.log"),
                 what="the dry run in the log")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_a_full_zone_takes_new_keys(make_server, binary):
    """Keys whose count fell to 0 never keep a new key out: weir keeps some of them in the tree for
    the client's next request, and makes room from them when the zone is full (a 32k zone holds
    about a hundred of these 200-byte keys; 400 pass one after another)."""
    gate = threading.Event()
    with Backend() as b:
        b.script("/held", [Wait(gate), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh\n")])
        s = make_server(r"""
            limit_conn_zone $arg_k zone=small:32k;
            server {
                listen 127.0.0.1:%%%%PORT%%%%;
                limit_conn small 1;
                location / { root %%%%DIR%%%%/html; }
                location /held { proxy_pass http://127.0.0.1:%d; }
            }
        """ % b.port, binary=binary, files={"ok.txt": b"ok\n"})
        busy = "busy" + "b" * 196
        first = hold(s.port, "/held?k=" + busy)
        wait_for(lambda: len(b.requests) == 1, what="the held request at the backend")
        for i in range(400):
            assert http_get(s.port, "/ok.txt?k=%04d%s" % (i, "x" * 196)).status == 200, i
        assert raw(s.port, "GET /ok.txt?k=%s HTTP/1.0\r\n\r\n" % busy).startswith(b"HTTP/1.1 503 ")
        gate.set()
        assert first.recv(4096).startswith(b"HTTP/1.1 200 ")
        first.close()
        wait_for(lambda: raw(s.port, "GET /ok.txt?k=%s HTTP/1.0\r\n\r\n" % busy).startswith(
            b"HTTP/1.1 200 "), what="the count given back")
        assert "could not allocate" not in s.error_log()


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_two_zones_and_a_rejection_gives_back_the_first(make_server, binary):
    """Two limits at one level: a request holds a count in each; one the second refuses gives back
    the count the first took (else the per-address count would stay at 2 and /free/ would fail)."""
    gate = threading.Event()
    with Backend() as b:
        b.script("/slow", [Wait(gate), Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nslow\n")])
        s = make_server(r"""
            limit_conn_zone $binary_remote_addr zone=addr:1m;
            limit_conn_zone $server_name zone=site:1m;
            server {
                listen 127.0.0.1:%%%%PORT%%%%;
                server_name site;
                limit_conn addr 2;
                limit_conn site 1;
                location /slow { proxy_pass http://127.0.0.1:%d; }
                location /free/ { limit_conn addr 2; return 200 "free\n"; }
                location / { root %%%%DIR%%%%/html; }
            }
        """ % b.port, binary=binary, files={"ok.txt": b"ok\n"})
        first = hold(s.port, "/slow")
        wait_for(lambda: len(b.requests) == 1, what="the held request at the backend")
        for _ in range(3):
            assert raw(s.port, "GET /ok.txt HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 503 ")
        assert http_get(s.port, "/free/").status == 200
        assert 'limiting connections by zone "site"' in s.error_log()
        gate.set()
        assert first.recv(4096).startswith(b"HTTP/1.1 200 ")
        first.close()
        wait_for(lambda: raw(s.port, "GET /ok.txt HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 "),
                 what="both counts given back")


@pytest.mark.parametrize("conf,error", [
    ("limit_conn_zone $a;", 'invalid number of arguments in "limit_conn_zone" directive'),
    ("limit_conn_zone $a $b;", 'invalid parameter "$b"'),
    ("limit_conn_zone $a zone=:1m;", '"limit_conn_zone" must have "zone" parameter'),
    ("limit_conn_zone $a zone=z;", 'invalid zone size "zone=z"'),
    ("limit_conn_zone $a zone=z:1m; server { limit_conn z 0; }", 'invalid number of connections "0"'),
    ("server { limit_conn nowhere 1; }", 'zero size shared memory zone "nowhere"'),
    ("limit_conn_zone $a zone=z:1m; limit_conn_zone $b zone=z:1m;",
     'limit_conn_zone "z" is already bound to key "$a"'),
])
def test_load_errors_as_nginx(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc != 0 and error in err, (binary, err)


def test_a_reload_keeps_the_zone_and_refuses_a_new_key(make_server):
    conf = """
    limit_conn_zone %s zone=addr:1m;
    server { listen 127.0.0.1:%%%%PORT%%%%; limit_conn addr 1; location / { root %%%%DIR%%%%/html; } }
    """
    s = make_server(conf % "$binary_remote_addr", files={"ok.txt": b"ok\n"})
    s.set_conf(s.conf_text.replace("limit_conn_zone $binary_remote_addr",
                                    "limit_conn_zone $remote_addr"))
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: 'limit_conn_zone "addr" uses the "$remote_addr" key while previously it used '
                     'the "$binary_remote_addr" key' in s.error_log(), what="the refused reload")
    assert http_get(s.port, "/ok.txt").status == 200
