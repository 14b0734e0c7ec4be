"""geoip (ngx_http_geoip_module, Debian's libnginx-mod-http-geoip): the country variables from
Debian's geoip-database (GeoIP.dat, IPv4, and GeoIPv6.dat), looked up by the client's address or,
from a geoip_proxy, by X-Forwarded-For (geoip_proxy_recursive past every trusted proxy); weir and
Debian's nginx (with the module loaded, `load_module` as Debian writes it) on the same
configuration, answer by answer. The org and city variables are empty without their databases, and
the load-time errors (a missing file, a database of another kind, a bad parameter or network) are
nginx's."""
import os
import subprocess

import pytest

from conftest import NGINX, WEIR, parity_answer as answer
from conftest import weir_and_nginx

V4 = "/usr/share/GeoIP/GeoIP.dat"
V6 = "/usr/share/GeoIP/GeoIPv6.dat"
MODULE = "load_module /usr/lib/nginx/modules/ngx_http_geoip_module.so;"

VARS = ("$geoip_country_code|$geoip_country_code3|$geoip_country_name|$geoip_org|$geoip_city|"
        "$geoip_city_country_code|$geoip_region_name|$geoip_latitude|$geoip_dma_code")


def conf(extra):
    return """
    %s
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { return 200 "%s\\n"; }
        location /map { return 200 "$blocked\\n"; }
    }
    map $geoip_country_code $blocked { default no; CN yes; RU yes; }
    """ % (extra, VARS)


@pytest.fixture(scope="module")
def v4():
    yield from weir_and_nginx(conf("geoip_country %s; geoip_proxy 127.0.0.1; geoip_proxy 10.0.0.0/8;"
                                   % V4), {}, main_conf=MODULE)


@pytest.fixture(scope="module")
def v6():
    yield from weir_and_nginx(conf("geoip_country %s utf8; geoip_proxy 127.0.0.0/8; "
                                   "geoip_proxy 10.0.0.0/8; geoip_proxy_recursive on;" % V6), {},
                              main_conf=MODULE)


FORWARDED = [None, "8.8.8.8", "1.2.3.4, 8.8.8.8", "8.8.8.8, 10.1.1.1", "193.0.6.139",
             "2001:4860:4860::8888", "10.2.2.2", "not-an-address", "202.108.22.5",
             "8.8.8.8:53", "[2a00:1450:4001::1]"]


def ask(port, path, xff):
    return answer(port, path, extra="" if xff is None else "X-Forwarded-For: %s\r\n" % xff)


@pytest.mark.parametrize("xff", FORWARDED)
@pytest.mark.parametrize("which", ["v4", "v6"])
def test_answers_as_nginx(request, which, xff):
    weir, nginx = request.getfixturevalue(which)
    for path in ("/", "/map"):
        assert ask(weir.port, path, xff) == ask(nginx.port, path, xff)


def test_countries(v4, v6):
    weir = v4[0]
    assert ask(weir.port, "/", None)[1] == b"||||||||\n"  # 127.0.0.1: in no country
    assert ask(weir.port, "/", "8.8.8.8")[1] == b"US|USA|United States||||||\n"
    # Without geoip_proxy_recursive only the last address counts; 10.1.1.1 is in no country.
    assert ask(weir.port, "/", "8.8.8.8, 10.1.1.1")[1] == b"||||||||\n"
    assert ask(weir.port, "/map", "202.108.22.5")[1] == b"yes\n"
    weir6 = v6[0]
    # The IPv6 database: IPv4 clients are looked up IPv4-mapped; recursion skips 10.1.1.1.
    assert ask(weir6.port, "/", "8.8.8.8, 10.1.1.1")[1].startswith(b"US|USA|United States|")
    assert ask(weir6.port, "/", "2001:4860:4860::8888")[1].startswith(b"US|")


@pytest.mark.parametrize("directive,message", [
    ("geoip_country /nonexistent.dat;", 'GeoIP_open("/nonexistent.dat") failed'),
    ("geoip_city %s;" % V4, 'invalid GeoIP City database "%s" type:1' % V4),
    ("geoip_org %s;" % V4, 'invalid GeoIP database "%s" type:1' % V4),
    ("geoip_country %s latin1;" % V4, 'invalid parameter "latin1"'),
    ("geoip_country %s; geoip_country %s;" % (V4, V6), '"geoip_country" directive is duplicate'),
    ("geoip_proxy 10.0.0.1/33;", 'invalid network "10.0.0.1/33"'),
])
def test_load_errors_as_nginx(tmp_path, directive, message):
    text = "%s\nevents {}\nhttp {\n%s\n}\n" % (MODULE, directive)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    os.chmod(tmp_path, 0o755)
    for binary in (WEIR, NGINX):
        p = subprocess.run([binary, "-p", str(tmp_path) + "/", "-c", str(path), "-t"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1
        assert "%s in %s:4" % (message, path) in p.stderr, (binary, p.stderr)
