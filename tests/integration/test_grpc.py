"""grpc_pass (#14) with a real gRPC server and client from Debian's python3-grpcio, beside Debian's
nginx on the same configuration: grpcs:// with verification and ALPN, unary calls with metadata and trailers, an error status that
comes as trailers alone, a server stream of 6 MiB (the response under HTTP/2 flow control), a
client stream of 4 MiB (the request body streamed within the upstream's window), a bidirectional
stream that goes message by message (the request side goes on after the response header), a
backend that is down (UNAVAILABLE), and the access log's upstream fields."""
import os
import shutil
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest

from conftest import NGINX, WEIR, check_conf, free_port, make_certificate, wait_for, weir_and_nginx

CHUNK = 64 * 1024


def unary(request, context):
    md = dict(context.invocation_metadata())
    context.set_trailing_metadata((("x-trailer", "t-" + md.get("x-token", "none")),))
    context.send_initial_metadata((("x-initial", "i-" + md.get("x-token", "none")),))
    return request[::-1]


def peer(request, context):
    return context.peer().encode()


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def server_stream(request, context):
    count = int(request)
    for i in range(count):
        yield bytes([i % 251]) * CHUNK


def client_stream(requests, context):
    total, first = 0, None
    for m in requests:
        total += len(m)
        first = m[:1] if first is None else first
    return b"%d|%s" % (total, first or b"")


def slow_client_stream(requests, context):
    """Reads nothing for half a second, then slowly: the client's messages wait in the
    flow-control windows."""
    time.sleep(0.5)
    total = 0
    for m in requests:
        time.sleep(0.005)
        total += len(m)
    return b"%d" % total


def bidi(requests, context):
    for m in requests:
        yield b"echo:" + m


class Backend:
    """A gRPC server on 127.0.0.1 with generic handlers over raw bytes (no protobuf); over TLS when
    given a certificate and key (PEM bytes)."""

    def __init__(self, tls=None):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Peer": grpc.unary_unary_rpc_method_handler(peer),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "SlowClientStream": grpc.stream_unary_rpc_method_handler(slow_client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        if tls is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials(((tls[1], tls[0]),))
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()

    def stop(self):
        self.server.stop(None)


@pytest.fixture(scope="module")
def backend():
    b = Backend()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def certificate():
    d = tempfile.mkdtemp(prefix="weir-grpc-")
    os.chmod(d, 0o755)
    yield make_certificate(d, "c", ("-addext", "subjectAltName=DNS:localhost"))
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_backend(certificate):
    crt, key = certificate
    b = Backend(tls=(open(crt, "rb").read(), open(key, "rb").read()))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def pair(backend, tls_backend, certificate):
    down = free_port()
    conf = """
    log_format g '$request|$status|$upstream_status|$upstream_addr|$http2';
    access_log %%%%DIR%%%%/logs/grpc.log g;
    upstream kept { server 127.0.0.1:%d; keepalive 4; }
    server {
        listen 127.0.0.1:%%%%PORT%%%% http2;
        client_max_body_size 0;
        location /test.Echo/ { grpc_pass grpc://127.0.0.1:%d; grpc_set_header X-Token "$http_x_token-via"; }
        location /down.Svc/ { grpc_pass 127.0.0.1:%d; }
        location /kept/ { rewrite ^/kept(/.*)$ $1 break; grpc_pass grpc://kept; }
        location /tls/ {
            rewrite ^/tls(/.*)$ $1 break;
            grpc_pass grpcs://127.0.0.1:%d; grpc_ssl_verify on; grpc_ssl_trusted_certificate %s;
            grpc_ssl_name localhost; grpc_ssl_server_name on;
        }
    }
    """ % (backend.port, backend.port, down, tls_backend.port, certificate[0])
    yield from weir_and_nginx(conf, {})


def channel(port):
    return grpc.insecure_channel("127.0.0.1:%d" % port)


def each(pair, fn):
    """fn(port) against weir and nginx: both answers."""
    return [fn(s.port) for s in pair]


def test_unary_with_metadata_and_trailers_as_nginx(pair):
    def call(port):
        with channel(port) as ch:
            resp, c = ch.unary_unary("/test.Echo/Unary").with_call(b"hello grpc", metadata=(("x-token", "abc"),),
                                                                    timeout=10)
            return (resp, c.code(), dict(c.initial_metadata()).get("x-initial"),
                    dict(c.trailing_metadata()).get("x-trailer"))
    w, n = each(pair, call)
    assert w == n
    # grpc_set_header replaced the client's field with its own value.
    assert w == (b"cprg olleh", grpc.StatusCode.OK, "i-abc-via", "t-abc-via")


def test_grpcs_with_verification_as_nginx(pair):
    """grpcs:// with the peer's certificate verified, SNI, and h2 offered by ALPN (a gRPC server
    over TLS refuses a client that does not)."""
    def call(port):
        with channel(port) as ch:
            got = list(ch.unary_stream("/tls/test.Echo/ServerStream")(b"20", timeout=10))
            return ch.unary_unary("/tls/test.Echo/Unary")(b"secure", timeout=10), len(got)
    w, n = each(pair, call)
    assert w == n == (b"eruces", 20)


def test_upstream_keepalive_as_nginx(pair):
    """With an upstream block's keepalive, calls from different clients go one after another on one
    upstream connection (its HTTP/2 session kept with it); without it each call has a connection of
    its own. (A call the backend answers before the request's end, as a failing one may be, ends
    its connection, in nginx as in weir: the stream was not closed cleanly both ways.)"""
    def peers(port, prefix):
        out = []
        for i in range(5):
            with channel(port) as ch:
                out.append(ch.unary_unary(prefix + "/test.Echo/Peer")(b"", timeout=10))
                if i == 3:
                    assert len(list(ch.unary_stream(prefix + "/test.Echo/ServerStream")(b"40", timeout=10))) == 40
        return out
    for s in pair:
        kept = peers(s.port, "/kept")
        # The four calls before the stream share one connection. After the stream, the client may
        # close its channel before the proxy has seen the stream end both ways (a race on a loaded
        # machine, in nginx as in weir): then the fifth comes on a new one.
        assert len(set(kept[:4])) == 1 and len(set(kept)) <= 2, (s.binary, kept)
        assert len(set(peers(s.port, ""))) == 5, s.binary


def test_error_status_in_trailers_only_as_nginx(pair):
    def call(port):
        with channel(port) as ch:
            try:
                ch.unary_unary("/test.Echo/Fail")(b"x", timeout=10)
            except grpc.RpcError as e:
                return e.code(), e.details()
        return None
    w, n = each(pair, call)
    assert w == n == (grpc.StatusCode.NOT_FOUND, "no such thing")


def test_server_stream_of_6_mib(pair):
    def call(port):
        with channel(port) as ch:
            got = list(ch.unary_stream("/test.Echo/ServerStream")(b"96", timeout=30))
            return len(got), sum(len(m) for m in got), all(m == bytes([i % 251]) * CHUNK for i, m in enumerate(got))
    w, n = each(pair, call)
    assert w == n == (96, 96 * CHUNK, True)


def test_client_stream_of_4_mib(pair):
    def call(port):
        with channel(port) as ch:
            msgs = (bytes([7]) * CHUNK for _ in range(64))
            return ch.stream_unary("/test.Echo/ClientStream")(msgs, timeout=30)
    w, n = each(pair, call)
    assert w == n == b"%d|\x07" % (64 * CHUNK)


def test_client_stream_to_a_slow_reader(pair):
    """8 MiB to a backend that reads a message every 5 ms: weir holds at most its share of the body
    while the upstream's window is shut, and takes more from the client as it opens."""
    def call(port):
        with channel(port) as ch:
            msgs = (bytes([1]) * CHUNK for _ in range(128))
            return ch.stream_unary("/test.Echo/SlowClientStream")(msgs, timeout=60)
    w, n = each(pair, call)
    assert w == n == b"%d" % (128 * CHUNK)


def test_client_cancel_mid_stream(pair):
    """The client cancels a server stream after two messages: the upstream stream ends with it, and
    the next call is served."""
    for s in pair:
        with channel(s.port) as ch:
            call = ch.unary_stream("/test.Echo/ServerStream")(b"100000", timeout=30)
            it = iter(call)
            assert len(next(it)) == CHUNK and len(next(it)) == CHUNK
            call.cancel()
            assert ch.unary_unary("/test.Echo/Unary")(b"after", timeout=10) == b"retfa"
    err = open(pair[0].path("logs/error.log")).read()
    assert "[alert]" not in err and "[crit]" not in err, err


def test_bidirectional_stream_message_by_message(pair):
    """Each message is answered before the next is sent: the request's body goes on after the
    response header went to the client."""
    def call(port):
        with channel(port) as ch:
            out = []
            cond = threading.Condition()
            sent = []

            def requests():
                for i in range(20):
                    with cond:
                        # The next message only once the answer to the last one came.
                        cond.wait_for(lambda: len(out) == len(sent), timeout=10)
                        if len(out) != len(sent):
                            return
                    sent.append(i)
                    yield b"m%d" % i
            for m in ch.stream_stream("/test.Echo/Bidi")(requests(), timeout=30):
                with cond:
                    out.append(m)
                    cond.notify_all()
            return out
    w, n = each(pair, call)
    assert w == n == [b"echo:m%d" % i for i in range(20)]


def test_backend_down_is_unavailable_and_logged_as_nginx(pair):
    def call(port):
        with channel(port) as ch:
            try:
                ch.unary_unary("/down.Svc/Call")(b"x", timeout=10)
            except grpc.RpcError as e:
                return e.code()
    w, n = each(pair, call)
    assert w == n == grpc.StatusCode.UNAVAILABLE
    for s in pair:
        with channel(s.port) as ch:
            assert ch.unary_unary("/test.Echo/Unary")(b"ok", timeout=10) == b"ko"
        path = s.path("logs/grpc.log")
        wait_for(lambda: "POST /down.Svc/Call HTTP/2.0|502|502|" in open(path).read(), what="log line")
        wait_for(lambda: "POST /test.Echo/Unary HTTP/2.0|200|200|127.0.0.1:" in open(path).read(),
                 what="log line")  # written when the stream closes, after the client has the answer
    err = open(pair[0].path("logs/error.log")).read()
    assert "connect() failed (111: Connection refused) while connecting to upstream" in err
    assert 'upstream: "grpc://127.0.0.1:' in err


def test_load_messages():
    rc, err = check_conf(WEIR, "server { location / { grpc_pass grpc://127.0.0.1:1; grpc_pass grpc://127.0.0.1:2; } }")
    assert rc == 1 and '"grpc_pass" directive is duplicate' in err, err
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { grpc_pass grpcs://127.0.0.1:1; grpc_ssl_verify on; } }")
        assert rc == 1 and "no grpc_ssl_trusted_certificate for grpc_ssl_verify" in err, (binary, err)
    rc, err = check_conf(WEIR, "server { location / { grpc_pass 127.0.0.1:1; grpc_read_timeout 5s;"
                               " grpc_next_upstream error timeout http_502; grpc_hide_header x-a; } }")
    assert rc == 0, err
    for binary in (WEIR, NGINX):
        rc, err = check_conf(binary, "server { location / { grpc_buffering off; } }")
        assert rc == 1 and 'unknown directive "grpc_buffering"' in err, (binary, err)
