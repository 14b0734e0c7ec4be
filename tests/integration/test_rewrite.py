"""The rewrite module: return (codes, text, URLs), rewrite with last/break/redirect/permanent, set, if with
every kind of condition, break, and their interplay with locations."""
from conftest import NGINX, WEIR, Client


def test_return_forms(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /text { return 200 "hello $arg_name\\n"; }
        location /empty { return 204; }
        location /code { return 403; }
        location /url { return http://example.com/$uri; }
        location /moved { return 301 /new$is_args$args; }
        location /see { return 303 "/other"; }
        location /close { return 444; }
        location /teapot { return 418 "short and stout\\n"; }
    }
    """
    s = make_server(conf)
    r = s.get("/text?name=weir")
    assert r.status == 200 and r.body == b"hello weir\n" and r.header("Content-Type") == "text/plain"
    assert s.get("/empty").status == 204
    r = s.get("/code")
    assert r.status == 403 and b"403 Forbidden" in r.body
    r = s.get("/url")
    assert r.status == 302 and r.header("Location") == "http://example.com//url"
    r = s.get("/moved?a=1")
    assert r.status == 301 and r.header("Location") == "http://localhost:%d/new?a=1" % s.port
    assert s.get("/see").status == 303
    from conftest import raw
    assert raw(s.port, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    r = s.get("/teapot")
    assert r.status == 418 and r.body == b"short and stout\n"


def test_rewrite_flags(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        rewrite ^/server/(.*)$ /loc/$1 last;
        location /loc/ { return 200 "loc $uri $args\\n"; }
        location /last/ { rewrite ^/last/(.*)$ /loc/$1 last; return 500; }
        location /break/ { rewrite ^/break/(.*)$ /files/$1 break; return 500; }
        location /chain/ { rewrite ^/chain/a$ /chain/b; rewrite ^/chain/b$ /loc/c; }
        location /redirect/ { rewrite ^/redirect/(.*)$ /loc/$1 redirect; }
        location /permanent/ { rewrite ^/permanent/(.*)$ /loc/$1? permanent; }
        location /args/ { rewrite ^/args/(.*)$ /loc/$1?x=1; }
        location /noargs/ { rewrite ^/noargs/(.*)$ /loc/$1?; }
        location /files/ { }
        location /loop/ { rewrite ^ /loop/again last; }
    }
    """
    s = make_server(conf, files={"f.txt": "f\n"})
    assert s.get("/server/a?q=1").body == b"loc /loc/a q=1\n"
    assert s.get("/last/zz").body == b"loc /loc/zz \n"
    assert s.get("/break/f.txt").status == 404  # /files/f.txt is looked up under root
    assert s.get("/chain/a").body == b"loc /loc/c \n"
    r = s.get("/redirect/r?k=v")
    assert r.status == 302 and r.header("Location") == "http://localhost:%d/loc/r?k=v" % s.port
    r = s.get("/permanent/p?k=v")
    assert r.status == 301 and r.header("Location") == "http://localhost:%d/loc/p" % s.port
    assert s.get("/args/a?k=v").body == b"loc /loc/a x=1&k=v\n"
    assert s.get("/noargs/a?k=v").body == b"loc /loc/a \n"
    assert s.get("/loop/x").status == 500
    assert "rewrite or internal redirection cycle" in s.error_log()


def test_set_and_if(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /set { set $a "x"; set $b "${a}y"; return 200 "$a $b\\n"; }
        location /var { if ($arg_v) { return 200 "true\\n"; } return 200 "false\\n"; }
        location /eq { if ($arg_v = abc) { return 200 "eq\\n"; } if ($arg_v != abc) { return 200 "ne\\n"; } }
        location /re {
            if ($http_user_agent ~* ^(curl|wget)/([0-9.]+)) { return 200 "tool $1 $2\\n"; }
            if ($http_user_agent !~ x) { return 200 "no x\\n"; }
            return 200 "other\\n";
        }
        location /file {
            if (-f $request_filename) { return 200 "file\\n"; }
            if (-d $request_filename) { return 200 "dir\\n"; }
            if (!-e $request_filename) { return 200 "none\\n"; }
        }
        location /continue { if ($arg_a) { set $x "in-if"; } set $y "after"; return 200 "$x $y\\n"; }
        location /brk { set $z 1; break; set $z 2; }
        location /ifconf { if ($arg_slow) { set $limit_rate 1k; } return 200 "$limit_rate\\n"; }
    }
    """
    s = make_server(conf, files={"file/f.txt": "f", "file/d/x": "x"})
    assert s.get("/set").body == b"x xy\n"
    assert s.get("/var?v=1").body == b"true\n"
    assert s.get("/var?v=0").body == b"false\n"
    assert s.get("/var").body == b"false\n"
    assert s.get("/eq?v=abc").body == b"eq\n"
    assert s.get("/eq?v=abd").body == b"ne\n"
    assert s.get("/re", headers={"User-Agent": "Curl/7.88"}).body == b"tool Curl 7.88\n"
    assert s.get("/re", headers={"User-Agent": "browser"}).body == b"no x\n"
    assert s.get("/re", headers={"User-Agent": "xbrowser"}).body == b"other\n"
    assert s.get("/file/f.txt").body == b"file\n"
    assert s.get("/file/d").body == b"dir\n"
    assert s.get("/file/zz").body == b"none\n"
    assert s.get("/continue?a=1").body == b"in-if after\n"
    r = s.get("/continue")
    assert r.body == b" after\n"
    assert 'using uninitialized "x" variable' in s.error_log()
    assert s.get("/brk").status == 404
    assert s.get("/ifconf?slow=1").body == b"1024\n"
    assert s.get("/ifconf").body == b"0\n"


def test_rewrite_log_and_escaping(make_server):
    conf = """
    rewrite_log on;
    server {
        listen 127.0.0.1:%%PORT%%;
        error_log %%DIR%%/logs/rewrite.log notice;
        location /r/ { rewrite ^/r/(.*)$ http://example.com/$1 redirect; }
        location /u/ { rewrite ^/u/(.*)$ /v/$1 last; }
        location /v/ { return 200 "$uri\\n"; }
    }
    """
    s = make_server(conf)
    r = s.get("/r/a%20b")
    assert r.header("Location") == "http://example.com/a%20b"
    assert s.get("/u/a%20b").body == b"/v/a b\n"
    log = open(s.path("logs/rewrite.log")).read()
    assert '"^/u/(.*)$" matches "/u/a b"' in log
    assert 'rewritten data: "/v/a b", args: ""' in log


def test_rewrites_of_escaped_uris_as_nginx(make_server):
    # nginx %-escapes the regex captures of a URI that came escaped (or with "+") where they become
    # args: all of a redirect, and what follows the "?" of an internal rewrite. Every answer beside
    # Debian's nginx.
    conf = r"""server { listen 127.0.0.1:%%PORT%%; server_name rw.test;
        location /a/ { rewrite ^/a/(.*)$ /show/$1 last; }
        location /b/ { rewrite ^/b/(.*)$ /show/$1? last; }
        location /c/ { rewrite ^/c/(.*)$ /show/$1?x=$1 last; }
        location /d/ { rewrite ^/d/(.*)$ http://other.test/$1 redirect; }
        location /e/ { rewrite ^/e/(.*)$ /new/$1?v=$1 permanent; }
        location /g/ { rewrite ^/g/(.*)$ /show/$1?$args&y=$1 last; }
        location /show/ { return 200 "show:$uri|$args|$request_uri\n"; } }"""
    paths = ["/a/x%20y?q=1", "/b/x%20y?q=1", "/c/a%20b?q=1", "/c/a+b", "/c/plain", "/d/p%2Fq?r=1",
             "/e/x%3Fy?z", "/g/s%26t?a=1", "/a/%C3%A9"]
    seen = []
    for binary in (WEIR, NGINX):
        s = make_server(conf, binary=binary)
        got = []
        for p in paths:
            c = Client(s.port)
            c.send("GET %s HTTP/1.1\r\nHost: rw.test\r\nConnection: close\r\n\r\n" % p)
            head, _, body = c.read_until_close().partition(b"\r\n\r\n")
            c.close()
            loc = [l for l in head.split(b"\r\n") if l.lower().startswith(b"location:")]
            got.append((head.split(b"\r\n")[0], [l.replace(str(s.port).encode(), b"PORT") for l in loc],
                        body if head.startswith(b"HTTP/1.1 200") else b""))
        seen.append(got)
    assert seen[0] == seen[1]
    assert seen[0][2][2] == b"show:/show/a b|x=a%20b&q=1|/c/a%20b?q=1\n"
    assert seen[0][4][2] == b"show:/show/plain|x=plain|/c/plain\n"
    assert seen[0][3][2] == b"show:/show/a+b|x=a%2Bb|/c/a+b\n"  # "+" asks for escaping too
