"""geoip2 (the third-party ngx_http_geoip2_module, Debian's libnginx-mod-http-geoip2): MaxMind DB
files written here (mmdb_writer) and read by weir and by Debian's nginx with the module loaded, on
the same configuration, answer by answer: strings, numbers of every kind (nginx's formats), booleans,
array indices, a map (not found), default=, source=, metadata, trusted proxies (recursive or not),
an address in no network and an IPv6 one. auto_reload picks up a replaced file; load errors are the
module's words."""
import os
import shutil
import tempfile
import time

import pytest

from conftest import NGINX, WEIR, load_error, parity_answer as answer
from conftest import Server, weir_and_nginx
from mmdb_writer import mmdb

MODULE = "load_module /usr/lib/nginx/modules/ngx_http_geoip2_module.so;"

RECORDS = [
    ("8.8.8.0/24", {"country": {"iso_code": "US", "names": {"en": "United States", "de": "USA"},
                                "geoname_id": 6252001},
                    "location": {"latitude": 37.751, "longitude": -97.822,
                                 "accuracy_radius": ("u16", 1000), "time_zone": "America/Chicago"},
                    "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
                    "is_anycast": True, "asn": ("u64", 15169), "offset": ("i32", -5),
                    "ratio": ("f32", 0.125), "raw": b"\x01bytes"}),
    ("2.0.0.0/8", {"country": {"iso_code": "FR", "names": {"en": "France", "de": "Frankreich"}},
                   "city": {"names": {"en": "Besan\u00e7on"}}, "is_anycast": False}),
    ("10.0.0.0/8", {"country": {"iso_code": "ZZ"}}),
]

VARS = ["$g_code", "$g_name", "$g_lat", "$g_radius", "$g_sub", "$g_anycast", "$g_asn", "$g_offset",
        "$g_ratio", "$g_map", "$g_raw", "$g_city", "$g_src", "$g_build"]


def conf(db, extra=""):
    return """
    geoip2 %s {
        $g_code default=XX country iso_code;
        $g_name country names de;
        $g_lat location latitude;
        $g_radius location accuracy_radius;
        $g_sub subdivisions 0 iso_code;
        $g_anycast is_anycast;
        $g_asn asn;
        $g_offset offset;
        $g_ratio ratio;
        $g_map country;
        $g_raw raw;
        $g_city default=nowhere city names en;
        $g_src source=$arg_ip country iso_code;
        $g_build metadata build_epoch;
    }
    %s
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { return 200 "%s\\n"; }
    }
    """ % (db, extra, "|".join(VARS))


@pytest.fixture(scope="module")
def db_dir():
    d = tempfile.mkdtemp(prefix="weir-geoip2-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "test.mmdb")
    with open(path, "wb") as f:
        f.write(mmdb(RECORDS))
    os.chmod(path, 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def plain(db_dir):
    yield from weir_and_nginx(conf(db_dir + "/test.mmdb", "geoip2_proxy 127.0.0.1;"), {},
                              main_conf=MODULE)


@pytest.fixture(scope="module")
def recursive(db_dir):
    yield from weir_and_nginx(conf(db_dir + "/test.mmdb", "geoip2_proxy 127.0.0.0/8; "
                                   "geoip2_proxy 10.0.0.0/8; geoip2_proxy_recursive on;"), {},
                              main_conf=MODULE)


CASES = [(None, ""), ("8.8.8.8", ""), ("2.3.4.5", ""), ("1.1.1.1", ""), ("8.8.8.8, 10.1.1.1", ""),
         ("2001:db8::1", ""), ("garbage", ""), (None, "?ip=2.2.2.2"), (None, "?ip=8.8.8.8"),
         (None, "?ip=not-an-ip"), (None, "?ip=::1"), ("8.8.8.8", "?ip=10.9.9.9")]


def ask(port, xff, query):
    return answer(port, "/" + query, extra="" if xff is None else "X-Forwarded-For: %s\r\n" % xff)


@pytest.mark.parametrize("xff,query", CASES)
@pytest.mark.parametrize("which", ["plain", "recursive"])
def test_answers_as_nginx(request, which, xff, query):
    weir, nginx = request.getfixturevalue(which)
    assert ask(weir.port, xff, query) == ask(nginx.port, xff, query)


def test_values(plain, recursive):
    weir = plain[0]
    assert ask(weir.port, "8.8.8.8", "")[1].decode().split("|") == [
        "US", "USA", "37.75100", "1000", "CA", "1", "15169", "-5", "0.12500", "", "\x01bytes",
        "nowhere", "", "1600000000\n"]
    # Without geoip2_proxy_recursive only the last address counts (10.1.1.1: "ZZ").
    assert ask(weir.port, "8.8.8.8, 10.1.1.1", "")[1].startswith(b"ZZ|")
    assert ask(recursive[0].port, "8.8.8.8, 10.1.1.1", "")[1].startswith(b"US|")
    assert ask(weir.port, None, "?ip=2.2.2.2")[1].decode().split("|")[12] == "FR"
    assert ask(weir.port, None, "")[1].startswith(b"XX||")  # 127.0.0.1: the default only


def test_auto_reload(db_dir):
    """auto_reload: a changed file is opened again after a request once the interval has passed.
    weir alone: nginx's module reloads too, but keeps answering the address it looked up last
    from the closed file's record (here: the default)."""
    path = os.path.join(db_dir, "reload.mmdb")
    with open(path, "wb") as f:
        f.write(mmdb(RECORDS))
    os.chmod(path, 0o644)
    text = conf(path, "geoip2_proxy 127.0.0.1;").replace(
        "$g_build metadata build_epoch;", "$g_build metadata build_epoch; auto_reload 1s;")
    server = Server(text, MODULE)
    server.start()
    try:
        assert ask(server.port, "2.3.4.5", "")[1].startswith(b"FR|")
        changed = [(net, {"country": {"iso_code": "DE"}}) for net, _ in RECORDS]
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(mmdb(changed, build_epoch=1700000000))
        os.chmod(tmp, 0o644)
        os.utime(tmp, (time.time() + 5, time.time() + 5))  # newer than the load, to the second
        os.rename(tmp, path)
        deadline = time.time() + 20
        while not ask(server.port, "2.3.4.5", "")[1].startswith(b"DE|"):
            assert time.time() < deadline, "no reload"
            time.sleep(0.2)
        assert ask(server.port, "2.3.4.5", "")[1].endswith(b"|1700000000\n")
        assert 'Reload MMDB "%s" while logging request' % path in open(
            server.path("logs/error.log")).read()
    finally:
        server.stop()
        server.check_clean()
        server.cleanup()


@pytest.mark.parametrize("block,message", [
    ("geoip2 /nonexistent.mmdb { }",
     'MMDB_open("/nonexistent.mmdb") failed - Error opening the specified MaxMind DB file'),
    ("geoip2 @DB@ { $a default=x default=y country; }",
     'default has already been declared for  "$a"'),
    ("geoip2 @DB@ { $a source=arg_ip country; }", 'invalid source variable name "arg_ip"'),
    ("geoip2 @DB@ { $a foo=bar country; }", 'invalid setting "foo=bar" for "$a"'),
    ("geoip2 @DB@ { auto_reload; }", "invalid number of arguments for auto_reload"),
    ("geoip2 @DB@ { something; }", 'invalid setting "something"'),
    ("geoip2 @DB@ { } geoip2 @DB@ { }", "Duplicate GeoIP2 mmdb - @DB@"),
    ("geoip2_proxy 10.0.0.1/33;", 'invalid network "10.0.0.1/33"'),
])
def test_load_errors_as_nginx(db_dir, tmp_path, block, message):
    db = db_dir + "/test.mmdb"
    for binary in (WEIR, NGINX):
        text = "%s\nevents {}\nhttp {\n%s\n}\n" % (MODULE, block.replace("@DB@", db))
        assert load_error(tmp_path, text, binary, 4) == message.replace("@DB@", db)


def test_a_bad_interval(db_dir, tmp_path):
    """nginx's module crashes on this one (it passes the string by value to %V); weir says it."""
    block = "geoip2 %s/test.mmdb { auto_reload x; }" % db_dir
    text = "%s\nevents {}\nhttp {\n%s\n}\n" % (MODULE, block)
    assert load_error(tmp_path, text, WEIR, 4) == 'invalid interval for auto_reload "x"'
