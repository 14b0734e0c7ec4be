"""browser (#10): $modern_browser, $ancient_browser and $msie for a set of User-Agents - versions
above, at and below modern_browser's, Opera naming MSIE, unlisted browsers, ancient_browser
substrings and netscape4, locations with their own lists - answered as Debian's nginx answers."""
import pytest

from conftest import NGINX, WEIR, check_conf, raw, weir_and_nginx

# modern_browser is given at server level: nginx's list given at http level reaches servers and
# locations without being prepared (a quirk that makes every listed browser ancient there); weir
# prepares it wherever it is given.
CONF = r"""
    modern_browser_value "modern.";
    ancient_browser Links Lynx netscape4;
    server {
        listen 127.0.0.1:%%PORT%%;
        modern_browser gecko 1.0.0;
        modern_browser msie 6.0;
        modern_browser safari 125;
        modern_browser konqueror 3.0;
        location / { return 200 "[$modern_browser][$ancient_browser][$msie]\n"; }
        location /unlisted/ { modern_browser unlisted; ancient_browser_value old;
                              return 200 "[$modern_browser][$ancient_browser][$msie]\n"; }
        location /opera/ { modern_browser opera 9.5; modern_browser msie 7.0;
                           return 200 "[$modern_browser][$ancient_browser][$msie]\n"; }
    }
"""

AGENTS = [
    None, "", "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:1.0.0) Gecko/20020610",
    "Mozilla/5.0 (X11; U; Linux i686; en-US; rv:0.9.9) Gecko/2002",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
    "Mozilla/4.0 (compatible; MSIE 5.5; Windows NT 5.0)",
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1) Opera 7.50 [en]",
    "Opera/9.80 (X11; Linux x86_64) Presto/2.12.388 Version/12.16",
    "Opera/9.01 (X11; FreeBSD 6 i386; U; en)",
    "Mozilla/5.0 (Macintosh; U; PPC Mac OS X; en) AppleWebKit/418 (KHTML, like Gecko) Safari/417.9.3",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Konqueror/3.4; Linux) KHTML/3.4.2 (like Gecko)",
    "Mozilla/5.0 (compatible; Konqueror/2.2; Linux)",
    "Mozilla/4.72 [en] (X11; U; Linux 2.2.14 i686)",
    "Lynx/2.8.9rel.1 libwww-FM/2.14", "Links (2.20; Linux)", "curl/7.88.1", "x",
]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {})


def ask(port, path, ua):
    req = "GET %s HTTP/1.0\r\n" % path
    if ua is not None:
        req += "User-Agent: %s\r\n" % ua
    return raw(port, req + "\r\n").partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/", "/unlisted/", "/opera/"])
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    got = [ask(weir.port, path, ua) for ua in AGENTS]
    assert got == [ask(nginx.port, path, ua) for ua in AGENTS], list(zip(AGENTS, got))


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert ask(weir.port, "/", AGENTS[2]) == b"[modern.][][]\n"
    assert ask(weir.port, "/", AGENTS[6]) == b"[][1][1]\n"
    assert ask(weir.port, "/unlisted/", "curl/7.88.1") == b"[modern.][][]\n"


@pytest.mark.parametrize("conf,error", [
    ("modern_browser netscape 4.0;", 'unknown browser name "netscape"'),
    ("modern_browser msie 6.x;", 'invalid browser version "6.x"'),
])
def test_load_errors_as_nginx(conf, error):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, conf)
        assert rc != 0 and error in err, (binary, err)


def test_a_list_given_at_http_level_works(make_server):
    s = make_server("""
    modern_browser gecko 1.0.0;
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 "[$modern_browser]\\n"; } }
    """)
    assert ask(s.port, "/", AGENTS[2]) == b"[1]\n"
    assert ask(s.port, "/", AGENTS[3]) == b"[]\n"
    assert ask(s.port, "/", "Opera/9.80 (compatible; MSIE 6.0)") == b"[]\n"
