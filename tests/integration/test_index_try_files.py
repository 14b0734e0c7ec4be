"""index, try_files and if (-f/-d/-e/-x) details (#9), answered as Debian's nginx answers them: an
index name that a variable leaves empty (the directory itself: a redirect cycle and 500), an
absolute index, alias with index; try_files "" under a regex alias with captures (the alias names
the file), directories, named locations, =code, a cycle, POST; -x true for a searchable directory,
-e for a directory. Then the error lines nginx writes for them."""
import os

import pytest

from conftest import answer, weir_and_nginx

FILES = {"index.html": b"I\n", "dir/index.htm": b"D\n", "sub/default.html": b"S\n",
         "file.txt": b"F\n", "img/a.png": b"P\n", "noidx/x": b"x"}

CONF = r"""
    default_type text/plain;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        index index.html index.htm $arg_i /sub/default.html;
        location /t1/ { try_files $uri $uri/ /file.txt; }
        location /t2/ { alias %%DIR%%/html/; try_files $uri $uri/index.html =404; }
        location /t3 { try_files /nonexist @named; }
        location @named { return 200 "named $uri\n"; }
        location /t4/ { try_files $uri/ =405; }
        location /x/ { alias %%DIR%%/html/;
                       if (-x $request_filename) { return 200 "x yes\n"; } return 200 "x no\n"; }
        location /d/ { alias %%DIR%%/html/;
                       if (-d $request_filename) { return 200 "d yes\n"; }
                       if (-e $request_filename) { return 200 "e yes\n"; }
                       if (!-f $request_filename) { return 200 "not f\n"; } return 200 "f\n"; }
        location /noidx/ { index missing.html; }
        location /abs/ { alias %%DIR%%/html/; index /file.txt; }
        location ~ ^/pics/(.*)$ { alias %%DIR%%/html/img/$1; try_files "" =404; }
        location /tf/ { try_files $uri $uri/ =404; }
        location /tv/ { try_files /nothing $uri /file.txt; }
        location /post/ { alias %%DIR%%/html/; }
        location /q/ { try_files $uri /file.txt?x=$arg_a; }
        location = /cyc { try_files /nope /cyc; }
        location /idx/ { alias %%DIR%%/html/dir/; index index.htm; }
        location /e/ { alias %%DIR%%/html/; try_files $uri =418; }
    }
"""

REQUESTS = [
    "GET / HTTP/1.0", "GET /dir/ HTTP/1.0", "GET /noidx/ HTTP/1.0", "GET /sub/ HTTP/1.0",
    "GET /sub/?i=nothere HTTP/1.0", "GET /t1/x HTTP/1.0", "GET /t2/file.txt HTTP/1.0",
    "GET /t2/dir HTTP/1.0", "GET /t2/ HTTP/1.0", "GET /t3 HTTP/1.0", "GET /t4/ HTTP/1.0",
    "GET /x/dir HTTP/1.0", "GET /x/file.txt HTTP/1.0", "GET /x/nothing HTTP/1.0",
    "GET /d/dir HTTP/1.0", "GET /d/file.txt HTTP/1.0", "GET /d/none HTTP/1.0",
    "GET /abs/ HTTP/1.0", "GET /dir/index.htm/ HTTP/1.0", "GET /file.txt/ HTTP/1.0",
    "GET /pics/a.png HTTP/1.0", "GET /pics/none.png HTTP/1.0", "GET /tf/ HTTP/1.0",
    "GET /tv/x HTTP/1.0", "POST /post/ HTTP/1.0\r\nContent-Length: 2", "GET /q/zz?a=5 HTTP/1.0",
    "GET /cyc HTTP/1.0", "GET /idx/ HTTP/1.0", "GET /e/dir HTTP/1.0", "GET /e/dir/ HTTP/1.0",
    "HEAD /t1/x HTTP/1.0",
]


def prepare(server):
    os.chmod(server.path("html/dir"), 0o755)
    os.chmod(server.path("html/file.txt"), 0o644)


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, mtime=1700000000, prepare=prepare)


def ask(port, req):
    lines, body = answer(port, req + "\r\n\r\n" + ("ab" if "Content-Length" in req else ""))
    return [l for l in lines if not l.startswith(("ETag", "Last-Modified"))], body


@pytest.mark.parametrize("req", REQUESTS)
def test_answers_as_nginx(pair, req):
    weir, nginx = pair
    assert ask(weir.port, req) == ask(nginx.port, req)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    assert ask(weir.port, "GET /x/dir HTTP/1.0")[1] == b"x yes\n"
    assert ask(weir.port, "GET /x/file.txt HTTP/1.0")[1] == b"x no\n"
    assert ask(weir.port, "GET /pics/a.png HTTP/1.0")[1] == b"P\n"
    lines, _ = ask(weir.port, "GET /sub/ HTTP/1.0")
    assert lines[0] == "HTTP/1.1 500 Internal Server Error"
    assert 'rewrite or internal redirection cycle while internally redirecting to "/sub/"' in \
        weir.error_log()
