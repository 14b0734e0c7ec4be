"""limit_req (#10): nginx's leaky bucket in a shared zone - driven at many times the rate, exactly
rate x time + burst requests are let in (weir and Debian's nginx alike); within the burst requests
wait their turn (delay), beyond it limit_req_status with nginx's log lines; dry run;
$limit_req_status; load errors as nginx's."""
import threading
import time

import pytest

from conftest import NGINX, WEIR, check_conf, raw, wait_for

CONF = r"""
    limit_req_zone $binary_remote_addr zone=one:1m rate=20r/s;
    limit_req_zone $binary_remote_addr zone=slow:1m rate=10r/s;
    limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
    limit_req_zone $binary_remote_addr zone=code:1m rate=1r/m;
    log_format lr '$uri $status $limit_req_status';
    access_log %%DIR%%/logs/lr.log lr;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /fast/ { limit_req zone=one burst=5 nodelay; }
        location /queue/ { limit_req zone=slow burst=3; limit_req_log_level warn; }
        location /dry/ { limit_req zone=dry; limit_req_dry_run on; }
        location /code/ { limit_req zone=code; limit_req_status 429; }
    }
"""
FILES = {"fast/x": b"x", "queue/x": b"x", "dry/x": b"x", "code/x": b"x"}


def status(port, path):
    return raw(port, "GET %s HTTP/1.0\r\n\r\n" % path)[9:12]


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_admissions_at_many_times_the_rate(make_server, binary):
    s = make_server(CONF, files=FILES, binary=binary)
    admitted = rejected = 0
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        code = status(s.port, "/fast/x")
        if code == b"200":
            admitted += 1
        else:
            assert code == b"503"
            rejected += 1
    elapsed = time.monotonic() - start
    # The first request, the burst, and 20 a second since the first.
    expected = 1 + 5 + 20 * elapsed
    assert rejected > 2 * admitted, (admitted, rejected)  # driven well beyond the rate
    assert abs(admitted - expected) <= 2, (admitted, expected, elapsed)
    wait_for(lambda: 'limiting requests, excess: 5.' in s.error_log(), what="the log line")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_burst_waits_its_turn(make_server, binary):
    s = make_server(CONF, files=FILES, binary=binary)
    results = {}

    def one(i):
        t = time.monotonic()
        results[i] = (status(s.port, "/queue/x"), time.monotonic() - t)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    start = time.monotonic()
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    codes = sorted(r[0] for r in results.values())
    assert codes == [b"200"] * 4 + [b"503"], results
    # The fourth admitted waited for three slots of 100 ms.
    assert max(r[1] for r in results.values() if r[0] == b"200") >= 0.25
    assert time.monotonic() - start < 5
    wait_for(lambda: "delaying request, excess: " in s.error_log(), what="the delay line")
    delayed = [l for l in s.error_log().splitlines() if "delaying request" in l]
    assert all("[notice]" in l for l in delayed)  # one level below limit_req_log_level warn
    log = s.access_log("logs/lr.log")
    assert "/queue/x 200 DELAYED" in log and "/queue/x 503 REJECTED" in log


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_dry_run_and_status(make_server, binary):
    s = make_server(CONF, files=FILES, binary=binary)
    assert [status(s.port, "/dry/x") for _ in range(3)] == [b"200"] * 3
    assert status(s.port, "/code/x") == b"200" and status(s.port, "/code/x") == b"429"
    wait_for(lambda: "limiting requests, dry run, excess: 1.000 by zone \"dry\"" in s.error_log(),
             what="the dry-run line")
    wait_for(lambda: "/dry/x 200 REJECTED_DRY_RUN" in s.access_log("logs/lr.log"),
             what="the dry run in the log")


@pytest.mark.parametrize("binary", [WEIR, NGINX], ids=["weir", "nginx"])
def test_internal_redirect_counts_once(make_server, binary):
    # "/" reaches index.html by an internal redirect, and try_files sends /t to /s: the request is
    # let in once (its status kept on the main request), not limited again in the new location.
    conf = """
        limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
        limit_req_zone $binary_remote_addr zone=two:1m rate=1r/m;
        server {
            listen 127.0.0.1:%%PORT%%;
            location / { limit_req zone=one; root %%DIR%%/html; }
            location /t { limit_req zone=two; try_files /nothere /s; }
            location = /s { limit_req zone=two; return 200 "$limit_req_status\\n"; }
        }
    """
    s = make_server(conf, binary=binary, files={"index.html": b"home\n"})
    first = raw(s.port, "GET / HTTP/1.0\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"home\n"), first[:60]
    assert raw(s.port, "GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 503 ")
    assert raw(s.port, "GET /t HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nPASSED\n")


@pytest.mark.parametrize("conf,error", [
    ("limit_req_zone $a zone=z:1m;", 'invalid number of arguments in "limit_req_zone" directive'),
    ("limit_req_zone $a zone=z:1m rate=x;", 'invalid rate "rate=x"'),
    ("limit_req_zone $a rate=1r/s x=1;", 'invalid parameter "x=1"'),
    ("limit_req_zone $a zone=z:1m rate=1r/s; server { limit_req zone=z burst=0; }",
     'invalid burst value "burst=0"'),
    ("limit_req_zone $a zone=z:1m rate=1r/s; server { limit_req burst=1; }",
     '"limit_req" must have "zone" parameter'),
    ("server { limit_req zone=nowhere; }", 'zero size shared memory zone "nowhere"'),
])
def test_load_errors_as_nginx(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc != 0 and error in err, (binary, err)
