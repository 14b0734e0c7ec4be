"""mp4 (ngx_http_mp4_module, in Debian's nginx): MP4 files built here atom by atom (two tracks:
video with key frames, composition offsets, chunks of several sizes and an unknown atom or two;
audio with samples of one size and a version-1 mdhd), served by weir and by Debian's nginx on the
same configuration and compared answer by answer: the file whole, cut by ?start= and ?end= (moov
before or after mdat, stco or co64, mp4_start_key_frame), HEAD, POST, ranges over a cut, and the
broken files and limits that answer 500 with nginx's log line. Apart from nginx, a cut is parsed
back and each kept chunk offset checked to point at the sample bytes it should."""
import struct

import pytest

from conftest import parity_answer as answer
from conftest import weir_and_nginx

VIDEO_STTS = [(20, 100), (10, 50)]  # 30 samples, 2.5 s at 1000/s
VIDEO_SYNC = [1, 11, 19, 26]  # 19: a key frame in the first stts entry for one in the second
VIDEO_CTTS = [(10, 200), (10, 0), (10, 100)]
VIDEO_STSC = [(1, 4, 1), (5, 3, 1), (9, 2, 1)]  # 9 chunks
AUDIO_SAMPLES, AUDIO_PER_CHUNK, AUDIO_SIZE = 40, 5, 60  # 8 chunks, 0.1 s each at 8000/s


def box(name, payload):
    return struct.pack(">I", 8 + len(payload)) + name + payload


def full(name, version, payload, flags=0):
    return box(name, bytes([version]) + flags.to_bytes(3, "big") + payload)


MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def video_sizes():
    return [100 + (i * 37) % 50 for i in range(30)]


def chunk_samples(stsc, chunks):
    """Samples per chunk (1-based chunks) from stsc entries."""
    out = []
    for c in range(1, chunks + 1):
        n = [e[1] for e in stsc if e[0] <= c][-1]
        out.append(n)
    return out


def sample_bytes(track, i, size):
    return bytes([(track * 64 + i) % 256]) * size


def build(faststart=True, co64=False, offsets=None):
    """The file, and where each track's chunks are (filled by a first pass)."""
    vsizes = video_sizes()
    vchunks = chunk_samples(VIDEO_STSC, 9)
    achunks = [AUDIO_PER_CHUNK] * (AUDIO_SAMPLES // AUDIO_PER_CHUNK)
    # mdat: video chunk k, then audio chunk k, interleaved.
    mdat_payload, rel = b"", {0: [], 1: []}
    vi = ai = 0
    for k in range(max(len(vchunks), len(achunks))):
        if k < len(vchunks):
            rel[0].append(len(mdat_payload))
            for _ in range(vchunks[k]):
                mdat_payload += sample_bytes(0, vi, vsizes[vi])
                vi += 1
        if k < len(achunks):
            rel[1].append(len(mdat_payload))
            for _ in range(achunks[k]):
                mdat_payload += sample_bytes(1, ai, AUDIO_SIZE)
                ai += 1
    offs = offsets or {0: [0] * 9, 1: [0] * 8}

    def chunk_table(track):
        if co64:
            return full(b"co64", 0, struct.pack(">I", len(offs[track]))
                        + b"".join(struct.pack(">Q", o) for o in offs[track]))
        return full(b"stco", 0, struct.pack(">I", len(offs[track]))
                    + b"".join(struct.pack(">I", o) for o in offs[track]))

    dinf = box(b"dinf", full(b"dref", 0, struct.pack(">I", 1) + full(b"url ", 0, b"", flags=1)))
    vstbl = box(b"stbl",
                full(b"stsd", 0, struct.pack(">I", 1) + box(b"avc1", b"\0" * 70))
                + full(b"stts", 0, struct.pack(">I", len(VIDEO_STTS))
                       + b"".join(struct.pack(">II", *e) for e in VIDEO_STTS))
                + full(b"stss", 0, struct.pack(">I", len(VIDEO_SYNC))
                       + b"".join(struct.pack(">I", s) for s in VIDEO_SYNC))
                + full(b"ctts", 0, struct.pack(">I", len(VIDEO_CTTS))
                       + b"".join(struct.pack(">II", *e) for e in VIDEO_CTTS))
                + full(b"stsc", 0, struct.pack(">I", len(VIDEO_STSC))
                       + b"".join(struct.pack(">III", *e) for e in VIDEO_STSC))
                + full(b"stsz", 0, struct.pack(">II", 0, 30)
                       + b"".join(struct.pack(">I", s) for s in vsizes))
                + chunk_table(0)
                + full(b"sdtp", 0, b"\x10" * 30))  # not nginx's: left out of a cut
    vtrak = box(b"trak",
                full(b"tkhd", 0, struct.pack(">IIIII", 0, 0, 1, 0, 2500) + b"\0" * 8
                     + struct.pack(">HHHH", 0, 0, 0, 0) + MATRIX + struct.pack(">II", 320 << 16, 240 << 16), flags=3)
                + box(b"edts", full(b"elst", 0, struct.pack(">IIIHH", 1, 2500, 0, 1, 0)))
                + box(b"mdia",
                      full(b"mdhd", 0, struct.pack(">IIII", 0, 0, 1000, 2500) + struct.pack(">HH", 0x55c4, 0))
                      + full(b"hdlr", 0, b"\0" * 4 + b"vide" + b"\0" * 12 + b"VideoHandler\0")
                      + box(b"minf", full(b"vmhd", 0, b"\0" * 8, flags=1) + dinf + vstbl)))
    astbl = box(b"stbl",
                full(b"stsd", 0, struct.pack(">I", 1) + box(b"mp4a", b"\0" * 28))
                + full(b"stts", 0, struct.pack(">III", 1, AUDIO_SAMPLES, 800))
                + full(b"stsc", 0, struct.pack(">IIII", 1, 1, AUDIO_PER_CHUNK, 1))
                + full(b"stsz", 0, struct.pack(">II", AUDIO_SIZE, AUDIO_SAMPLES))
                + chunk_table(1))
    atrak = box(b"trak",
                full(b"tkhd", 0, struct.pack(">IIIII", 0, 0, 2, 0, 4000) + b"\0" * 8
                     + struct.pack(">HHHH", 0, 1, 0x100, 0) + MATRIX + struct.pack(">II", 0, 0), flags=3)
                + box(b"mdia",
                      full(b"mdhd", 1, struct.pack(">QQIQ", 0, 0, 8000, 32000) + struct.pack(">HH", 0x55c4, 0))
                      + full(b"hdlr", 0, b"\0" * 4 + b"soun" + b"\0" * 12 + b"SoundHandler\0")
                      + box(b"minf", full(b"smhd", 0, b"\0" * 4) + dinf + astbl)))
    mvhd = full(b"mvhd", 0, struct.pack(">IIII", 0, 0, 1000, 4000) + struct.pack(">IH", 0x10000, 0x100)
                + b"\0" * 10 + MATRIX + b"\0" * 24 + struct.pack(">I", 3))
    moov = box(b"moov", mvhd + vtrak + atrak + box(b"udta", box(b"name", b"clip")))
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    mdat = box(b"mdat", mdat_payload)
    if faststart:
        head = ftyp + moov + box(b"free", b"\0" * 16)
        data = head + mdat
        base = len(head) + 8
    else:
        data = ftyp + mdat + moov
        base = len(ftyp) + 8
    real = {t: [base + r for r in rel[t]] for t in rel}
    if offsets is None:
        return build(faststart, co64, real)
    return data


# The files, and broken ones: mdat cut short, a compressed moov, a moov too large for the limit.
FAST = build()
SLOW = build(faststart=False)
WIDE = build(co64=True)
CMOV = FAST.replace(b"mvhd", b"cmov", 1)
TRUNCATED = SLOW[:len(SLOW) - 200]
NO_MDAT = FAST[:FAST.index(b"free") - 4]
FILES = {"v/fast.mp4": FAST, "v/slow.mp4": SLOW, "v/wide.mp4": WIDE, "v/cmov.mp4": CMOV,
         "v/truncated.mp4": TRUNCATED, "v/nomdat.mp4": NO_MDAT,
         "v/cut.mp4": NO_MDAT + b"\0\0\0"}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /v/ { mp4; }
        location /key/ { mp4; mp4_start_key_frame on; alias %%DIR%%/html/v/; }
        location /small/ { mp4; mp4_buffer_size 1k; mp4_max_buffer_size 2k; alias %%DIR%%/html/v/; }
        location /tiny/ { mp4; mp4_buffer_size 512; alias %%DIR%%/html/v/; }
        location /limit/ { mp4; mp4_buffer_size 512; mp4_max_buffer_size 1k; alias %%DIR%%/html/v/; }
        location /cached/ { mp4; open_file_cache max=10; alias %%DIR%%/html/v/; }
    }
"""

CUTS = ["", "?start=0", "?start=1", "?start=1.05", "?start=0.5&end=2", "?end=1.5", "?start=2.2",
        "?start=3", "?start=3.9", "?start=5", "?start=abc", "?start=1.23456789", "?start=1&end=1",
        "?start=2&end=1", "?end=0", "?start=.", "?x=1&start=0.7&end=3.3"]
PATHS = (["/v/fast.mp4" + c for c in CUTS] + ["/v/slow.mp4" + c for c in CUTS]
         + ["/v/wide.mp4?start=1&end=3", "/v/wide.mp4?start=0.3",
            "/key/fast.mp4?start=1.05", "/key/fast.mp4?start=2.3&end=3", "/key/slow.mp4?start=0.15",
            "/key/fast.mp4?start=2.1", "/key/slow.mp4?start=2.1&end=3.5", "/key/wide.mp4?start=1.5",
            "/small/fast.mp4?start=1", "/small/slow.mp4?start=1", "/tiny/slow.mp4?start=1",
            "/tiny/fast.mp4?start=1&end=2",
            "/cached/fast.mp4?start=1", "/cached/slow.mp4?start=0.5&end=2.5",
            "/v/cmov.mp4?start=1", "/v/truncated.mp4?start=1", "/v/truncated.mp4",
            "/v/nomdat.mp4?start=1", "/v/cut.mp4?start=1", "/limit/slow.mp4?start=1",
            "/v/missing.mp4?start=1", "/v/", "/v/fast.mp4/"])


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


@pytest.mark.parametrize("method,extra", [("HEAD", ""), ("POST", ""),
                                          ("GET", "Range: bytes=0-99\r\n"),
                                          ("GET", "Range: bytes=-100\r\n"),
                                          ("GET", "Range: bytes=0-10,20-30\r\n"),
                                          ("GET", "Range: bytes=900-\r\n")])
def test_methods_and_ranges_as_nginx(pair, method, extra):
    weir, nginx = pair
    for path in ("/v/slow.mp4?start=1", "/v/fast.mp4?start=0.5&end=2"):
        assert answer(weir.port, path, method, extra) == answer(nginx.port, path, method, extra)


ERRORS = {"/v/cmov.mp4?start=1": "mp4 compressed moov atom (cmov) is not supported",
          "/v/truncated.mp4?start=1": "mp4 atom too large:1350",
          "/v/cut.mp4?start=1": "mp4 file truncated",
          "/v/nomdat.mp4?start=1": "no mp4 mdat atom was found in",
          "/limit/slow.mp4?start=1": "you may want to increase mp4_max_buffer_size",
          "/v/fast.mp4?start=5": "mp4 start time exceeds file duration"}


def test_errors_logged_as_nginx(pair):
    for s in pair:
        for path, words in ERRORS.items():
            assert answer(s.port, path)[0][0] == "HTTP/1.1 500 Internal Server Error"
            lines = [l for l in open(s.path("logs/error.log")).read().splitlines() if words in l]
            assert lines and lines[-1].split("[error]")[1].split(":", 1)[1].endswith(
                'client: 127.0.0.1, server: , request: "GET %s HTTP/1.1", host: "localhost"' % path), lines


def atoms(data, start=0, end=None):
    """(name, payload offset, payload end) of the atoms in data[start:end]."""
    end = len(data) if end is None else end
    out = []
    while start < end:
        size, name = struct.unpack(">I4s", data[start:start + 8])
        out.append((name, start + 8, start + size))
        start += size
    return out


def find(data, path, start=0, end=None):
    out = []
    name, rest = path[0], path[1:]
    for n, s, e in atoms(data, start, end):
        if n == name:
            out += find(data, rest, s, e) if rest else [(s, e)]
    return out


def test_a_cut_points_at_its_samples(pair):
    """?start=1&end=2: the video keeps samples 10..19 (1.0 s to 2.0 s at 0.1 s each), the audio
    samples 8..15; each kept chunk's new offset is where that chunk's first kept sample now is."""
    weir, _ = pair
    lines, body = answer(weir.port, "/v/slow.mp4?start=1&end=2")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert [a[0] for a in atoms(body)] == [b"ftyp", b"moov", b"mdat"]
    assert "Content-Length: %d" % len(body) in lines
    traks = find(body, [b"moov", b"trak"])
    assert len(traks) == 2
    first_samples = {0: 10, 1: 10}
    for track, (s, e) in enumerate(traks):
        (stco,) = find(body, [b"mdia", b"minf", b"stbl", b"stco"], s, e)
        count = struct.unpack(">I", body[stco[0] + 4:stco[0] + 8])[0]
        offsets = struct.unpack(">%dI" % count, body[stco[0] + 8:stco[0] + 8 + 4 * count])
        (stsz,) = find(body, [b"mdia", b"minf", b"stbl", b"stsz"], s, e)
        samples = struct.unpack(">I", body[stsz[0] + 8:stsz[0] + 12])[0]
        assert samples == (10 if track == 0 else AUDIO_SAMPLES)  # audio's uniform stsz is kept
        first = first_samples[track]
        assert body[offsets[0]] == (track * 64 + first) % 256
        assert all(body[o] % 64 < 40 for o in offsets)


def test_a_start_between_key_frames(pair):
    """mp4_start_key_frame: ?start=2.1 is video sample 23 (from 1); the key frame before it is 19,
    in the first stts entry: the cut starts there, and an edit list says how much media comes
    before the start (0.2 s of the first entry, 0.1 s of the second: 300 at 1000/s)."""
    weir, _ = pair
    _, body = answer(weir.port, "/key/fast.mp4?start=2.1")
    (vtrak, _) = find(body, [b"moov", b"trak"])
    (elst,) = find(body, [b"edts", b"elst"], *vtrak)
    version, entries, duration, media_time = struct.unpack(">B3xIQQ", body[elst[0]:elst[0] + 24])
    assert (version, entries, media_time) == (1, 1, 300)
    (stss,) = find(body, [b"mdia", b"minf", b"stbl", b"stss"], *vtrak)
    assert struct.unpack(">II", body[stss[0] + 4:stss[0] + 12]) == (2, 1)  # 19 and 26, from 19
