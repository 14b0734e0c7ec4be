"""A MaxMind DB file writer for tests (the format libmaxminddb reads: a binary search tree of
24-bit records over IPv4, a data section of typed values, the metadata map after its marker).
Values: str, bytes, bool, float (double), dict, list, int (uint32), or (kind, n) with kind one of
u16, u32, i32, u64, f32."""
import struct


def _head(kind, size):
    ext = b"" if kind <= 7 else bytes([kind - 7])
    base = (kind if kind <= 7 else 0) << 5
    if size < 29:
        return bytes([base | size]) + ext
    if size < 285:
        return bytes([base | 29]) + ext + bytes([size - 29])
    if size < 65821:
        return bytes([base | 30]) + ext + struct.pack(">H", size - 285)
    return bytes([base | 31]) + ext + struct.pack(">I", size - 65821)[1:]


def encode(v):
    if isinstance(v, bool):
        return _head(14, 1 if v else 0)
    if isinstance(v, str):
        b = v.encode()
        return _head(2, len(b)) + b
    if isinstance(v, bytes):
        return _head(4, len(v)) + v
    if isinstance(v, float):
        return _head(3, 8) + struct.pack(">d", v)
    if isinstance(v, tuple):
        kind, n = v
        if kind == "i32":
            return _head(8, 4) + struct.pack(">i", n)
        if kind == "f32":
            return _head(15, 4) + struct.pack(">f", n)
        code, fmt = {"u16": (5, ">H"), "u32": (6, ">I"), "u64": (9, ">Q")}[kind]
        b = struct.pack(fmt, n).lstrip(b"\0")
        return _head(code, len(b)) + b
    if isinstance(v, int):
        return encode(("u32", v))
    if isinstance(v, list):
        return _head(11, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        return _head(7, len(v)) + b"".join(encode(k) + encode(x) for k, x in v.items())
    raise TypeError(v)


def mmdb(networks, build_epoch=1600000000, database_type="Weir-Test"):
    """The file's bytes: networks is [("a.b.c.d/n", record), ...]."""
    data = bytearray()
    nodes = [[None, None]]
    for net, record in networks:
        addr, bits = net.split("/")
        bits = int(bits)
        ip = struct.unpack(">I", bytes(int(x) for x in addr.split(".")))[0]
        offset = len(data)
        data += encode(record)
        n = 0
        for depth in range(bits):
            bit = (ip >> (31 - depth)) & 1
            if depth == bits - 1:
                nodes[n][bit] = ("data", offset)
            else:
                if nodes[n][bit] is None:
                    nodes.append([None, None])
                    nodes[n][bit] = ("node", len(nodes) - 1)
                n = nodes[n][bit][1]
    count = len(nodes)
    tree = bytearray()
    for pair in nodes:
        for r in pair:
            # Below the count: a node; the count: nothing; above: data, after a 16-byte separator.
            v = count if r is None else (r[1] if r[0] == "node" else count + 16 + r[1])
            tree += struct.pack(">I", v)[1:]
    meta = {"node_count": ("u32", count), "record_size": ("u16", 24), "ip_version": ("u16", 4),
            "database_type": database_type, "languages": ["en", "de"],
            "binary_format_major_version": ("u16", 2), "binary_format_minor_version": ("u16", 0),
            "build_epoch": ("u64", build_epoch), "description": {"en": "weir's test database"}}
    return bytes(tree + bytes(16) + data + b"\xab\xcd\xefMaxMind.com" + encode(meta))
