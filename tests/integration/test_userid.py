"""The userid filter (#9): the cookie's attributes and its four words as nginx makes them, cookies
read back across weir and Debian's nginx in both directions, the mark, $uid_reset, `log` and `v1`
modes, bad cookies logged in nginx's words, and the load errors."""
import base64
import re
import struct
import time

import pytest

from conftest import NGINX, WEIR, check_conf, wait_for, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        userid on;
        userid_name uid;
        userid_domain example.com;
        userid_path /app/;
        userid_expires 365d;
        userid_flags httponly samesite=lax;
        userid_p3p 'policyref="/w3c/p3p.xml"';
        userid_mark X;
        add_header X-Got $uid_got;
        add_header X-Set $uid_set;
        location / { return 200 "ok\n"; }
        location /reset/ { set $uid_reset log; return 200 "reset\n"; }
        location /nomark/ { userid_mark off; userid_expires max; userid_domain none;
                            userid_flags off; userid_p3p none; return 200 "nomark\n"; }
        location /log/ { userid log; return 200 "got [$uid_got] set [$uid_set]\n"; }
        location /v1/ { userid v1; userid_service 513; userid_name v; return 200 "v1\n"; }
        location /service/ { userid_service 16909060; return 200 "service\n"; }
    }
"""


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def words(cookie_value, network_order):
    raw = base64.b64decode(cookie_value[:22] + "==")
    return struct.unpack("!4I" if network_order else "<4I", raw)


def hex_words(cookie_value):
    """$uid_got / $uid_set: the four words as they lie in memory, printed as host (little-endian)
    numbers, as nginx prints them."""
    return "".join("%08X" % w for w in words(cookie_value, False))


COOKIE_RE = re.compile(r"^uid=([A-Za-z0-9+/]{22})X=; expires=(.*); domain=example.com; "
                       r"path=/app/; httponly; samesite=lax$")


@pytest.mark.parametrize("server", [0, 1], ids=["weir", "nginx"])
def test_new_cookie_as_nginx_makes_it(pair, server):
    s = pair[server]
    before = int(time.time())
    r = s.get("/")
    after = int(time.time())
    m = COOKIE_RE.match(r.header("Set-Cookie"))
    assert m, r.header("Set-Cookie")
    value = m.group(1)
    service, when, start, seq = words(value, True)
    assert service == 0x7f000001  # the server's own address, 127.0.0.1
    assert before - 1 <= when <= after + 1
    assert seq >= 0x03030302 and seq & 0xff == 0x02
    expires = time.mktime(time.strptime(m.group(2), "%a, %d-%b-%y %H:%M:%S GMT")) - time.timezone
    assert abs(expires - (before + 365 * 86400)) <= 5
    assert r.header("P3P") == 'policyref="/w3c/p3p.xml"'
    assert r.header("X-Set") == "uid=" + hex_words(value)
    assert r.header("X-Got") is None
    # Each worker's sequence steps by 0x100.
    again = words(COOKIE_RE.match(s.get("/").header("Set-Cookie")).group(1), True)
    assert again[2] != start or again[3] != seq


@pytest.mark.parametrize("direction", ["nginx-to-weir", "weir-to-nginx"])
def test_cookies_read_back_across_servers(pair, direction):
    weir, nginx = pair
    setter, reader = (nginx, weir) if direction == "nginx-to-weir" else (weir, nginx)
    cookie = setter.get("/").header("Set-Cookie").split(";")[0]
    value = cookie.split("=", 1)[1]
    r = reader.get("/", headers={"Cookie": "other=1; " + cookie})
    assert r.header("X-Got") == "uid=" + hex_words(value)
    # The client's cookie carries the mark: kept, not set again.
    assert r.header("Set-Cookie") is None and r.header("X-Set") is None


def test_unmarked_cookie_is_set_again_with_the_mark(pair):
    answers = []
    for s in pair:
        value = base64.b64encode(struct.pack("!4I", 0x0a000001, 1700000000, 0x12345678,
                                             0x03030402)).decode()
        r = s.get("/", headers={"Cookie": "uid=" + value})
        answers.append((r.header("Set-Cookie").split(";")[0], r.header("X-Got"), r.header("X-Set")))
        assert answers[-1][0] == "uid=" + value[:22] + "X="
        assert answers[-1][1] == answers[-1][2] == "uid=" + hex_words(value)
    assert answers[0] == answers[1]


def test_reset_sets_a_new_cookie_and_logs_it(pair):
    for s in pair:
        old = s.get("/").header("Set-Cookie").split(";")[0]
        r = s.get("/reset/", headers={"Cookie": old})
        new = r.header("Set-Cookie").split(";")[0]
        assert new != old and new.endswith("X=")
        line = 'userid cookie "uid=%s" was reset' % hex_words(old.split("=", 1)[1])
        wait_for(lambda: line in s.error_log(), what="the reset notice")


def test_attributes_off_and_max(pair):
    for s in pair:
        cookie = s.get("/nomark/").header("Set-Cookie")
        assert re.match(r"^uid=[A-Za-z0-9+/]{22}==; expires=Thu, 31-Dec-37 23:55:55 GMT; "
                        r"path=/app/$", cookie), cookie
        assert s.get("/nomark/").header("P3P") is None


def test_log_mode_reads_but_never_sets(pair):
    weir, nginx = pair
    cookie = nginx.get("/").header("Set-Cookie").split(";")[0]
    for s in pair:
        r = s.get("/log/")
        assert r.header("Set-Cookie") is None and r.body == b"got [] set []\n"
        r = s.get("/log/", headers={"Cookie": cookie})
        assert r.body == b"got [uid=%s] set []\n" % hex_words(cookie.split("=", 1)[1]).encode()


def test_v1_words_in_host_order_with_service(pair):
    for s in pair:
        before = int(time.time())
        cookie = s.get("/v1/").header("Set-Cookie")
        value = re.match(r"^v=([A-Za-z0-9+/]{22})X=;", cookie).group(1)
        service, when, _, seq = words(value, False)
        assert service == 513 and abs(when - before) <= 2 and seq & 0xff == 1


def test_service_in_network_order(pair):
    for s in pair:
        value = s.get("/service/").header("Set-Cookie").split(";")[0][4:]
        assert words(value, True)[0] == 16909060


@pytest.mark.parametrize("cookie,message", [
    ("uid=short", 'client sent too short userid cookie "uid=short"'),
    ("a=1; uid=!!!!!!!!!!!!!!!!!!!!!!!!", 'client sent invalid userid cookie '
                                          '"a=1; uid=!!!!!!!!!!!!!!!!!!!!!!!!"'),
])
def test_bad_cookies_get_a_new_one_and_an_error_line(pair, cookie, message):
    for s in pair:
        r = s.get("/", headers={"Cookie": cookie})
        assert COOKIE_RE.match(r.header("Set-Cookie")) and r.header("X-Got") is None
        wait_for(lambda: message in s.error_log(), what=message)


@pytest.mark.parametrize("directive,error", [
    ("userid maybe", 'invalid value "maybe"'),
    ("userid_mark ab", 'value must be "off" or a single letter, digit or "="'),
    ("userid_mark -", 'value must be "off" or a single letter, digit or "="'),
    ("userid_flags secure nope", 'invalid value "nope"'),
    ("userid_expires soon", "invalid value"),
    ("userid_service x", "invalid number"),
    ("userid on; userid off", "is duplicate"),
])
def test_load_errors_as_nginx(directive, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:%%PORT%%; " + directive + "; }")
        assert rc != 0 and error in err, (binary, err)
