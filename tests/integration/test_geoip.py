"""geoip (ngx_http_geoip_module, Debian's libnginx-mod-http-geoip): the country variables from
Debian's geoip-database (GeoIP.dat, IPv4, and GeoIPv6.dat), looked up by the client's address or,
from a geoip_proxy, by X-Forwarded-For (geoip_proxy_recursive past every trusted proxy); weir and
Debian's nginx (with the module loaded, `load_module` as Debian writes it) on the same
configuration, answer by answer. Debian has no city or organisation database: small ones are built
here in libGeoIP's format (a trie of 3- or 4-byte records, then the records, then the structure
info) and read by both. The load-time errors (a missing file, a database of another kind, a bad
parameter or network) are nginx's."""
import ctypes
import os
import shutil
import struct
import tempfile

import pytest

from conftest import NGINX, WEIR, load_error, parity_answer as answer
from conftest import weir_and_nginx

V4 = "/usr/share/GeoIP/GeoIP.dat"
V6 = "/usr/share/GeoIP/GeoIPv6.dat"
MODULE = "load_module /usr/lib/nginx/modules/ngx_http_geoip_module.so;"

CITY_VARS = ("$geoip_city_continent_code|$geoip_city_country_code|$geoip_city_country_code3|"
             "$geoip_city_country_name|$geoip_region|$geoip_region_name|$geoip_city|"
             "$geoip_postal_code|$geoip_latitude|$geoip_longitude|$geoip_dma_code|$geoip_area_code|"
             "$geoip_org")

VARS = ("$geoip_country_code|$geoip_country_code3|$geoip_country_name|$geoip_org|$geoip_city|"
        "$geoip_city_country_code|$geoip_region_name|$geoip_latitude|$geoip_dma_code")


def conf(extra):
    return """
    %s
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        location / { return 200 "%s\\n"; }
        location /map { return 200 "$blocked\\n"; }
        location /city { return 200 "%s\\n"; }
    }
    map $geoip_country_code $blocked { default no; CN yes; RU yes; }
    """ % (extra, VARS, CITY_VARS)


def trie_db(networks, record_length, db_type, payload):
    """A legacy GeoIP database: IPv4 networks ("a.b.c.d/n", record) in a binary trie of
    record_length-byte little-endian pointers (at or past the node count: a record, counted from
    the records' start; exactly the count: not found), the records, then 0xFFFFFF, the type and
    the node count."""
    data = bytearray(b"\0")  # a record at 0 would read as "not found"
    nodes = [[None, None]]
    for net, rec in networks:
        addr, bits = net.split("/")
        ip = struct.unpack(">I", bytes(int(x) for x in addr.split(".")))[0]
        n = 0
        for depth in range(int(bits)):
            bit = (ip >> (31 - depth)) & 1
            if depth == int(bits) - 1:
                nodes[n][bit] = ("record", len(data))
            else:
                if nodes[n][bit] is None:
                    nodes.append([None, None])
                    nodes[n][bit] = ("node", len(nodes) - 1)
                n = nodes[n][bit][1]
        data += payload(rec)
    count = len(nodes)
    out = bytearray()
    for pair in nodes:
        for r in pair:
            v = count if r is None else (r[1] if r[0] == "node" else count + r[1])
            out += struct.pack("<I", v)[:record_length]
    return bytes(out + data + b"\xff\xff\xff" + bytes([db_type]) + struct.pack("<I", count)[:3])


def city_record(rec):
    geoip = ctypes.CDLL("libGeoIP.so.1")
    geoip.GeoIP_id_by_code.argtypes = [ctypes.c_char_p]
    out = bytes([geoip.GeoIP_id_by_code(rec["country"].encode())])
    for k in ("region", "city", "postal"):
        out += rec.get(k, b"") + b"\0"
    out += struct.pack("<I", round((rec["lat"] + 180) * 10000))[:3]
    out += struct.pack("<I", round((rec["lon"] + 180) * 10000))[:3]
    if rec["country"] == "US":  # Rev1: metro and area codes for the US
        out += struct.pack("<I", rec["metro"] * 1000 + rec["area"])[:3]
    return out


CITIES = [("8.8.8.0/24", {"country": "US", "region": b"CA", "city": b"Mountain View",
                          "postal": b"94043", "lat": 37.4056, "lon": -122.0775, "metro": 807,
                          "area": 650}),
          ("193.0.0.0/16", {"country": "NL", "region": b"07", "city": b"Amsterdam", "lat": 52.35,
                            "lon": 4.9167}),
          ("2.0.0.0/8", {"country": "FR", "region": b"A4", "city": "Besan\u00e7on".encode("latin-1"),
                         "postal": b"25000", "lat": 47.25, "lon": 6.0333})]
ORGS = [("8.8.8.0/24", b"Google LLC"), ("193.0.0.0/16", "R\u00e9seaux IP".encode("latin-1"))]


@pytest.fixture(scope="module")
def city():
    d = tempfile.mkdtemp(prefix="weir-geoip-")
    os.chmod(d, 0o755)
    files = {"city.dat": trie_db(CITIES, 3, 2, city_record),  # GEOIP_CITY_EDITION_REV1
             "org.dat": trie_db(ORGS, 4, 5, lambda name: name + b"\0")}  # GEOIP_ORG_EDITION
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(d, name), 0o644)
    yield from weir_and_nginx(conf("geoip_city %s/city.dat utf8; geoip_org %s/org.dat; "
                                   "geoip_proxy 127.0.0.1;" % (d, d)), {}, main_conf=MODULE)
    shutil.rmtree(d, ignore_errors=True)


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
@pytest.mark.parametrize("which", ["v4", "v6", "city"])
def test_answers_as_nginx(request, which, xff):
    weir, nginx = request.getfixturevalue(which)
    for path in ("/", "/map", "/city"):
        assert ask(weir.port, path, xff) == ask(nginx.port, path, xff)


def test_cities_and_organisations(city):
    weir = city[0]
    assert ask(weir.port, "/city", "8.8.8.8")[1] == (
        b"NA|US|USA|United States|CA|California|Mountain View|94043|37.4056|-122.0775|807|650|"
        b"Google LLC\n")
    # utf8: the database's Latin-1 names as UTF-8 (the org database is read without it).
    assert ask(weir.port, "/city", "2.3.4.5")[1] == (
        "EU|FR|FRA|France|A4|Champagne-Ardenne|Besan\u00e7on|25000|47.2500|6.0333|0|0|\n").encode()
    assert ask(weir.port, "/city", "193.0.6.139")[1].endswith("|R\u00e9seaux IP\n".encode("latin-1"))
    assert ask(weir.port, "/city", "1.1.1.1")[1] == b"||||||||||||\n"


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
    for binary in (WEIR, NGINX):
        assert load_error(tmp_path, text, binary, 4) == message