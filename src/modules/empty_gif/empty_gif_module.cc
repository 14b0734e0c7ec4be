// empty_gif: a location that answers every GET and HEAD with a 1x1 transparent GIF (43 bytes), as
// nginx does for tracking pixels. nginx: src/http/modules/ngx_http_empty_gif_module.c
#include "http/core_module.h"

namespace weir::http {

extern Module http_empty_gif_module;

namespace {

// GIF89a, 1x1, a two-colour table, colour 1 transparent, one pixel of colour 1 (the bytes nginx
// sends).
constexpr unsigned char kGif[] = {
    'G',  'I',  'F',  '8',  '9',  'a',                           // the signature
    0x01, 0x00, 0x01, 0x00,                                      // 1 x 1
    0x80, 0x01, 0x00,                                            // 2 colours, background 1
    0x00, 0x00, 0x00, 0xff, 0xff, 0xff,                          // black, white
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00,              // colour 1 is transparent
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,  // the image: 1 x 1 at 0,0
    0x02, 0x02, 0x4c, 0x01, 0x00,                                // its LZW data
    0x3b,                                                        // the trailer
};

Code empty_gif_handler(Request& r) {
  if (!(r.method & (kGet | kHead))) return Code::status(405);
  r.headers_out.last_modified_time = 23349600;  // nginx's: Mon, 28 Sep 1970 06:00:00 GMT
  return send_response(r, 200, {reinterpret_cast<const char*>(kGif), sizeof kGif}, "image/gif");
}

Status empty_gif_directive(ConfContext& cf, const ConfNode&) {
  set_location_handler(cf, empty_gif_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<empty_gif_directive>("empty_gif", kHttpLocConf | kNoArgs),
};
static_assert(directives_of(kDirectives, &http_empty_gif_module));

}  // namespace

Module http_empty_gif_module{
    .name = "http_empty_gif",
    .type = ModuleType::Http,
    .directives = kDirectives,
};

}  // namespace weir::http
