"""Static files: sizes from 0 B to 3 GiB, HEAD, directories, index, 403/404, Last-Modified/ETag,
Content-Type from types, sendfile on/off, conditional requests and ranges."""
import email.utils
import hashlib
import os
import subprocess

from conftest import ROOT, Client

STATIC = """
    include %%DIR%%/conf/mime.types;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { }
        location /nosendfile/ { sendfile off; output_buffers 2 4k; alias %%DIR%%/html/; }
    }
"""


def test_small_files_and_head(make_server):
    one_k = os.urandom(1024)
    s = make_server(STATIC, files={"empty.txt": b"", "1k.bin": one_k, "index.html": "<h1>hi</h1>\n"})
    r = s.get("/empty.txt")
    assert r.status == 200 and r.body == b"" and r.header("Content-Length") == "0"
    assert r.header("Content-Type") == "text/plain"
    r = s.get("/1k.bin")
    assert r.status == 200 and r.body == one_k
    assert r.header("Content-Type") == "application/octet-stream"
    r = s.get("/index.html", method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == "12" and r.body == b""
    assert r.header("Content-Type") == "text/html"
    st = os.stat(s.path("html/index.html"))
    assert r.header("ETag") == '"%x-%x"' % (int(st.st_mtime), st.st_size)
    assert email.utils.parsedate_to_datetime(r.header("Last-Modified")).timestamp() == int(st.st_mtime)
    assert r.header("Accept-Ranges") == "bytes"


def test_one_mebibyte_with_and_without_sendfile(make_server):
    data = os.urandom(1 << 20)
    s = make_server(STATIC, files={"1m.bin": data})
    for path in ("/1m.bin", "/nosendfile/1m.bin"):
        r = s.get(path)
        assert r.status == 200 and len(r.body) == len(data)
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(data).digest(), path


def test_sendfile_max_chunk_interleaves_downloads(make_server):
    # Each write event sends at most 32 KiB and then lets the other connections go first; with an
    # edge-triggered socket that stays writable, a writer that is not re-run would stall the download.
    data = os.urandom(4 << 20)
    s = make_server(STATIC.replace("location / { }", "location / { sendfile_max_chunk 32k; }")
                    .replace("output_buffers 2 4k;", "output_buffers 2 4k; sendfile_max_chunk 32k;"),
                    files={"4m.bin": data})
    want = hashlib.sha256(data).hexdigest()
    procs = [subprocess.Popen(["curl", "-s", "http://127.0.0.1:%d%s" % (s.port, path)], stdout=subprocess.PIPE)
             for path in ("/4m.bin", "/4m.bin", "/nosendfile/4m.bin", "/nosendfile/4m.bin")]
    # A small request is answered while the downloads run.
    assert s.get("/4m.bin", headers={"Range": "bytes=0-9"}).body == data[:10]
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert hashlib.sha256(out).hexdigest() == want


def test_three_gibibyte_sparse_file(make_server):
    s = make_server(STATIC)
    p = s.path("html/big.bin")
    size = 3 << 30
    with open(p, "wb") as f:
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    os.chmod(p, 0o644)
    r = s.get("/big.bin", method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == str(size)
    # The whole body through curl, counted; sendfile beyond 2 GiB offsets must work.
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{http_code}",
                          "http://127.0.0.1:%d/big.bin" % s.port], capture_output=True, text=True, timeout=120)
    assert out.stdout == "%d 200" % size
    r = s.get("/big.bin", headers={"Range": "bytes=%d-" % (size - 5)})
    assert r.status == 206 and r.body == b"tail!"
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (size - 5, size - 1, size)


def test_directory_redirect_and_index(make_server):
    s = make_server(STATIC, files={"dir/index.html": "dir index\n", "noindex/file": "x"})
    r = s.get("/dir")
    assert r.status == 301
    assert r.header("Location") == "http://localhost:%d/dir/" % s.port
    r = s.get("/dir?a=1")
    assert r.status == 301 and r.header("Location").endswith("/dir/?a=1")
    r = s.get("/dir/")
    assert r.status == 200 and r.body == b"dir index\n"
    r = s.get("/noindex/")
    assert r.status == 403
    assert "directory index of" in s.error_log()


def test_not_found_and_forbidden(make_server):
    s = make_server(STATIC, files={"secret.txt": "no"})
    os.chmod(s.path("html/secret.txt"), 0o000)
    r = s.get("/missing.txt")
    assert r.status == 404 and b"<center><h1>404 Not Found</h1></center>" in r.body
    assert 'open() "%s/html/missing.txt" failed (2: No such file or directory)' % s.dir in s.error_log()
    if os.geteuid() != 0 or open(s.path("logs/server.pid")).read():
        r = s.get("/secret.txt")
        # Workers drop root privileges, so even a root-started server gets 403 here.
        assert r.status == 403
    r = s.get("/1k.bin", method="DELETE")
    assert r.status in (404, 405)


def test_methods(make_server):
    s = make_server(STATIC, files={"f.txt": "file\n"})
    assert s.get("/f.txt", method="POST", body=b"abc").status == 405
    assert s.get("/f.txt", method="PUT", body=b"abc").status == 405
    assert s.get("/f.txt", method="OPTIONS").status == 405


def test_conditional_requests(make_server):
    s = make_server(STATIC, files={"c.txt": "conditional\n"})
    r = s.get("/c.txt")
    lm, etag = r.header("Last-Modified"), r.header("ETag")
    assert s.get("/c.txt", headers={"If-Modified-Since": lm}).status == 304
    assert s.get("/c.txt", headers={"If-None-Match": etag}).status == 304
    assert s.get("/c.txt", headers={"If-None-Match": "W/" + etag}).status == 304
    assert s.get("/c.txt", headers={"If-None-Match": '"other"'}).status == 200
    assert s.get("/c.txt", headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:01 GMT"}).status == 200
    r = s.get("/c.txt", headers={"If-Match": '"other"'})
    assert r.status == 412
    assert s.get("/c.txt", headers={"If-Match": etag}).status == 200
    assert s.get("/c.txt", headers={"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:01 GMT"}).status == 412


def test_ranges(make_server):
    data = bytes(range(256)) * 8
    s = make_server(STATIC, files={"r.bin": data})
    r = s.get("/r.bin", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20]
    assert r.header("Content-Range") == "bytes 10-19/2048"
    r = s.get("/r.bin", headers={"Range": "bytes=-16"})
    assert r.body == data[-16:]
    r = s.get("/r.bin", headers={"Range": "bytes=5000-"})
    assert r.status == 416 and r.header("Content-Range") == "bytes */2048"
    r = s.get("/r.bin", headers={"Range": "bytes=0-1,4-5"})
    assert r.status == 206
    ctype = r.header("Content-Type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    boundary = ctype.split("=", 1)[1].encode()
    assert r.body.count(b"--" + boundary) == 3
    assert b"Content-Range: bytes 0-1/2048\r\n\r\n" + data[0:2] in r.body
    assert b"Content-Range: bytes 4-5/2048\r\n\r\n" + data[4:6] in r.body
    # A range on a file read through output buffers (sendfile off).
    r = s.get("/nosendfile/r.bin", headers={"Range": "bytes=100-4000"})
    assert r.status == 206 and r.body == data[100:]


def test_types_block_and_default_type(make_server):
    conf = """
    types { text/x-weir wrr; }
    default_type application/x-default;
    server { listen 127.0.0.1:%%PORT%%; location / { } location /t/ { types { } default_type text/t; } }
    """
    s = make_server(conf, files={"a.wrr": "x", "a.WRR": "y", "b.txt": "z", "t/c.wrr": "w"})
    assert s.get("/a.wrr").header("Content-Type") == "text/x-weir"
    assert s.get("/a.WRR").header("Content-Type") == "text/x-weir"
    assert s.get("/b.txt").header("Content-Type") == "application/x-default"
    assert s.get("/t/c.wrr").header("Content-Type") == "text/t"


def test_every_shipped_mime_type(make_server):
    """Each extension of conf/mime.types, in lower and upper case, gets its type (one keep-alive connection)."""
    text = open(os.path.join(ROOT, "conf", "mime.types")).read()
    body = text[text.index("{") + 1:text.rindex("}")]
    expected = {}
    for entry in body.split(";"):
        words = entry.split()
        for ext in words[1:]:
            expected[ext] = words[0]
    assert len(expected) > 100
    names = ["f." + ext for ext in expected] + ["g." + ext.upper() for ext in expected]
    s = make_server("include %s/conf/mime.types;\nserver { listen 127.0.0.1:%%%%PORT%%%%; }" % ROOT,
                    files={name: "x" for name in names})
    c = Client(s.port)
    for name in names:
        c.send("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % name)
        r = c.response()
        assert r.status == 200 and r.header("Content-Type") == expected[name[2:].lower()], (name, r.status)
    c.close()
