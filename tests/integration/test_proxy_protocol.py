"""The PROXY protocol on `listen ... proxy_protocol` (#10): v1 lines and v2 blocks ahead of the
request, $proxy_protocol_addr and its siblings, `real_ip_header proxy_protocol` for trusted peers,
and what is not a header (closed, logged in nginx's words) - answered as Debian's nginx answers.
Beyond nginx: a header split over several packets is waited for (nginx 1.22 wants it in its first
read), and the client's bytes in the log line are escaped."""
import re
import socket
import struct
import time

import pytest

from conftest import Client, raw, read_to_end, wait_for, weir_and_nginx

VARS = "$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_addr|" \
       "$proxy_protocol_server_port|$remote_addr|$realip_remote_addr"
CONF = r"""
    log_format pp 'VARS $request';
    access_log %%DIR%%/logs/pp.log pp;
    server {
        listen 127.0.0.1:%%PORT%% proxy_protocol;
        location / { return 200 "VARS\n"; }
        location /deny/ { set_real_ip_from 127.0.0.1; real_ip_header proxy_protocol;
                          deny 192.0.2.66; alias %%DIR%%/html/; }
    }
    server {
        listen 127.0.0.1:%%PORT1%%;
        location / { return 200 "VARS\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT2%% proxy_protocol;
        set_real_ip_from 127.0.0.1;
        real_ip_header proxy_protocol;
        location / { return 200 "VARS $remote_port\n"; }
    }
    server {
        listen 127.0.0.1:%%PORT3%% proxy_protocol;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header proxy_protocol;
        location / { return 200 "VARS\n"; }
    }
""".replace("VARS", VARS)


def v2(ver_cmd, fam, body):
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_inet(src, dst, sport, dport, tlvs=b""):
    return v2(0x21, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) +
              struct.pack("!HH", sport, dport) + tlvs)


def v2_inet6(src, dst, sport, dport):
    return v2(0x21, 0x21, socket.inet_pton(socket.AF_INET6, src) +
              socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))


HEADERS = [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
    b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.2 0 80\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN 192.0.2.1 198.51.100.2 1 2\r\n",
    v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080),
    v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080, tlvs=b"\x04\x00\x03abc\x01\x00\x02h2"),
    v2_inet6("2001:db8::7", "::1", 258, 80),
    v2(0x20, 0x00, b""),                        # LOCAL: a balancer's health check
    v2(0x21, 0x12, b"\x00" * 12),               # UDP: no addresses taken
    v2(0x21, 0x31, b"/tmp/a" + b"\x00" * 210),  # AF_UNIX: no addresses taken
]
# (which server, path): PROXY protocol alone, realip trusting the peer, realip not trusting it,
# realip and deny at location level.
TARGETS = [(0, "/"), (2, "/"), (3, "/"), (0, "/deny/ok.txt")]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {"ok.txt": b"ok\n"}, ports=4)


def ask(port, data):
    head, _, body = raw(port, data).partition(b"\r\n\r\n")
    # The peer's own port differs from run to run.
    return head.split(b"\r\n")[0], re.sub(rb" \d+\n$", b" [port]\n", body) if body.endswith(b"\n") else body


@pytest.mark.parametrize("target", TARGETS, ids=range(len(TARGETS)))
@pytest.mark.parametrize("header", HEADERS, ids=range(len(HEADERS)))
def test_answers_as_nginx(pair, header, target):
    weir, nginx = pair
    req = header + b"GET " + target[1].encode() + b" HTTP/1.0\r\n\r\n"
    assert ask(weir.ports[target[0]], req) == ask(nginx.ports[target[0]], req)


def body(port, data):
    return raw(port, data).partition(b"\r\n\r\n")[2]


def test_what_the_answers_hold(pair):
    weir, _ = pair
    req = b"GET / HTTP/1.0\r\n\r\n"
    realip = weir.ports[2]
    assert body(realip, HEADERS[0] + req) == b"192.0.2.1|56324|198.51.100.2|443|192.0.2.1|127.0.0.1 56324\n"
    assert body(realip, HEADERS[7] + req) == b"2001:db8::7|258|::1|80|2001:db8::7|127.0.0.1 258\n"
    # Without addresses in the header the variables are empty and the peer stands.
    assert re.fullmatch(rb"\|\|\|\|127\.0\.0\.1\|127\.0\.0\.1 \d+\n", body(realip, HEADERS[8] + req))
    # An untrusted peer's header names the client only in $proxy_protocol_addr.
    assert body(weir.ports[3], HEADERS[0] + req) == b"192.0.2.1|56324|198.51.100.2|443|127.0.0.1|127.0.0.1\n"
    deny = b"GET /deny/ok.txt HTTP/1.0\r\n\r\n"
    assert raw(weir.port, v2_inet("192.0.2.66", "10.0.0.1", 1, 2) + deny).startswith(b"HTTP/1.1 403 ")
    assert body(weir.port, v2_inet("192.0.2.67", "10.0.0.1", 1, 2) + deny) == b"ok\n"
    wait_for(lambda: "192.0.2.66|1|10.0.0.1|2|192.0.2.66|127.0.0.1 GET /deny/ok.txt" in
             weir.access_log("logs/pp.log"), what="the log line with the real address")
    # A listener without proxy_protocol takes the line for a request line.
    assert raw(weir.ports[1], HEADERS[0] + req).startswith(b"HTTP/1.1 400 Bad Request")
    assert body(weir.ports[1], b"GET / HTTP/1.0\r\n\r\n") == b"||||127.0.0.1|127.0.0.1\n"


BROKEN = [
    (b"GET / HTTP/1.0\r\n\r\n", 'broken header: "GET / HTTP/1.0'),
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.0\r\n\r\n", 'broken header: "PROXY TCP5'),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\nGET / HTTP/1.0\r\n\r\n", 'broken header: "PROXY TCP4'),
    (v2(0x11, 0x11, b"\x00" * 12) + b"GET / HTTP/1.0\r\n\r\n", "unknown PROXY protocol version: 1"),
    (v2(0x21, 0x11, b"\x00" * 2000), "header is too large"),
]


@pytest.mark.parametrize("data,error", BROKEN, ids=range(len(BROKEN)))
def test_what_is_not_a_header_closes_the_connection(pair, data, error):
    for s in pair:
        assert raw(s.port, data) == b"", s
        wait_for(lambda: error in s.error_log(), what=error)
        # nginx writes the client's bytes as they are, line breaks included.
        assert re.search(r"\[error\][^\n]*" + re.escape(error) + r".*?while reading PROXY protocol, "
                         r"client: 127\.0\.0\.1, server: 127\.0\.0\.1:%d\n" % s.port, s.error_log(), re.S), \
            s.error_log()


def test_the_clients_bytes_in_the_log_line_are_escaped(pair):
    weir, _ = pair
    assert raw(weir.port, b"PROXY \x01bad\"line\r\n") == b""
    wait_for(lambda: r'broken header: "PROXY \x01bad\x22line\x0D\x0A"' in weir.error_log(),
             what="the escaped line")


def test_a_header_split_over_packets_is_waited_for(pair):
    weir, _ = pair
    for header in (HEADERS[0], HEADERS[5]):
        c = socket.create_connection(("127.0.0.1", weir.port), timeout=5)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(header), 7):
            c.sendall(header[i:i + 7])
            time.sleep(0.01)  # separate packets; the server must answer either way
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        head, _, body = read_to_end(c).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert body.split(b"|")[0] in (b"192.0.2.1", b"203.0.113.7"), body


def test_the_header_alone_then_the_request(pair):
    weir, _ = pair
    c = socket.create_connection(("127.0.0.1", weir.port), timeout=5)
    c.sendall(HEADERS[0])
    time.sleep(0.05)  # likely a read of the header alone; the answer is the same either way
    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
    head, _, body = read_to_end(c).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body.startswith(b"192.0.2.1|56324|"), (head, body)


def test_keepalive_requests_keep_the_header(pair):
    weir, _ = pair
    c = Client(weir.ports[2])
    c.send(HEADERS[0] + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().body.startswith(b"192.0.2.1|56324|198.51.100.2|443|192.0.2.1|")
    # The next request is not preceded by a header, and the connection's header still holds.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.response().body.startswith(b"192.0.2.1|56324|198.51.100.2|443|192.0.2.1|")
    c.close()


def test_a_header_that_never_ends_times_out(make_server):
    s = make_server(CONF.replace("log_format", "client_header_timeout 1s;\n    log_format"),
                    files={}, ports=4)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"PROXY TCP4 192.0.2.1")
    assert read_to_end(c) == b""
    wait_for(lambda: "client timed out" in s.error_log(), what="the timeout's log line")
