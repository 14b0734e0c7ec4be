"""image_filter (ngx_http_image_filter_module, Debian's libnginx-mod-http-image-filter): JPEG, PNG,
GIF (a palette with a transparent colour) and WebP images drawn here with Debian's libgd, served by
weir and by Debian's nginx with the module loaded, and every answer compared byte for byte: resize,
crop and rotate (and both), size's JSON, test, sizes and qualities from variables, sharpen,
interlace, transparency off, a JPEG whose EXIF-like data forces a conversion, an image over
image_filter_buffer, what is no image (415), a proxied image (with and without a length), HEAD and
a 304."""
import ctypes
import struct

import pytest

from conftest import parity_answer as answer
from conftest import weir_and_nginx

MODULE = "load_module /usr/lib/nginx/modules/ngx_http_image_filter_module.so;"

gd = ctypes.CDLL("libgd.so.3")
gd.gdImageCreateTrueColor.restype = ctypes.c_void_p
gd.gdImageCreate.restype = ctypes.c_void_p
for f in ("gdImagePngPtr", "gdImageGifPtr"):
    getattr(gd, f).restype = ctypes.c_void_p
    getattr(gd, f).argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
for f in ("gdImageJpegPtr", "gdImageWebpPtrEx"):
    getattr(gd, f).restype = ctypes.c_void_p
    getattr(gd, f).argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
for f in ("gdImageSetPixel", "gdImageFilledRectangle", "gdImageColorAllocate",
          "gdImageColorTransparent", "gdImageSaveAlpha", "gdImageDestroy", "gdFree"):
    getattr(gd, f).argtypes = None
gd.gdImageSetPixel.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
gd.gdImageFilledRectangle.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5
gd.gdImageColorAllocate.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 3
gd.gdImageColorTransparent.argtypes = [ctypes.c_void_p, ctypes.c_int]
gd.gdImageSaveAlpha.argtypes = [ctypes.c_void_p, ctypes.c_int]
gd.gdImageDestroy.argtypes = [ctypes.c_void_p]
gd.gdFree.argtypes = [ctypes.c_void_p]


def encode(img, kind, quality=None):
    size = ctypes.c_int()
    fn = {"png": gd.gdImagePngPtr, "gif": gd.gdImageGifPtr, "jpeg": gd.gdImageJpegPtr,
          "webp": gd.gdImageWebpPtrEx}[kind]
    p = fn(img, ctypes.byref(size)) if quality is None else fn(img, ctypes.byref(size), quality)
    data = ctypes.string_at(p, size.value)
    gd.gdFree(p)
    gd.gdImageDestroy(img)
    return data


def truecolor(w, h, alpha=False):
    """A gradient (with an alpha ramp when asked), so that scaling and turning show."""
    img = gd.gdImageCreateTrueColor(w, h)
    if alpha:
        gd.gdImageSaveAlpha(img, 1)
    for y in range(h):
        for x in range(w):
            a = (x * 127 // w) if alpha else 0
            gd.gdImageSetPixel(img, x, y, (a << 24) | ((x * 255 // w) << 16)
                               | ((y * 255 // h) << 8) | ((x + y) * 7 % 256))
    return img


def palette(w, h):
    img = gd.gdImageCreate(w, h)
    colors = [gd.gdImageColorAllocate(img, 255, 0, 255)]  # the transparent one
    colors += [gd.gdImageColorAllocate(img, i * 40, 255 - i * 40, 128) for i in range(6)]
    gd.gdImageColorTransparent(img, colors[0])
    for i in range(6):
        gd.gdImageFilledRectangle(img, i * w // 6, i * 3, (i + 1) * w // 6 - 1, h - 1 - i * 3,
                                  colors[i + 1])
    return img


def with_app1(jpeg, size):
    """A JPEG with an APP1 segment (as EXIF's) of size bytes after its SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", size + 2) + bytes(size) + jpeg[2:]


PHOTO = encode(truecolor(120, 80), "jpeg", 90)
FILES = {
    "img/photo.jpg": PHOTO,
    "img/alpha.png": encode(truecolor(90, 60, alpha=True), "png"),
    "img/logo.gif": encode(palette(60, 40), "gif"),
    "img/pic.webp": encode(truecolor(100, 50), "webp", 80),
    "img/small.png": encode(truecolor(10, 10), "png"),
    "img/exif.jpg": with_app1(encode(truecolor(20, 20), "jpeg", 90), 4000),
    "img/text.txt": b"this is no image, but long enough to be tested\n",
    "img/tiny.txt": b"short\n",
}
IMAGES = ["photo.jpg", "alpha.png", "logo.gif", "pic.webp", "small.png", "exif.jpg", "text.txt",
          "tiny.txt"]

CONF = r"""
    include %%DIR%%/conf/mime.types;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /raw/ { alias %%DIR%%/html/img/; }
        location /resize/ { image_filter resize 50 40; alias %%DIR%%/html/img/; }
        location /wide/ { image_filter resize 50 -; alias %%DIR%%/html/img/; }
        location /crop/ { image_filter crop 40 40; alias %%DIR%%/html/img/; }
        location /r90/ { image_filter rotate 90; alias %%DIR%%/html/img/; }
        location /r180/ { image_filter rotate 180; alias %%DIR%%/html/img/; }
        location /r270/ { image_filter rotate 270; alias %%DIR%%/html/img/; }
        location /both/ { image_filter resize 70 70; image_filter rotate 270; alias %%DIR%%/html/img/; }
        location /size/ { image_filter size; alias %%DIR%%/html/img/; }
        location /test/ { image_filter test; alias %%DIR%%/html/img/; }
        location /var/ { image_filter crop $arg_w $arg_h; image_filter_jpeg_quality $arg_q;
                         image_filter rotate $arg_a; alias %%DIR%%/html/img/; }
        location /tuned/ { image_filter resize 50 50; image_filter_jpeg_quality 30;
                           image_filter_webp_quality 40; image_filter_sharpen 60;
                           image_filter_interlace on; alias %%DIR%%/html/img/; }
        location /opaque/ { image_filter resize 30 30; image_filter_transparency off;
                            alias %%DIR%%/html/img/; }
        location /buffer/ { image_filter resize 10 10; image_filter_buffer 1k;
                            alias %%DIR%%/html/img/; }
        location /off/ { image_filter off; alias %%DIR%%/html/img/; }
        location /proxied/ { image_filter resize 50 40; proxy_pass http://127.0.0.1:%%PORT%%/raw/; }
        # An upstream answer of no length (sub_filter drops it; the body goes chunked).
        location /unsized/ { sub_filter_types *; sub_filter zzzzqqqq x; alias %%DIR%%/html/img/; }
        location /chunked/ { image_filter resize 50 40; proxy_http_version 1.1;
                             proxy_pass http://127.0.0.1:%%PORT%%/unsized/; }
    }
"""

# Not /chunked/exif.jpg: without a length nginx walks its whole 1 MiB buffer for JPEG segments,
# what it holds past the image too, and may or may not force the conversion (weir walks the image).
PATHS = (["/%s/%s" % (loc, img) for loc in ("resize", "wide", "crop", "r90", "r180", "r270",
                                            "both", "size", "test", "tuned", "opaque", "buffer",
                                            "off", "proxied", "chunked")
          for img in IMAGES if (loc, img) != ("chunked", "exif.jpg")]
         + ["/var/photo.jpg?w=30&h=60&q=50", "/var/photo.jpg?w=30&h=60&q=50&a=90",
            "/var/logo.gif?w=-&h=20", "/var/photo.jpg?w=0&h=20", "/var/photo.jpg?w=30&h=30&q=-",
            "/var/pic.webp?w=40&h=40&a=45", "/var/alpha.png?w=x&h=20"])


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, main_conf=MODULE)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


@pytest.mark.parametrize("method,extra", [("HEAD", ""), ("GET", "Range: bytes=0-10\r\n"),
                                          ("GET", "If-Modified-Since: %s\r\n")])
def test_methods_as_nginx(pair, method, extra):
    weir, nginx = pair
    if "%s" in extra:
        stamp = [l for l in answer(nginx.port, "/raw/photo.jpg")[0]
                 if l.startswith("Last-Modified:")][0][15:]
        extra = extra % stamp
    # (Not HEAD of an error page: its length counts the server's name.)
    paths = ("/resize/photo.jpg", "/size/logo.gif") + (("/test/text.txt",) if method == "GET" else ())
    for path in paths:
        assert answer(weir.port, path, method, extra) == answer(nginx.port, path, method, extra)


def test_what_it_makes(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/size/photo.jpg")
    assert body == b'{ "img" : { "width": 120, "height": 80, "type": "jpeg" } }\r\n'
    assert "Content-Type: application/json" in lines
    lines, body = answer(weir.port, "/resize/photo.jpg")
    assert lines[0] == "HTTP/1.1 200 OK" and body[:2] == b"\xff\xd8" and body != PHOTO
    assert "Content-Length: %d" % len(body) in lines
    assert any(l.startswith('ETag: W/"') for l in lines)
    lines, body = answer(weir.port, "/test/text.txt")
    assert lines[0] == "HTTP/1.1 415 Unsupported Media Type"
    lines, body = answer(weir.port, "/buffer/photo.jpg")
    assert lines[0] == "HTTP/1.1 415 Unsupported Media Type"
    assert "image filter: too big response: %d" % len(PHOTO) in open(
        weir.path("logs/error.log")).read()
    # Without a length weir walks only the bytes read, and the 5% rule counts the buffer's size
    # (nginx's): the small image is sent as it is, every time.
    lines, body = answer(weir.port, "/chunked/exif.jpg")
    assert lines[0] == "HTTP/1.1 200 OK" and body == FILES["img/exif.jpg"]
