// The chunked filter: a response without Content-Length to an HTTP/1.1 client is sent with
// "Transfer-Encoding: chunked" (chunked_transfer_encoding on); to an older client it ends with a
// close. Chunk-size lines and the trailer are small buffers reused through update_chains. nginx:
// src/http/modules/ngx_http_chunked_filter_module.c
#include "http/core_module.h"

namespace weir::http {

extern Module http_chunked_filter_module;

namespace {

struct ChunkedCtx {
  static constexpr Module* kModule = &http_chunked_filter_module;
  ChainLink* free = nullptr;
  ChainLink* busy = nullptr;
};

Code chunked_header_filter(Request& r, HeaderNext next) {
  int status = r.headers_out.status;
  if (status == 304 || status == 204 || status < 200 || !r.is_main() || r.method == kHead)
    return next(r);
  if (r.headers_out.content_length_n == -1 || r.expect_trailers) {
    if (r.http_version >= 1001 && *core_loc(r).chunked_transfer_encoding) {
      if (r.expect_trailers) clear_content_length(r);
      r.chunked = true;
      r.set_ctx(r.pool->make<ChunkedCtx>());
    } else if (r.headers_out.content_length_n == -1) {
      r.keepalive = false;
    }
  }
  return next(r);
}

// The last chunk with the response's trailers (add_trailer): "0", a line each, an empty line; after
// data, the data's CRLF first.
Buffer* last_chunk_with_trailers(Request& r, bool after_data) {
  size_t len = 2 + 3 + 2;
  for (const Header* h : r.headers_out.trailers) {
    if (h->hash != 0) len += h->key.size() + 2 + h->value.size() + 2;
  }
  Buffer* b = Buffer::create_temp(*r.pool, len);
  char* p = b->last;
  if (after_data) p = put(p, "\r\n");
  p = put(p, "0\r\n");
  for (const Header* h : r.headers_out.trailers) {
    if (h->hash == 0) continue;
    p = put(p, h->key);
    p = put(p, ": ");
    p = put(p, h->value);
    p = put(p, "\r\n");
  }
  b->last = put(p, "\r\n");
  b->last_buf = true;
  return b;
}

Rc chunked_body_filter(Request& r, ChainLink* in, BodyNext next) {
  if (in == nullptr || !r.chunked || r.header_only) return next(r, in);
  auto* ctx = r.get_ctx<ChunkedCtx>();
  ChainLink* out = nullptr;
  ChainLink** ll = &out;
  off_t size = 0;
  ChainLink* cl = in;
  for (;;) {
    size += cl->buf->size();
    if (cl->buf->flush || cl->buf->sync || cl->buf->in_memory() || cl->buf->in_file) {
      ChainLink* tl = r.pool->alloc_link();
      tl->buf = cl->buf;
      *ll = tl;
      ll = &tl->next;
    }
    if (cl->next == nullptr) break;
    cl = cl->next;
  }
  if (size != 0) {
    ChainLink* tl = chain_get_free_buf(*r.pool, &ctx->free);
    Buffer* b = tl->buf;
    if (b->start == nullptr) {
      b->start = r.pool->alloc_bytes(18);  // 16 hex digits + CRLF
      b->end = b->start + 18;
    }
    b->tag = &http_chunked_filter_module;
    b->memory = false;
    b->temporary = true;
    b->pos = b->start;
    char* p = put_hex(b->start, static_cast<uint64_t>(size));
    *p++ = '\r';
    *p++ = '\n';
    b->last = p;
    tl->next = out;
    out = tl;
  }
  if (cl->buf->last_buf && !r.headers_out.trailers.empty()) {
    ChainLink* tl = r.pool->alloc_link();
    tl->buf = last_chunk_with_trailers(r, size != 0);
    tl->next = nullptr;
    *ll = tl;
    cl->buf->last_buf = false;
  } else if (cl->buf->last_buf) {
    ChainLink* tl = chain_get_free_buf(*r.pool, &ctx->free);
    Buffer* b = tl->buf;
    static constexpr std::string_view kLast = "\r\n0\r\n\r\n";
    b->tag = &http_chunked_filter_module;
    b->temporary = false;
    b->memory = true;
    // Only pos and last point at the constant: start and end keep the size-line memory this buffer
    // may own, so that it can be reused from the free list (as nginx does).
    b->pos = const_cast<char*>(kLast.data());
    b->last = b->pos + kLast.size();
    if (size == 0) b->pos += 2;
    b->last_buf = true;
    tl->next = nullptr;
    *ll = tl;
    // The response's own last buffer hands its role to the trailer.
    cl->buf->last_buf = false;
  } else if (size > 0) {
    ChainLink* tl = chain_get_free_buf(*r.pool, &ctx->free);
    Buffer* b = tl->buf;
    static constexpr std::string_view kCrlf = "\r\n";
    b->tag = &http_chunked_filter_module;
    b->temporary = false;
    b->memory = true;
    b->pos = const_cast<char*>(kCrlf.data());
    b->last = b->pos + 2;
    tl->next = nullptr;
    *ll = tl;
  } else {
    *ll = nullptr;
  }
  Rc rc = next(r, out);
  update_chains(*r.pool, &ctx->free, &ctx->busy, &out, &http_chunked_filter_module);
  return rc;
}

Status init(ConfContext& cf) {
  register_header_filter(cf, FilterId::Chunked, chunked_header_filter);
  register_body_filter(cf, FilterId::Chunked, chunked_body_filter);
  return {};
}

}  // namespace

Module http_chunked_filter_module{
    .name = "http_chunked_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
