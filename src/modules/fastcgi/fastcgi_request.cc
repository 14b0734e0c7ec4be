// The request as a FastCGI application gets it: BEGIN_REQUEST (the responder role, keeping the
// connection with fastcgi_keep_conn), the PARAMS stream (the fastcgi_param values, then the
// client's header fields as HTTP_* names), and the STDIN stream (the body, in records of at most
// 32 KiB that point into the body's own buffers, memory or file). Every stream ends with an empty
// record. nginx: ngx_http_fastcgi_create_request
#include <cstring>

#include "core/str.h"
#include "http/request_body.h"
#include "modules/fastcgi/fastcgi.h"

namespace weir::http::fastcgi {

namespace {

constexpr uint16_t kRequestId = 1;
constexpr uint16_t kResponder = 1;
constexpr uint8_t kKeepConn = 1;
constexpr size_t kMaxStdin = 32768;   // payload of one STDIN record, as nginx's
constexpr size_t kMaxParams = 65528;  // payload of one PARAMS record (a multiple of 8)
constexpr char kPadding[8] = {};

char* put_header(char* p, RecordType type, size_t content, size_t padding) {
  p[0] = 1;  // version
  p[1] = static_cast<char>(type);
  p[2] = static_cast<char>(kRequestId >> 8);
  p[3] = static_cast<char>(kRequestId & 0xff);
  p[4] = static_cast<char>(content >> 8);
  p[5] = static_cast<char>(content & 0xff);
  p[6] = static_cast<char>(padding);
  p[7] = 0;
  return p + kHeaderSize;
}

size_t padding_of(size_t content) {
  return (8 - content % 8) % 8;
}

// A name's or value's length as FastCGI encodes it: one byte below 128, else four with the top
// bit set.
size_t length_size(size_t n) {
  return n < 128 ? 1 : 4;
}
char* put_length(char* p, size_t n) {
  if (n < 128) {
    *p++ = static_cast<char>(n);
    return p;
  }
  *p++ = static_cast<char>(((n >> 24) & 0x7f) | 0x80);
  *p++ = static_cast<char>((n >> 16) & 0xff);
  *p++ = static_cast<char>((n >> 8) & 0xff);
  *p++ = static_cast<char>(n & 0xff);
  return p;
}

size_t pair_size(const CgiPair& p) {
  return length_size(p.key_size()) + length_size(p.value.size()) + p.key_size() + p.value.size();
}

char* put_pair(char* p, const CgiPair& pair) {
  p = put_length(p, pair.key_size());
  p = put_length(p, pair.value.size());
  return put(pair.put_key(p), pair.value);
}

ChainLink* link(Request& r, Buffer* b) {
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  return cl;
}

ChainLink* memory_link(Request& r, std::string_view text) {
  return link(r, Buffer::create_memory(*r.pool, text));
}

// Appends STDIN records carrying b's bytes (at most kMaxStdin each): a header, a slice of b (our
// own Buffer, so that sending and a retry move only it), padding.
void append_stdin(Request& r, ChainLink**& tail, const Buffer& b) {
  off_t size = b.size();
  off_t done = 0;
  while (done < size) {
    size_t n = static_cast<size_t>(std::min<off_t>(size - done, static_cast<off_t>(kMaxStdin)));
    size_t pad = padding_of(n);
    char* h = r.pool->alloc_bytes(kHeaderSize);
    put_header(h, RecordType::Stdin, n, pad);
    *tail = memory_link(r, {h, kHeaderSize});
    tail = &(*tail)->next;
    auto* slice = r.pool->make<Buffer>(b);
    slice->last_buf = false;
    slice->flush = false;
    if (b.in_memory()) {
      slice->pos = b.pos + done;
      slice->last = slice->pos + n;
      slice->start = slice->pos;
      slice->in_file = false;
    } else {
      slice->file_pos = b.file_pos + done;
      slice->file_last = slice->file_pos + static_cast<off_t>(n);
    }
    *tail = link(r, slice);
    tail = &(*tail)->next;
    if (pad > 0) {
      *tail = memory_link(r, {kPadding, pad});
      tail = &(*tail)->next;
    }
    done += static_cast<off_t>(n);
  }
}

void append_end_of_stdin(Request& r, ChainLink**& tail) {
  char* h = r.pool->alloc_bytes(kHeaderSize);
  put_header(h, RecordType::Stdin, 0, 0);
  *tail = memory_link(r, {h, kHeaderSize});
  tail = &(*tail)->next;
}

}  // namespace

Code create_request(Request& r) {
  FastcgiLocConf& conf = fastcgi_conf(r);
  Upstream& u = *r.upstream;

  std::span<const CgiPair> pairs = cgi_pairs(r, conf.params, *conf.up.pass_request_headers);
  size_t params_len = 0;
  for (const CgiPair& p : pairs) params_len += pair_size(p);

  // BEGIN_REQUEST, the PARAMS records, the empty PARAMS record: one buffer.
  size_t records = (params_len + kMaxParams - 1) / kMaxParams;
  size_t head_len = 2 * kHeaderSize + records * kHeaderSize + params_len + 8 + kHeaderSize;
  Buffer* head = Buffer::create_temp(*r.pool, head_len);
  char* p = put_header(head->last, RecordType::BeginRequest, 8, 0);
  *p++ = static_cast<char>(kResponder >> 8);
  *p++ = static_cast<char>(kResponder & 0xff);
  *p++ = static_cast<char>(*conf.keep_conn ? kKeepConn : 0);
  std::memset(p, 0, 5);
  p += 5;
  if (params_len <= kMaxParams) {
    // The usual case, one record: the pairs are written in place.
    if (params_len > 0) {
      size_t pad = padding_of(params_len);
      p = put_header(p, RecordType::Params, params_len, pad);
      for (const CgiPair& pair : pairs) p = put_pair(p, pair);
      std::memset(p, 0, pad);
      p += pad;
    }
  } else {
    // Past one record, the pairs are written into a scratch area of the pool, then cut.
    char* stream = r.pool->alloc_bytes(params_len);
    char* s = stream;
    for (const CgiPair& pair : pairs) s = put_pair(s, pair);
    for (size_t off = 0; off < params_len; off += kMaxParams) {
      size_t len = std::min(kMaxParams, params_len - off);
      size_t pad = padding_of(len);
      p = put_header(p, RecordType::Params, len, pad);
      p = put(p, {stream + off, len});
      std::memset(p, 0, pad);
      p += pad;
    }
  }
  p = put_header(p, RecordType::Params, 0, 0);
  head->last = p;
  head->start = head->pos;
  WEIR_DEBUG(r.log(), "http fastcgi record length: %zu", static_cast<size_t>(p - head->pos));

  ChainLink* out = link(r, head);
  ChainLink** tail = &out->next;
  // Without request buffering the body follows as it comes (body_filter frames it, as the
  // lifecycle streams it: only when there is a body).
  if (!r.request_body_no_buffering || r.request_body == nullptr) {
    if (*conf.up.pass_request_body && r.request_body != nullptr) {
      for (ChainLink* in = r.request_body->bufs; in != nullptr; in = in->next) {
        if (!in->buf->special() && in->buf->size() > 0) append_stdin(r, tail, *in->buf);
      }
    }
    append_end_of_stdin(r, tail);
  }
  u.request_bufs = out;
  return Rc::Ok;
}

ChainLink* body_filter(Request& r, ChainLink* in, bool last) {
  ChainLink* out = nullptr;
  ChainLink** tail = &out;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    if (!cl->buf->special() && cl->buf->size() > 0) append_stdin(r, tail, *cl->buf);
  }
  if (last) append_end_of_stdin(r, tail);
  return out;
}

Code reinit_request(Request& r) {
  FastcgiCtx& ctx = fastcgi_ctx(r);
  ctx.records = Records{};
  ctx.header = HeaderLineState{};
  ctx.header_started = false;
  return Rc::Ok;
}

}  // namespace weir::http::fastcgi
