"""`server name resolve` (nginx 1.27.3) in an upstream with a zone, against a scripted DNS server and
backends on two loopback addresses with one port: the traffic follows the name's addresses as the
DNS answer changes, in every worker and without a reload; a name that stops existing leaves no peer
("no live upstreams"); a request in flight to an address that went away finishes; keep-alive
connections cached for it are closed; static servers stay beside the resolved ones; a reload
resolves again; configuration errors in nginx's words."""
import json
import signal
import threading

import pytest

from backend import Backend, Wait, response
from conftest import WEIR, Client, check_conf, http_get, wait_for
from dns_server import DnsServer


def conf(dns_port, port, extra="", resolver_here=True, http="", locations=""):
    resolver = "resolver 127.0.0.1:%d ipv6=off; resolver_timeout 2s;" % dns_port
    return r"""
    %s
    upstream app {
        zone app 64k;
        %s
        server app.test:%d resolve;
        %s
    }
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
        %s
    }
""" % (resolver if not resolver_here else http, resolver if resolver_here else "", port, extra,
       locations)


def backends(*hosts):
    """Backends on each loopback address, all on the first one's port."""
    first = Backend(host=hosts[0])
    return [first] + [Backend(host=h, port=first.port) for h in hosts[1:]]


def served(b):
    return len(b.requests)


def test_traffic_follows_the_name(make_server):
    b2, b3 = backends("127.0.0.2", "127.0.0.3")
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2, b3:
        s = make_server(conf(dns.port, b2.port), main_conf="worker_processes 2;")
        wait_for(lambda: http_get(s.port, "/first").status == 200, what="the name resolved")
        for _ in range(6):
            assert http_get(s.port, "/two").status == 200
        assert served(b3) == 0 and served(b2) >= 7
        # A new address, and the old one gone: every worker follows, without a reload.
        dns.records["app.test"] = ["127.0.0.3"]
        wait_for(lambda: http_get(s.port, "/moving").status == 200 and served(b3) > 0,
                 what="traffic on the new address")
        wait_for(lambda: all(http_get(s.port, "/settle").status == 200 for _ in range(4))
                 and served(b3) >= 4 and b3.requests[-1][1] == "/settle"
                 and all(r[1] != "/settle" for r in b2.requests[-4:]),
                 what="both workers on the new address")
        before = served(b2)
        for _ in range(8):
            assert http_get(s.port, "/three").status == 200
        assert served(b2) == before
        # Both addresses: both take requests.
        dns.records["app.test"] = ["127.0.0.2", "127.0.0.3"]
        wait_for(lambda: http_get(s.port, "/both").status == 200 and served(b2) > before,
                 what="traffic on both addresses")
        # The name is gone: no peer is left, as nginx.
        del dns.records["app.test"]
        wait_for(lambda: http_get(s.port, "/gone").status == 502, what="no peer left")
        log = s.error_log()
        assert "app.test could not be resolved (3: Host not found)" in log
        assert "no live upstreams" in log
        assert dns.asked("app.test") >= 4  # asked again as each answer expired (TTL 1 s)


@pytest.mark.parametrize("balancer", ["ip_hash;", "hash $uri;", "hash $uri consistent;",
                                      "least_conn;", "random two;"])
def test_every_balancer_follows(make_server, balancer):
    b2, b3 = backends("127.0.0.2", "127.0.0.3")
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2, b3:
        s = make_server(conf(dns.port, b2.port, extra=balancer))
        wait_for(lambda: http_get(s.port, "/a").status == 200, what="the name resolved")
        dns.records["app.test"] = ["127.0.0.3"]
        wait_for(lambda: http_get(s.port, "/b").status == 200 and served(b3) > 0,
                 what="traffic on the new address")
        before = served(b2)
        assert all(http_get(s.port, "/c%d" % i).status == 200 for i in range(6))
        assert served(b2) == before


def test_http_resolver_static_servers_and_reload(make_server):
    b2, b3, b4 = backends("127.0.0.2", "127.0.0.3", "127.0.0.4")
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2, b3, b4:
        # The http block's resolver serves the upstream; a static server stands beside the name.
        s = make_server(conf(dns.port, b2.port, resolver_here=False,
                             extra="server 127.0.0.4:%d;" % b2.port))
        wait_for(lambda: http_get(s.port, "/x").status == 200 and served(b2) > 0,
                 what="the name resolved")
        for _ in range(8):
            assert http_get(s.port, "/y").status == 200
        assert served(b4) >= 3 and served(b2) >= 3  # round robin over both
        dns.records["app.test"] = ["127.0.0.3"]
        old = set(s.worker_pids())
        s.send_signal(signal.SIGHUP)
        wait_for(lambda: s.worker_pids() and not old & set(s.worker_pids()),
                 what="the new workers alone")
        wait_for(lambda: http_get(s.port, "/after").status == 200 and served(b3) > 0,
                 what="the new configuration resolved the name")
        before = served(b2)
        for _ in range(6):
            assert http_get(s.port, "/z").status == 200
        assert served(b2) == before and served(b4) >= 6


def test_addresses_outlive_a_silent_dns_and_a_reload(make_server):
    """A name whose DNS stops answering keeps its addresses (only "not found" takes them away),
    and a reload carries them into the new configuration: no request fails meanwhile, and the old
    workers leave at once."""
    b2, = backends("127.0.0.2")
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2:
        s = make_server(conf(dns.port, b2.port), main_conf="worker_processes 2;")
        wait_for(lambda: http_get(s.port, "/x").status == 200, what="the name resolved")
        dns.silent.add("app.test")
        wait_for(lambda: "app.test could not be resolved (110: Operation timed out)"
                 in s.error_log(), timeout=15, what="a question unanswered")
        assert all(http_get(s.port, "/during").status == 200 for _ in range(4))
        old = set(s.worker_pids())
        s.send_signal(signal.SIGHUP)

        def reloading():
            assert http_get(s.port, "/reloading").status == 200
            return not old & set(s.worker_pids())
        # c-ares' retries of a question nobody waits for do not hold the old workers.
        wait_for(reloading, what="the old workers gone")
        wait_for(lambda: len(s.worker_pids()) == 2, what="the new workers")
        assert all(http_get(s.port, "/after").status == 200 for _ in range(4))


def test_in_flight_request_finishes_and_kept_connections_close(make_server):
    b2, b3 = backends("127.0.0.2", "127.0.0.3")
    release = threading.Event()
    b2.script("/slow", [Wait(release), response(200, b"slow done")])
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2, b3:
        s = make_server(conf(dns.port, b2.port, extra="keepalive 4;", locations="""
            location /api { api; }
            location = /metrics { prometheus; }"""))
        wait_for(lambda: http_get(s.port, "/warm").status == 200, what="the name resolved")
        assert b2.connections - b2.closed >= 1  # a connection is kept for reuse
        # ... and counted as idle, in the API and the metrics.
        idle = 'weir_upstream_peer_idle_connections{upstream="app",peer="127.0.0.2:%d"} 1' % b2.port
        wait_for(lambda: json.loads(http_get(s.port, "/api/9/http/upstreams/app").body)[
            "keepalive"] == 1, what="the idle connection in the API")
        assert idle in http_get(s.port, "/metrics").body.decode()
        slow = Client(s.port, timeout=20)
        slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_for(lambda: any(r[1] == "/slow" for r in b2.requests) or b2.connections >= 2,
                 what="the slow request at the backend")
        dns.records["app.test"] = ["127.0.0.3"]
        wait_for(lambda: http_get(s.port, "/new").status == 200 and served(b3) > 0,
                 what="traffic on the new address")
        # Only the request in flight still holds a connection to the old address.
        wait_for(lambda: b2.connections - b2.closed == 1, what="the kept connections closed")
        release.set()
        r = slow.response()
        slow.close()
        assert r.status == 200 and r.body == b"slow done", r
        wait_for(lambda: b2.connections == b2.closed, what="the last connection to the old address")
        wait_for(lambda: json.loads(http_get(s.port, "/api/9/http/upstreams/app").body)[
            "keepalive"] == 1, what="the idle connection to the new address alone")


def test_metrics_and_api_show_the_addresses_of_now(make_server):
    """The API lists a resolved peer under its address with its server's name, and Prometheus's
    series follow the addresses: a gone address's series go, a new one's count its own requests.
    A health check with `mandatory` keeps a new address out until it passes."""
    b2, b3 = backends("127.0.0.2", "127.0.0.3")
    b2.script("/health", [response(200, b"ok")])  # and the connection ends
    healthy = threading.Event()
    b3.script("/health", lambda *_: [response(200 if healthy.is_set() else 503, b"ok")])
    with DnsServer({"app.test": ["127.0.0.2"]}, ttl=1) as dns, b2, b3:
        s = make_server(conf(dns.port, b2.port, locations="""
            location /api { api; }
            location = /metrics { prometheus; }
            location /checked/ {
                proxy_pass http://app; health_check interval=200ms uri=/health mandatory;
            }
        """))
        wait_for(lambda: http_get(s.port, "/one").status == 200, what="the name resolved")
        for _ in range(4):
            assert http_get(s.port, "/one").status == 200

        def peers():
            r = http_get(s.port, "/api/9/http/upstreams/app")
            assert r.status == 200, r
            return {p["server"]: p for p in json.loads(r.body)["peers"]}

        def responses(text, peer):
            line = 'weir_upstream_responses_total{upstream="app",peer="%s",code="2xx"} ' % peer
            return [int(l.split(" ")[1]) for l in text.splitlines() if l.startswith(line)]

        old, new = "127.0.0.2:%d" % b2.port, "127.0.0.3:%d" % b2.port
        p = peers()
        assert list(p) == [old] and p[old]["name"] == "app.test:%d" % b2.port
        assert p[old]["responses"]["2xx"] == sum(1 for r in b2.requests if r[1] == "/one")
        assert p[old]["health_checks"]["checks"] >= 1
        dns.records["app.test"] = ["127.0.0.3"]
        wait_for(lambda: list(peers()) == [new], what="the API on the new address")
        # mandatory: the new address takes no request before it passes a check.
        wait_for(lambda: peers()[new]["health_checks"]["fails"] >= 1, what="a failed check")
        assert peers()[new]["state"] == "unhealthy"
        assert http_get(s.port, "/early").status == 502
        healthy.set()
        wait_for(lambda: peers()[new]["state"] == "up", what="the new address passed its check")
        assert all(r[1] != "/early" for r in b3.requests)
        for _ in range(3):
            assert http_get(s.port, "/two").status == 200
        text = http_get(s.port, "/metrics").body.decode()
        assert responses(text, old) == []
        assert responses(text, new) == [sum(1 for r in b3.requests if r[1] == "/two")]
        assert 'weir_upstream_peer_state{upstream="app",peer="%s",state="up"} 1' % new in text


def test_service_records(make_server):
    """service=http: the SRV records of _http._tcp.app.test give the peers (their targets'
    addresses, with the records' ports); the best priority's take the requests, the others are
    the backups that take over when none of them can."""
    b2, b3 = backends("127.0.0.2", "127.0.0.3")
    b4 = Backend(host="127.0.0.4")  # a port of its own, as its record says
    srv = {"_http._tcp.app.test": [(10, 1, b2.port, "a.test"), (10, 1, b2.port, "b.test"),
                                   (20, 1, b4.port, "c.test")]}
    records = {"a.test": ["127.0.0.2"], "b.test": ["127.0.0.3"], "c.test": ["127.0.0.4"]}
    with DnsServer(records, ttl=1, srv=srv) as dns, b2, b3, b4:
        text = conf(dns.port, b2.port).replace("server app.test:%d resolve;" % b2.port,
                                               "server app.test service=http resolve;")
        s = make_server(text)
        wait_for(lambda: http_get(s.port, "/a").status == 200, what="the service resolved")
        for _ in range(8):
            assert http_get(s.port, "/b").status == 200
        assert served(b2) >= 3 and served(b3) >= 3 and served(b4) == 0
        # The best priority's targets now have nothing listening: the backup takes over.
        dns.records["a.test"] = ["127.0.0.5"]
        dns.records["b.test"] = ["127.0.0.6"]
        wait_for(lambda: http_get(s.port, "/c").status == 200 and served(b4) > 0,
                 what="the backup record's target answering")
        assert "connect() failed (111: Connection refused)" in s.error_log()
        # A record gone with its target: the service has no peer left but the backup.
        dns.srv["_http._tcp.app.test"] = [(20, 1, b4.port, "c.test")]
        before = (served(b2), served(b3))
        wait_for(lambda: all(http_get(s.port, "/d").status == 200 for _ in range(3))
                 and served(b4) >= 4, what="the last record alone")
        assert (served(b2), served(b3)) == before
        del dns.srv["_http._tcp.app.test"]
        wait_for(lambda: http_get(s.port, "/e").status == 502, what="no record left")
        assert "service http of app.test could not be resolved (3: Host not found)" in s.error_log()


ZONE = "zone app 64k; "


@pytest.mark.parametrize("conf_text, message", [
    ("upstream app { resolver 127.0.0.1; server app.test resolve; } "
     "server { listen 127.0.0.1:1; }",
     'resolving names at run time requires upstream "app" in '),
    ("upstream app { " + ZONE + "server app.test:81 resolve; } server { listen 127.0.0.1:1; }",
     'no resolver defined to resolve names at run time in upstream "app"'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; server app.test service=http; } "
     "server { listen 127.0.0.1:1; }",
     'service upstream "app.test" requires "resolve" parameter'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; server app.test:80 service=http resolve; } "
     "server { listen 127.0.0.1:1; }",
     'service upstream "app.test:80" may not have port'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; server 127.0.0.1 service=http resolve; } "
     "server { listen 127.0.0.1:1; }",
     'service upstream "127.0.0.1" requires domain name'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; server app.test service= resolve; } "
     "server { listen 127.0.0.1:1; }",
     'service is empty'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; server app.test:0 resolve; } "
     "server { listen 127.0.0.1:1; }",
     'invalid port in upstream "app.test:0"'),
    ("upstream app { " + ZONE + "resolver 127.0.0.1; resolver 127.0.0.1; server app.test resolve; } "
     "server { listen 127.0.0.1:1; }",
     '"resolver" directive is duplicate'),
    ("upstream app { " + ZONE + "resolver_timeout x; server 127.0.0.1 resolve; } "
     "server { listen 127.0.0.1:1; }",
     '"resolver_timeout" directive invalid value'),
])
def test_configuration_errors(conf_text, message):
    rc, err = check_conf(WEIR, conf_text)
    assert rc == 1 and message in err, err


def test_an_address_with_resolve_is_static():
    # As nginx: an address needs no resolver and no zone.
    rc, err = check_conf(WEIR, "upstream app { server 127.0.0.1:81 resolve; } "
                               "server { listen 127.0.0.1:1; location / { proxy_pass http://app; } }")
    assert rc == 0, err
