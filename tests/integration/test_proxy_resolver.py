"""proxy_pass with variables and the resolver, against a scripted DNS server and backend on
127.0.0.1: a name resolves through `resolver` (c-ares in the event loop) and is kept for valid=; an
unknown name, a silent server (resolver_timeout) and a missing resolver answer 502 with nginx's
error-log words; a variable naming an upstream block or an address needs no DNS; with variables a
URI part is sent as it is."""
import socket
import time

from backend import Backend
from conftest import http_get, wait_for
from dns_server import DnsServer


def conf(dns_port, backend_port):
    return r"""
    upstream pool { server 127.0.0.1:%d; }
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        resolver 127.0.0.1:%d valid=1s ipv6=off;
        resolver_timeout 1s;
        set $bport %d;
        location /named/ { set $target app.test; proxy_pass http://$target:$bport; }
        location /unknown/ { set $target nowhere.test; proxy_pass http://$target:$bport; }
        location /silent/ { set $target silent.test; proxy_pass http://$target:$bport; }
        location /group/ { set $g pool; proxy_pass http://$g; }
        location /addr/ { proxy_pass http://127.0.0.1:$bport/fixed; }
        location /noresolver/ { resolver_timeout 1s; proxy_pass http://$arg_h:$bport; }
    }
    server {
        listen 127.0.0.1:%%%%PORT1%%%%;
        location / { proxy_pass http://$arg_h:%d; }
    }
""" % (backend_port, dns_port, backend_port, backend_port)


def test_names_resolve_and_are_kept(make_server):
    with DnsServer({"app.test": ["127.0.0.1"]}) as dns, Backend() as b:
        s = make_server(conf(dns.port, b.port), ports=2)
        r = http_get(s.port, "/named/x?q=1")
        assert r.status == 200 and r.body == b"backend /named/x"
        assert b.requests[-1][1] == "/named/x?q=1"
        assert b.requests[-1][2]["host"] == "app.test:%d" % b.port  # $proxy_host
        assert dns.asked("app.test") == 1
        assert http_get(s.port, "/named/y").status == 200
        assert dns.asked("app.test") == 1  # from the cache
        time.sleep(1.2)  # valid=1s
        assert http_get(s.port, "/named/z").status == 200
        assert dns.asked("app.test") == 2


def test_resolver_failures(make_server):
    with DnsServer({"app.test": ["127.0.0.1"]}, silent=["silent.test"]) as dns, Backend() as b:
        s = make_server(conf(dns.port, b.port), ports=2)
        assert http_get(s.port, "/unknown/x").status == 502
        wait_for(lambda: "nowhere.test could not be resolved (3: Host not found)" in s.error_log(),
                 what="the NXDOMAIN logged")
        start = time.time()
        assert http_get(s.port, "/silent/x").status == 502
        assert 0.8 < time.time() - start < 4  # resolver_timeout 1s
        wait_for(lambda: "silent.test could not be resolved (110: Operation timed out)"
                 in s.error_log(), what="the timeout logged")
        # The second server has no resolver.
        assert http_get(s.ports[1], "/x?h=app.test").status == 502
        wait_for(lambda: "no resolver defined to resolve app.test" in s.error_log(),
                 what="the missing resolver logged")
        # A client that leaves while its name is being resolved loses nothing else.
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /silent/gone HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        c.close()
        time.sleep(1.2)
        assert http_get(s.port, "/named/after").status == 200
        assert b.requests == [r for r in b.requests if r[1] != "/silent/gone"]


def test_groups_and_addresses_need_no_dns(make_server):
    with DnsServer({}) as dns, Backend() as b:
        s = make_server(conf(dns.port, b.port), ports=2)
        r = http_get(s.port, "/group/a?b=c")
        assert r.status == 200 and b.requests[-1][1] == "/group/a?b=c"
        r = http_get(s.port, "/addr/some/where?x=1")
        assert r.status == 200 and b.requests[-1][1] == "/fixed"  # the URI part as it is
        r = http_get(s.ports[1], "/p?h=127.0.0.1")
        assert r.status == 200 and b.requests[-1][1] == "/p?h=127.0.0.1"
        assert dns.questions == []


def test_names_the_resolver_refuses_at_once(make_server):
    """c-ares answers some names inside the call that asks (too long, an empty label): the
    request learns it from the event loop, after the question is registered (502, nginx's log
    line), and the next request is served."""
    with DnsServer({"app.test": ["127.0.0.1"]}) as dns, Backend() as b:
        s = make_server(conf(dns.port, b.port), ports=2)
        for host in ["a" * 300, "a..b"]:
            assert http_get(s.port, "/noresolver/x?h=%s" % host).status == 502
        wait_for(lambda: "a..b could not be resolved" in s.error_log(), what="the refusal logged")
        assert http_get(s.port, "/named/after").status == 200
