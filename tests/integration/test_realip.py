"""realip (#10): the client's address from X-Real-IP, X-Forwarded-For (right to left, recursive past
trusted addresses, several lines, ports, IPv6) or any header, only from trusted peers, seen by
$remote_addr, $remote_port, allow/deny and the access log, with $realip_remote_addr keeping the
peer's - answered as Debian's nginx answers; and the load errors."""
import re

import pytest

from conftest import NGINX, WEIR, Client, check_conf, raw, wait_for, weir_and_nginx

CONF = r"""
    log_format ip '$remote_addr $realip_remote_addr $uri';
    access_log %%DIR%%/logs/ip.log ip;
    server {
        listen 127.0.0.1:%%PORT%%;
        set_real_ip_from 127.0.0.1;
        set_real_ip_from 10.0.0.0/8;
        set_real_ip_from 2001:db8::/32;
        location / { return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
        location /xff/ { real_ip_header X-Forwarded-For;
                         return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
        location /rec/ { real_ip_header X-Forwarded-For; real_ip_recursive on;
                         return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
        location /cf/ { real_ip_header CF-Connecting-IP;
                        return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
        location /untrusted/ { set_real_ip_from 192.0.2.0/24;
                               return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
        location /deny/ { deny 10.1.2.3; allow all; alias %%DIR%%/html/; }
        # After an internal redirect the address stays replaced, and the replaced one known.
        location /redir/ { real_ip_header X-Forwarded-For; try_files /nothere /after; }
        location = /after { return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name xff;
        set_real_ip_from 127.0.0.0/8;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        location / { return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name rec;
        set_real_ip_from 127.0.0.0/8;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
        location / { return 200 "$remote_addr [$remote_port] $realip_remote_addr\n"; }
    }
"""

CASES = [
    ("/", {}),
    ("/", {"X-Real-IP": "10.1.2.3"}),
    ("/", {"X-Real-IP": "8.8.8.8:53"}),
    ("/", {"X-Real-IP": "[2001:db8::7]:8080"}),
    ("/", {"X-Real-IP": "2001:db8::7"}),
    ("/", {"X-Real-IP": "garbage"}),
    ("/", {"X-Real-IP": " 10.1.2.3"}),
    ("/xff/", {"X-Forwarded-For": "1.1.1.1, 10.0.0.5, 127.0.0.2"}),
    ("/xff/", {"X-Forwarded-For": "1.1.1.1, 10.0.0.5,, "}),
    ("/rec/", {"X-Forwarded-For": "1.1.1.1, 10.0.0.5, 10.9.9.9"}),
    ("/rec/", {"X-Forwarded-For": "10.0.0.1, 10.0.0.5"}),
    ("/rec/", {"X-Forwarded-For": "x, 10.0.0.5"}),
    ("/rec/", [("X-Forwarded-For", "5.5.5.5, 10.0.0.2"), ("X-Forwarded-For", "10.0.0.3")]),
    ("/xff/", [("X-Forwarded-For", "5.5.5.5"), ("X-Forwarded-For", "6.6.6.6")]),
    ("/cf/", {"CF-Connecting-IP": "9.9.9.9", "X-Real-IP": "10.1.1.1"}),
    ("/untrusted/", {"X-Real-IP": "10.1.2.3"}),
    ("/deny/ok.txt", {"X-Real-IP": "10.1.2.3"}),
    ("/deny/ok.txt", {"X-Real-IP": "10.1.2.4"}),
    ("/redir/", {"X-Forwarded-For": "10.1.2.3"}),
    # Server-level X-Forwarded-For, without and with recursion.
    ("/", {"Host": "xff", "X-Forwarded-For": "1.1.1.1, 10.0.0.5, 127.0.0.2"}),
    ("/", {"Host": "xff", "X-Forwarded-For": "1.1.1.1, 10.0.0.5,, "}),
    ("/", [("Host", "xff"), ("X-Forwarded-For", "5.5.5.5"), ("X-Forwarded-For", "6.6.6.6")]),
    ("/", {"Host": "rec", "X-Forwarded-For": "1.1.1.1, 10.0.0.5, 10.9.9.9"}),
    ("/", {"Host": "rec", "X-Forwarded-For": "10.0.0.1, 10.0.0.5"}),
    ("/", {"Host": "rec", "X-Forwarded-For": "x, 10.0.0.5"}),
    ("/", [("Host", "rec"), ("X-Forwarded-For", "5.5.5.5, 10.0.0.2"), ("X-Forwarded-For", "10.0.0.3")]),
    ("/", [("Host", "rec"), ("X-Forwarded-For", "5.5.5.5"), ("X-Forwarded-For", "6.6.6.6, 10.0.0.3")]),
]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {"ok.txt": b"ok\n"})


def ask(port, path, headers):
    items = headers.items() if isinstance(headers, dict) else headers
    req = "GET %s HTTP/1.0\r\n" % path + "".join("%s: %s\r\n" % kv for kv in items) + "\r\n"
    head, _, body = raw(port, req).partition(b"\r\n\r\n")
    # The peer's own port differs from run to run.
    body = body.replace(b"weir/0.1.0", b"SERVER").replace(b"nginx/1.22.1", b"SERVER")
    return head.split(b"\r\n")[0], re.sub(rb"^127\.0\.0\.1 \[\d+\]", b"127.0.0.1 [port]", body)


@pytest.mark.parametrize("path,headers", CASES)
def test_answers_as_nginx(pair, path, headers):
    weir, nginx = pair
    assert ask(weir.port, path, headers) == ask(nginx.port, path, headers)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert ask(weir.port, "/", {"X-Real-IP": "10.1.2.3"})[1] == b"10.1.2.3 [] 127.0.0.1\n"
    assert ask(weir.port, "/", {"X-Real-IP": "8.8.8.8:53"})[1] == b"8.8.8.8 [53] 127.0.0.1\n"
    assert ask(weir.port, "/", {"Host": "rec", "X-Forwarded-For": "1.1.1.1, 10.0.0.5, 10.9.9.9"})[1] \
        .startswith(b"1.1.1.1 ")
    assert ask(weir.port, "/", {"Host": "xff", "X-Forwarded-For": "1.1.1.1, 10.0.0.5"})[1] \
        .startswith(b"10.0.0.5 ")
    assert ask(weir.port, "/deny/ok.txt", {"X-Real-IP": "10.1.2.3"})[0].endswith(b"403 Forbidden")
    assert ask(weir.port, "/deny/ok.txt", {"X-Real-IP": "10.1.2.4"})[1] == b"ok\n"
    assert ask(weir.port, "/redir/", {"X-Forwarded-For": "10.1.2.3"})[1] == b"10.1.2.3 [] 127.0.0.1\n"
    # The next request on the connection is the peer's own again; the log has the real address.
    wait_for(lambda: "10.1.2.3 127.0.0.1 /" in weir.access_log("logs/ip.log"), what="the log line")


@pytest.mark.parametrize("directive,error", [
    ("set_real_ip_from 10.0.0.0/33", 'host not found in set_real_ip_from "10.0.0.0/33"'),
    ("real_ip_recursive maybe", 'invalid value "maybe"'),
])
def test_load_errors(directive, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; " + directive + "; }")
        assert rc != 0 and error in err, (binary, err)


def test_the_next_request_on_the_connection_has_the_peers_address(pair):
    weir, _ = pair
    c = Client(weir.port)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Real-IP: 10.7.7.7\r\n\r\n")
    assert c.response().body.startswith(b"10.7.7.7 ")
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().body.startswith(b"127.0.0.1 ")
    c.close()
