"""Active health checks (#24), NGINX Plus's health_check and match: a peer whose checks fail is taken
out of the balancing for every worker until it passes again; one check per peer per interval
whatever the number of workers; mandatory peers start out; the state shows in the API and in
Prometheus's metrics; configuration errors."""
import json
import os
import signal
import time

import pytest

from conftest import WEIR, check_conf, http_get, raw, wait_for

CONF = r"""
    access_log off;
    upstream back {
        zone back 64k;
        server 127.0.0.1:%%PORT1%%;
        server 127.0.0.1:%%PORT2%%;
    }
    match alive {
        status 200;
        header Content-Type ~ "^text/";
        body ~ "alive";
    }
    server {
        listen 127.0.0.1:%%PORT0%%;
        location /api { api; }
        location = /metrics { prometheus; }
        location / {
            proxy_pass http://back;
            health_check interval=100ms fails=2 passes=2 uri=/health match=alive CHECK_EXTRA;
        }
    }
    server {
        listen 127.0.0.1:%%PORT1%%;
        root %%DIR%%/one;
        access_log %%DIR%%/logs/one.log;
        location / { default_type text/plain; }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        root %%DIR%%/two;
        access_log %%DIR%%/logs/two.log;
        location / { default_type text/plain; }
    }
"""


def start(make_server, extra="", workers=2):
    s = make_server(CONF.replace("CHECK_EXTRA", extra), main_conf="worker_processes %d;" % workers,
                    ports=3, start=False)
    for name in ("one", "two"):
        s.write(s.path("%s/index.html" % name), name + "\n")
    s.write(s.path("one/health"), "alive\n")
    return s


def peers(s):
    r = http_get(s.port, "/api/9/http/upstreams/back")
    assert r.status == 200, r
    return {p["server"]: p for p in json.loads(r.body)["peers"]}


def answers(s, n=10):
    return [raw(s.port, "GET / HTTP/1.0\r\n\r\n").rpartition(b"\r\n\r\n")[2].decode().strip()
            for _ in range(n)]


def test_a_failing_peer_leaves_the_balancing_and_comes_back(make_server):
    s = start(make_server)
    s.start()
    two = "127.0.0.1:%d" % s.ports[2]
    wait_for(lambda: peers(s)[two]["state"] == "unhealthy", what="the peer without /health unhealthy")
    assert set(answers(s)) == {"one"}  # every worker skips it
    checks = peers(s)[two]["health_checks"]
    assert checks["unhealthy"] == 1 and checks["fails"] >= 2 and checks["last_passed"] is False
    assert "peer is unhealthy: its answer (status 404) did not pass while checking health, " \
           'health check of peer %s in upstream "back"' % two in s.error_log()
    # A body the match block refuses keeps it out; the right body brings it back after 2 passes.
    s.write(s.path("two/health"), "dead\n")
    time.sleep(0.3)  # a few checks with the refused body: nothing to wait for, it must stay out
    assert peers(s)[two]["state"] == "unhealthy"
    s.write(s.path("two/health"), "alive\n")
    wait_for(lambda: peers(s)[two]["state"] == "up", what="the peer healthy again")
    assert set(answers(s)) == {"one", "two"}
    assert "peer is healthy again while checking health" in s.error_log()
    metrics = http_get(s.port, "/metrics").body.decode()
    assert 'weir_upstream_peer_state{upstream="back",peer="%s",state="up"} 1' % two in metrics
    assert 'weir_upstream_health_checks_total{upstream="back",peer="%s",result="failed"}' % two \
        in metrics


def test_one_check_per_peer_per_interval_across_workers(make_server):
    s = start(make_server, workers=2)
    s.start()
    log = s.path("logs/one.log")
    wait_for(lambda: os.path.exists(log) and open(log).read().count("/health") >= 3,
             what="the checks under way")
    first, t0 = open(log).read().count("/health"), time.monotonic()
    time.sleep(2)
    checks, elapsed = open(log).read().count("/health") - first, time.monotonic() - t0
    # One every 100 ms (two workers checking on their own would make twice as many).
    assert 0 < checks <= elapsed / 0.1 * 1.3 + 2, (checks, elapsed)


def test_a_mandatory_peer_is_out_until_its_first_check_passes(make_server):
    """Every peer starts unhealthy: the one whose checks pass joins after its first, the other never
    gets a request."""
    s = start(make_server, extra="mandatory", workers=1)
    s.start()
    one, two = ("127.0.0.1:%d" % p for p in s.ports[1:])
    wait_for(lambda: peers(s)[one]["state"] == "up", what="the passing peer in")
    assert set(answers(s, 6)) == {"one"}
    assert peers(s)[two]["state"] == "unhealthy"
    assert "GET / " not in open(s.path("logs/two.log")).read()


def test_a_refused_peer(make_server):
    s = start(make_server, workers=1)
    s.write(s.path("two/health"), "alive\n")
    s.set_conf(s.conf_text.replace("server 127.0.0.1:%d;" % s.ports[2], "server 127.0.0.1:1;"))
    s.start()
    wait_for(lambda: peers(s)["127.0.0.1:1"]["state"] == "unhealthy", what="the refused peer out")
    assert set(answers(s)) == {"one"}
    assert "peer is unhealthy: connect() failed (111: Connection refused) while checking health" \
        in s.error_log()


def test_checks_go_on_after_a_reload(make_server):
    """The new workers check (the group's zone starts afresh); the old ones leave their checks
    cleanly (the sanitizer build looks at their exit)."""
    s = start(make_server, workers=2)
    s.start()
    two = "127.0.0.1:%d" % s.ports[2]
    wait_for(lambda: peers(s)[two]["state"] == "unhealthy", what="the peer out")
    old = set(s.worker_pids())
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: len(s.worker_pids()) == 2 and not old & set(s.worker_pids()),
             what="the new workers alone")
    wait_for(lambda: peers(s)[two]["state"] == "unhealthy", what="the peer out again")
    assert set(answers(s)) == {"one"}


@pytest.mark.parametrize("persistent", [True, False])
def test_persistent_keeps_the_health_of_before_a_reload(make_server, persistent):
    """mandatory persistent: a peer healthy before a reload takes requests at once after it (until
    its own checks fail); with mandatory alone every peer starts out until it passes a check."""
    s = start(make_server, extra="mandatory persistent" if persistent else "mandatory", workers=1)
    s.set_conf(s.conf_text.replace("interval=100ms fails=2", "interval=3s fails=3"))
    s.write(s.path("two/health"), "alive\n")
    s.start()
    wait_for(lambda: {p["state"] for p in peers(s).values()} == {"up"}, what="both peers up")
    # The checks fail from now on, but three of them 3 s apart take a peer out.
    os.remove(s.path("one/health"))
    os.remove(s.path("two/health"))
    old = set(s.worker_pids())
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: s.worker_pids() and not old & set(s.worker_pids()), what="the new worker")
    statuses = {http_get(s.port, "/").status for _ in range(4)}
    assert statuses == ({200} if persistent else {502}), statuses


@pytest.mark.parametrize("slow_start", [True, False])
def test_slow_start_after_recovery(make_server, slow_start):
    """A peer back from ill health regains its weight over slow_start: right after, it takes
    almost nothing of the traffic; without slow_start, its half at once."""
    s = start(make_server, workers=1)
    if slow_start:
        s.set_conf(s.conf_text.replace("server 127.0.0.1:%d;" % s.ports[2],
                                       "server 127.0.0.1:%d slow_start=60s;" % s.ports[2]))
    s.start()
    two = "127.0.0.1:%d" % s.ports[2]
    wait_for(lambda: peers(s)[two]["state"] == "unhealthy", what="the peer out")
    s.write(s.path("two/health"), "alive\n")
    wait_for(lambda: peers(s)[two]["state"] == "up", what="the peer back")
    got = answers(s, 20).count("two")
    if slow_start:
        assert got <= 2, got  # a 60th of its weight for the first second
    else:
        assert 8 <= got <= 12, got


@pytest.mark.parametrize("conf, message", [
    ("upstream u { server 127.0.0.1:1; } server { listen 127.0.0.1:1; location / { proxy_pass http://u; "
     "health_check; } }", 'upstream "u" must reside in shared memory ("zone") for "health_check"'),
    ("upstream u { zone u 64k; server 127.0.0.1:1; } server { listen 127.0.0.1:1; location / { "
     "proxy_pass http://u; health_check match=nope; } }", 'match "nope" not found'),
    ("upstream u { zone u 64k; server 127.0.0.1:1; } server { listen 127.0.0.1:1; location / { "
     "proxy_pass http://u; health_check interval=0; } }", 'invalid parameter "interval=0"'),
    ("upstream u { zone u 64k; server 127.0.0.1:1; } server { listen 127.0.0.1:1; location / { "
     "proxy_pass http://u; health_check persistent; } }", '"persistent" requires "mandatory"'),
    ("upstream u { zone u 64k; server 127.0.0.1:1; } server { listen 127.0.0.1:1; location / { "
     "proxy_pass http://u; health_check persistent mandatory uri=x; } }",
     'invalid parameter "uri=x"'),
    ("match m { require $x; }", '"require" is not supported by weir\'s "match" yet'),
    ("match m { status 20; }", 'invalid status "20"'),
    ("match m { header X ? y; }", 'invalid operator "?"'),
    ("match m { status 200; } match m { status 200; }", 'duplicate match "m"'),
    ("upstream u { ip_hash; server 127.0.0.1:1 slow_start=10s; } server { listen 127.0.0.1:1; }",
     'balancing method does not support parameter "slow_start"'),
    ("upstream u { server 127.0.0.1:1 slow_start=x; } server { listen 127.0.0.1:1; }",
     'invalid parameter "slow_start=x"'),
])
def test_configuration_errors(conf, message):
    rc, err = check_conf(WEIR, conf)
    assert rc == 1 and message in err, err


def test_a_single_process_reload_replaces_the_checks(make_server):
    """master_process off: a reload's checks take over from the old configuration's, which stop
    (the retired configuration stays in memory for requests in flight, but is not checked)."""
    s = make_server(CONF.replace("CHECK_EXTRA", ""), main_conf="master_process off;", ports=3,
                    start=False)
    for name in ("one", "two"):
        s.write(s.path("%s/index.html" % name), name + "\n")
        s.write(s.path("%s/health" % name), "alive\n")
        s.write(s.path("%s/other" % name), "alive\n")
    s.start()

    def asked(path):
        return s.access_log("logs/one.log").count("GET %s " % path)

    wait_for(lambda: asked("/health") >= 2, what="the first configuration's checks")
    s.set_conf(s.conf_text.replace("uri=/health", "uri=/other"))
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: asked("/other") >= 1, what="the new configuration's checks")
    before = asked("/health")
    wait_for(lambda: asked("/other") >= 6, what="five more rounds")
    assert asked("/health") <= before + 1  # one may have been under way
