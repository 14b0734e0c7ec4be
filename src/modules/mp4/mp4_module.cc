// mp4 (ngx_http_mp4_module, which Debian's nginx has): a location with `mp4` serves its files as
// the static handler does, and a request with ?start= and/or ?end= (seconds, up to three decimals)
// gets a file cut to that time span (mp4_cut), which a player can start at once: the moov atom
// first, then the samples kept. mp4_buffer_size, mp4_max_buffer_size and mp4_start_key_frame as
// nginx's. nginx: src/http/modules/ngx_http_mp4_module.c

#include <limits>
#include <optional>

#include "http/core_module.h"
#include "http/file_response.h"
#include "http/variables.h"
#include "modules/mp4/mp4_cut.h"

namespace weir::http {

extern Module http_mp4_module;

namespace {

struct Mp4LocConf {
  static constexpr Module* kModule = &http_mp4_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<size_t> buffer_size;
  Setting<size_t> max_buffer_size;
  Setting<bool> start_key_frame;
  Mp4Settings settings;  // the three, merged
};

// Seconds with a fraction as milliseconds. Unlike other numbers, any digits may follow the third
// decimal (a Flash player sends many); they are ignored. nullopt: not a number, or too large.
std::optional<int64_t> parse_msec(std::string_view s) {
  if (s.empty()) return std::nullopt;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t value = 0;
  int point = 3;  // decimals still wanted
  bool dot = false;
  for (char c : s) {
    if (c == '.') {
      if (dot) return std::nullopt;
      dot = true;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (point == 0) continue;
    if (value > (kMax - (c - '0')) / 10) return std::nullopt;
    value = value * 10 + (c - '0');
    if (dot) point--;
  }
  for (; point > 0; point--) {
    if (value > kMax / 10) return std::nullopt;
    value *= 10;
  }
  return value;
}

Code mp4_handler(Request& r) {
  std::string_view path;
  OpenFileInfo of;
  if (Code rc = open_requested_file(r, path, of); rc != Rc::Ok) return rc;

  // ?start= and ?end= in milliseconds; an end alone starts at 0, an end before the start is
  // ignored.
  int64_t start = -1;
  int64_t length = 0;
  std::string_view value;
  if (!r.args.empty()) {
    if (find_arg(r.args, "start", value)) start = parse_msec(value).value_or(-1);
    if (find_arg(r.args, "end", value)) {
      int64_t end = parse_msec(value).value_or(-1);
      if (end > 0) {
        if (start < 0) start = 0;
        if (end > start) length = end - start;
      }
    }
  }
  Mp4Cut* cut = nullptr;
  if (start >= 0) {
    r.single_range = true;
    cut = r.pool->make<Mp4Cut>(*r.pool, r.log(), of.fd, of.data, path, of.size,
                               static_cast<uint64_t>(start), static_cast<uint64_t>(length),
                               r.loc<Mp4LocConf>().settings);
    switch (cut->run()) {
      case Mp4Outcome::Cut:
        break;
      case Mp4Outcome::Whole:
        cut = nullptr;
        break;
      case Mp4Outcome::Failed:
        return Code::status(500);
    }
  }
  if (Code rc = set_file_headers(r, of); rc != Rc::Ok) return rc;
  r.connection->log->action = "sending mp4 to client";
  if (cut == nullptr) return send_file(r, of, path);
  // The ETag is made from what is sent, as nginx makes it.
  r.headers_out.content_length_n = cut->content_length();
  clear_etag(r);
  if (set_etag(r) != Rc::Ok) return Code::status(500);
  ChainLink* head = nullptr;
  ChainLink** last = &head;
  for (std::string_view piece : cut->pieces()) {
    auto* cl = r.pool->make<ChainLink>(ChainLink{Buffer::create_memory(*r.pool, piece), nullptr});
    *last = cl;
    last = &cl->next;
  }
  return send_file_part(r, of, path, head, cut->data_start(), cut->data_end());
}

Status mp4_directive(ConfContext& cf, const ConfNode&) {
  set_location_handler(cf, mp4_handler);
  return {};
}

Mp4LocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<Mp4LocConf>();
}

Status merge_loc_conf(ConfContext&, const Mp4LocConf& prev, Mp4LocConf& conf) {
  conf.buffer_size.merge(prev.buffer_size, 512 * 1024);
  conf.max_buffer_size.merge(prev.max_buffer_size, 10 * 1024 * 1024);
  conf.start_key_frame.merge(prev.start_key_frame, false);
  conf.settings = {*conf.buffer_size, *conf.max_buffer_size, *conf.start_key_frame};
  return {};
}

constexpr Directive kDirectives[] = {
    directive<mp4_directive>("mp4", kHttpLocConf | kNoArgs),
    directive<slot::size<&Mp4LocConf::buffer_size>>("mp4_buffer_size", kHttpMainSrvLoc | kTake1),
    directive<slot::size<&Mp4LocConf::max_buffer_size>>("mp4_max_buffer_size",
                                                        kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&Mp4LocConf::start_key_frame>>("mp4_start_key_frame",
                                                        kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_mp4_module));

}  // namespace

Module http_mp4_module{
    .name = "http_mp4",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
};

}  // namespace weir::http
