"""Prometheus metrics (#24): `prometheus;` answers the text exposition format (0.0.4), or OpenMetrics
when the scraper asks for it; counts by server zone (status_zone, else the first server_name) add up
across workers and survive a reload that keeps the zones; Debian's promtool accepts the output and
Debian's Prometheus scrapes it."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dns_server import DnsServer
from backend import Backend
from conftest import BackendProcess, check_conf, free_port, http_get, raw, wait_for, WEIR

CONF = r"""
    access_log off;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name a.test;
        location = /metrics { prometheus; }
        location / { return 200 "ok\n"; }
        location /missing { return 404; }
        location /broken { return 500; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name b.test also-b.test;
        status_zone 'edge "b"\zone';
        location / { return 302 /elsewhere; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name c.test;
        status_zone 'edge "b"\zone';
        location / { return 204; }
    }
"""

SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v)


def parse(text):
    """{(name, frozenset(labels)): value} and the # TYPE lines."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = frozenset((k, unescape(v)) for k, v in LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def scrape(port, accept=None):
    headers = {"Host": "a.test"}
    if accept:
        headers["Accept"] = accept
    r = http_get(port, "/metrics", headers=headers)
    assert r.status == 200, r
    return r, r.body.decode()


def get(port, host, path):
    return http_get(port, path, headers={"Host": host}).status


def requests_of(samples, server, code):
    return samples[("weir_http_requests_total", frozenset({("server", server), ("code", code)}))]


def test_counts_by_server_zone_and_status_class(make_server):
    s = make_server(CONF)
    for _ in range(3):
        assert get(s.port, "a.test", "/") == 200
    assert get(s.port, "a.test", "/missing") == 404
    assert get(s.port, "a.test", "/broken") == 500
    assert get(s.port, "b.test", "/") == 302
    assert get(s.port, "also-b.test", "/") == 302
    assert get(s.port, "c.test", "/") == 204
    r, text = scrape(s.port)
    assert r.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse(text)
    assert requests_of(samples, "a.test", "2xx") == 3  # the scrape itself is counted once answered
    assert requests_of(samples, "a.test", "4xx") == 1
    assert requests_of(samples, "a.test", "5xx") == 1
    # Two servers with one status_zone are one zone; the quote and backslash are escaped.
    edge = 'edge "b"\\zone'
    assert 'server="edge \\"b\\"\\\\zone"' in text
    assert requests_of(samples, edge, "3xx") == 2
    assert requests_of(samples, edge, "2xx") == 1
    assert types["weir_http_requests_total"] == "counter"
    assert types["weir_http_request_duration_seconds"] == "histogram"
    # The histogram: cumulative buckets, +Inf equal to the count, the count equal to the requests.
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                     if k[0] == "weir_http_request_duration_seconds_bucket"
                     and dict(k[1])["server"] == "a.test")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    count = samples[("weir_http_request_duration_seconds_count", frozenset({("server", "a.test")}))]
    assert buckets[-1] == (float("inf"), count) and count == 5
    # Bytes: every response's header and body went out.
    sent = samples[("weir_http_sent_bytes_total", frozenset({("server", "a.test")}))]
    received = samples[("weir_http_received_bytes_total", frozenset({("server", "a.test")}))]
    assert sent > 5 * len("HTTP/1.1 200 OK\r\n") and received > 5 * len("GET / HTTP/1.1\r\n")
    # Connections as stub_status counts them: this scrape's connection and every earlier one.
    assert samples[("weir_connections_accepted_total", frozenset())] == 9
    assert samples[("weir_connections_active", frozenset())] == 1
    assert samples[("weir_connections_writing", frozenset())] == 1
    # The next scrape counts the one before it.
    samples, _ = parse(scrape(s.port)[1])
    assert requests_of(samples, "a.test", "2xx") == 4


def test_promtool_accepts_the_text_format(make_server):
    s = make_server(CONF)
    get(s.port, "b.test", "/")
    text = scrape(s.port)[1]
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_openmetrics_when_asked(make_server):
    s = make_server(CONF)
    r, text = scrape(s.port, accept="application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert r.header("Content-Type") == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert text.endswith("\n# EOF\n")
    samples, types = parse(text)
    # A counter's family has no _total; its samples keep it.
    assert types["weir_http_requests"] == "counter" and "weir_http_requests_total" not in types
    assert ("weir_http_requests_total", frozenset({("server", "a.test"), ("code", "2xx")})) in samples


def test_counts_add_up_across_workers_and_survive_a_reload(make_server):
    # Scrapes go to a server of their own: with two workers, one may answer a scrape before the
    # other has counted the scrape before it (counting ends a request, after its last byte).
    conf = CONF.replace('location = /metrics { prometheus; }', '') + r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name m.test;
        location = /metrics { prometheus; }
    }
"""
    s = make_server(conf, main_conf="worker_processes 2;")

    def scrape(port):
        r = http_get(port, "/metrics", headers={"Host": "m.test"})
        assert r.status == 200, r
        return r, r.body.decode()
    for _ in range(40):
        assert raw(s.port, "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 200")
    samples, _ = parse(scrape(s.port)[1])
    assert requests_of(samples, "a.test", "2xx") == 40
    old = set(s.worker_pids())
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: len(s.worker_pids()) == 2 and not old & set(s.worker_pids()),
             what="the new workers alone")
    for _ in range(10):
        assert raw(s.port, "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 200")
    samples, _ = parse(scrape(s.port)[1])
    assert requests_of(samples, "a.test", "2xx") == 40 + 10
    # Other server zones: the counts start again (Prometheus takes it as a counter reset).
    c_zone = "server_name c.test;\n        status_zone 'edge \"b\"\\zone';"
    assert c_zone in s.conf_text
    s.set_conf(s.conf_text.replace(c_zone, "server_name c.test; status_zone c;"))
    old = set(s.worker_pids())
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: len(s.worker_pids()) == 2 and not old & set(s.worker_pids()),
             what="the workers of the changed configuration")
    # Read to the close: the request is counted before its connection closes.
    assert raw(s.port, "GET / HTTP/1.0\r\nHost: c.test\r\n\r\n").startswith(b"HTTP/1.1 204")
    samples, _ = parse(scrape(s.port)[1])
    assert requests_of(samples, "a.test", "2xx") == 0
    assert requests_of(samples, "c", "2xx") == 1


def test_prometheus_scrapes_weir(make_server):
    """Debian's Prometheus scrapes weir (in OpenMetrics, as it asks) and its query answers the counts."""
    s = make_server(CONF)
    for _ in range(7):
        get(s.port, "c.test", "/")
    d = tempfile.mkdtemp(prefix="weir-prometheus-")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n"
                "scrape_configs:\n  - job_name: weir\n    metrics_path: /metrics\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % s.port)
    # Prometheus's Host is the target's address: the default server (the first, a.test) answers.
    port = free_port()
    prom = BackendProcess(["prometheus", "--config.file=" + os.path.join(d, "prometheus.yml"),
                           "--storage.tsdb.path=" + os.path.join(d, "data"),
                           "--web.listen-address=127.0.0.1:%d" % port], port, None, d)
    try:
        def api(path, **params):
            url = "http://127.0.0.1:%d/api/v1/%s?%s" % (port, path, urllib.parse.urlencode(params))
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)["data"]

        def up():
            try:
                targets = api("targets")["activeTargets"]
            except urllib.error.HTTPError:  # 503 while it starts
                return False
            return targets and targets[0]["health"] == "up"
        wait_for(up, timeout=60, what="Prometheus scraping weir")

        def value():
            res = api("query", query='weir_http_requests_total{server="edge \\"b\\"\\\\zone",code="2xx"}')
            return res["result"] and res["result"][0]["value"][1]
        wait_for(lambda: value() == "7", timeout=60, what="the count in Prometheus")
        res = api("query", query="weir_http_request_duration_seconds_count")["result"]
        assert {r["metric"]["server"] for r in res} == {"a.test", 'edge "b"\\zone'}
    finally:
        prom.stop()
        shutil.rmtree(d, ignore_errors=True)


UPSTREAM_CONF = r"""
    access_log off;
    upstream back {
        zone back 64k;
        server 127.0.0.1:%%PORT1%%;
        server 127.0.0.1:DEAD max_fails=1 fail_timeout=60s;
    }
    server {
        listen 127.0.0.1:%%PORT0%%;
        location = /metrics { prometheus; }
        location / { proxy_pass http://back; }
        location /direct/ { proxy_pass http://127.0.0.1:%%PORT1%%/; }
    }
    server {
        listen 127.0.0.1:%%PORT1%%;
        location / { return 200 "from the backend\n"; }
    }
"""


def test_upstream_peers(make_server):
    """Each try counted for its peer: the refused one as a failure and then unavailable (for every
    worker: the group has a zone), the live one's responses and times; an implicit group named as
    proxy_pass wrote it."""
    dead = free_port()
    s = make_server(UPSTREAM_CONF.replace("DEAD", str(dead)), main_conf="worker_processes 2;", ports=2)
    for _ in range(6):
        assert raw(s.port, "GET /x HTTP/1.0\r\n\r\n").endswith(b"from the backend\n")
    assert raw(s.port, "GET /direct/y HTTP/1.0\r\n\r\n").endswith(b"from the backend\n")
    live = "127.0.0.1:%d" % s.ports[1]
    gone = "127.0.0.1:%d" % dead

    def of(name, peer, upstream="back", **labels):
        key = frozenset(dict(labels, upstream=upstream, peer=peer).items())
        return samples[(name, key)]
    for _ in range(4):  # whichever worker answers, with the zone
        samples, _ = parse(scrape(s.port)[1])
        assert of("weir_upstream_responses_total", live, code="2xx") == 6
        assert of("weir_upstream_responses_total", gone, code="5xx") == 0
        assert of("weir_upstream_failures_total", gone) == 1
        assert of("weir_upstream_failures_total", live) == 0
        assert of("weir_upstream_peer_state", gone, state="unavailable") == 1
        assert of("weir_upstream_peer_state", live, state="up") == 1
        assert of("weir_upstream_connect_duration_seconds_count", live) == 6
        assert of("weir_upstream_header_duration_seconds_count", live) == 6
        assert of("weir_upstream_response_duration_seconds_count", live) == 6
        assert of("weir_upstream_header_duration_seconds_count", gone) == 0
        assert of("weir_upstream_sent_bytes_total", live) > 6 * len("GET /x HTTP/1.0\r\n")
        assert of("weir_upstream_received_bytes_total", live) > 6 * len("from the backend\n")
        assert of("weir_upstream_responses_total", live, upstream=live, code="2xx") == 1
        assert of("weir_upstream_peer_connections", live) == 0  # every try is over


API_CONF = UPSTREAM_CONF.replace("location = /metrics { prometheus; }",
                                  "location = /metrics { prometheus; } location /api { api write=off; } "
                                  "location = /stub { stub_status; }")


def api(port, path, method="GET"):
    r = http_get(port, "/api" + path, method=method)
    assert r.header("Content-Type") == "application/json", r
    return r.status, json.loads(r.body)


def test_api_in_nginx_plus_shape(make_server):
    dead = free_port()
    s = make_server(API_CONF.replace("DEAD", str(dead)), ports=2)
    for _ in range(3):
        assert raw(s.port, "GET /x HTTP/1.0\r\n\r\n").endswith(b"from the backend\n")
    live = "127.0.0.1:%d" % s.ports[1]
    assert api(s.port, "/") == (200, list(range(1, 10)))
    assert api(s.port, "/9/")[1][:3] == ["nginx", "processes", "connections"]
    status, nginx = api(s.port, "/9/nginx")
    assert status == 200 and nginx["build"] == "weir" and nginx["address"] == "127.0.0.1"
    assert nginx["pid"] in s.worker_pids()
    status, conns = api(s.port, "/9/connections")
    # 3 clients, their 3 proxied connections (the backend is this weir), 3 API calls and this one.
    assert conns == {"accepted": 10, "dropped": 0, "active": 1, "idle": 0}, conns
    assert api(s.port, "/9/http/requests")[1]["current"] == 1
    # The backend's server (no server_name) is the zone "", the proxying one (no name either) too:
    # both count in it.
    zones = api(s.port, "/9/http/server_zones")[1]
    assert zones[""]["responses"]["2xx"] == zones[""]["requests"] >= 3 + 3
    back = api(s.port, "/9/http/upstreams")[1]["back"]
    assert back["zone"] == "back"
    peers = {p["server"]: p for p in back["peers"]}
    assert peers[live]["state"] == "up" and peers[live]["requests"] == 3
    assert peers[live]["responses"] == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 0, "5xx": 0, "total": 3}
    gone = peers["127.0.0.1:%d" % dead]
    assert gone["state"] == "unavail" and gone["fails"] == 1 and gone["id"] == 1
    assert api(s.port, "/8/http/upstreams/back")[1] == api(s.port, "/8/http/upstreams")[1]["back"]
    assert api(s.port, "/9/stream/upstreams") == (200, {})
    status, err = api(s.port, "/9/http/upstreams/nope")
    assert status == 404 and err["error"]["code"] == "PathNotFound"
    assert api(s.port, "/10/nginx")[1]["error"]["code"] == "UnknownVersion"
    status, err = api(s.port, "/9/http/upstreams/back", method="DELETE")
    assert status == 405 and err["error"]["code"] == "MethodNotAllowed"


@pytest.mark.parametrize("plus", [True, False])
def test_prometheus_nginx_exporter(make_server, plus):
    """Debian's prometheus-nginx-exporter scrapes weir: the API in its Plus mode, stub_status in its
    OSS mode."""
    dead = free_port()
    s = make_server(API_CONF.replace("DEAD", str(dead)), ports=2)
    for _ in range(5):
        assert raw(s.port, "GET /x HTTP/1.0\r\n\r\n").endswith(b"from the backend\n")
    port = free_port()
    d = tempfile.mkdtemp(prefix="weir-exporter-")
    argv = ["prometheus-nginx-exporter", "-web.listen-address", "127.0.0.1:%d" % port,
            "-nginx.scrape-uri", "http://127.0.0.1:%d/%s" % (s.port, "api" if plus else "stub")]
    exporter = BackendProcess(argv + (["-nginx.plus"] if plus else []), port, None, d)
    try:
        def metrics():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
                return parse(r.read().decode())[0]
        samples = metrics()
        prefix = "nginxplus" if plus else "nginx"
        assert samples[(prefix + "_up", frozenset())] == 1
        assert samples[(prefix + "_connections_accepted", frozenset())] >= 5
        if plus:
            live = frozenset({("upstream", "back"), ("server", "127.0.0.1:%d" % s.ports[1])})
            assert samples[("nginxplus_upstream_server_requests", live)] == 5
            assert samples[("nginxplus_upstream_server_responses", live | {("code", "2xx")})] == 5
            gone = frozenset({("upstream", "back"), ("server", "127.0.0.1:%d" % dead)})
            assert samples[("nginxplus_upstream_server_fails", gone)] == 1
        else:
            assert samples[("nginx_http_requests_total", frozenset())] >= 5
    finally:
        exporter.stop()


def test_resolver_counts(make_server):
    """The resolver's lookups and failures (proxy_pass with variables)."""
    with DnsServer({"app.test": ["127.0.0.1"]}) as dns, Backend() as b:
        s = make_server(r"""
    access_log off;
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        resolver 127.0.0.1:%d valid=30s ipv6=off;
        location = /metrics { prometheus; }
        location / { proxy_pass http://$arg_h:%d; }
    }
""" % (dns.port, b.port))
        assert http_get(s.port, "/?h=app.test").status == 200
        assert http_get(s.port, "/?h=app.test").status == 200  # from the cache: no lookup
        assert http_get(s.port, "/?h=nowhere.test").status == 502
        samples, _ = parse(scrape(s.port)[1])
        assert samples[("weir_resolver_queries_total", frozenset())] == 2 == dns.asked("app.test") + 1
        assert samples[("weir_resolver_errors_total", frozenset())] == 1


@pytest.mark.parametrize("conf, message", [
    ("server { listen 127.0.0.1:1; location / { prometheus on; } }",
     'invalid number of arguments in "prometheus" directive'),
    ("status_zone x; server { listen 127.0.0.1:1; }", '"status_zone" directive is not allowed here'),
    ("server { listen 127.0.0.1:1; location /api { api write=on; } }",
     'weir\'s "api" is read-only: "write=on" is not supported'),
    ("server { listen 127.0.0.1:1; status_zone a; status_zone b; location / { prometheus; } }",
     '"status_zone" directive is duplicate'),
])
def test_configuration_errors(conf, message):
    rc, err = check_conf(WEIR, conf)
    assert rc == 1 and message in err, err
