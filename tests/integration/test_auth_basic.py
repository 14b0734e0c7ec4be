"""auth_basic (#10): users whose hashes Debian's tools made - `openssl passwd` (-apr1, -1, -5, -6)
and `mkpasswd` (descrypt, yescrypt, bcrypt) - plus {SHA}, {SSHA} and {PLAIN}, each
accepted with its password and refused with another, answered as Debian's nginx answers (status
and WWW-Authenticate with a realm from variables), with nginx's error lines; the file read afresh
each request; off, satisfy any with allow/deny, and a missing file."""
import base64
import hashlib
import os
import subprocess

import pytest

from conftest import raw, wait_for, weir_and_nginx


def openssl(*args):
    return subprocess.run(["openssl", "passwd"] + list(args), capture_output=True, text=True,
                          check=True).stdout.strip()


def mkpasswd(method, password):
    return subprocess.run(["mkpasswd", "-m", method, password], capture_output=True, text=True,
                          check=True).stdout.strip()


def make_users():
    ssha_salt = b"pepper42"
    ssha = base64.b64encode(hashlib.sha1(b"pw-ssha" + ssha_salt).digest() + ssha_salt).decode()
    return {
        "apr1": ("pw-apr1", openssl("-apr1", "pw-apr1")),
        "md5": ("pw-md5", openssl("-1", "pw-md5")),
        "sha256": ("pw-sha256", openssl("-5", "pw-sha256")),
        "sha512": ("pw-sha512", openssl("-6", "pw-sha512")),
        "des": ("pw-des", mkpasswd("descrypt", "pw-des")),
        "yescrypt": ("pw-yes", mkpasswd("yescrypt", "pw-yes")),
        "bcrypt": ("pw-bcrypt", mkpasswd("bcrypt", "pw-bcrypt")),
        "sha": ("pw-sha", "{SHA}" + base64.b64encode(hashlib.sha1(b"pw-sha").digest()).decode()),
        "ssha": ("pw-ssha", "{SSHA}" + ssha),
        "plain": ("pw-plain", "{PLAIN}pw-plain"),
    }


USERS = make_users()
HTPASSWD = "# comment line\n\n" + "".join("%s:%s:comment\n" % (u, h) for u, (_, h) in USERS.items())

CONF = r"""
    server {
        listen 127.0.0.1:%%PORT%%;
        auth_basic "Realm of $host";
        auth_basic_user_file %%DIR%%/conf/htpasswd;
        location / { root %%DIR%%/html; add_header X-User $remote_user; }
        location /open/ { auth_basic off; return 200 "open\n"; }
        location /any/ { satisfy any; allow 127.0.0.1; deny all; alias %%DIR%%/html/; }
        location /none/ { auth_basic_user_file %%DIR%%/conf/missing; alias %%DIR%%/html/; }
        location /file/ { alias %%DIR%%/html/; }
    }
"""


def prepare(s):
    with open(s.path("conf/htpasswd"), "w") as f:
        f.write(HTPASSWD)
    os.chmod(s.path("conf/htpasswd"), 0o644)


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {"f.txt": b"file\n"}, prepare=prepare)


def ask(port, path, user=None, password=None, authorization=None):
    req = "GET %s HTTP/1.0\r\nHost: site\r\n" % path
    if user is not None:
        authorization = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    if authorization is not None:
        req += "Authorization: %s\r\n" % authorization
    head, _, body = raw(port, req + "\r\n").partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    keep = [l for l in lines if l.startswith(("HTTP/", "WWW-Authenticate", "X-User"))]
    return keep, body if lines[0].endswith("200 OK") else b""


@pytest.mark.parametrize("user", list(USERS))
def test_each_hash_as_nginx(pair, user):
    weir, nginx = pair
    password = USERS[user][0]
    for pw in (password, password + "x"):
        got = ask(weir.port, "/f.txt", user, pw)
        assert got == ask(nginx.port, "/f.txt", user, pw), (user, pw)
    assert ask(weir.port, "/f.txt", user, password) == (["HTTP/1.1 200 OK", "X-User: " + user],
                                                        b"file\n")
    assert ask(weir.port, "/f.txt", user, "wrong")[0] == [
        "HTTP/1.1 401 Unauthorized", 'WWW-Authenticate: Basic realm="Realm of site"']


@pytest.mark.parametrize("case", [
    dict(),
    dict(user="nobody", password="x"),
    dict(authorization="Basic"),
    dict(authorization="Basic !!!"),
    dict(authorization="Basic " + base64.b64encode(b"nocolon").decode()),
    dict(authorization="Basic " + base64.b64encode(b":pw").decode()),
    dict(authorization="Bearer abc"),
    dict(authorization="basic   " + base64.b64encode(b"plain:pw-plain").decode()),
])
def test_credentials_as_nginx(pair, case):
    weir, nginx = pair
    assert ask(weir.port, "/f.txt", **case) == ask(nginx.port, "/f.txt", **case)


@pytest.mark.parametrize("path", ["/open/", "/any/f.txt", "/none/f.txt", "/file/f.txt"])
def test_locations_as_nginx(pair, path):
    weir, nginx = pair
    for case in (dict(), dict(user="plain", password="pw-plain")):
        assert ask(weir.port, path, **case) == ask(nginx.port, path, **case), (path, case)


def test_error_lines_as_nginx(pair):
    for s in pair:
        ask(s.port, "/f.txt", "nobody", "x")
        ask(s.port, "/f.txt", "md5", "bad")
        ask(s.port, "/none/f.txt", "md5", "pw-md5")
    for line in ('user "nobody" was not found in "', 'user "md5": password mismatch',
                 'conf/missing" failed (2: No such file or directory)'):
        for s in pair:
            wait_for(lambda: line in s.error_log(), what=line)


def test_the_file_is_read_for_each_request(pair):
    weir, _ = pair
    assert ask(weir.port, "/f.txt", "late", "pw-late")[0][0].endswith("401 Unauthorized")
    with open(weir.path("conf/htpasswd"), "a") as f:
        f.write("late:{PLAIN}pw-late\n")
    assert ask(weir.port, "/f.txt", "late", "pw-late")[1] == b"file\n"
