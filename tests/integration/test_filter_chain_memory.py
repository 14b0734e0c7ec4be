"""A 1 GiB proxied HTML response through the whole filter chain at once (#9) - SSI carrying out a
command in every MiB, charset recoding koi8-r to UTF-8, headers, userid, gzip - to a client that
reads as it decompresses: the worker's memory stays within a few MiB of where it started, and
every byte arrives as the filters make it."""
import hashlib
import os
import socket
import zlib

from backend import Backend, Send
from conftest import peak_rss, wait_for

MIB = 1024 * 1024
COUNT = 1024  # MiB

# One MiB of HTML in koi8-r: ASCII text, Cyrillic letters, and an SSI command.
LINE = b"<p>text \xc1\xc2\xd7 and more text</p>\n"
COMMAND = b"<!--#echo var=\"x\" default=\"[ssi]\" -->"
BLOCK = (LINE * (MIB // len(LINE)))[:MIB - len(COMMAND)] + COMMAND
EXPECTED = BLOCK[:-len(COMMAND)].decode("koi8-r").encode("utf-8") + b"[ssi]"


def test_a_gib_through_every_filter_in_bounded_memory(make_server):
    head = ("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
            % (COUNT * MIB)).encode()
    with Backend() as b:
        b.script("/big.html", [Send(head)] + [Send(BLOCK)] * COUNT)
        s = make_server("""
        include %%%%DIR%%%%/conf/koi-utf;
        server { listen 127.0.0.1:%%%%PORT%%%% sndbuf=64k;
            location / { proxy_pass http://127.0.0.1:%d; proxy_buffers 4 64k; proxy_busy_buffers_size 64k;
                         proxy_max_temp_file_size 0;
                         ssi on; charset utf-8; source_charset koi8-r;
                         add_header X-Chain on; userid on; gzip on; gzip_comp_level 1; } }
        """ % b.port, main_conf="worker_processes 1;", start=False)
        s.write(s.path("conf/koi-utf"), open(os.path.join(os.path.dirname(__file__), "..", "..", "conf",
                                                  "koi-utf"), "rb").read())
        s.start()
        wait_for(lambda: len(s.worker_pids()) == 1, what="the worker")
        (pid,) = s.worker_pids()
        before = peak_rss(pid)
        c = socket.create_connection(("127.0.0.1", s.port), timeout=120)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 262144)
        c.sendall(b"GET /big.html HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                  b"Connection: close\r\n\r\n")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        got, total = hashlib.sha256(), 0
        data, headers = b"", None
        while True:
            chunk = c.recv(1 << 18)
            if not chunk:
                break
            data += chunk
            if headers is None:
                if b"\r\n\r\n" not in data:
                    continue
                headers, _, data = data.partition(b"\r\n\r\n")
            # Dechunk what is complete; decompress it.
            at = 0
            while True:
                nl = data.find(b"\r\n", at)
                if nl < 0:
                    break
                n = int(data[at:nl], 16)
                if len(data) < nl + 2 + n + 2:
                    break
                plain = d.decompress(data[nl + 2:nl + 2 + n])
                got.update(plain)
                total += len(plain)
                at = nl + 2 + n + 2
            data = data[at:]
        c.close()
    assert b"Content-Encoding: gzip" in headers and b"X-Chain: on" in headers
    assert b"Set-Cookie: uid=" in headers and b"charset=utf-8" in headers
    want = hashlib.sha256()
    for _ in range(COUNT):
        want.update(EXPECTED)
    assert total == COUNT * len(EXPECTED) and got.digest() == want.digest()
    grown = peak_rss(pid) - before
    assert grown < 16 * MIB, grown
