"""The balancers of upstream{} blocks over real backends: ip_hash, hash and hash consistent send each
client or key to the same backend as Debian's nginx does on the same configuration (both servers
talk to the same backends, one after the other); least_conn avoids the busy backend; random spreads
the load and never picks a down server; a zone makes the peers' state one for all workers; balancer
and zone configuration errors answer as nginx does."""
import signal
import socket
import subprocess
import threading

from backend import Backend, Sleep, response
from conftest import NGINX, free_port, http_get, parse_one, read_to_end, wait_for


def conf(ports, balancer, extra=""):
    servers = "".join("server 127.0.0.1:%d%s; " % (p, extra) for p in ports)
    return r"""
    proxy_temp_path %%%%DIR%%%%/proxy_temp;
    upstream pool { %s %s }
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { proxy_pass http://pool; }
    }
""" % (balancer, servers)


def who(backends, before):
    """Which backend took the one request made since the counts in before."""
    got = [i for i, b in enumerate(backends) if len(b.requests) > before[i]]
    assert len(got) == 1, got
    return got[0]


def mapping(server, backends, targets, source=None):
    out = []
    for i, t in enumerate(targets):
        before = [len(b.requests) for b in backends]
        if source is None:
            r = http_get(server.port, t)
        else:
            r = get_from(server.port, t, source(i))
        assert r.status == 200, (t, r.status)
        out.append(who(backends, before))
    return out


def get_from(port, path, addr):
    s = socket.socket()
    s.settimeout(10)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    return parse_one(read_to_end(s))[0]


def same_as_nginx(make_server, balancer, targets, source=None, count=4):
    backends = [Backend().__enter__() for _ in range(count)]
    try:
        ports = [b.port for b in backends]
        weir = make_server(conf(ports, balancer))
        got = mapping(weir, backends, targets, source)
        nginx = make_server(conf(ports, balancer), binary=NGINX)
        want = mapping(nginx, backends, targets, source)
        return got, want
    finally:
        for b in backends:
            b.stop()


def test_hash_and_ip_hash_pick_what_nginx_picks(make_server):
    keys = ["/k%d?arg=%d" % (i, i * 7) for i in range(40)]
    for balancer in ("hash $request_uri;", "hash $request_uri consistent;"):
        got, want = same_as_nginx(make_server, balancer, keys)
        assert got == want, balancer
        assert len(set(got)) >= 3, (balancer, got)  # the keys spread
    # Clients from 127.0.k.1: ip_hash looks at the first three bytes of the address.
    clients = ["/c"] * 12
    got, want = same_as_nginx(make_server, "ip_hash;", clients,
                              source=lambda i: "127.0.%d.1" % (i % 6 + 1))
    assert got == want
    assert all(got[i] == got[i + 6] for i in range(6))  # one client, one backend
    assert len(set(got)) >= 2


def test_weights_and_consistency(make_server):
    with Backend() as a, Backend() as b:
        s = make_server(conf([a.port], "hash $arg_k;").replace(
            "server 127.0.0.1:%d; " % a.port,
            "server 127.0.0.1:%d weight=3; server 127.0.0.1:%d; " % (a.port, b.port)))
        picks = mapping(s, [a, b], ["/x?k=%d" % i for i in range(80)])
        assert picks.count(0) > picks.count(1) > 0  # weight 3 takes most keys
        assert mapping(s, [a, b], ["/x?k=%d" % i for i in range(80)]) == picks


def test_least_conn_avoids_the_busy_backend(make_server):
    with Backend() as a, Backend() as b:
        for bk in (a, b):
            bk.script("/slow", [Sleep(1.5), response(200, "slow")])
        s = make_server(conf([a.port, b.port], "least_conn;"))
        t = threading.Thread(target=lambda: http_get(s.port, "/slow"))
        t.start()
        for _ in range(50):
            if len(a.requests) + len(b.requests) == 1:
                break
            threading.Event().wait(0.02)
        busy = 0 if a.requests else 1
        picks = mapping(s, [a, b], ["/fast%d" % i for i in range(4)])
        t.join()
        assert picks == [1 - busy] * 4  # round robin would have alternated


def test_random_spreads_and_skips_down(make_server):
    with Backend() as a, Backend() as b, Backend() as c:
        for balancer in ("random;", "random two;", "random two least_conn;"):
            cf = conf([a.port, b.port], balancer).replace(
                "server 127.0.0.1:%d; " % b.port,
                "server 127.0.0.1:%d; server 127.0.0.1:%d down; " % (b.port, c.port))
            s = make_server(cf)
            picks = mapping(s, [a, b, c], ["/r%d" % i for i in range(40)])
            assert picks.count(0) > 0 and picks.count(1) > 0, (balancer, picks)
            assert picks.count(2) == 0, balancer
            s.stop()


def test_balancer_configuration_errors(make_server):
    def check(balancer, servers, message):
        cf = """
        upstream pool { %s %s }
        server { listen 127.0.0.1:%%%%PORT%%%%; location / { proxy_pass http://pool; } }
        """ % (balancer, servers)
        s = make_server(cf, start=False)
        p = subprocess.run([s.binary, "-p", s.dir + "/", "-c", s.conf_path, "-t"],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    rc, err = check("ip_hash;", "server 127.0.0.1:1; server 127.0.0.1:2 backup;", "")
    assert rc == 1 and 'balancing method does not support parameter "backup"' in err
    rc, err = check("", "server 127.0.0.1:1 backup; server 127.0.0.1:2; hash $uri;", "")
    assert rc == 1 and 'balancing method does not support parameter "backup"' in err
    rc, err = check("random one;", "server 127.0.0.1:1;", "")
    assert rc == 1 and 'invalid parameter "one"' in err and "nginx.conf:" in err
    rc, err = check("hash $uri bogus;", "server 127.0.0.1:1;", "")
    assert rc == 1 and 'invalid parameter "bogus"' in err
    rc, err = check("hash;", "server 127.0.0.1:1;", "")
    assert rc == 1 and 'invalid number of arguments in "hash" directive' in err
    rc, err = check("least_conn; ip_hash;", "server 127.0.0.1:1;", "")
    assert rc == 0 and "[warn]" in err and "load balancing method redefined" in err
    rc, err = check("least_conn;", "server 127.0.0.1:1 backup; server 127.0.0.1:3;", "")
    assert rc == 0


def test_zone_shares_peer_state_across_workers(make_server):
    with Backend() as b:
        b.script("/slow", [Sleep(1.5), response(200, "slow")])
        cf = r"""
        upstream pool { zone pool 64k; server 127.0.0.1:%d max_conns=1; }
        server { listen 127.0.0.1:%%%%PORT%%%%; location / { proxy_pass http://pool; } }
        """ % b.port
        s = make_server(cf, main_conf="worker_processes 2;")
        results = []
        threads = [threading.Thread(target=lambda: results.append(http_get(s.port, "/slow").status))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # max_conns counts every worker's connections: exactly one request gets the peer.
        assert sorted(results) == [200, 502, 502, 502, 502, 502], results
        assert "no live upstreams" in s.error_log()
        s.send_signal(signal.SIGHUP)  # a new configuration: a fresh zone, and it still works
        wait_for(lambda: http_get(s.port, "/fast").status == 200, what="served after the reload")


def test_zone_configuration_errors(make_server):
    def check(upstream):
        cf = "%s\n server { listen 127.0.0.1:%%%%PORT%%%%; location / { proxy_pass http://a; } }" % upstream
        s = make_server(cf, start=False)
        p = subprocess.run([s.binary, "-p", s.dir + "/", "-c", s.conf_path, "-t"],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    rc, err = check("upstream a { zone z 8k; server 127.0.0.1:1; }")
    assert rc == 1 and 'zone "z" is too small' in err
    rc, err = check("upstream a { zone z; server 127.0.0.1:1; }")
    assert rc == 1 and 'zero size shared memory zone "z"' in err
    # Two groups may share a zone; the size is given once.
    rc, err = check("upstream a { zone z 64k; server 127.0.0.1:1; }\n"
                    "upstream b { zone z; server 127.0.0.1:2; }")
    assert rc == 0, err


def test_lone_primary_fails_over_to_its_backup_as_nginx(make_server):
    """`server A; server B backup;` with A down: the first request finds A refusing and goes to B;
    A's failure counts (max_fails 1), so for fail_timeout the next requests go to B directly, as in
    nginx - one connect() error in the log, not one per request."""
    dead = free_port()  # nothing listens there
    with Backend() as b:
        errors = {}
        for binary in (None, NGINX):
            s = make_server(conf([dead], "").replace(
                "server 127.0.0.1:%d; " % dead,
                "server 127.0.0.1:%d; server 127.0.0.1:%d backup; " % (dead, b.port)), binary=binary)
            for i in range(4):
                assert http_get(s.port, "/f%d" % i).status == 200
            log = open(s.path("logs/error.log")).read()
            errors[s.name] = log.count("connect() failed")
            s.stop()
        assert errors == {"weir": 1, "nginx": 1}, errors
        assert len(b.requests) == 8
