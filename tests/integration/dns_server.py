"""A scripted DNS server for resolver tests: UDP on 127.0.0.1 (a free port) in its own thread,
answering A and AAAA questions from a table (and SRV ones from another), NXDOMAIN for names it does not know, and nothing at all
for names listed as silent (so a query times out). It counts the questions it was asked."""
import socket
import struct
import threading


class DnsServer:
    def __init__(self, records=None, ttl=60, silent=(), srv=None):
        self.records = dict(records or {})  # name -> list of IPv4/IPv6 texts
        self.srv = dict(srv or {})  # name -> list of (priority, weight, port, target)
        self.ttl = ttl
        self.silent = set(silent)
        self.questions = []  # (name, qtype)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join(5)
        self.sock.close()

    def asked(self, name):
        return sum(1 for n, _ in self.questions if n == name)

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def _answer(self, data):
        if len(data) < 12:
            return None
        qid, _, qdcount = struct.unpack("!HHH", data[:6])
        pos, labels = 12, []
        while pos < len(data) and data[pos] != 0:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        pos += 1
        qtype, _ = struct.unpack("!HH", data[pos:pos + 4])
        question = data[12:pos + 4]
        name = ".".join(labels).lower()
        self.questions.append((name, qtype))
        if name in self.silent:
            return None
        if qtype == 33 and name in self.srv:
            answers = []
            for prio, weight, port, target in self.srv[name]:
                rdata = struct.pack("!HHH", prio, weight, port) + b"".join(
                    bytes([len(p)]) + p.encode() for p in target.split(".")) + b"\0"
                answers.append(struct.pack("!HHHIH", 0xC00C, 33, 1, self.ttl, len(rdata)) + rdata)
            head = struct.pack("!HHHHHH", qid, 0x8180, 1, len(answers), 0, 0)
            return head + question + b"".join(answers)
        if name not in self.records:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = []
        for addr in self.records[name]:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            if (qtype == 1 and family == socket.AF_INET) or (qtype == 28 and family == socket.AF_INET6):
                rdata = socket.inet_pton(family, addr)
                answers.append(struct.pack("!HHHIH", 0xC00C, qtype, 1, self.ttl, len(rdata)) + rdata)
        head = struct.pack("!HHHHHH", qid, 0x8180, 1, len(answers), 0, 0)
        return head + question + b"".join(answers)
