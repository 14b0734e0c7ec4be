"""TLS on `listen ... ssl` (#14's first part) with real clients - curl, `openssl s_client` and
Python's ssl - and certificates the tests make with `openssl req`, beside Debian's nginx on the same
configuration: the handshake and the $ssl_* variables, SNI choosing the server and its certificate,
plain HTTP to a TLS port (nginx's 400 page and log line), redirects with https://, large files and
slow readers through the record buffer, a proxied exchange behind TLS, keep-alive, session
resumption by ticket and by the builtin cache, and nginx's load-time errors."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest

from backend import Backend
from conftest import (NGINX, WEIR, answer, check_conf, free_port, http_get, make_certificate, wait_for,
                      weir_and_nginx)


@pytest.fixture(scope="module")
def certs():
    """Two ECDSA P-256 certificates: "localhost" (also a.test) and "b.test"; an RSA one for b.test."""
    d = tempfile.mkdtemp(prefix="weir-tls-")
    os.chmod(d, 0o755)

    def make(name, sans, kind="ec"):
        key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else \
            ["-newkey", "rsa:2048"]
        subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=" + sans[0],
                        "-addext", "subjectAltName=" + ",".join("DNS:" + s for s in sans),
                        "-keyout", key, "-out", cert] + newkey, check=True, capture_output=True)
        for f in (key, cert):
            os.chmod(f, 0o644)
        return cert, key

    out = {"a": make("a", ["localhost", "a.test"]), "b": make("b", ["b.test"]),
           "b_rsa": make("b_rsa", ["b.test"], "rsa"), "dir": d}
    yield out
    shutil.rmtree(d, ignore_errors=True)


def conf(certs, extra=""):
    (ac, ak), (bc, bk) = certs["a"], certs["b"]
    return """
    log_format tls '$scheme|$https|$ssl_protocol|$ssl_cipher|$ssl_server_name|$ssl_session_reused|$server_name|$connection_requests';
    access_log %%%%DIR%%%%/logs/tls.log tls;
    ssl_protocols TLSv1.2 TLSv1.3;
    server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s;
             location /r { return 301 /index.html; } %s }
    server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name b.test;
             ssl_certificate %s; ssl_certificate_key %s; }
    """ % (ac, ak, extra, bc, bk)


FILES = {"index.html": "hello over tls\n", "big.bin": os.urandom(3 * 1024 * 1024 + 17)}


@pytest.fixture(scope="module")
def pair(certs):
    yield from weir_and_nginx(conf(certs), FILES)


def curl(port, path, cacert, host="localhost", extra=()):
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", cacert, "--resolve",
                          "%s:%d:127.0.0.1" % (host, port), "-o", "-", "-w", "\n%{http_code}|%{redirect_url}",
                          *extra, "https://%s:%d%s" % (host, port, path)], capture_output=True)
    body, _, tail = out.stdout.rpartition(b"\n")
    return out.returncode, body, tail.decode(), out.stderr.decode()


def log_lines(s, name="logs/tls.log", n=None):
    path = s.path(name)
    if n is not None:
        wait_for(lambda: os.path.exists(path) and len(open(path).readlines()) >= n, what="log lines")
    return open(path).read().splitlines()


def test_handshake_sni_and_variables_as_nginx(pair, certs):
    for s in pair:
        rc, body, tail, err = curl(s.port, "/", certs["a"][0])
        assert rc == 0 and body == b"hello over tls\n" and tail == "200|", (s.name, err)
        # SNI picks b.test's server and certificate: a.test's CA does not vouch for it.
        rc, body, tail, err = curl(s.port, "/", certs["b"][0], host="b.test")
        assert rc == 0 and tail == "200|", (s.name, err)
        rc, _, _, err = curl(s.port, "/", certs["a"][0], host="b.test")
        assert rc == 60, (s.name, rc, err)  # curl: the peer's certificate is not trusted
        # An unknown name gets the default server.
        rc, _, tail, err = curl(s.port, "/", certs["a"][0], host="a.test")
        assert rc == 0 and tail == "200|", (s.name, err)
    logs = [log_lines(s, n=3) for s in pair]
    assert logs[0] == logs[1], logs
    assert logs[0][0].startswith("https|on|TLSv1.3|TLS_AES_256_GCM_SHA384|localhost|.|localhost|1")
    assert logs[0][1].split("|")[4:7] == ["b.test", ".", "b.test"]


def test_more_ssl_variables_as_nginx(make_server, certs):
    """$ssl_curve, $ssl_curves, $ssl_ciphers, $ssl_session_id (a fresh one each handshake: only
    its shape is compared), $ssl_early_data; '-' on a plain connection, as nginx."""
    http = """
    log_format v '$ssl_curve|$ssl_curves|$ssl_ciphers|$ssl_early_data|$ssl_session_id';
    access_log %%%%DIR%%%%/logs/v.log v;
    ssl_protocols TLSv1.2 TLSv1.3;
    server { listen 127.0.0.1:%%%%PORT0%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s; }
    server { listen 127.0.0.1:%%%%PORT1%%%%; }
    """ % certs["a"]
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(http, binary=binary, ports=2, files={"index.html": "x"})
        for extra in ((), ("--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305")):
            assert curl(s.ports[0], "/index.html", certs["a"][0], extra=extra)[0] == 0
        assert http_get(s.ports[1], "/index.html").status == 200
        wait_for(lambda: len(open(s.path("logs/v.log")).readlines()) == 3, what="log lines")
        lines = [l.split("|") for l in open(s.path("logs/v.log")).read().splitlines()]
        for l in lines[:2]:
            assert l[4] == "-" or re.fullmatch(r"[0-9a-f]{64}", l[4]), l
            l[4] = "ID" if l[4] != "-" else "-"
        seen[s.name] = lines
        s.stop()
    for a, b in zip(seen["weir"], seen["nginx"]):
        for x, y in zip(a, b):
            assert x == y, (x, y)
    assert seen["weir"][2] == ["-", "-", "-", "-", "-"]
    assert seen["weir"][1][2] == ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                  "TLS_EMPTY_RENEGOTIATION_INFO_SCSV")


def test_plain_http_to_tls_port_is_nginx_400(pair):
    req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    weir, nginx = (answer(s.port, req) for s in pair)
    assert weir == nginx
    assert weir[0][0] == "HTTP/1.1 400 Bad Request"
    assert b"The plain HTTP request was sent to HTTPS port" in weir[1]
    for s in pair:
        wait_for(lambda: "client sent plain HTTP request to HTTPS port while reading client request "
                         "headers" in open(s.path("logs/error.log")).read(), what=s.name)


def test_redirect_names_https(pair, certs):
    for s in pair:
        _, _, tail, _ = curl(s.port, "/r", certs["a"][0])
        assert tail == "301|https://localhost:%d/index.html" % s.port, s.name


def test_large_file_and_slow_reader(pair, certs):
    """3 MiB through SSL_write (sendfile is off under TLS): whole, to a fast client and to one that
    reads slowly, so that the record buffer waits on the socket."""
    s = pair[0]
    rc, body, tail, _ = curl(s.port, "/big.bin", certs["a"][0])
    assert rc == 0 and body == FILES["big.bin"]
    ctx = ssl.create_default_context(cafile=certs["a"][0])
    raw_sock = socket.socket()
    raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw_sock.connect(("127.0.0.1", s.port))
    c = ctx.wrap_socket(raw_sock, server_hostname="localhost")
    c.settimeout(20)
    c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = c.recv(1024)
        if not chunk:
            break
        data += chunk
        if len(data) < 64 * 1024:
            threading.Event().wait(0.01)  # slow at first: the server's writes come back partial
    c.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == FILES["big.bin"]


def test_keepalive_and_session_resumption(pair, certs):
    for s in pair:
        before = len(log_lines(s))
        rc, _, _, err = curl(s.port, "/", certs["a"][0],
                             extra=("-o", "/dev/null", "https://localhost:%d/index.html" % s.port))
        assert rc == 0, err
        lines = log_lines(s, n=before + 2)[before:]
        assert [l.split("|")[-1] for l in lines] == ["1", "2"], (s.name, lines)
    # Resumption by ticket (the default), TLS 1.2 and 1.3: the second connection says "r".
    for proto in ("-tls1_2", "-tls1_3"):
        for s in pair:
            sess = os.path.join(s.dir, "sess" + proto)
            for opt in ("-sess_out", "-sess_in"):
                out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port,
                                      "-servername", "localhost", proto, "-CAfile", certs["a"][0],
                                      opt, sess, "-ign_eof"],
                                     input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                                     capture_output=True, timeout=10)
                assert b"hello over tls" in out.stdout, (s.name, proto, out.stderr[-300:])
            assert b"Reused, TLS" in out.stdout, (s.name, proto)
            wait_for(lambda: log_lines(s)[-1].split("|")[5] == "r", what="$ssl_session_reused r")


def tls_records_at_once(port, cafile, requests, half_close=False):
    """Each request in a TLS record of its own, all the records in one send after the handshake
    (through memory BIOs), then with half_close the TCP connection's write side shut (no
    close_notify); returns what came back until the server closed."""
    ctx = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    sock.sendall(outgoing.read())
    for req in requests:
        tls.write(req)
    sock.sendall(outgoing.read())
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break  # close_notify
            out += chunk
            continue
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        data = sock.recv(65536)
        if not data:
            break
        incoming.write(data)
    sock.close()
    return out


@pytest.mark.parametrize("count", [3, 300])
def test_pipelined_requests_in_records_read_at_once(pair, certs, count):
    """Many records read by one read() (the record layer reads ahead): each is answered, in order, with
    nothing waiting for a socket event that will not come; 300 requests are past what the header
    buffer takes at once, so the rest waits inside the record layer."""
    reqs = [b"GET /index.html?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(count - 1)]
    reqs.append(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    for s in pair:
        out = tls_records_at_once(s.port, certs["a"][0], reqs)
        assert out.count(b"HTTP/1.1 200 OK\r\n") == count, (s.name, out[-300:])
        assert out.count(b"hello over tls\n") == count and out.endswith(b"hello over tls\n")


def test_a_request_and_the_clients_close_in_one_read(pair, certs):
    """A keep-alive request followed at once by the client's FIN (no close_notify): the answer
    comes, and the server closes then, not at keepalive_timeout. (When the FIN is already known
    with the request, the read must not take the socket for empty; which of the two orders a run
    meets is the kernel's to say.)"""
    req = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for s in pair:
        out = tls_records_at_once(s.port, certs["a"][0], [req], half_close=True)
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"hello over tls\n"), (s.name, out)


def test_proxied_behind_tls(make_server, certs):
    body = os.urandom(300 * 1024)
    with Backend() as b:
        s = make_server("""
            server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
                     location / { proxy_pass http://127.0.0.1:%d; } }""" % (*certs["a"], b.port))
        path = os.path.join(s.dir, "upload")
        with open(path, "wb") as f:
            f.write(body)
        rc, out, tail, err = curl(s.port, "/echo", certs["a"][0], extra=("--data-binary", "@" + path))
        assert rc == 0 and tail.startswith("200"), err
        assert b.requests[-1][3] == body


def test_load_errors_as_nginx(certs):
    (ac, ak), missing = certs["a"], os.path.join(certs["dir"], "nope.pem")
    cases = [
        # no certificate for a TLS address: nginx names the server block's place
        ("server { listen 127.0.0.1:1 ssl; }", 'no "ssl_certificate" is defined for the "listen ... ssl" directive in'),
        ("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; }" % ac,
         'no "ssl_certificate_key" is defined for certificate "%s"' % ac),
        ("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; ssl_certificate_key %s; }" % (missing, ak),
         'cannot load certificate "%s": BIO_new_file() failed (SSL: error:' % missing),
        ("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; ssl_certificate_key %s; }" % (ak, ak),
         'cannot load certificate "%s": PEM_read_bio_X509_AUX() failed (SSL: error:' % ak),
        ("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; ssl_certificate_key %s; }" % (ac, missing),
         'cannot load certificate key "%s": BIO_new_file() failed (SSL: error:' % missing),
        ("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; ssl_certificate_key %s; }" % (ac, ac),
         'cannot load certificate key "%s": PEM_read_bio_PrivateKey() failed (SSL: error:' % ac),
        ("ssl_protocols TLSv1.2 TLSv9;", 'invalid value "TLSv9"'),
        ("ssl_session_cache bogus;", 'invalid session cache "bogus"'),
    ]
    # DH parameters too small for OpenSSL's security level, and not DH parameters at all: the steps
    # named as nginx names them.
    small = os.path.join(certs["dir"], "dh1024.pem")
    if not os.path.exists(small):
        subprocess.run(["openssl", "dhparam", "-dsaparam", "-out", small, "1024"], check=True, capture_output=True)
    for dh, step in ((small, "SSL_CTX_set_tmp_dh"), (ac, "PEM_read_bio_DHparams")):
        cases.append(("server { listen 127.0.0.1:1 ssl; ssl_certificate %s; ssl_certificate_key %s; "
                      "ssl_dhparam %s; }" % (ac, ak, dh), '%s("%s") failed (SSL: error:' % (step, dh)))
    cases.append(("ssl_conf_command Bogus x; server { listen 127.0.0.1:1 ssl; ssl_certificate %s; "
                  "ssl_certificate_key %s; }" % (ac, ak),
                  'SSL_CONF_cmd("Bogus", "x") failed (SSL: error:0A000182:SSL routines::unknown cmd name:cmd=Bogus)'))
    for http_conf, message in cases:
        lines = []
        for binary in (WEIR, NGINX):
            rc, err = check_conf(binary, http_conf)
            assert rc == 1 and message in err, (binary, http_conf, err)
            first = err.splitlines()[0]
            text = first.split("] ", 1)[1]
            text = text.split(": ", 1)[1] if "#" in text.split(" ", 1)[0] else text  # nginx's pid#tid
            lines.append(re.sub(r"/tmp/(weir|nginx)-test-\w+", "DIR", text))
        if "PEM_read_bio_DHparams" in message:  # OpenSSL's queue differs: nginx reads them as DH only
            lines = [l.split(" (SSL: ")[0] for l in lines]
        assert lines[0] == lines[1], lines
    # `ssl on` still works, with nginx's warning.
    ok = "server { listen 127.0.0.1:1; ssl on; ssl_certificate %s; ssl_certificate_key %s; }" % (ac, ak)
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, ok)
        assert rc == 0 and 'the "ssl" directive is deprecated' in err, (binary, err)


def resumed(port, cafile, proto, sess, first):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
                          "localhost", proto, "-CAfile", cafile, "-sess_out" if first else "-sess_in",
                          sess, "-ign_eof"],
                         input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                         capture_output=True, timeout=10)
    assert b"hello over tls" in out.stdout, out.stderr[-300:]
    return b"Reused, TLS" in out.stdout


def test_shared_session_cache_across_workers(make_server, certs):
    """Tickets off: a session is found again only through the cache. With two workers, the shared
    zone resumes every connection, whichever worker takes it; it keeps its sessions across a
    reload."""
    s = make_server("""
        ssl_session_tickets off;
        ssl_session_cache shared:TLSCACHE:1m;
        server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
                 ssl_certificate %s; ssl_certificate_key %s; }""" % certs["a"],
                    main_conf="worker_processes 2;", files={"index.html": "hello over tls\n"})
    wait_for(lambda: len(s.worker_pids()) == 2, what="two workers")
    for proto in ("-tls1_2", "-tls1_3"):
        sess = os.path.join(s.dir, "sess" + proto)
        assert not resumed(s.port, certs["a"][0], proto, sess, True)
        assert all(resumed(s.port, certs["a"][0], proto, sess, False) for _ in range(8)), proto
    sess = os.path.join(s.dir, "sess-tls1_2")
    old = set(s.worker_pids())
    s.send_signal(signal.SIGHUP)
    wait_for(lambda: not set(s.worker_pids()) & old and len(s.worker_pids()) == 2, what="new workers")
    assert resumed(s.port, certs["a"][0], "-tls1_2", sess, False)


def test_shared_session_cache_errors_as_nginx(certs):
    for cache, message in (("shared:X:1k", 'session cache "shared:X:1k" is too small'),
                           ("shared:X", 'invalid session cache "shared:X"'),
                           ("builtin:x", 'invalid session cache "builtin:x"'),
                           ("shared:X:1m:2", 'invalid session cache "shared:X:1m:2"')):
        for binary in (WEIR, NGINX):
            rc, err = check_conf(binary, "ssl_session_cache %s;" % cache)
            assert rc == 1 and message in err, (binary, cache, err)


def test_reject_handshake_conf_command_and_password_file_as_nginx(make_server, certs):
    """ssl_reject_handshake on the default server: no SNI, or a name no server has, ends the
    handshake with an unrecognized_name alert; b.test still gets through. ssl_conf_command sets
    OpenSSL's TLS 1.3 suites; ssl_password_file opens an encrypted key."""
    d = certs["dir"]
    enc_key, pw = os.path.join(d, "enc.key"), os.path.join(d, "pw.txt")
    with open(pw, "w") as f:
        f.write("wrong\nsecret-pass\n")
    subprocess.run(["openssl", "pkey", "-in", certs["b"][1], "-aes256", "-passout", "pass:secret-pass",
                    "-out", enc_key], check=True)
    os.chmod(enc_key, 0o644)
    http = """
    log_format tls '$ssl_server_name|$ssl_cipher';
    access_log %%%%DIR%%%%/logs/tls.log tls;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256;
    server { listen 127.0.0.1:%%%%PORT%%%% ssl default_server; ssl_reject_handshake on; }
    server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name b.test;
             ssl_certificate %s; ssl_certificate_key %s; ssl_password_file %s; }
    """ % (certs["b"][0], enc_key, pw)
    results = {}
    for binary in (None, NGINX):
        s = make_server(http, binary=binary, files={"index.html": "hello over tls\n"})
        rc_b, body, _, err = curl(s.port, "/", certs["b"][0], host="b.test")
        rc_other, _, _, err_other = curl(s.port, "/", certs["b"][0], host="c.test")
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port, "-noservername"],
                             input=b"", capture_output=True, timeout=10)
        wait_for(lambda: os.path.exists(s.path("logs/tls.log")) and open(s.path("logs/tls.log")).read(),
                 what="a log line")
        log = open(s.path("logs/error.log")).read()
        results[s.name] = (rc_b, body, rc_other, b"unrecognized name" in out.stderr + out.stdout,
                           open(s.path("logs/tls.log")).read(), log.count("handshake rejected"))
    assert results["weir"] == results["nginx"], results
    assert results["weir"][:4] == (0, b"hello over tls\n", 35, True)
    assert results["weir"][4] == "b.test|TLS_CHACHA20_POLY1305_SHA256\n"
    assert results["weir"][5] == 2


def test_session_ticket_key_survives_a_restart(make_server, certs):
    """With ssl_session_ticket_key, a ticket the first server issued resumes on a second one that
    reads the same key (a restart, or another machine behind the same name); an 80-byte key too."""
    d = certs["dir"]
    for size in (48, 80):
        key = os.path.join(d, "ticket%d.key" % size)
        with open(key, "wb") as f:
            f.write(os.urandom(size))
        http = """server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
                  ssl_certificate %s; ssl_certificate_key %s; ssl_session_ticket_key %s; }""" % (
            *certs["a"], key)
        sess = os.path.join(d, "sess%d" % size)
        first = make_server(http, files={"index.html": "hello over tls\n"})
        assert not resumed(first.port, certs["a"][0], "-tls1_2", sess, True)
        first.stop()
        second = make_server(http, files={"index.html": "hello over tls\n"})
        assert resumed(second.port, certs["a"][0], "-tls1_2", sess, False), size
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "ssl_session_ticket_key %s; server { listen 127.0.0.1:1 ssl; "
                                     "ssl_certificate %s; ssl_certificate_key %s; }" % (certs["a"][0], *certs["a"]))
        assert rc == 1 and '"%s" must be 48 or 80 bytes' % certs["a"][0] in err, err


def tls_origin(make_server, certs):
    """Debian's nginx as a TLS origin: it logs what each request's TLS was."""
    return make_server("""
        log_format o '$ssl_server_name|$ssl_session_reused|$connection|$ssl_protocol';
        access_log %%%%DIR%%%%/logs/o.log o;
        server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
                 ssl_certificate %s; ssl_certificate_key %s; keepalive_requests 1000; }""" % certs["a"],
                       binary=NGINX, files={"index.html": "from the tls origin\n",
                                            "big.bin": FILES["big.bin"]})


def test_proxy_to_https_origin(make_server, certs):
    origin = tls_origin(make_server, certs)
    a_cert, b_cert = certs["a"][0], certs["b"][0]
    s = make_server("""
        upstream ka { server 127.0.0.1:%d; keepalive 4; }
        server { listen 127.0.0.1:%%%%PORT%%%%;
            location / { proxy_pass https://127.0.0.1:%d; }
            location /ka/ { proxy_pass https://ka/; proxy_http_version 1.1;
                            proxy_set_header Connection ""; }
            location /sni/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_server_name on;
                             proxy_ssl_name localhost; }
            location /sniport/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_server_name on;
                                 proxy_ssl_name $http_x_name; proxy_ssl_session_reuse off; }
            location /sniip/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_server_name on; }
            location /verified/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_verify on;
                                  proxy_ssl_name localhost; proxy_ssl_trusted_certificate %s; }
            location /wrongname/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_verify on;
                                   proxy_ssl_name b.test; proxy_ssl_trusted_certificate %s; }
            location /untrusted/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_verify on;
                                   proxy_ssl_name localhost; proxy_ssl_trusted_certificate %s; }
        }""" % (origin.port, origin.port, origin.port, origin.port, origin.port, origin.port, a_cert,
                origin.port, a_cert, origin.port, b_cert))
    r = s.get("/index.html")
    assert r.status == 200 and r.body == b"from the tls origin\n"
    r = s.get("/big.bin")
    assert r.status == 200 and r.body == FILES["big.bin"]
    # Without keepalive each request is a new connection: the second resumes the first's session.
    assert s.get("/index.html").status == 200
    for _ in range(3):
        assert s.get("/ka/index.html").status == 200
    assert s.get("/sni/index.html").status == 200
    # As nginx, a port is cut off the name (from $http_host, say) and an address is never sent.
    assert s.get("/sniport/index.html", headers={"X-Name": "localhost:8443"}).status == 200
    assert s.get("/sniport/index.html", headers={"X-Name": "[::1]:8443"}).status == 200
    assert s.get("/sniip/index.html").status == 200
    assert s.get("/verified/index.html").status == 200
    assert s.get("/wrongname/index.html").status == 502
    assert s.get("/untrusted/index.html").status == 502
    log = log_lines(origin, "logs/o.log", n=11)
    plain = [l.split("|") for l in log[:3]]
    assert [p[0] for p in plain] == ["-", "-", "-"]  # no SNI unless asked
    assert plain[2][1] == "r", plain  # proxy_ssl_session_reuse
    ka = [l.split("|")[2] for l in log[3:6]]
    assert len(set(ka)) == 1, ka  # one kept connection for the three
    assert log[6].split("|")[0] == "localhost"  # proxy_ssl_server_name + proxy_ssl_name
    assert [l.split("|")[0] for l in log[7:10]] == ["localhost", "-", "-"]
    err = open(s.path("logs/error.log")).read()
    assert 'upstream SSL certificate does not match "b.test" while SSL handshaking to upstream' in err
    assert "upstream SSL certificate verify error: (18:self-signed certificate)" in err


def test_certificates_by_variables_and_data_as_nginx(make_server, certs):
    """ssl_certificate with variables (each handshake's, after SNI; names by the configuration's
    directory) and with "data:" and the PEM itself, as nginx: each name gets its own certificate,
    one without files fails the handshake with nginx's log line."""
    (ac, ak), (bc, bk) = certs["a"], certs["b"]
    pem = lambda f: open(f).read().strip()
    conf = """
        server { listen 127.0.0.1:%%%%PORT0%%%% ssl; server_name localhost b.test c.test;
                 ssl_certificate $ssl_server_name.crt; ssl_certificate_key $ssl_server_name.key;
                 location / { return 200 "by name $ssl_server_name\\n"; } }
        server { listen 127.0.0.1:%%%%PORT1%%%% ssl;
                 ssl_certificate "data:%s"; ssl_certificate_key "data:%s";
                 location / { return 200 "from data\\n"; } }
    """ % (pem(bc), pem(bk))
    results = []
    for binary in (WEIR, NGINX):
        s = make_server(conf, binary=binary, ports=2, start=False)
        for name, (c, k) in (("localhost", (ac, ak)), ("b.test", (bc, bk))):
            s.write(s.path("conf/%s.crt" % name), open(c).read())
            s.write(s.path("conf/%s.key" % name), open(k).read())
        s.start()
        got = [curl(s.ports[0], "/", ac, host="localhost")[1:3],
               curl(s.ports[0], "/", bc, host="b.test")[1:3],
               curl(s.ports[0], "/", bc, host="c.test")[0],
               curl(s.ports[1], "/", bc, host="b.test")[1:3]]
        wait_for(lambda: "cannot load certificate" in s.error_log(), what="log line")
        line = [l for l in s.error_log().splitlines() if "cannot load certificate" in l][0]
        line = line.replace(s.dir, "DIR")
        results.append((got, re.sub(r"^.*?\*\d+ ", "", line).split(" while ")[0]))
    assert results[0][0][0] == (b"by name localhost\n", "200|")
    assert results[0][0][1] == (b"by name b.test\n", "200|")
    assert results[0][0][2] != 0
    assert results[0][0][3] == (b"from data\n", "200|")
    assert results[0] == results[1]


def make_crl(certs, name, revoke):
    """A CRL issued by certificate `a` (self-signed, so its own CA): empty, or revoking `a` itself."""
    d = tempfile.mkdtemp(prefix="weir-crl-", dir=certs["dir"])
    cnf = os.path.join(d, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\n"
                "default_md = sha256\ndefault_crl_days = 2\n" % (d, d))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("01\n")
    cert, key = certs["a"]
    ca = ["openssl", "ca", "-config", cnf, "-keyfile", key, "-cert", cert]
    if revoke:
        subprocess.run(ca + ["-revoke", cert], check=True, capture_output=True)
    out = os.path.join(certs["dir"], name)
    subprocess.run(ca + ["-gencrl", "-out", out], check=True, capture_output=True)
    os.chmod(out, 0o644)
    return out


def test_proxy_ssl_crl(make_server, certs):
    """proxy_ssl_crl: the origin's certificate checked against revocation lists, as nginx: a
    revoked one fails verification (502, nginx's log line), one the list does not name passes."""
    origin = tls_origin(make_server, certs)
    empty, revoked = make_crl(certs, "empty.crl", False), make_crl(certs, "revoked.crl", True)
    loc = """location /%s/ { proxy_pass https://127.0.0.1:%d/; proxy_ssl_verify on;
                 proxy_ssl_name localhost; proxy_ssl_trusted_certificate %s; proxy_ssl_crl %s; }"""
    s = make_server("server { listen 127.0.0.1:%%%%PORT%%%%; %s %s }" % (
        loc % ("ok", origin.port, certs["a"][0], empty),
        loc % ("revoked", origin.port, certs["a"][0], revoked)))
    assert s.get("/ok/index.html").status == 200
    assert s.get("/revoked/index.html").status == 502
    err = open(s.path("logs/error.log")).read()
    assert "upstream SSL certificate verify error: (23:certificate revoked)" in err


def test_ocsp_stapling_as_nginx(make_server, certs):
    """ssl_stapling with ssl_stapling_file staples that response ('openssl s_client -status'
    shows it); without a file and with no responder URL in the certificate, nginx's warning and
    no staple."""
    d = certs["dir"]
    cert, key = certs["a"]
    req, resp, index = (os.path.join(d, n) for n in ("req.der", "resp.der", "index.txt"))
    serial = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial"], capture_output=True,
                            text=True, check=True).stdout.strip().split("=")[1]
    with open(index, "w") as f:
        f.write("V\t301231235959Z\t\t%s\tunknown\t/CN=localhost\n" % serial)
    subprocess.run(["openssl", "ocsp", "-issuer", cert, "-cert", cert, "-reqout", req, "-no_nonce"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "ocsp", "-index", index, "-rsigner", cert, "-rkey", key, "-CA", cert,
                    "-reqin", req, "-respout", resp, "-ndays", "2"], check=True, capture_output=True)
    os.chmod(resp, 0o644)
    http = """server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
              ssl_stapling on; ssl_stapling_verify on; %s }"""
    for binary in (WEIR, NGINX):
        s = make_server(http % (cert, key, "ssl_stapling_file %s;" % resp), binary=binary,
                        files={"index.html": "x"})
        out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % s.port, "-status",
                              "-servername", "localhost"], input=b"", capture_output=True, timeout=10)
        assert b"OCSP Response Status: successful" in out.stdout, (binary, out.stdout[:500])
        assert b"Cert Status: good" in out.stdout
        s.stop()
        rc, err = check_conf(binary, http % (cert, key, ""))
        assert rc == 0 and '"ssl_stapling" ignored, issuer certificate not found for certificate "%s"' % cert in err
        rc, err = check_conf(binary, http % (cert, key, "ssl_trusted_certificate %s;" % cert))
        assert rc == 0 and '"ssl_stapling" ignored, no OCSP responder URL in the certificate "%s"' % cert in err


def ocsp_certificate(d, name, url):
    """A self-signed certificate (its own issuer) whose Authority Information Access names url."""
    return make_certificate(d, name, ("-addext", "authorityInfoAccess=OCSP;URI:" + url))


class OcspResponder:
    """Debian's `openssl ocsp` as the responder, answering for cert from an index that says it is
    good (V) or revoked (R), signed by the certificate itself."""

    def __init__(self, d, cert, key, port, revoked=False):
        serial = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial"], capture_output=True,
                                text=True, check=True).stdout.strip().split("=")[1]
        index = os.path.join(d, "index-%d.txt" % port)
        with open(index, "w") as f:
            if revoked:
                f.write("R\t301231235959Z\t241201000000Z\t%s\tunknown\t/CN=localhost\n" % serial)
            else:
                f.write("V\t301231235959Z\t\t%s\tunknown\t/CN=localhost\n" % serial)
        # It serves one connection at a time and waits for a request on each: a probe that
        # connects and says nothing would stall it, so its own word says it listens.
        out = os.path.join(d, "ocsp-%d.log" % port)
        with open(out, "w") as f:
            self.proc = subprocess.Popen(["openssl", "ocsp", "-index", index, "-port", str(port),
                                          "-rsigner", cert, "-rkey", key, "-CA", cert, "-ndays", "1"],
                                         stdout=f, stderr=subprocess.STDOUT)
        wait_for(lambda: "waiting for OCSP client connections" in open(out).read(),
                 what="openssl ocsp listening")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def stapled(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-status",
                          "-servername", "localhost"], input=b"", capture_output=True, timeout=10).stdout
    return b"OCSP Response Status: successful" in out and b"Cert Status: good" in out


def test_ocsp_stapling_fetched_from_the_responder_as_nginx(make_server, certs):
    """ssl_stapling without a file: the worker asks the certificate's OCSP responder (Debian's
    `openssl ocsp`) itself, as nginx: the first handshake goes without a staple and starts the fetch,
    later ones carry the verified response. ssl_stapling_responder overrides the certificate's URL;
    a revoked status and an unreachable responder staple nothing and log nginx's lines; the server
    answers throughout."""
    d = tempfile.mkdtemp(prefix="weir-ocsp-", dir=certs["dir"])
    os.chmod(d, 0o755)
    good_port, revoked_port, closed_port = free_port(), free_port(), free_port()
    cert, key = ocsp_certificate(d, "ocsp", "http://127.0.0.1:%d/" % good_port)
    good = OcspResponder(d, cert, key, good_port)
    revoked = OcspResponder(d, cert, key, revoked_port, revoked=True)
    http = """server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
              ssl_stapling on; ssl_stapling_verify on; ssl_trusted_certificate %s; %s
              location / { return 200 "up\\n"; } }"""
    try:
        logs = {}
        for binary in (WEIR, NGINX):
            s = make_server(http % (cert, key, cert, ""), binary=binary)
            assert not stapled(s.port), binary  # the first handshake starts the fetch
            wait_for(lambda: stapled(s.port), what="a stapled response from %s" % binary)
            s.stop()
            for name, port in (("revoked", revoked_port), ("closed", closed_port)):
                s = make_server(http % (cert, key, cert, "ssl_stapling_responder http://127.0.0.1:%d/;" % port),
                                binary=binary)
                assert not stapled(s.port)
                path = s.path("logs/error.log")
                wait_for(lambda: "while requesting certificate status" in open(path).read(), what="log line")
                assert not stapled(s.port)
                assert curl(s.port, "/", cert)[1:3] == (b"up\n", "200|")
                s.stop()
                line = [x for x in open(path).read().splitlines() if "requesting certificate status" in x][0]
                logs[binary, name] = line.split("] ", 1)[1].split(": ", 1)[1]
        assert logs[WEIR, "revoked"] == logs[NGINX, "revoked"], logs
        assert logs[WEIR, "revoked"].startswith('certificate status "revoked" in the OCSP response while '
                                                'requesting certificate status, responder: 127.0.0.1, peer: ')
        assert logs[WEIR, "closed"] == logs[NGINX, "closed"], logs
        assert "failed (111: Connection refused) while requesting certificate status" in logs[WEIR, "closed"]
        # A responder that takes the connection and never answers: weir's graceful stop does not
        # wait for the fetch (nginx waits out its 60 s timeout).
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        silent.settimeout(10)
        try:
            s = make_server(http % (cert, key, cert, "ssl_stapling_responder http://127.0.0.1:%d/;"
                                    % silent.getsockname()[1]))
            assert not stapled(s.port)
            conn, _ = silent.accept()  # the fetch is under way
            s.stop(timeout=10)
            conn.close()
        finally:
            silent.close()
    finally:
        good.stop()
        revoked.stop()


def test_ocsp_stapling_responder_by_name_as_nginx(make_server, certs):
    """A responder named by host: resolved at load and, with no `resolver`, asked at those addresses
    with nginx's warning on each fetch; the staple comes all the same."""
    d = tempfile.mkdtemp(prefix="weir-ocsp-", dir=certs["dir"])
    os.chmod(d, 0o755)
    port = free_port()
    cert, key = ocsp_certificate(d, "named", "http://localhost:%d/" % port)
    responder = OcspResponder(d, cert, key, port)
    http = """server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
              ssl_stapling on; ssl_stapling_verify on; ssl_trusted_certificate %s; }""" % (cert, key, cert)
    try:
        lines = {}
        for binary in (WEIR, NGINX):
            s = make_server(http, binary=binary)
            assert not stapled(s.port), binary
            wait_for(lambda: stapled(s.port), what="a stapled response from %s" % binary)
            s.stop()
            lines[binary] = [x.split("] ", 1)[1].split(": ", 1)[1] for x in open(s.path("logs/error.log"))
                             if "requesting certificate status" in x]
        assert lines[WEIR] == lines[NGINX], lines
        assert lines[WEIR][0] == ('no resolver defined to resolve localhost while requesting certificate status, '
                                  'responder: localhost, certificate: "%s"\n' % cert)
    finally:
        responder.stop()


def early_data_request(port, d, path):
    """A resumed TLS 1.3 connection (openssl s_client) that sends its request as early data: the
    answer's last line, and whether the server accepted the early data."""
    sess, req = os.path.join(d, "sess-%d.pem" % port), os.path.join(d, "req-%d.txt" % port)
    with open(req, "w") as f:
        f.write("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path)
    if not os.path.exists(sess):
        # A first, full handshake for the ticket (the server closes after its answer).
        subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3", "-quiet",
                        "-sess_out", sess], input=b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=10)
    # -ign_eof: the answer is read to the server's close (Connection: close).
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3", "-ign_eof",
                          "-sess_in", sess, "-early_data", req], input=b"", capture_output=True,
                         timeout=10).stdout.decode(errors="replace")
    lines = [l for l in out.splitlines() if l.startswith("HTTP/1.1") or l.startswith("early=")]
    return lines, "Early data was accepted" in out


def test_early_data_as_nginx(make_server, certs):
    """ssl_early_data: a resumed TLS 1.3 client's request sent as 0-RTT data is read before the
    handshake completes and answered, with $ssl_early_data "1" while the handshake is still to finish
    (so that `if ($ssl_early_data) { return 425; }` refuses what must not be replayed); a full
    handshake's request has it empty. Whether the client's Finished comes before the request is
    looked at is a race on 127.0.0.1, in nginx as in weir: each server is asked until it has shown
    both answers. A ticket may be used again (nginx leaves replays to the application)."""
    cert, key = certs["a"]
    http = """server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
                       ssl_protocols TLSv1.2 TLSv1.3; ssl_early_data on;
                       location / { return 200 "early=$ssl_early_data\\n"; }
                       location /pay { if ($ssl_early_data) { return 425; } return 200 "early=paid\\n"; } }"""
    for binary in (WEIR, NGINX):
        d = tempfile.mkdtemp(prefix="weir-early-", dir=certs["dir"])
        s = make_server(http % (cert, key), binary=binary)
        seen = set()

        def ask():
            for path in ("/x", "/pay"):
                lines, accepted = early_data_request(s.port, d, path)
                assert accepted, (binary, path)
                assert lines in (["HTTP/1.1 200 OK", "early=1"], ["HTTP/1.1 200 OK", "early="],
                                 ["HTTP/1.1 425 "], ["HTTP/1.1 200 OK", "early=paid"]), (binary, lines)
                seen.add(tuple(lines))
            return ("HTTP/1.1 200 OK", "early=1") in seen and ("HTTP/1.1 425 ",) in seen
        wait_for(ask, timeout=60, what="%s answering in early data" % binary)
        assert curl(s.port, "/y", cert)[1] == b"early=\n"
        s.stop()


def client_certs(certs):
    """A CA ("Test CA") and client certificates it signed: alice (serial 0x1234) and bob. Returns the
    CA's certificate and {name: (certificate, key)}."""
    d = certs["dir"]
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    made = {"alice": (os.path.join(d, "alice.crt"), os.path.join(d, "alice.key")),
            "bob": (os.path.join(d, "bob.crt"), os.path.join(d, "bob.key"))}
    if os.path.exists(made["bob"][0]):
        return ca_crt, made

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    run("req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=Test CA/O=weir tests", *ec, "-keyout", ca_key,
        "-out", ca_crt)
    for serial, (name, (crt, key)) in zip(("4660", "4661"), made.items()):
        csr = crt[:-4] + ".csr"
        run("req", "-new", "-nodes", "-subj", "/CN=%s/O=users" % name, *ec, "-keyout", key, "-out", csr)
        run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", serial, "-days", "2",
            "-out", crt)
        os.chmod(crt, 0o644)
        os.chmod(key, 0o644)
    os.chmod(ca_key, 0o644)
    os.chmod(ca_crt, 0o644)
    return ca_crt, made


def test_proxy_ssl_certificate_as_nginx(make_server, certs):
    """proxy_ssl_certificate and _key: a fixed client certificate, one named with variables for each
    connection (relative names by the configuration's directory; an empty name sends none), and
    "data:" with the PEM itself, beside Debian's nginx against an origin that asks for client
    certificates: the origin sees the same certificates, and one that cannot be loaded is a 500
    with nginx's log line."""
    ca_crt, clients = client_certs(certs)
    origin = make_server("""
        server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
                 ssl_certificate %s; ssl_certificate_key %s; ssl_client_certificate %s;
                 ssl_verify_client optional;
                 location / { return 200 "$ssl_client_verify $ssl_client_s_dn\n"; } }"""
                         % (*certs["a"], ca_crt), binary=NGINX)
    pem = lambda f: open(f).read().strip()
    front = """
        map $http_x_user $user_cert { default ""; alice alice.crt; bob bob.crt; eve eve.crt; }
        map $http_x_user $user_key { default ""; alice alice.key; bob bob.key; eve eve.key; }
        server { listen 127.0.0.1:%%%%PORT%%%%;
            proxy_ssl_session_reuse off;
            location /fixed/ { proxy_pass https://127.0.0.1:%d/;
                               proxy_ssl_certificate %s; proxy_ssl_certificate_key %s; }
            location /byname/ { proxy_pass https://127.0.0.1:%d/;
                                proxy_ssl_certificate $user_cert; proxy_ssl_certificate_key $user_key; }
            location /keyname/ { proxy_pass https://127.0.0.1:%d/;
                                 proxy_ssl_certificate %s; proxy_ssl_certificate_key $http_x_user.key; }
            location /data/ { proxy_pass https://127.0.0.1:%d/;
                              proxy_ssl_certificate "data:%s"; proxy_ssl_certificate_key "data:%s"; }
            location /none/ { proxy_pass https://127.0.0.1:%d/; }
        }""" % (origin.port, *clients["alice"], origin.port, origin.port, clients["bob"][0], origin.port,
                pem(clients["bob"][0]), pem(clients["bob"][1]), origin.port)
    requests = [("/fixed/", None), ("/byname/", "alice"), ("/byname/", "bob"), ("/byname/", None),
                ("/byname/", "eve"), ("/keyname/", "bob"), ("/data/", None), ("/none/", None)]
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(front, binary=binary, start=False)
        for name, (crt, key) in clients.items():
            s.write(s.path("conf/%s.crt" % os.path.basename(crt)[:-4]), open(crt).read())
            s.write(s.path("conf/%s.key" % os.path.basename(key)[:-4]), open(key).read())
        s.start()
        got = []
        for path, user in requests:
            r = s.get(path, headers={"X-User": user} if user else {})
            got.append((path, user, r.status, r.body if r.status == 200 else b""))
        wait_for(lambda: "cannot load certificate" in s.error_log(), what="log line")
        line = [l for l in s.error_log().splitlines() if "cannot load certificate" in l][0]
        seen[s.name] = (got, re.sub(r"^.*?\*\d+ ", "", line.replace(s.dir, "DIR")).split(", client:")[0])
        s.stop()
    assert seen["weir"] == seen["nginx"], seen
    got, line = seen["weir"]
    assert [g[3] for g in got] == [b"SUCCESS O=users,CN=alice\n", b"SUCCESS O=users,CN=alice\n",
                                   b"SUCCESS O=users,CN=bob\n", b"NONE \n", b"", b"SUCCESS O=users,CN=bob\n",
                                   b"SUCCESS O=users,CN=bob\n", b"NONE \n"], got
    assert got[4][2] == 500
    assert line.startswith('cannot load certificate "DIR/conf/eve.crt": BIO_new_file() failed'), line


def test_client_certificates_as_nginx(make_server, certs):
    """ssl_verify_client on / optional / optional_no_ca with ssl_client_certificate: a client
    signed by the CA passes ($ssl_client_verify SUCCESS and its names); none is 496, a stranger's
    is 495 (nginx's pages and log lines); optional lets none through; optional_no_ca lets an
    unknown CA through with FAILED in the variable."""
    ca_crt, clients = client_certs(certs)
    cl_crt, cl_key = clients["alice"]
    stranger = certs["b"]
    http = """
    log_format cc '$uri|$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_serial|$ssl_client_fingerprint|$ssl_client_v_remain';
    access_log %%%%DIR%%%%/logs/cc.log cc;
    server { listen 127.0.0.1:%%%%PORT0%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s; ssl_client_certificate %s;
             ssl_verify_client on; }
    server { listen 127.0.0.1:%%%%PORT1%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s; ssl_client_certificate %s;
             ssl_verify_client optional; }
    server { listen 127.0.0.1:%%%%PORT2%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s; ssl_verify_client optional_no_ca; }
    """ % ((*certs["a"], ca_crt) * 2 + certs["a"])
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(http, binary=binary, ports=3, files={"index.html": "hi\n"})
        got = []
        for port, who in ((0, "alice"), (0, None), (0, "stranger"), (1, None), (1, "alice"),
                          (2, "stranger")):
            extra = ()
            if who == "alice":
                extra = ("--cert", cl_crt, "--key", cl_key)
            elif who == "stranger":
                extra = ("--cert", stranger[0], "--key", stranger[1])
            rc, body, tail, err = curl(s.ports[port], "/index.html", certs["a"][0], extra=extra)
            got.append((port, who, rc, tail, body.split(b"<title>")[1].split(b"</title>")[0]
                        if b"<title>" in body else body))
        wait_for(lambda: len(open(s.path("logs/cc.log")).readlines()) == 6, what="log lines")
        log = open(s.path("logs/error.log")).read()
        # $ssl_client_v_remain (last) counts whole days left: 1 or 2 for a 2-day certificate,
        # depending on the second the request came in.
        lines = open(s.path("logs/cc.log")).read().splitlines()
        assert all(l.rsplit("|", 1)[1] in ("", "-", "1", "2") for l in lines), [l.rsplit("|", 1)[1] for l in lines]
        seen[s.name] = (got, [l.rsplit("|", 1)[0] for l in lines],
                        log.count("client sent no required SSL certificate"),
                        log.count("client SSL certificate verify error: (18:self-signed certificate)"))
        s.stop()
    for a, b in zip(seen["weir"][1], seen["nginx"][1]):
        assert a == b, (a, b)
    assert seen["weir"] == seen["nginx"], seen
    got, lines, none, bad = seen["weir"]
    assert [g[3] for g in got] == ["200|", "400|", "400|", "200|", "200|", "200|"]
    assert got[1][4] == b"400 No required SSL certificate was sent"
    assert got[2][4] == b"400 The SSL certificate error"
    assert lines[0].startswith("/index.html|SUCCESS|O=users,CN=alice|O=weir tests,CN=Test CA|1234|")
    assert (none, bad) == (1, 1)


def test_failed_client_certificate_forgets_the_session_as_nginx(make_server, certs):
    """A client whose certificate failed verification (495) is not let back in on its session:
    the session leaves the cache (shared and builtin), so its next connection makes a full handshake,
    as nginx's; a good one resumes."""
    ca, clients = client_certs(certs)
    bad = certs["a"]  # self-signed: not from the CA
    d = tempfile.mkdtemp(prefix="weir-sess-", dir=certs["dir"])
    sc, sk = certs["b"]

    def connect(port, cert, sess_arg, sess):
        """A connection that asks for / with its status line, and whether the session was resumed."""
        args = ["openssl", "s_client", "-tls1_2", "-connect", "127.0.0.1:%d" % port, "-ign_eof", sess_arg, sess]
        if cert is not None:
            args += ["-cert", cert[0], "-key", cert[1]]
        out = subprocess.run(args, input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=20).stdout
        status = re.search(rb"HTTP/1\.1 (\d+)", out)
        return (status.group(1).decode() if status else "", b"\nReused, " in out)

    seen = {}
    for cache in ("shared:SSL:1m", "builtin"):
        for binary in (WEIR, NGINX):
            s = make_server("""server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
                 ssl_protocols TLSv1.2; ssl_session_tickets off; ssl_session_cache %s;
                 ssl_verify_client optional; ssl_client_certificate %s; location / { return 200 "ok\\n"; } }"""
                            % (sc, sk, cache, ca), binary=binary)
            out = []
            for i, cert in enumerate((clients["alice"], bad)):
                sess = os.path.join(d, "%s-%d-%d.pem" % (cache.split(":")[0], s.port, i))
                out.append([connect(s.port, cert, "-sess_out", sess), connect(s.port, cert, "-sess_in", sess)])
            s.stop()
            seen[cache, binary] = out
    for cache in ("shared:SSL:1m", "builtin"):
        assert seen[cache, WEIR] == seen[cache, NGINX], seen
        assert seen[cache, WEIR] == [[("200", False), ("200", True)], [("400", False), ("400", False)]], seen


def test_client_certificate_texts_alpn_and_tcpinfo_as_nginx(make_server, certs):
    """$ssl_client_raw_cert, $ssl_client_cert (a tab after each inner line break),
    $ssl_client_escaped_cert, the legacy one-line names, $ssl_alpn_protocol (what ALPN chose, or
    nothing) and the $tcpinfo_* numbers, beside Debian's nginx on the same client certificate."""
    client = certs["b"]  # any certificate: optional_no_ca takes it unverified
    http = """
    server { listen 127.0.0.1:%%%%PORT%%%% ssl; server_name localhost;
             ssl_certificate %s; ssl_certificate_key %s; ssl_verify_client optional_no_ca;
             location /raw { return 200 "$ssl_client_raw_cert"; }
             location /cert { return 200 "$ssl_client_cert"; }
             location /escaped { return 200 "$ssl_client_escaped_cert"; }
             location /names { return 200 "$ssl_client_s_dn_legacy|$ssl_client_i_dn_legacy|$ssl_client_s_dn"; }
             location /alpn { return 200 "[$ssl_alpn_protocol]"; }
             location /tcp { return 200 "$tcpinfo_rtt $tcpinfo_rttvar $tcpinfo_snd_cwnd $tcpinfo_rcv_space"; } }
    """ % certs["a"]
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(http, binary=binary)
        got = {}
        for path in ("/raw", "/cert", "/escaped", "/names"):
            rc, body, tail, err = curl(s.port, path, certs["a"][0],
                                       extra=("--cert", client[0], "--key", client[1]))
            assert rc == 0 and tail == "200|", (binary, path, err)
            got[path] = body
        got["/alpn h1"] = curl(s.port, "/alpn", certs["a"][0], extra=("--http1.1",))[1]
        got["/alpn none"] = curl(s.port, "/alpn", certs["a"][0], extra=("--no-alpn",))[1]
        tcp = curl(s.port, "/tcp", certs["a"][0])[1].split()
        assert len(tcp) == 4 and all(x.isdigit() for x in tcp) and int(tcp[2]) > 0, tcp
        seen[binary] = got
        s.stop()
    assert seen[WEIR] == seen[NGINX]
    got = seen[WEIR]
    pem = open(client[0], "rb").read()
    assert got["/raw"] == pem
    assert got["/cert"] == pem.rstrip(b"\n").replace(b"\n", b"\n\t")
    assert got["/escaped"].startswith(b"-----BEGIN%20CERTIFICATE-----%0A") and got["/escaped"].endswith(b"%0A")
    assert got["/names"] == b"/CN=b.test|/CN=b.test|CN=b.test"
    assert got["/alpn h1"] == b"[http/1.1]" and got["/alpn none"] == b"[]"
