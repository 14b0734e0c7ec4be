"""The upstream's Set-Cookie and Location headers as the client gets them through proxy_cookie_domain,
proxy_cookie_path, proxy_cookie_flags (plain and regex rules, inheritance and `off`) and
proxy_redirect (default and plain, on Location and on Refresh's url=): every answer compared with Debian's nginx on the same
configuration and backend."""
from backend import Backend, Send, response
from conftest import NGINX, http_get, raw

CONF = r"""
    proxy_temp_path %%%%DIR%%%%/proxy_temp;
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        proxy_cookie_domain example.com www.test;
        proxy_cookie_domain ~\.(?P<sld>[-0-9a-z]+)\.org$ $sld.test;
        proxy_cookie_path /app/ /;
        proxy_cookie_path ~*^/user/([^/]+) /u/$1;
        proxy_cookie_flags a secure httponly samesite=strict;
        proxy_cookie_flags ~^c nosecure samesite=none;
        proxy_cookie_flags d nohttponly nosamesite;
        location / { proxy_pass http://127.0.0.1:%(port)d; }
        location /off/ { proxy_pass http://127.0.0.1:%(port)d; proxy_cookie_domain off;
                         proxy_cookie_path off; proxy_cookie_flags off; }
        location /app/ { proxy_pass http://127.0.0.1:%(port)d/back/; }
        location /plain/ { proxy_pass http://127.0.0.1:%(port)d; proxy_redirect http://old.test/ /new/;
                           proxy_redirect /rel/ /new/; }
        location /noredir/ { proxy_pass http://127.0.0.1:%(port)d/back/; proxy_redirect off; }
        location /rx/ { proxy_pass http://127.0.0.1:%(port)d;
                        proxy_redirect ~^http://old\.test/(.*)$ /moved/$1;
                        proxy_redirect ~*^HTTP://CASE\.test/ /case/; }
        location /var/ { proxy_pass http://127.0.0.1:%(port)d; proxy_redirect http://$host/ /local/; }
    }
"""

COOKIES = [
    "a=1; Domain=example.com; Path=/", "b=2; domain=.example.com; path=/app/x",
    "e=5; Domain=EXAMPLE.COM", "f=6; Domain=foo.bar.org; Path=/USER/joe/x",
    "c1=3; Secure; SameSite=Lax", "cc=4", "d=7; HttpOnly; Path=/; SameSite=Lax", "a=8",
    "a=9; secure; HTTPONLY; samesite=lax", "x=10;Path=/app/;Domain=example.com", "g=11; Path=/app",
    "h=12; Expires=Wed, 21 Oct 2015 07:28:00 GMT; path=/app/q", "i=13; path=/APP/y",
    "j=14;  Domain = example.com ;path=/app/z", "A=15", "k=16; Secure=1", "l=17; SameSite",
    "m; Path=/app/m",
]


def answers(s, port):
    out = [http_get(s.port, "/c%d" % i).header("Set-Cookie") for i in range(len(COOKIES))]
    out.append(http_get(s.port, "/off/c0").header("Set-Cookie"))
    for path in ("/app/r1", "/app/r2", "/plain/r3", "/noredir/r1", "/app/r4", "/plain/r5",
                 "/rx/r6", "/rx/r7", "/rx/r8", "/var/r9"):
        out.append(http_get(s.port, path).header("Location").replace(str(s.port), "PORT"))
    # Refresh's "url=" (any case) is rewritten by the same rules.
    for path in ("/app/r10", "/rx/r11", "/plain/r12"):
        out.append(http_get(s.port, path).header("Refresh").replace(str(s.port), "PORT"))
    return out


def test_cookie_and_redirect_rewrites_as_nginx(make_server):
    with Backend() as b:
        for i, c in enumerate(COOKIES):
            b.script("/c%d" % i, [response(200, "x", {"Set-Cookie": c})])
            b.script("/off/c%d" % i, [response(200, "x", {"Set-Cookie": c})])
        here = "http://127.0.0.1:%d" % b.port
        b.script("/back/r1", [response(302, "", {"Location": here + "/back/x?y=1"})])
        b.script("/back/r2", [response(302, "", {"Location": "http://other.test/back/x"})])
        b.script("/plain/r3", [response(301, "", {"Location": "http://old.test/z"})])
        b.script("/back/r4", [response(302, "", {"Location": "/login"})])
        b.script("/plain/r5", [response(302, "", {"Location": "/rel/q"})])
        b.script("/rx/r6", [response(302, "", {"Location": "http://old.test/a/b?c=d"})])
        b.script("/rx/r7", [response(302, "", {"Location": "http://case.test/z"})])
        b.script("/rx/r8", [response(302, "", {"Location": "http://other.test/q"})])
        b.script("/var/r9", [response(302, "", {"Location": "http://localhost/p/q"})])
        b.script("/back/r10", [response(200, "", {"Refresh": "5; url=%s/back/x" % here})])
        b.script("/rx/r11", [response(200, "", {"Refresh": "0;URL=http://old.test/a"})])
        b.script("/plain/r12", [response(200, "", {"Refresh": "3"})])
        got = answers(make_server(CONF % {"port": b.port}), b.port)
        want = answers(make_server(CONF % {"port": b.port}, binary=NGINX), b.port)
    assert got == want
    assert got[0] == "a=1; Domain=www.test; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert got[len(COOKIES)] == "a=1; Domain=example.com; Path=/"  # off
    assert got[len(COOKIES) + 1] == "http://localhost:PORT/app/x?y=1"  # proxy_redirect default
    assert got[len(COOKIES) + 3] == "http://localhost:PORT/new/z"  # plain
    assert got[len(COOKIES) + 4] == here + "/back/x?y=1"  # proxy_redirect off
    assert got[len(COOKIES) + 5] == "/login"  # relative, as the upstream sent it
    assert got[len(COOKIES) + 6] == "http://localhost:PORT/new/q"  # rewritten: made absolute
    assert got[len(COOKIES) + 7] == "http://localhost:PORT/moved/a/b?c=d"  # regex and capture
    assert got[len(COOKIES) + 8] == "http://localhost:PORT/case/"  # ~*: the whole value replaced
    assert got[len(COOKIES) + 9] == "http://other.test/q"  # no rule matched
    assert got[len(COOKIES) + 10] == "http://localhost:PORT/local/p/q"  # a prefix with variables
    assert got[len(COOKIES) + 11:] == ["5; url=/app/x", "0;URL=/moved/a", "3"]


def test_upstream_cookie_variables_as_nginx(make_server):
    cf = r"""
    proxy_temp_path %%%%DIR%%%%/proxy_temp;
    log_format up '$upstream_cookie_sid|$upstream_cookie_THEME|$upstream_cookie_none|$upstream_http_x_up';
    server {
        listen 127.0.0.1:%%%%PORT%%%%;
        access_log %%%%DIR%%%%/logs/up.log up;
        location / { proxy_pass http://127.0.0.1:%d; }
    }
    """
    head = ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nSet-Cookie: sid = abc123 ; Path=/\r\n"
            "Set-Cookie: theme=dark\r\nSet-Cookie: sid=second\r\nX-Up: 1\r\n\r\nx")
    with Backend() as b:
        b.script("/v", [Send(head)])
        lines = []
        for binary in (None, NGINX):
            s = make_server(cf % b.port, binary=binary)
            assert http_get(s.port, "/v").status == 200
            s.stop()
            lines.append(open(s.path("logs/up.log")).read())
    assert lines[0] == lines[1]
    assert lines[0] == "abc123 |dark|-|1\n"  # up to the ";", as nginx


def test_header_lines_as_the_upstream_wrote_them_reach_the_client_as_nginx_sends_them(make_server):
    """Lines in nginx's own shape pass whole; others (no space, more spaces, a tab, an empty
    value, a bare LF, a long value, spaces inside) are rewritten as nginx rewrites them."""
    long_value = "v" * 300
    head = ("HTTP/1.1 200 OK\r\nX-Canonical: plain value\r\nX-Nospace:tight\r\n"
            "X-Spaces:    padded   \r\nX-Tab:\tafter tab\r\nX-Empty:\r\nX-Bare-LF: lf\n"
            "X-Long: " + long_value + "\r\nX-Inner: a  b\t c\r\nContent-Length: 3\r\n\r\nok\n")
    with Backend() as b:
        b.script("/h", [Send(head.encode())])
        blocks = {}
        for binary in (None, NGINX):
            s = make_server("server { listen 127.0.0.1:%%%%PORT%%%%; "
                            "location / { proxy_pass http://127.0.0.1:%d; } }" % b.port, binary=binary)
            out = raw(s.port, "GET /h HTTP/1.0\r\n\r\n")
            lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")
            blocks[s.name] = [l for l in lines if l.startswith(b"X-")]
        assert blocks["weir"] == blocks["nginx"], blocks
        assert b"X-Canonical: plain value" in blocks["weir"]
        assert b"X-Long: " + long_value.encode() in blocks["weir"]


def test_request_header_values_keep_tabs_as_nginx(make_server):
    """nginx 1.22 trims spaces around a header value, not tabs: $http_* and what a backend gets."""
    req = ("GET /v HTTP/1.0\r\nX-Tabs:\t a\tb \t\r\nX-Spaces:   c d   \r\nX-Bare:\te\n\r\n")
    seen = {}
    for binary in (None, NGINX):
        s = make_server("server { listen 127.0.0.1:%%PORT%%; "
                        "location /v { return 200 \"[$http_x_tabs][$http_x_spaces][$http_x_bare]\"; } }",
                        binary=binary)
        seen[s.name] = raw(s.port, req).split(b"\r\n\r\n", 1)[1]
    assert seen["weir"] == seen["nginx"] == b"[\t a\tb \t][c d][\te]", seen
