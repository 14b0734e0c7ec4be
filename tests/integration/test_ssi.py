"""The SSI filter (#9): documents with every command - include (virtual, file, wait, set, stub, a
proxied part, nested SSI), echo (encodings, defaults), set, if/elif/else/endif (strings, regexes,
captures), config, block - answered as Debian's nginx answers them, header lines and bodies; the
same with the document cut into 7-byte buffers so that commands fall across buffer boundaries; bad
commands logged in nginx's words; $date_gmt; and a large document in bounded memory."""
import hashlib
import os
import re
import socket
import time

import pytest

from conftest import answer, dechunk, peak_rss, raw, wait_for, weir_and_nginx

PARTS = {
    "parts/one.html": b"ONE",
    "parts/two.html": b"TWO(<!--#echo var=\"uri\" -->)",
    "parts/nested.html": b"[N<!--#include virtual=\"one.html\" -->N]",
    "parts/slow.html": b"SLOW",
}

DOCS = {
    "basic.html": b"A<!--#include virtual=\"/parts/one.html\" -->B"
                  b"<!--#include file=\"parts/two.html\" -->C"
                  b"<!--#include virtual=\"parts/nested.html\" -->D\n",
    "echo.html": b"<!--#set var=\"v\" value=\"a<b&c \\\"q\\\" $uri ${args}!\" -->"
                 b"1:<!--#echo var=\"v\" -->\n2:<!--#echo var=\"v\" encoding=\"url\" -->\n"
                 b"3:<!--#echo var=\"v\" encoding=\"none\" -->\n4:<!--#echo var=\"missing\" -->\n"
                 b"5:<!--#echo var=\"missing\" default=\"dflt\" -->\n"
                 b"6:<!--#echo var=\"missing\" default=\"\" -->\n7:<!--#echo var=\"ARG_A\" -->\n"
                 b"8:<!--#set var=\"w\" value=\"\\x \\\\ \\$uri\" --><!--#echo var=\"w\" -->\n",
    "if.html": b"<!--#if expr=\"$uri = /(e)(?<nm>.)\\.html/\" -->m $1 <!--#echo var=\"1\" -->"
               b"<!--#echo var=\"nm\" --><!--#else -->no<!--#endif -->\n"
               b"<!--#if expr=\"$arg_x\" -->x set<!--#elif expr=\"$arg_y = yes\" -->y yes"
               b"<!--#elif expr=\"$arg_y != no\" -->y not no<!--#else -->else<!--#endif -->\n"
               b"<!--#if expr=\"$arg_x\" --><!--#if expr=\"1\" -->inner<!--#endif -->"
               b"<!--#endif -->|<!--#if expr=\"\\/x\" -->lit<!--#endif -->\n",
    "errors.html": b"a<!--#bad -->b<!--#echo -->c<!--#echo var=\"v\" bogus=\"1\" -->d"
                   b"<!--#echo var=\"a\" var=\"b\" -->e<!--#config errmsg=\"[oops]\" -->"
                   b"<!--#echo var=x -->f<!--#else -->g<!--#include -->h"
                   b"<!--#include virtual=\"/a\" file=\"/b\" -->i"
                   b"<!--#include virtual=\"/a\" wait=\"maybe\" -->j<!--#if expr=\"$a ~ b\" -->"
                   b"k<!--#set var=\"s\" value=\"${open\" -->l"
                   b"<!--#" + b"c" * 40 + b" -->m<!--#include virtual=\"/../x\" -->n\n",
    "block.html": b"<!--#block name=\"one\" -->STUB<!--#echo var=\"uri\" --><!--#endblock -->"
                  b"a<!--#include virtual=\"/nothere\" stub=\"one\" -->"
                  b"b<!--#include virtual=\"/empty.html\" stub=\"one\" -->"
                  b"c<!--#include virtual=\"/parts/one.html\" stub=\"one\" -->d\n",
    "empty.html": b"",
    "set.html": b"<!--#include virtual=\"/parts/one.html\" set=\"got\" -->[<!--#echo var=\"got\" -->]"
                b"<!--#include virtual=\"/parts/two.html\" wait=\"yes\" -->"
                b"<!--#include virtual=\"/proxy/parts/one.html\" set=\"p\" -->{<!--#echo var=\"p\" -->}\n",
    "proxied.html": b"<1<!--#include virtual=\"/proxy/parts/slow.html\" -->2"
                    b"<!--#include virtual=\"/parts/one.html\" -->3"
                    b"<!--#include virtual=\"/proxy/parts/nested.html\" -->4>\n",
    "silent/e.html": b"a<!--#bad -->b\n",
    "lm/doc.html": b"x<!--#echo var=\"uri\" -->y\n",
    "plain.txt": b"<!--#echo var=\"uri\" -->\n",
    "comment.html": b"<!-- a comment --><!--- x --><!--#echo var=\"uri\"-->< !--#echo -->\n",
    # Variables of the configuration by name: `set` ones (one never set here) and a named capture.
    "vars/room.html": b"[<!--#echo var=\"room\" -->][<!--#echo var=\"kind\" -->]"
                      b"[<!--#echo var=\"empty\" default=\"d\" -->][<!--#echo var=\"never\" default=\"d\" -->]"
                      b"<!--#if expr=\"$room\" -->has $room<!--#endif -->\n",
}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        ssi on;
        location / { }
        location /proxy/ { proxy_pass http://127.0.0.1:%%PORT%%/; }
        location /silent/ { ssi_silent_errors on; }
        location /lm/ { ssi_last_modified on; }
        location /small/ { alias %%DIR%%/html/; output_buffers 1 7; }
        location ~ ^/vars/(?<kind>[a-z]+)/(.*)$ { set $room "$2"; set $empty ""; try_files /vars/room.html =404; }
        location /never/ { set $never "x"; }
    }
"""

MTIME = 1700000000


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, {**PARTS, **DOCS}, mtime=MTIME)


def get(port, path):
    return answer(port, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)


PATHS = ["/basic.html", "/echo.html?a=1", "/if.html", "/if.html?x=1", "/if.html?y=yes",
         "/if.html?y=maybe", "/if.html?y=no", "/errors.html", "/block.html", "/set.html",
         "/proxied.html", "/silent/e.html", "/lm/doc.html", "/plain.txt", "/comment.html",
         "/empty.html", "/vars/abc/my-room"]


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert get(weir.port, path) == get(nginx.port, path)


@pytest.mark.parametrize("path", [p for p in PATHS if not p.startswith(("/silent", "/lm", "/vars"))])
def test_commands_across_7_byte_buffers_as_nginx(pair, path):
    """output_buffers 1 7: the document reaches the filter 7 bytes at a time, so every command
    falls across buffers; the answer is the whole document's."""
    weir, nginx = pair
    small = "/small" + path

    def dechunked(port, p):
        lines, body = get(port, p)
        return lines, dechunk(body) if "Transfer-Encoding: chunked" in lines else body
    got = dechunked(weir.port, small)
    assert got == dechunked(nginx.port, small)
    assert got[1].replace(b"/small/", b"/") == dechunked(weir.port, path)[1]


def test_what_the_answers_hold(pair):
    weir, _ = pair
    lines, body = get(weir.port, "/basic.html")
    assert dechunk(body) == b"AONEBTWO(/parts/two.html)C[NONEN]D\n"
    assert not any(l.startswith(("Content-Length", "Last-Modified", "ETag")) for l in lines)
    _, body = get(weir.port, "/set.html")
    assert b"[ONE]" in dechunk(body) and b"{ONE}" in dechunk(body)
    _, body = get(weir.port, "/proxied.html")
    assert dechunk(body) == b"<1SLOW2ONE3[NONEN]4>\n"
    _, body = get(weir.port, "/vars/abc/my-room")
    assert dechunk(body).startswith(b"[my-room][abc][]"), body
    lines, _ = get(weir.port, "/lm/doc.html")
    assert any(l.startswith("ETag: W/") for l in lines)
    assert any(l.startswith("Last-Modified:") for l in lines)


def test_errors_logged_in_nginx_words(pair):
    weir, nginx = pair
    get(weir.port, "/errors.html")
    get(nginx.port, "/errors.html")

    def messages(s):
        return sorted(set(re.findall(r"\[error\] \d+#\d+: \*\d+ (.*?) while sending", s.error_log())))
    wait_for(lambda: len(messages(weir)) >= 10, what="the error lines")
    assert messages(weir) == messages(nginx)


def test_date_gmt_in_the_timefmt(make_server):
    s = make_server("""
    server { listen 127.0.0.1:%%PORT%%; ssi on; location / { } }
    """, files={"d.html": b"<!--#config timefmt=\"%Y-%m-%d %H\" -->[<!--#echo var=\"date_gmt\" -->]"
                         b"<!--#config timefmt=\"%s\" -->[<!--#echo var=\"date_local\" -->]"})
    before = time.time()
    body = raw(s.port, "GET /d.html HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2]
    m = re.match(rb"\[(\d{4}-\d\d-\d\d \d\d)\]\[(\d+)\]$", body)
    assert m, body
    assert abs(int(m.group(2)) - before) <= 2
    assert m.group(1).decode() in {time.strftime("%Y-%m-%d %H", time.gmtime(t))
                                   for t in (before - 1, before + 2)}


def test_a_large_document_in_bounded_memory(make_server):
    """24 MiB of text with a command every 128 KiB, to a slow client: the worker's memory stays
    within a few MiB of where it started (text goes out as slices of the input buffers; what grows
    is per command - an include is a subrequest in the request's pool, as nginx's), and the whole
    document arrives with every command carried out."""
    s = make_server("""
    server { listen 127.0.0.1:%%PORT%% sndbuf=64k; ssi on; output_buffers 2 32k;
             location / { } }
    """, main_conf="worker_processes 1;", start=False,
        files={"p.html": b"P"})
    piece = (b"x" * 65536 + b"<!--#echo var=\"uri\" -->" + b"y" * 65536 +
             b"<!--#include virtual=\"/p.html\" -->\n")
    count = 24 * 1024 * 1024 // len(piece)
    with open(s.path("html/big.html"), "wb") as f:
        for _ in range(count):
            f.write(piece)
    os.chmod(s.path("html/big.html"), 0o644)
    s.start()
    wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")
    (pid,) = s.worker_pids()
    raw(s.port, "GET /p.html HTTP/1.0\r\n\r\n")

    before = peak_rss(pid)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
    c.sendall(b"GET /big.html HTTP/1.0\r\n\r\n")
    want = hashlib.sha256()
    expanded = b"x" * 65536 + b"/big.html" + b"y" * 65536 + b"P\n"
    got = hashlib.sha256()
    data, head, total = b"", None, 0
    while True:
        chunk = c.recv(1 << 16)
        if not chunk:
            break
        if head is None:
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, chunk = data.partition(b"\r\n\r\n")
            else:
                continue
        got.update(chunk)
        total += len(chunk)
    c.close()
    for _ in range(count):
        want.update(expanded)
    assert total == count * len(expanded) and got.digest() == want.digest()
    assert peak_rss(pid) - before < 8 * 1024 * 1024, peak_rss(pid) - before


def test_an_include_sent_from_its_file_while_the_next_turns_sendfile_off(make_server):
    """The first include's location sends files (sendfile on) and the client is slow, so its file
    is still being sent when the next include, under sendfile off, runs: the file goes on with
    sendfile (the location turned sendfile off for what comes after it, not for what is on its
    way), as nginx sends it."""
    from conftest import NGINX, WEIR, slow_client
    big = os.urandom(3 << 20)
    page = b'a\n<!--# include virtual="/files/big.bin" -->\nb\n<!--# include virtual="/copy/big.bin" -->\n'
    conf = """
        server {
            listen 127.0.0.1:%%PORT%% sndbuf=16k;
            location ~ \\.shtml$ { ssi on; ssi_types *; sendfile off; }
            location /files/ { alias %%DIR%%/html/; sendfile on; }
            location /copy/ { alias %%DIR%%/html/; sendfile off; }
        }
    """
    for binary in (WEIR, NGINX):
        s = make_server(conf, binary=binary, files={"big.bin": big, "page.shtml": page})
        c = slow_client(s.port, "/page.shtml")
        got = b""
        while len(got) < 100000:
            got += c.recv(4096)
            time.sleep(0.002)
        rest = b""
        while True:
            chunk = c.recv(1 << 20)
            if not chunk:
                break
            rest += chunk
        head, _, body = (got + rest).partition(b"\r\n\r\n")
        assert dechunk(body) == b"a\n" + big + b"\nb\n" + big + b"\n", binary
        if binary == WEIR:
            s.check_clean()
