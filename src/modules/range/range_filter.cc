// Byte ranges: the header filter answers "Range: bytes=..." on a 200 with 206 and Content-Range
// (one range) or multipart/byteranges (several, up to max_ranges), 416 when none is satisfiable,
// and If-Range; otherwise it advertises "Accept-Ranges: bytes". The body filter cuts the response
// to the ranges: the main request's, or, for a subrequest that makes a piece of it (slice's
// subrequest_ranges), the piece from its content_offset. nginx:
// src/http/modules/ngx_http_range_filter_module.c
#include <unistd.h>

#include <cstring>
#include <span>
#include <vector>

#include "core/assert.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_range_filter_module;

namespace {

struct Range {
  off_t start;
  off_t end;                       // exclusive
  std::string_view content_range;  // multipart: "SSSS-EEEE/TTTT" CRLF CRLF
};

struct RangeCtx {
  static constexpr Module* kModule = &http_range_filter_module;
  off_t offset = 0;
  std::vector<Range> parsed;      // this request's own ranges, from its Range header
  std::span<const Range> ranges;  // what the response is cut to: its own, or the main request's
  std::string_view
      boundary_header;  // CRLF "--" boundary CRLF "Content-Type: ..." CRLF "Content-Range: bytes "
  std::string_view boundary;
};

enum class ParseRange { Ok, NotSatisfiable, Declined };

ParseRange parse_ranges(Request& r, RangeCtx& ctx, uint64_t max) {
  std::string_view v = r.headers_in.range->value.substr(6);
  off_t content_length = r.headers_out.content_length_n;
  off_t size = 0;
  size_t i = 0;
  auto at = [&](size_t k) -> char { return k < v.size() ? v[k] : '\0'; };
  auto number = [&](off_t& out) -> bool {
    std::optional<int64_t> n = take_int(v, i);
    if (n) out = *n;
    return n.has_value();
  };
  for (;;) {
    off_t start = 0, end = 0;
    bool suffix = false;
    while (at(i) == ' ') i++;
    if (at(i) != '-') {
      if (!number(start)) return ParseRange::NotSatisfiable;
      while (at(i) == ' ') i++;
      if (at(i++) != '-') return ParseRange::NotSatisfiable;
      while (at(i) == ' ') i++;
      if (at(i) == ',' || at(i) == '\0') {
        end = content_length;
        goto found;
      }
    } else {
      suffix = true;
      i++;
    }
    if (!number(end)) return ParseRange::NotSatisfiable;
    while (at(i) == ' ') i++;
    if (at(i) != ',' && at(i) != '\0') return ParseRange::NotSatisfiable;
    if (suffix) {
      start = end < content_length ? content_length - end : 0;
      end = content_length - 1;
    }
    if (end >= content_length) {
      end = content_length;
    } else {
      end++;
    }
  found:
    if (start < end) {
      ctx.parsed.push_back(Range{start, end, {}});
      if (size > INT64_MAX - (end - start)) return ParseRange::NotSatisfiable;
      size += end - start;
      if (max-- == 0) return ParseRange::Declined;
    } else if (start == 0) {
      return ParseRange::Declined;
    }
    if (at(i++) != ',') break;
  }
  ctx.ranges = ctx.parsed;
  if (ctx.ranges.empty()) return ParseRange::NotSatisfiable;
  if (size > content_length) return ParseRange::Declined;
  return ParseRange::Ok;
}

std::string_view pool_printf(Pool& pool, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return pool.dup({buf, static_cast<size_t>(n < 0 ? 0 : std::min<int>(n, sizeof buf - 1))});
}

Code singlepart_header(Request& r, RangeCtx& ctx, HeaderNext next) {
  if (!r.is_main()) return next(r);  // a piece of the main request's range: cut, not described
  const Range& range = ctx.ranges[0];
  r.headers_out.content_range = add_header_out(
      r, "Content-Range",
      pool_printf(*r.pool, "bytes %lld-%lld/%lld", static_cast<long long>(range.start),
                  static_cast<long long>(range.end - 1),
                  static_cast<long long>(r.headers_out.content_length_n)));
  r.headers_out.content_length_n = range.end - range.start;
  r.headers_out.content_offset = range.start;
  if (r.headers_out.content_length != nullptr) {
    r.headers_out.content_length->hash = 0;
    r.headers_out.content_length = nullptr;
  }
  return next(r);
}

uint64_t g_boundary = 0;

Code multipart_header(Request& r, RangeCtx& ctx, HeaderNext next) {
  if (g_boundary == 0)
    g_boundary = static_cast<uint64_t>(::getpid()) * 1000 + (clock::wall_msec() % 1000);
  uint64_t boundary = ++g_boundary;
  std::string_view type = r.headers_out.content_type;
  if (!r.headers_out.charset.empty() && r.headers_out.content_type_len == type.size()) {
    ctx.boundary_header = pool_printf(
        *r.pool, "\r\n--%020llu\r\nContent-Type: %.*s; charset=%.*s\r\nContent-Range: bytes ",
        static_cast<unsigned long long>(boundary), static_cast<int>(type.size()), type.data(),
        static_cast<int>(r.headers_out.charset.size()), r.headers_out.charset.data());
  } else if (!type.empty()) {
    ctx.boundary_header = pool_printf(
        *r.pool, "\r\n--%020llu\r\nContent-Type: %.*s\r\nContent-Range: bytes ",
        static_cast<unsigned long long>(boundary), static_cast<int>(type.size()), type.data());
  } else {
    ctx.boundary_header = pool_printf(*r.pool, "\r\n--%020llu\r\nContent-Range: bytes ",
                                      static_cast<unsigned long long>(boundary));
  }
  ctx.boundary = pool_printf(*r.pool, "%020llu", static_cast<unsigned long long>(boundary));
  r.headers_out.content_type = pool_printf(*r.pool, "multipart/byteranges; boundary=%020llu",
                                           static_cast<unsigned long long>(boundary));
  r.headers_out.content_type_len = r.headers_out.content_type.size();
  r.headers_out.charset = {};
  // The closing boundary: CRLF "--" boundary "--" CRLF.
  off_t len = 4 + static_cast<off_t>(ctx.boundary.size()) + 4;
  // Several ranges are always the request's own: the main request a subrequest cuts pieces for
  // has one range at most (single_range).
  WEIR_ASSERT(ctx.ranges.data() == ctx.parsed.data());
  for (Range& range : ctx.parsed) {
    range.content_range =
        pool_printf(*r.pool, "%lld-%lld/%lld\r\n\r\n", static_cast<long long>(range.start),
                    static_cast<long long>(range.end - 1),
                    static_cast<long long>(r.headers_out.content_length_n));
    len += static_cast<off_t>(ctx.boundary_header.size() + range.content_range.size()) + range.end -
           range.start;
  }
  r.headers_out.content_length_n = len;
  if (r.headers_out.content_length != nullptr) {
    r.headers_out.content_length->hash = 0;
    r.headers_out.content_length = nullptr;
  }
  return next(r);
}

Code range_header_filter(Request& r, HeaderNext next) {
  if (r.http_version < 1000 || r.headers_out.status != 200 ||
      (!r.is_main() && !r.subrequest_ranges) || r.headers_out.content_length_n == -1 ||
      !r.allow_ranges) {
    return next(r);
  }
  CoreLocConf& clcf = core_loc(r);
  if (*clcf.max_ranges == 0) return next(r);
  Header* range = r.headers_in.range;
  if (range != nullptr && range->value.size() >= 7 && istarts_with(range->value, "bytes=")) {
    bool applies = true;
    if (Header* ir = r.headers_in.if_range) {
      std::string_view v = ir->value;
      if (v.size() >= 2 && v.back() == '"') {
        applies = r.headers_out.etag != nullptr && r.headers_out.etag->value == v;
      } else {
        auto t = clock::parse_http_time(v);
        applies =
            r.headers_out.last_modified_time != -1 && t && *t == r.headers_out.last_modified_time;
      }
    }
    if (applies) {
      auto* ctx = r.pool->make<RangeCtx>();
      ctx->offset = r.headers_out.content_offset;
      ParseRange parsed = ParseRange::Ok;
      if (auto* main_ctx = r.main->get_ctx<RangeCtx>(); !r.is_main() && main_ctx != nullptr) {
        ctx->ranges = main_ctx->ranges;  // a piece of the main request: cut to its range, shared
      } else {
        parsed = parse_ranges(r, *ctx, r.single_range ? 1 : *clcf.max_ranges);
      }
      switch (parsed) {
        case ParseRange::Ok:
          r.set_ctx(ctx);
          r.headers_out.status = 206;
          r.headers_out.status_line = {};
          return ctx->ranges.size() == 1 ? singlepart_header(r, *ctx, next)
                                         : multipart_header(r, *ctx, next);
        case ParseRange::NotSatisfiable:
          r.headers_out.status = 416;
          r.headers_out.content_range =
              add_header_out(r, "Content-Range",
                             pool_printf(*r.pool, "bytes */%lld",
                                         static_cast<long long>(r.headers_out.content_length_n)));
          clear_content_length(r);
          return Code::status(416);  // send_header answers with it
        case ParseRange::Declined:
          break;
      }
    }
  }
  r.headers_out.accept_ranges = add_header_out(r, "Accept-Ranges", "bytes");
  return next(r);
}

Rc singlepart_body(Request& r, RangeCtx& ctx, ChainLink* in, BodyNext next) {
  const Range& range = ctx.ranges[0];
  ChainLink* out = nullptr;
  ChainLink** ll = &out;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer* buf = cl->buf;
    off_t start = ctx.offset;
    off_t last = ctx.offset + buf->size();
    ctx.offset = last;
    if (range.end <= start || range.start >= last) {
      // Entirely outside the range: dropped.
      if (buf->in_memory()) buf->pos = buf->last;
      if (buf->in_file) buf->file_pos = buf->file_last;
      buf->sync = true;
      continue;
    }
    if (range.start > start) {
      if (buf->in_file) buf->file_pos += range.start - start;
      if (buf->in_memory()) buf->pos += range.start - start;
    }
    if (range.end <= last) {
      if (buf->in_file) buf->file_last -= last - range.end;
      if (buf->in_memory()) buf->last -= last - range.end;
      buf->last_buf = r.is_main();
      buf->last_in_chain = true;
      ChainLink* tl = r.pool->alloc_link();
      tl->buf = buf;
      tl->next = nullptr;
      *ll = tl;
      break;
    }
    ChainLink* tl = r.pool->alloc_link();
    tl->buf = buf;
    tl->next = nullptr;
    *ll = tl;
    ll = &tl->next;
  }
  if (out == nullptr) return Rc::Ok;
  return next(r, out);
}

Rc multipart_body(Request& r, RangeCtx& ctx, ChainLink* in, BodyNext next) {
  // The whole response must arrive as one buffer (a file, or memory), as nginx requires.
  Buffer* buf = in->buf;
  if (in->next != nullptr || !buf->last_buf) {
    log_error(LogLevel::Alert, r.log(), 0,
              "multipart ranges need the whole response in one buffer");
    return Rc::Error;
  }
  ChainLink* out = nullptr;
  ChainLink** ll = &out;
  auto append = [&](Buffer* b) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = b;
    cl->next = nullptr;
    *ll = cl;
    ll = &cl->next;
  };
  for (const Range& range : ctx.ranges) {
    append(Buffer::create_memory(*r.pool, ctx.boundary_header));
    append(Buffer::create_memory(*r.pool, range.content_range));
    auto* b = r.pool->make<Buffer>();
    if (buf->in_memory()) {
      b->temporary = buf->temporary;
      b->memory = buf->memory;
      b->mmap = buf->mmap;
      b->pos = buf->pos + range.start;
      b->last = buf->pos + range.end;
    }
    if (buf->in_file) {
      b->in_file = true;
      b->file = buf->file;
      b->file_pos = buf->file_pos + range.start;
      b->file_last = buf->file_pos + range.end;
    }
    append(b);
  }
  size_t blen = 4 + ctx.boundary.size() + 4;
  char* p = r.pool->alloc_bytes(blen);
  char* e = put(p, "\r\n--");
  e = put(e, ctx.boundary);
  e = put(e, "--\r\n");
  Buffer* tail = Buffer::create_memory(*r.pool, {p, static_cast<size_t>(e - p)});
  tail->last_buf = true;
  append(tail);
  ctx.offset = buf->size();
  return next(r, out);
}

Rc range_body_filter(Request& r, ChainLink* in, BodyNext next) {
  if (in == nullptr) return next(r, in);
  auto* ctx = r.get_ctx<RangeCtx>();
  if (ctx == nullptr) return next(r, in);
  if (ctx->ranges.size() == 1) return singlepart_body(r, *ctx, in, next);
  if (ctx->offset != 0) {
    log_error(LogLevel::Alert, r.log(), 0, "range in overlapped buffers");
    return Rc::Error;
  }
  return multipart_body(r, *ctx, in, next);
}

Status init(ConfContext& cf) {
  register_header_filter(cf, FilterId::RangeHeader, range_header_filter);
  register_body_filter(cf, FilterId::RangeBody, range_body_filter);
  return {};
}

}  // namespace

Module http_range_filter_module{
    .name = "http_range_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
