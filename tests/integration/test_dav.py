"""WebDAV's write methods (ngx_http_dav_module, in Debian's nginx): one sequence of PUT, MKCOL,
COPY, MOVE and DELETE requests sent to weir and to Debian's nginx, each over its own directory;
every answer (status, headers, Location) and the tree left behind (names, contents, modes, times)
compared: bodies put in place and overwritten, Date setting the time, create_full_put_path,
dav_access, collections made, copied, moved and deleted whole, Destination absolute or a path,
Overwrite, Depth, min_delete_depth, the refusals (409, 412, 415, 501, 405) and the load errors."""
import os
import stat

import pytest

from conftest import NGINX, WEIR, check_conf, raw, unname_server, weir_and_nginx

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/store;
        location /dav/ { dav_methods PUT DELETE MKCOL COPY MOVE; dav_access user:rw group:r all:r; }
        location /full/ { dav_methods put; create_full_put_path on; }
        location /shallow/ { dav_methods delete; min_delete_depth 3; }
        location /ro/ { dav_methods off; }
        location /plain/ { }
    }
"""

DATE = "Wed, 21 Oct 2015 07:28:00 GMT"


def request(method, path, body=b"", headers=()):
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    if body or method == "PUT":
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


def sequence(port):
    here = "http://localhost:%d" % port
    return [
        request("PUT", "/dav/a.txt", b"one\n"),
        request("PUT", "/dav/a.txt", b"two\n"),
        request("PUT", "/dav/dated.txt", b"dated\n", ["Date: " + DATE]),
        request("PUT", "/dav/empty.txt"),
        request("PUT", "/dav/", b"x"),
        request("PUT", "/dav/r.txt", b"x", ["Content-Range: bytes 0-0/1"]),
        request("PUT", "/dav/no/such/dir.txt", b"x"),
        request("PUT", "/full/deep/er/b.txt", b"deep\n"),
        request("PUT", "/ro/x.txt", b"x"),
        request("PUT", "/plain/x.txt", b"x"),
        request("MKCOL", "/dav/col/"),
        request("MKCOL", "/dav/col/"),
        request("MKCOL", "/dav/col2"),
        request("MKCOL", "/dav/missing/sub/"),
        request("MKCOL", "/dav/withbody/", b"x"),
        request("PUT", "/dav/col/in.txt", b"inside\n"),
        request("MKCOL", "/dav/col/sub/"),
        request("PUT", "/dav/col/sub/deeper.txt", b"deeper\n", ["Date: " + DATE]),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/col/a2.txt"]),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/col/a2.txt", "Overwrite: F"]),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/col/a2.txt", "Overwrite: x"]),
        request("COPY", "/dav/a.txt", headers=["Destination: %s/dav/a3.txt" % here]),
        request("COPY", "/dav/a.txt", headers=["Destination: http://elsewhere/dav/a4.txt"]),
        request("COPY", "/dav/a.txt", headers=["Destination: ftp://localhost/dav/a5.txt"]),
        request("COPY", "/dav/a.txt"),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/col/"]),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/col"]),
        request("COPY", "/dav/col/", headers=["Destination: /dav/copy/", "Depth: 1"]),
        request("COPY", "/dav/col/", headers=["Destination: /dav/copy/"]),
        request("COPY", "/dav/col", headers=["Destination: /dav/copy2"]),
        request("COPY", "/dav/nothing.txt", headers=["Destination: /dav/n2.txt"]),
        request("COPY", "/dav/a.txt", headers=["Destination: /dav/../etc/x"]),
        request("MOVE", "/dav/copy/", headers=["Destination: /dav/moved/", "Depth: 0"]),
        request("MOVE", "/dav/copy/", headers=["Destination: /dav/moved/"]),
        request("MOVE", "/dav/a3.txt", headers=["Destination: /dav/new/place/a3.txt"]),
        request("MOVE", "/dav/col/", headers=["Destination: /dav/moved/", "Overwrite: F"]),
        request("DELETE", "/dav/moved/", headers=["Depth: 1"]),
        request("DELETE", "/dav/moved"),
        request("DELETE", "/dav/moved/"),
        request("DELETE", "/dav/moved/"),
        request("DELETE", "/dav/a.txt/"),
        request("DELETE", "/dav/empty.txt", headers=["Depth: infinity"]),
        request("DELETE", "/dav/dated.txt", headers=["Depth: 1"]),
        request("DELETE", "/dav/dated.txt", b"x"),
        request("DELETE", "/shallow/a/b"),
        request("DELETE", "/shallow/a/b/c"),
        request("GET", "/dav/a.txt"),
        request("POST", "/dav/a.txt", b"x"),
    ]


def prepare(s):
    for d in ("store/dav", "store/full", "store/shallow/a/b", "store/ro", "store/plain"):
        os.makedirs(s.path(d), exist_ok=True)
    for root, dirs, _ in os.walk(s.path("store")):
        os.chmod(root, 0o777)  # the workers run as nobody when the tests run as root
    with open(s.path("store/shallow/a/b/c"), "w") as f:
        f.write("c\n")
    os.chmod(s.path("store/shallow/a/b/c"), 0o666)


def answer(s, req):
    head, _, body = raw(s.port, req).partition(b"\r\n\r\n")
    lines = [l.replace(":%d/" % s.port, ":PORT/") for l in head.decode("latin-1").split("\r\n")
             if not l.lower().startswith(("date:", "server:", "last-modified:", "etag:"))]
    return unname_server(lines, body)


def tree(s):
    out = {}
    top = s.path("store")
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = f.read()
            rel = os.path.relpath(p, top)
            dated = int(st.st_mtime) if rel.endswith(("dated.txt", "deeper.txt")) else None
            out[rel] = (stat.S_IMODE(st.st_mode), content, dated)
    return out


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {}, prepare=prepare)


def test_a_sequence_as_nginx(pair):
    answers = [[], []]
    for i, s in enumerate(pair):
        for req in sequence(s.port):
            answers[i].append((req.split(b"\r\n")[0], answer(s, req)))
    for w, n in zip(*answers):
        assert w == n
    assert tree(pair[0]) == tree(pair[1])


def test_what_the_sequence_left(pair):
    weir, _ = pair
    t = tree(weir)
    assert t["dav/col/a2.txt"][:2] == (0o644, b"two\n")  # the copy keeps the mode dav_access gave
    assert t["dav/dated.txt"][2] == 1445412480
    assert t["full/deep/er/b.txt"][1] == b"deep\n"
    assert t["dav/new/place/a3.txt"][1] == b"two\n"
    assert t["dav/col"][0] == 0o755 and "dav/moved" not in t and "dav/copy" not in t
    assert "dav/empty.txt" not in t and "shallow/a/b/c" not in t
    log = weir.error_log()
    assert "client sent invalid \"Overwrite\" header: \"x\"" in log
    assert "is handled by different repository than the source URI" in log


@pytest.mark.parametrize("directives,message", [
    ("dav_methods get;", 'invalid value "get"'),
    ("dav_access user:x;", 'invalid value "user:x"'),
    ("min_delete_depth x;", 'invalid number'),
    ("dav_methods;", 'invalid number of arguments in "dav_methods"'),
])
def test_load_errors_as_nginx(directives, message):
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { listen 127.0.0.1:1; location / { %s } }" % directives)
        assert rc != 0 and message in err, (binary, err)
