"""Location matching as nginx's documentation describes it, nested and named locations, regex captures,
alias, try_files, internal."""

DOCS_EXAMPLE = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location = / { return 200 "A\\n"; }
        location / { return 200 "B\\n"; }
        location /documents/ { return 200 "C\\n"; }
        location ^~ /images/ { return 200 "D\\n"; }
        location ~* \\.(gif|jpg|jpeg)$ { return 200 "E\\n"; }
    }
"""


def test_nginx_docs_example(make_server):
    s = make_server(DOCS_EXAMPLE)
    expect = {
        "/": b"A\n",
        "/index.html": b"B\n",
        "/documents/document.html": b"C\n",
        "/images/1.gif": b"D\n",
        "/documents/1.jpg": b"E\n",
        "/x/1.JPG": b"E\n",
        "/documents": b"B\n",
    }
    for path, body in expect.items():
        assert s.get(path).body == body, path


def test_regex_order_longest_prefix_and_nesting(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /a/ { return 200 "prefix a\\n"; }
        location /a/b/ {
            location ~ \\.txt$ { return 200 "nested regex\\n"; }
            location /a/b/c/ { return 200 "nested prefix\\n"; }
            return 200 "prefix a/b\\n";
        }
        location ~ ^/a/ { return 200 "first regex\\n"; }
        location ~ ^/a/x { return 200 "second regex\\n"; }
        location ~ ^/cs/$ { return 200 "case-sensitive\\n"; }
        location ~ /(?<name>[a-z]+)/(\\d+)$ { return 200 "$name $2 $1\\n"; }
    }
    """
    s = make_server(conf)
    assert s.get("/a/q").body == b"first regex\n"  # a regex beats the prefix
    assert s.get("/a/xyz").body == b"first regex\n"  # regexes in configuration order
    assert s.get("/a/b/q").body == b"first regex\n"
    assert s.get("/a/b/f.txt").body == b"nested regex\n"
    # The nested prefix matches, but nothing nested beats the outer regex (nginx does the same).
    assert s.get("/a/b/c/d").body == b"first regex\n"
    assert s.get("/a/b/").body == b"first regex\n"
    assert s.get("/CS/").status == 404
    assert s.get("/abc/42").body == b"abc 42 abc\n"


def test_named_location_and_try_files(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { try_files $uri $uri/ @fallback; }
        location @fallback { return 200 "fallback $uri\\n"; }
        location /code/ { try_files $uri =418; }
        location /redirect/ { try_files $uri /landing.txt?from=$uri; }
        location = /landing.txt { return 200 "landing $args\\n"; }
    }
    """
    s = make_server(conf, files={"f.txt": "file\n", "d/index.html": "d index\n"})
    assert s.get("/f.txt").body == b"file\n"
    assert s.get("/d/").body == b"d index\n"
    r = s.get("/d")
    assert r.status == 301 and r.header("Location").endswith("/d/")
    assert s.get("/nope").body == b"fallback /nope\n"
    assert s.get("/code/x").status == 418
    assert s.get("/redirect/zz").body == b"landing from=/redirect/zz\n"


def test_alias(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location /i/ { alias %%DIR%%/html/images/; }
        location ~ ^/r/(.+)$ { alias %%DIR%%/html/images/$1; }
        location /t/ { alias %%DIR%%/html/images/; try_files $uri =404; }
    }
    """
    s = make_server(conf, files={"images/top.gif": "GIF", "images/sub/x.txt": "x\n"})
    assert s.get("/i/top.gif").body == b"GIF"
    assert s.get("/i/sub/x.txt").body == b"x\n"
    assert s.get("/r/top.gif").body == b"GIF"
    assert s.get("/t/top.gif").body == b"GIF"
    assert s.get("/t/none.gif").status == 404


def test_internal_and_root_inheritance(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html/top;
        location /only-internal { internal; return 200 "internal\\n"; }
        location /go { error_page 404 = /only-internal; return 404; }
        location /other/ { root %%DIR%%/html/second; }
        location / { }
    }
    """
    s = make_server(conf, files={"top/a.txt": "top\n", "second/other/b.txt": "second\n"})
    assert s.get("/only-internal").status == 404
    assert s.get("/go").body == b"internal\n"
    assert s.get("/a.txt").body == b"top\n"
    assert s.get("/other/b.txt").body == b"second\n"


def test_limit_except(make_server):
    conf = """
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { limit_except GET { } return 200 "$request_method\\n"; }
    }
    """
    s = make_server(conf)
    assert s.get("/").body == b"GET\n"
    assert s.get("/", method="HEAD").status == 200
