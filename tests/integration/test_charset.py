"""The charset filter (#9): every answer compared with Debian's nginx on the same configuration,
files, upstream and requests, with Debian's own koi-win, koi-utf and win-utf maps included by both:
the Content-Type charset as nginx writes it, bodies recoded byte to byte, to UTF-8 and from UTF-8
(characters the map lacks as "&#N;", invalid UTF-8 as "?"), override_charset and X-Accel-Charset on
proxied responses, charset_types (text/html always, repeated directives adding up), redirects, a missing map (and its log line); and a UTF-8
character split across two upstream reads recoded whole."""
import os
import threading

import pytest

from backend import Backend, Send, Wait, response
from conftest import NGINX, ROOT, WEIR, check_conf, dechunk, weir_and_nginx
from conftest import answer as raw_answer

KOI = "Привет, мир! Съешь же ещё этих мягких французских булок.\n".encode("koi8-r") * 20
UTF = ("Привет, мир! ёЁ € “quotes” 漢字 \U0001F600 end\n".encode("utf-8") * 10 +
       b"bad: \xff \xc0\xaf \xe2\x82 x\n")
WIN = "Привет из windows-1251\n".encode("cp1251") * 10

FILES = {"koi.html": KOI, "koi.txt": KOI, "utf.html": UTF, "win.html": WIN, "img.png": KOI,
         "koi.xml": KOI}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    include /etc/nginx/koi-win;
    include /etc/nginx/koi-utf;
    include /etc/nginx/win-utf;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /label/ { charset utf-8; alias %%DIR%%/html/; }
        location /k2w/ { charset windows-1251; source_charset koi8-r; alias %%DIR%%/html/; }
        location /k2u/ { charset utf-8; source_charset koi8-r; alias %%DIR%%/html/; }
        location /u2w/ { charset windows-1251; source_charset utf-8; alias %%DIR%%/html/; }
        location /u2k/ { charset koi8-r; source_charset utf-8; alias %%DIR%%/html/; }
        location /w2u/ { charset utf-8; source_charset windows-1251; alias %%DIR%%/html/; }
        location /w2k/ { charset koi8-r; source_charset windows-1251; alias %%DIR%%/html/; }
        location /any/ { charset utf-8; source_charset koi8-r; charset_types *; alias %%DIR%%/html/; }
        location /types/ { charset utf-8; source_charset koi8-r; charset_types text/css;
                           charset_types application/xml text/xml; alias %%DIR%%/html/; }
        location /var/ { set $cs windows-1251; charset $cs; source_charset koi8-r;
                         alias %%DIR%%/html/; }
        location /var2/ { set $cs iso-8859-5; charset $cs; source_charset koi8-r;
                          alias %%DIR%%/html/; }
        location /nested/ { charset utf-8; source_charset koi8-r;
                            location /nested/off/ { charset off; alias %%DIR%%/html/; }
                            alias %%DIR%%/html/; }
        location = /redir { charset utf-8; return 301 /label/koi.html; }
        location = /ret { charset koi8-r; return 200 "text"; }
        location /up/ { proxy_pass http://127.0.0.1:%%UPORT%%/; charset windows-1251; }
        location /upo/ { proxy_pass http://127.0.0.1:%%UPORT%%/; charset windows-1251;
                         override_charset on; }
        location /upu/ { proxy_pass http://127.0.0.1:%%UPORT%%/; charset utf-8;
                         override_charset on; proxy_buffering off; }
    }
"""

PATHS = ["/label/koi.html", "/label/img.png", "/label/koi.txt", "/k2w/koi.html", "/k2w/koi.xml",
         "/k2u/koi.html", "/u2w/utf.html", "/u2k/utf.html", "/w2u/win.html", "/w2k/win.html",
         "/any/img.png", "/types/koi.html", "/types/koi.xml", "/types/koi.txt", "/k2u/img.png", "/var/koi.html", "/var2/koi.html",
         "/nested/koi.html", "/nested/off/koi.html", "/redir", "/ret",
         "/up/plain", "/up/koi", "/up/quoted", "/upo/koi", "/upo/accel", "/upu/koi",
         "/upu/utf", "/upo/unknown"]


def upstream_scripts(b):
    koi = KOI.decode("latin-1")
    b.script("/plain", [response(200, KOI, {"Content-Type": "text/html"})])
    b.script("/koi", [response(200, KOI, {"Content-Type": "text/html; charset=koi8-r"})])
    b.script("/quoted", [response(200, KOI, {"Content-Type": 'text/html; charset="koi8-r"'})])
    b.script("/accel", [response(200, KOI, {"Content-Type": "text/html",
                                            "X-Accel-Charset": "koi8-r"})])
    b.script("/utf", [response(200, UTF, {"Content-Type": "text/html; charset=windows-1251"})])
    b.script("/unknown", [response(200, KOI, {"Content-Type": "text/html",
                                              "X-Accel-Charset": "martian"})])
    return koi


def answer(port, path):
    lines, body = raw_answer(port, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                             % path)
    if "Transfer-Encoding: chunked" in lines:
        body = dechunk(body)
    return [l.replace(":%d/" % port, ":PORT/") for l in lines], body


@pytest.fixture(scope="module")
def pair():
    with Backend() as b:
        upstream_scripts(b)
        yield from weir_and_nginx(CONF.replace("%%UPORT%%", str(b.port)), FILES)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_what_the_answers_hold(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/k2w/koi.html")
    assert "Content-Type: text/html; charset=windows-1251" in lines
    assert body == KOI.decode("koi8-r").encode("cp1251")
    lines, body = answer(weir.port, "/k2u/koi.html")
    assert body == KOI.decode("koi8-r").encode("utf-8") and "Transfer-Encoding: chunked" in lines
    _, body = answer(weir.port, "/u2w/utf.html")
    assert "&#28450;&#23383;".encode() in body and "&#128512;".encode() in body  # not in the map
    assert body.endswith(b"bad: ??? ?x\n")  # as nginx decodes invalid UTF-8
    lines, _ = answer(weir.port, "/redir")
    assert not any("charset" in l for l in lines)
    # charset_types holds text/html whatever it lists, and a second one adds to the first.
    for path in ("/types/koi.html", "/types/koi.xml"):
        lines, body = answer(weir.port, path)
        assert any(l.endswith("; charset=utf-8") for l in lines), (path, lines)
        assert body == KOI.decode("koi8-r").encode("utf-8")
    lines, body = answer(weir.port, "/types/koi.txt")
    assert "Content-Type: text/plain" in lines and body == KOI


def test_log_lines_as_nginx(pair):
    for s in pair:
        answer(s.port, "/var2/koi.html")
        answer(s.port, "/upo/unknown")
    lines = []
    for s in pair:
        log = s.error_log()
        lines.append([l.split(": ", 1)[1].split(" ", 1)[1].split(", client")[0]
                      for l in log.splitlines()
                      if "[error]" in l and "charset" in l][-2:])
    assert lines[0] == lines[1]
    assert lines[0][0].startswith('no "charset_map" between the charsets "koi8-r" and "iso-8859-5"')


def test_a_missing_map_is_a_load_error_as_nginx():
    conf = ("events {}\nhttp {\n    include /etc/nginx/koi-win;\n    server {\n"
            "        location / { charset iso-8859-5; source_charset koi8-r; }\n    }\n}\n")
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, full_conf=conf)
        line = [l for l in err.splitlines() if "[emerg]" in l][0]
        # No file and line: a fact of the whole configuration.
        assert rc != 0 and line.endswith(
            'no "charset_map" between the charsets "koi8-r" and "iso-8859-5"'), (binary, err)


def test_utf8_character_split_across_reads(make_server):
    """A non-buffered upstream sends a two-byte character's first byte, waits until the test says
    so, then the second: the client gets the character recoded whole."""
    seen = threading.Event()
    text = "абв".encode("utf-8")  # d0 b0 d0 b1 d0 b2
    with Backend() as b:
        b.script("/split", [Send("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                                 "Content-Length: %d\r\n\r\n" % len(text)),
                            Send(text[:3]), Wait(seen), Send(text[3:])])
        s = make_server("""
        include /etc/nginx/win-utf;
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location / { proxy_pass http://127.0.0.1:%d; proxy_buffering off;
                              charset windows-1251; override_charset on; } }
        """ % b.port)
        import socket
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(b"GET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        seen.set()
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"charset=windows-1251" in head
        assert dechunk(body) == "абв".encode("cp1251")


def test_the_shipped_maps(make_server):
    """conf/koi-win, conf/koi-utf and conf/win-utf (made from Python's codec tables) load together
    and recode as the codecs do."""
    conf_dir = os.path.join(ROOT, "conf")
    s = make_server("""
        include %s/mime.types;
        include %s/koi-win; include %s/koi-utf; include %s/win-utf;
        server { listen 127.0.0.1:%%%%PORT%%%%;
                 location /k2u/ { charset utf-8; source_charset koi8-r; alias %%%%DIR%%%%/html/; }
                 location /w2u/ { charset utf-8; source_charset windows-1251; alias %%%%DIR%%%%/html/; }
                 location /u2k/ { charset koi8-r; source_charset utf-8; alias %%%%DIR%%%%/html/; }
                 location /k2w/ { charset windows-1251; source_charset koi8-r; alias %%%%DIR%%%%/html/; } }
    """ % ((conf_dir,) * 4), files=FILES)
    assert answer(s.port, "/k2u/koi.html")[1] == KOI.decode("koi8-r").encode("utf-8")
    assert answer(s.port, "/w2u/win.html")[1] == WIN.decode("cp1251").encode("utf-8")
    assert answer(s.port, "/k2w/koi.html")[1] == KOI.decode("koi8-r").encode("cp1251")
    text = "Привет, мир!\n".encode("utf-8")
    s.write("u.html", text)
    assert answer(s.port, "/u2k/u.html")[1] == text.decode("utf-8").encode("koi8-r")
