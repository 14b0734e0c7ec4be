"""error_page: URIs (internal redirect keeping the status), =code and =, named locations, URLs, the
method becoming GET, recursive_error_pages, and nginx's built-in pages."""


def test_error_pages(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        error_page 404 /404.html;
        error_page 500 502 =200 /ok.txt;
        error_page 403 = @named;
        error_page 410 http://example.com/gone;
        error_page 411 =301 http://example.com/moved;
        location / { }
        location /500 { return 500; }
        location /403 { return 403; }
        location /410 { return 410; }
        location /411 { return 411; }
        location @named { return 202 "named $request_method\\n"; }
        location /method { error_page 405 /m.txt; return 405; }
    }
    """
    s = make_server(conf, files={"404.html": "custom 404\n", "ok.txt": "ok\n", "m.txt": "m\n"})
    r = s.get("/missing")
    assert r.status == 404 and r.body == b"custom 404\n"
    r = s.get("/500")
    assert r.status == 200 and r.body == b"ok\n"
    r = s.get("/403", method="POST", body=b"x")
    assert r.status == 202 and r.body == b"named POST\n"
    r = s.get("/410")
    assert r.status == 302 and r.header("Location") == "http://example.com/gone"
    r = s.get("/411")
    assert r.status == 301 and r.header("Location") == "http://example.com/moved"
    # The error page's location serves a POST as GET.
    r = s.get("/method", method="POST", body=b"abc")
    assert r.status == 405 and r.body == b"m\n"


def test_error_page_loops_and_recursion(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /a { error_page 404 /b; return 404; }
        location /b { error_page 404 /c; return 404; }
        location /c { return 200 "c\\n"; }
        location /r { recursive_error_pages on; error_page 404 /r2; return 404; }
        location /r2 { recursive_error_pages on; error_page 404 /c; return 404; }
    }
    """
    s = make_server(conf)
    r = s.get("/a")
    assert r.status == 404 and b"404 Not Found" in r.body  # no second error page by default
    r = s.get("/r")
    assert r.status == 404 and r.body == b"c\n"


def test_builtin_pages_and_server_tokens(make_server):
    conf = """
    server { listen 127.0.0.1:%%PORT%%; location / { return 404; } location /off { server_tokens off; return 404; } }
    """
    s = make_server(conf)
    r = s.get("/")
    assert r.body == (b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
                      b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>weir/0.1.0</center>\r\n"
                      b"</body>\r\n</html>\r\n")
    assert r.header("Server") == "weir/0.1.0"
    r = s.get("/off")
    assert b"<hr><center>weir</center>" in r.body and r.header("Server") == "weir"
