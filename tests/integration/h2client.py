"""A frame-level HTTP/2 client for tests, on Debian's python3-h2: requests on streams of one
connection, flow control left to the test (a window that stays shut until the test opens it),
resets, and the frames the server sent (GOAWAY, RST_STREAM, WINDOW_UPDATE) as h2's events."""
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class Stream:
    def __init__(self):
        self.headers = None
        self.trailers = None
        self.body = b""
        self.ended = False
        self.reset = None  # the RST_STREAM error code the server sent


class H2:
    def __init__(self, port, settings=None, tls=False, auto_window=True, timeout=10):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_window = auto_window
        self.streams = {}
        self.goaway = None  # the GOAWAY event, once it came
        self.closed = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True, authority="localhost"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", authority)] + list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=body is None and end)
        self.streams[sid] = Stream()
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        """Sends what the windows allow now; the rest as they open (pumping frames meanwhile)."""
        while body:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.read_once()
                continue
            self.conn.send_data(sid, body[:room])
            body = body[room:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def reset(self, sid, code=8):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def read_once(self):
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            # Frames after a GOAWAY that closed h2's side: the connection is over for the test.
            self.closed = True
            return
        for ev in events:
            self.on_event(ev)
        try:
            self.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def on_event(self, ev):
        s = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            s.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.TrailersReceived):
            s.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            s.body += ev.data
            if self.auto_window and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            s.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if s is not None:
                s.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev

    def wait(self, cond, timeout=10, what="condition"):
        deadline = time.time() + timeout
        while not cond():
            if self.closed or time.time() > deadline:
                raise AssertionError("%s: not reached (closed=%s)" % (what, self.closed))
            self.read_once()

    def response(self, sid, timeout=10):
        s = self.streams[sid]
        self.wait(lambda: s.ended or s.reset is not None, timeout, "stream %d" % sid)
        return s

    def open_window(self, sid, n):
        self.conn.increment_flow_control_window(n, stream_id=sid)
        self.conn.increment_flow_control_window(n)
        self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
