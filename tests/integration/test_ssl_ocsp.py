"""Client certificate chains checked beside Debian's nginx on the same configuration: ssl_ocsp (each
certificate asked about at its OCSP responder after the handshake; Debian's `openssl ocsp` as the
responders), ssl_ocsp_cache, ssl_crl and ssl_verify_depth. A test CA ("root") signs an intermediate
CA whose Authority Information Access names one responder; the intermediate signs the clients'
certificates, whose AIA names another. Each case compares the status, what $ssl_client_verify says
and the error log's lines."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import pytest

from conftest import NGINX, WEIR, check_conf, free_port, http_get, wait_for
from dns_server import DnsServer


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def serial_of(crt):
    out = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-serial"], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("=")[1]


class Pki:
    """root -> intermediate -> alice (good), bob (revoked), carol (no responder URL); the intermediate
    good at the root's responder, or revoked at a second one."""

    def __init__(self, d):
        self.d = d
        self.leaf_port, self.inter_port, self.inter_revoked_port = free_port(), free_port(), free_port()
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        self.root, self.root_key = self.path("root.crt"), self.path("root.key")
        openssl("req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=OCSP Test Root", *ec,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign",
                "-keyout", self.root_key, "-out", self.root)
        self.inter, self.inter_key = self.sign("inter", self.root, self.root_key, "4096",
                                               "basicConstraints=critical,CA:TRUE\n"
                                               "keyUsage=keyCertSign,cRLSign\n"
                                               "authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/"
                                               % self.inter_port)
        self.inter_revoked, _ = self.sign("inter-revoked", self.root, self.root_key, "4097",
                                          "basicConstraints=critical,CA:TRUE\n"
                                          "keyUsage=keyCertSign,cRLSign\n"
                                          "authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/"
                                          % self.inter_revoked_port, key=self.inter_key)
        aia = "authorityInfoAccess=OCSP;URI:http://127.0.0.1:%d/\n" % self.leaf_port
        self.clients = {}
        named = "authorityInfoAccess=OCSP;URI:http://ocsp.test:%d/\n" % self.leaf_port
        for name, serial, ext in (("alice", "4660", aia), ("bob", "4661", aia), ("carol", "4662", ""),
                                  ("dave", "4663", named)):
            crt, key = self.sign(name, self.inter, self.inter_key, serial, ext + "basicConstraints=CA:FALSE")
            chain = self.path(name + "-chain.pem")
            with open(chain, "w") as f:
                f.write(open(crt).read() + open(self.inter).read())
            os.chmod(chain, 0o644)
            self.clients[name] = (chain, key)
        # The same leaf presented with the intermediate the root's responder says is revoked.
        chain = self.path("alice-chain-revoked-ca.pem")
        with open(chain, "w") as f:
            f.write(open(self.path("alice.crt")).read() + open(self.inter_revoked).read())
        os.chmod(chain, 0o644)
        self.clients["alice-revoked-ca"] = (chain, self.clients["alice"][1])
        self.responders = []

    def path(self, name):
        return os.path.join(self.d, name)

    def sign(self, name, ca, ca_key, serial, ext, key=None):
        crt, csr, extfile = self.path(name + ".crt"), self.path(name + ".csr"), self.path(name + ".ext")
        if key is None:
            key = self.path(name + ".key")
            openssl("req", "-new", "-nodes", "-subj", "/CN=%s" % name, "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", key, "-out", csr)
        else:
            openssl("req", "-new", "-subj", "/CN=inter", "-key", key, "-out", csr)  # the same CA again
        with open(extfile, "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", serial, "-days", "2",
                "-extfile", extfile, "-out", crt)
        for f in (crt, key):
            os.chmod(f, 0o644)
        return crt, key

    def responder(self, port, ca, ca_key, entries):
        """`openssl ocsp` on port for ca's certificates: entries are (certificate, "V" or "R")."""
        index = self.path("index-%d.txt" % port)
        with open(index, "w") as f:
            for crt, state in entries:
                revoked = "241201000000Z" if state == "R" else ""
                serial = serial_of(crt)
                f.write("%s\t301231235959Z\t%s\t%s\tunknown\t/CN=%s\n" % (state, revoked, serial, serial))
        out = self.path("ocsp-%d.log" % port)
        with open(out, "w") as f:
            proc = subprocess.Popen(["openssl", "ocsp", "-index", index, "-port", str(port), "-rsigner", ca,
                                     "-rkey", ca_key, "-CA", ca, "-ndays", "1"], stdout=f, stderr=subprocess.STDOUT)
        self.responders.append(proc)
        wait_for(lambda: "waiting for OCSP client connections" in open(out).read(), what="openssl ocsp listening")
        return proc

    def start(self):
        self.leaf_responder = self.responder(self.leaf_port, self.path("inter.crt"), self.inter_key,
                                             [(self.path("alice.crt"), "V"), (self.path("bob.crt"), "R"),
                                              (self.path("dave.crt"), "V")])
        self.responder(self.inter_port, self.root, self.root_key, [(self.inter, "V")])
        self.responder(self.inter_revoked_port, self.root, self.root_key, [(self.inter_revoked, "R")])

    def stop(self):
        for p in self.responders:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="weir-ocsp-")
    os.chmod(d, 0o755)
    p = Pki(d)
    p.start()
    yield p
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


def server_conf(pki, ocsp, extra="", depth=2):
    crt, key = pki.path("server.crt"), pki.path("server.key")
    if not os.path.exists(crt):
        openssl("req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-keyout", key, "-out", crt)
        for f in (crt, key):
            os.chmod(f, 0o644)
    return """log_format v '$status $ssl_client_verify';
    server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s;
             access_log %%%%DIR%%%%/logs/verify.log v;
             ssl_verify_client on; ssl_client_certificate %s; ssl_verify_depth %d;
             ssl_ocsp %s; %s
             location / { return 200 "$ssl_client_verify\\n"; } }""" % (crt, key, pki.root, depth, ocsp, extra)


def curl(port, client, http2=False):
    """(status, body) for a request with client's certificate chain and key."""
    chain, key = client
    out = subprocess.run(["curl", "-sk", "--max-time", "20", "--cert", chain, "--key", key, "-w", "|%{http_code}",
                          "--http2" if http2 else "--http1.1", "https://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("|")
    return code, body.strip() if code == "200" else ""


def error_lines(s):
    """The error log's lines from the message on: no time, no pid, no connection number."""
    out = []
    for line in open(s.path("logs/error.log")).read().splitlines():
        if "[notice]" in line or "] " not in line:
            continue
        msg = line.split("] ", 1)[1].split(": ", 1)[1]
        if msg.startswith("*"):
            msg = msg.split(" ", 1)[1]
        out.append(msg.split(", client:")[0].split(", server:")[0])
    return out


def run_both(make_server, pki, ocsp, clients, extra="", http2=False, between=None, depth=2):
    """Each binary's answers to clients in turn, the access log's lines and the error log's lines."""
    seen = {}
    for binary in (WEIR, NGINX):
        s = make_server(server_conf(pki, ocsp, extra, depth), binary=binary)
        answers = []
        for i, name in enumerate(clients):
            if between is not None and i > 0:
                between(i)
            answers.append(curl(s.port, pki.clients[name], http2))
        path = s.path("logs/verify.log")
        wait_for(lambda: len(open(path).read().splitlines()) >= len(clients), what="access log")
        s.stop()
        seen[binary] = (answers, open(path).read().splitlines(), error_lines(s))
    return seen


def test_leaf_checked_as_nginx(make_server, pki):
    """ssl_ocsp leaf: alice's certificate is good and served, bob's is revoked (400, nginx's words
    in $ssl_client_verify and the log), carol's names no responder (the check fails); the
    intermediate is not asked about."""
    seen = run_both(make_server, pki, "leaf", ["alice", "bob", "carol", "alice-revoked-ca"])
    assert seen[WEIR] == seen[NGINX], seen
    answers, access, errors = seen[WEIR]
    assert answers == [("200", "SUCCESS"), ("400", ""), ("400", ""), ("200", "SUCCESS")]
    assert access == ["200 SUCCESS", "400 FAILED:certificate revoked",
                      "400 FAILED:certificate status request failed", "200 SUCCESS"]
    assert "client SSL certificate verify error: certificate revoked while reading client request headers" \
        in errors
    assert "no OCSP responder URL in certificate while SSL handshaking" in errors


def test_chain_checked_as_nginx(make_server, pki):
    """ssl_ocsp on: the intermediate is asked about too, at its own responder: a revoked
    intermediate fails a good leaf. Over HTTP/2 as well."""
    for http2 in (False, True):
        seen = run_both(make_server, pki, "on", ["alice", "alice-revoked-ca", "bob"], http2=http2)
        assert seen[WEIR] == seen[NGINX], seen
        assert seen[WEIR][1] == ["200 SUCCESS", "400 FAILED:certificate revoked", "400 FAILED:certificate revoked"]


def test_responder_override_and_failures_as_nginx(make_server, pki):
    """ssl_ocsp_responder replaces the certificates' URLs (carol has none of her own); a responder
    that refuses the connection, or a certificate it does not know, fails the check with nginx's
    lines."""
    here = "ssl_ocsp_responder http://127.0.0.1:%d/;" % pki.leaf_port
    seen = run_both(make_server, pki, "leaf", ["alice", "carol"], extra=here)
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][1] == ["200 SUCCESS", "400 FAILED:certificate status unknown"]
    closed = free_port()
    seen = run_both(make_server, pki, "leaf", ["alice"], extra="ssl_ocsp_responder http://127.0.0.1:%d;" % closed)
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][1] == ["400 FAILED:certificate status request failed"]
    context = " while requesting certificate status, responder: 127.0.0.1, peer: 127.0.0.1:%d" % closed
    assert seen[WEIR][2][:2] == ["recv() failed (111: Connection refused)" + context,
                                 "OCSP responder prematurely closed connection" + context]
    named = "ssl_ocsp_responder http://localhost:%d/;" % pki.leaf_port
    seen = run_both(make_server, pki, "leaf", ["alice"], extra=named)
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][1] == ["200 SUCCESS"]
    assert "no resolver defined to resolve localhost while requesting certificate status, responder: localhost" \
        in seen[WEIR][2]


def test_responder_named_in_certificate_as_nginx(make_server, pki):
    """A certificate whose responder is named by host: resolved with the server's resolver when asked
    (the DNS server is asked), and without one the check fails with nginx's line."""
    with DnsServer({"ocsp.test": ["127.0.0.1"]}) as dns:
        seen = run_both(make_server, pki, "leaf", ["dave"], extra="resolver 127.0.0.1:%d ipv6=off;" % dns.port)
        assert seen[WEIR] == seen[NGINX], seen
        assert seen[WEIR][1] == ["200 SUCCESS"]
        assert dns.asked("ocsp.test")
    seen = run_both(make_server, pki, "leaf", ["dave"])
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][1] == ["400 FAILED:certificate status request failed"]
    assert "no resolver defined to resolve ocsp.test while requesting certificate status, responder: ocsp.test" \
        in seen[WEIR][2]
    with DnsServer({}) as dns:
        seen = run_both(make_server, pki, "leaf", ["dave"], extra="resolver 127.0.0.1:%d ipv6=off;" % dns.port)
    assert seen[WEIR] == seen[NGINX], seen
    assert "ocsp.test could not be resolved (3: Host not found) while requesting certificate status, " \
        "responder: ocsp.test" in seen[WEIR][2]


def test_cache_as_nginx(make_server, pki):
    """ssl_ocsp_cache: an answer is kept in the shared zone, so a second connection is served while
    the responder is down; without the cache it fails."""
    def responder_down(i):
        pki.leaf_responder.kill()
        pki.leaf_responder.wait()

    def responder_up(i):
        pki.leaf_responder = pki.responder(pki.leaf_port, pki.path("inter.crt"), pki.inter_key,
                                           [(pki.path("alice.crt"), "V"), (pki.path("bob.crt"), "R"),
                                            (pki.path("dave.crt"), "V")])

    results = {}
    for cache in ("ssl_ocsp_cache shared:ocsp:1m;", "ssl_ocsp_cache off;"):
        seen = {}
        for binary in (WEIR, NGINX):
            s = make_server(server_conf(pki, "leaf", cache), binary=binary)
            answers = [curl(s.port, pki.clients["alice"]), curl(s.port, pki.clients["bob"])]
            responder_down(0)
            try:
                answers += [curl(s.port, pki.clients["alice"]), curl(s.port, pki.clients["bob"])]
            finally:
                responder_up(0)
            s.stop()
            seen[binary] = answers
        assert seen[WEIR] == seen[NGINX], (cache, seen)
        results[cache] = seen[WEIR]
    assert [a[0] for a in results["ssl_ocsp_cache shared:ocsp:1m;"]] == ["200", "400", "200", "400"]
    assert [a[0] for a in results["ssl_ocsp_cache off;"]] == ["200", "400", "400", "400"]


@pytest.mark.parametrize("directives, message", [
    ("ssl_verify_client optional_no_ca; ssl_ocsp on;",
     '"ssl_ocsp" is incompatible with "ssl_verify_client optional_no_ca"'),
    ("ssl_ocsp_cache shared:x;", 'invalid OCSP cache "shared:x"'),
    ("ssl_ocsp_cache builtin;", 'invalid OCSP cache "builtin"'),
    ("ssl_ocsp_cache shared:x:8k;", 'OCSP cache "shared:x:8k" is too small'),
    ("ssl_ocsp_cache off; ssl_ocsp_cache off;", '"ssl_ocsp_cache" directive is duplicate'),
    ("ssl_ocsp maybe;", 'invalid value "maybe"'),
    ("ssl_verify_client on; ssl_client_certificate %(root)s; ssl_ocsp on; ssl_ocsp_responder ftp://x/;",
     'invalid URL prefix in OCSP responder "ftp://x/" in "ssl_ocsp_responder"'),
    ("ssl_verify_client on; ssl_client_certificate %(root)s; ssl_ocsp on; "
     "ssl_ocsp_responder http://127.0.0.1:99999/;",
     'invalid port in OCSP responder "127.0.0.1:99999/" in "ssl_ocsp_responder"'),
    ("ssl_ocsp_responder ftp://x/;", None),  # not checked while ssl_ocsp is off
    ("ssl_verify_client on; ssl_client_certificate %(root)s; ssl_ocsp leaf; "
     "ssl_ocsp_cache shared:OCSP:1m; ssl_session_cache shared:SSL:1m;", None),
])
def test_load_errors_as_nginx(pki, directives, message):
    crt, key = pki.path("server.crt"), pki.path("server.key")
    if not os.path.exists(crt):
        server_conf(pki, "off")
    http = "server { listen 127.0.0.1:%%%%PORT%%%% ssl; ssl_certificate %s; ssl_certificate_key %s; %s }" % (
        crt, key, directives % {"root": pki.root})
    verdicts = {}
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, http)
        verdicts[binary] = rc
        if message is None:
            assert rc == 0, (binary, err)
        else:
            assert rc != 0 and message in err, (binary, err)
    assert verdicts[WEIR] == verdicts[NGINX]


def test_client_gone_while_waiting_as_nginx(make_server, pki):
    """A responder that takes the connection and never answers: the client's handshake waits, and
    client_header_timeout ends the wait (nginx's "client timed out"), the fetch with it; the server
    goes on answering, and a graceful stop does not wait for anything."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        extra = "client_header_timeout 1s; ssl_ocsp_responder http://127.0.0.1:%d/;" % silent.getsockname()[1]
        seen = {}
        for binary in (WEIR, NGINX):
            s = make_server(server_conf(pki, "leaf", extra), binary=binary)
            code = curl(s.port, pki.clients["alice"])[0]
            status = http_get(s.port, "/").status  # plain HTTP to the TLS port: the server still answers
            s.stop(timeout=10)
            seen[binary] = (code, status, [line for line in error_lines(s) if "timed out" in line])
        assert seen[WEIR] == seen[NGINX], seen
        assert seen[WEIR] == ("000", 400, ["client timed out (110: Connection timed out) while SSL handshaking"])
    finally:
        silent.close()


def make_crl(pki, name, ca, ca_key, revoked=()):
    """A CRL that ca issues, revoking the certificates given."""
    d = pki.path("crl-" + name)
    os.makedirs(d, exist_ok=True)
    cnf = os.path.join(d, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\ncrlnumber = %s/crlnumber\n"
                "default_md = sha256\ndefault_crl_days = 2\n" % (d, d))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("01\n")
    cmd = ["-config", cnf, "-keyfile", ca_key, "-cert", ca]
    for crt in revoked:
        openssl("ca", *cmd, "-revoke", crt)
    out = pki.path(name + ".crl")
    openssl("ca", *cmd, "-gencrl", "-out", out)
    os.chmod(out, 0o644)
    return out


def test_client_chain_crl_and_depth_as_nginx(make_server, pki):
    """The chain's other checks, beside nginx: ssl_crl with a list from each CA (bob revoked by the
    intermediate's), with only the intermediate's (every level needs one), and ssl_verify_depth too
    small for the chain (0: no intermediate)."""
    inter = make_crl(pki, "inter", pki.inter, pki.inter_key, [pki.path("bob.crt")])
    root = make_crl(pki, "root", pki.root, pki.root_key)
    both = pki.path("both.crl")
    with open(both, "w") as f:
        f.write(open(inter).read() + open(root).read())
    os.chmod(both, 0o644)
    cases = [("ssl_crl %s;" % both, 2, ["200 SUCCESS", "400 FAILED:certificate revoked"]),
             ("ssl_crl %s;" % inter, 2, ["400 FAILED:unable to get certificate CRL"] * 2),
             ("", 0, ["400 FAILED:unable to get local issuer certificate"] * 2)]
    for extra, depth, want in cases:
        seen = run_both(make_server, pki, "off", ["alice", "bob"], extra=extra, depth=depth)
        assert seen[WEIR] == seen[NGINX], (extra, seen)
        if want is not None:
            assert seen[WEIR][1] == want, (extra, seen[WEIR])


def test_cache_shared_by_workers_and_kept_across_reload(make_server, pki):
    """ssl_ocsp_cache's zone is every worker's, and a reload keeps it (same name and size): with the
    responder gone after the first answer, two workers and then the new workers still find it."""
    s = make_server(server_conf(pki, "leaf", "ssl_ocsp_cache shared:ocsp:1m;"), main_conf="worker_processes 2;")
    wait_for(lambda: len(s.worker_pids()) == 2, what="two workers")
    assert curl(s.port, pki.clients["alice"]) == ("200", "SUCCESS")
    pki.leaf_responder.kill()
    pki.leaf_responder.wait()
    try:
        assert [curl(s.port, pki.clients["alice"]) for _ in range(6)] == [("200", "SUCCESS")] * 6
        old = set(s.worker_pids())
        s.send_signal(signal.SIGHUP)
        wait_for(lambda: not set(s.worker_pids()) & old and len(s.worker_pids()) == 2, what="new workers")
        assert [curl(s.port, pki.clients["alice"]) for _ in range(4)] == [("200", "SUCCESS")] * 4
        # bob was never asked about: with the responder gone his check fails.
        assert curl(s.port, pki.clients["bob"])[0] == "400"
    finally:
        pki.leaf_responder = pki.responder(pki.leaf_port, pki.path("inter.crt"), pki.inter_key,
                                           [(pki.path("alice.crt"), "V"), (pki.path("bob.crt"), "R"),
                                            (pki.path("dave.crt"), "V")])


class BadResponder:
    """A responder that answers every request with the same bytes (after reading its head) and
    closes: the faults an OCSP client must survive."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    c.sendall(self.reply)
                except OSError:
                    pass

    def stop(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("reply, weir_says", [
    # nginx logs nothing for a status other than 200, and reads a long answer to 16 KiB and then
    # fails to decode it: weir says what happened.
    (b"HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "OCSP responder sent status 500"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n" + b"x" * 20000,
     "OCSP responder sent too long response"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html></html>", None),
    (b"HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\n" + b"\x30\x82garbage", None),
    (b"HTTP/1.0 200 OK\r\nContent-Type: appl", None),
    (b"garbage\r\n\r\n", None),
    (b"", None),
], ids=["500", "too-long", "html", "bad-der", "cut-header", "not-http", "empty"])
def test_responder_faults_as_nginx(make_server, pki, reply, weir_says):
    """Whatever a broken responder sends, the check fails (400, "certificate status request failed")
    with nginx's log line, and the server goes on."""
    bad = BadResponder(reply)
    try:
        seen = run_both(make_server, pki, "leaf", ["alice", "alice"],
                        extra="ssl_ocsp_responder http://127.0.0.1:%d/;" % bad.port)
    finally:
        bad.stop()
    for binary in (WEIR, NGINX):
        seen[binary] = (seen[binary][0], seen[binary][1],
                        [line.replace(":%d" % bad.port, ":PORT") for line in seen[binary][2]])
    if weir_says is not None:
        context = " while requesting certificate status, responder: 127.0.0.1, peer: 127.0.0.1:PORT"
        assert seen[WEIR][2].count(weir_says + context) == 2, seen[WEIR]
        seen[WEIR] = (seen[WEIR][0], seen[WEIR][1], [line for line in seen[WEIR][2] if line != weir_says + context])
        seen[NGINX] = (seen[NGINX][0], seen[NGINX][1],
                       [line for line in seen[NGINX][2] if "requesting certificate status" not in line])
    assert seen[WEIR] == seen[NGINX], seen
    assert seen[WEIR][1] == ["400 FAILED:certificate status request failed"] * 2
