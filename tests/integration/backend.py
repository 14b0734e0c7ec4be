"""A scripted HTTP/1.x origin for upstream tests: an asyncio server on 127.0.0.1 (a free port) in its
own thread, whose answer to each request is a script of steps, so a test can make it misbehave
exactly: send bytes, pause, reset, close early, answer 1xx, chunk a body, echo an upgraded
connection, or never answer.

    with Backend() as b:
        b.script("/slow", [Send(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n"), Sleep(1), Send(b"ok")])
        b.script("/reset", [Reset()])
        ... point weir's proxy_pass at 127.0.0.1:b.port ...
        b.requests  # every request it read: (method, target, headers dict, body)

A path with no script answers 200 with "backend <path>". Every step list ends the connection unless its
last step is KeepOpen(). A script made with early=True runs as soon as the request header is read, while
the body is read by its framing alongside (full duplex, as a server that answers an upload early), and
the next request is read only after both. Backend(rcvbuf=N) keeps the upstream connections' receive
buffers small, so a large request body cannot hide in the kernel. Backend(drop_reused="close" or
"reset") plays an upstream that closed an idle keep-alive connection just as the proxy reused it:
a request that is not the first on its connection is read and then dropped unanswered;
Backend(idle_close=seconds) closes a connection that waits that long for its next request, as
Node.js, gunicorn and Go servers do. Backend(host="127.0.0.2", port=p) listens on another loopback
address (the same port on several addresses: one name resolving to them). Bounded: the server stops with the
test (stop()), each Sleep is capped."""
import asyncio
import socket
import struct
import threading


class Send:
    def __init__(self, data):
        self.data = data if isinstance(data, bytes) else data.encode("latin-1")


class Sleep:
    def __init__(self, seconds):
        self.seconds = min(float(seconds), 30.0)


class Wait:
    """Waits until the test sets a threading.Event (at most 30 s): a step that follows what the
    client has seen, not a guess of time."""

    def __init__(self, event):
        self.event = event


class Reset:
    """Closes with a TCP reset (SO_LINGER 0)."""


class Close:
    """Closes the connection (FIN) at this point."""


class Echo:
    """Sends back every byte read until the client closes (an upgraded connection's far end)."""


class KeepOpen:
    """Reads the next request on the same connection (keep-alive)."""


def response(status=200, body=b"", headers=None, reason="OK"):
    """A complete response as one Send step."""
    body = body if isinstance(body, bytes) else body.encode()
    head = "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, reason, len(body))
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    return Send(head.encode("latin-1") + b"\r\n" + body)


def chunked(pieces, headers=None):
    """A chunked 200 response as one Send step per piece."""
    head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    steps = [Send(head.encode("latin-1") + b"\r\n")]
    for p in pieces:
        p = p if isinstance(p, bytes) else p.encode()
        steps.append(Send(b"%x\r\n" % len(p) + p + b"\r\n"))
    steps.append(Send(b"0\r\n\r\n"))
    return steps


class Backend:
    def __init__(self, port=0, rcvbuf=0, drop_reused=None, idle_close=None, host="127.0.0.1"):
        self.scripts = {}
        self.idle_close = idle_close
        self.drop_reused = drop_reused
        self.dropped = 0
        self.early = set()
        self.requests = []
        self.bodies_read = 0  # request bodies read to their end (an early answer's too, before it is sent)
        self.connections = 0
        self.closed = 0  # connections ended (by either side)
        self.echo_closed = False
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # accepted sockets inherit it
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._run, daemon=True)

    def script(self, path, steps, early=False):
        """steps: a list, or a function of (method, target, headers) that returns one per request."""
        self.scripts[path] = steps if callable(steps) else list(steps)
        if early:
            self.early.add(path)

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, sock=self._sock))
        self._ready.set()
        self._loop.run_forever()
        # Connections still open at stop end here, quietly.
        tasks = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for t in tasks:
            t.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _read_head(self, reader):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        return method, target, headers

    async def _read_body(self, reader, headers):
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        return body

    def _body_done(self, task):
        if not task.cancelled() and task.exception() is None:
            self.bodies_read += 1

    async def _serve(self, reader, writer):
        self.connections += 1
        served = 0
        try:
            while True:
                try:
                    head = self._read_head(reader)
                    if self.idle_close and served:
                        head = asyncio.wait_for(head, self.idle_close)
                    method, target, headers = await head
                    path = target.split("?")[0]
                    early = path in self.early
                    body_read = asyncio.ensure_future(self._read_body(reader, headers))
                    body_read.add_done_callback(self._body_done)
                    if not early:
                        self.requests.append((method, target, headers, await body_read))
                except (asyncio.IncompleteReadError, ConnectionError, ValueError,
                        asyncio.TimeoutError):
                    return
                served += 1
                if served > 1 and self.drop_reused:
                    self.dropped += 1
                    if self.drop_reused == "reset":
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                    return
                steps = self.scripts.get(path, [response(200, "backend %s" % path), KeepOpen()])
                if callable(steps):
                    steps = steps(method, target, headers)
                keep = False
                for step in steps:
                    if isinstance(step, Send):
                        writer.write(step.data)
                        await writer.drain()
                    elif isinstance(step, Sleep):
                        await asyncio.sleep(step.seconds)
                    elif isinstance(step, Wait):
                        # In the loop's thread pool: a thousand waiting connections cost a few
                        # threads, not a thousand polls.
                        await self._loop.run_in_executor(None, step.event.wait, 30)
                    elif isinstance(step, Reset):
                        sock = writer.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        writer.transport.abort()
                        return
                    elif isinstance(step, Close):
                        break
                    elif isinstance(step, Echo):
                        while True:
                            data = await reader.read(65536)
                            if not data:
                                break
                            writer.write(data)
                            await writer.drain()
                        self.echo_closed = True
                        break
                    elif isinstance(step, KeepOpen):
                        keep = True
                if early:
                    try:
                        self.requests.append((method, target, headers, await body_read))
                    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                        self.requests.append((method, target, headers, None))  # the body never ended
                        return
                if not keep:
                    return
        finally:
            self.closed += 1
            if not writer.is_closing():
                writer.close()
