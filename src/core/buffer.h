// Buffer and ChainLink: nginx's ngx_buf_t / ngx_chain_t with their exact flag meanings, and the
// free/busy reuse idiom (update_chains) that the copy filter, chunked filter, event pipe and
// upstream relay rest on. nginx: src/core/ngx_buf.h, src/core/ngx_buf.c
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string_view>

#include "core/pool.h"

namespace weir {

struct File;

// A tag says which module owns a buffer, so update_chains only recycles its own; any unique address
// works.
using BufTag = const void*;

struct Buffer {
  char* pos = nullptr;  // memory: the unsent part is [pos, last)
  char* last = nullptr;
  off_t file_pos = 0;  // file: the unsent part is [file_pos, file_last)
  off_t file_last = 0;
  char* start = nullptr;  // the memory block the buffer may use
  char* end = nullptr;
  BufTag tag = nullptr;
  File* file = nullptr;
  Buffer* shadow =
      nullptr;  // the buffer this one was copied from, or the raw buffer it points into

  bool temporary : 1 = false;  // memory that filters may change
  bool memory : 1 = false;     // read-only memory (e.g. a static string)
  bool mmap : 1 = false;
  bool recycled : 1 = false;  // the producer wants it back soon: flush it
  bool in_file : 1 = false;
  bool flush : 1 = false;
  bool sync : 1 = false;
  bool last_buf : 1 = false;       // the last buffer of the response
  bool last_in_chain : 1 = false;  // the last buffer of a subrequest's output
  bool last_shadow : 1 = false;
  bool temp_file : 1 = false;

  int shadows = 0;  // a raw buffer of the event pipe: data buffers that still point into it

  bool in_memory() const { return temporary || memory || mmap; }
  bool in_memory_only() const { return in_memory() && !in_file; }
  // Special: carries only flags (flush, last_buf, sync), no data.
  bool special() const { return (flush || last_buf || sync) && !in_memory() && !in_file; }
  bool sync_only() const { return sync && !in_memory() && !in_file && !flush && !last_buf; }
  off_t size() const { return in_memory() ? static_cast<off_t>(last - pos) : file_last - file_pos; }
  std::string_view view() const { return {pos, static_cast<size_t>(last - pos)}; }

  static Buffer* create_temp(Pool& pool, size_t size);
  // A read-only memory buffer pointing at s (no copy).
  static Buffer* create_memory(Pool& pool, std::string_view s);
  static Buffer* create_special(Pool& pool, bool last_buf, bool flush);
};

// nginx's "N size" buffer counts (output_buffers 2 32k, large_client_header_buffers 4 8k).
struct Bufs {
  int num = 0;
  size_t size = 0;
};

struct ChainLink {
  Buffer* buf;
  ChainLink* next;
};

// A chain link from the pool's free list, or a new one (inline: a request takes several).
inline ChainLink* Pool::alloc_link() {
  ChainLink* cl = free_links_;
  if (cl != nullptr) {
    free_links_ = cl->next;
  } else {
    cl = static_cast<ChainLink*>(alloc(sizeof(ChainLink), alignof(ChainLink)));
    cl->buf = nullptr;
  }
  cl->next = nullptr;
  return cl;
}

inline void Pool::free_link(ChainLink* cl) {
  cl->next = free_links_;
  free_links_ = cl;
}

// Appends links (new ones, same buffers) for every buffer of `in` to the end of *chain.
void chain_add_copy(Pool& pool, ChainLink** chain, ChainLink* in);

// Takes a link with a free buffer from *free, or a new link with an empty Buffer.
ChainLink* chain_get_free_buf(Pool& pool, ChainLink** free);

// After a filter has passed *out down: moves *out to the end of *busy, then moves every fully sent
// buffer at the head of *busy to *free when it carries `tag` (resetting pos/last to start), or back
// to the pool otherwise.
void update_chains(Pool& pool, ChainLink** free, ChainLink** busy, ChainLink** out, BufTag tag);

// The busy and free lists of a filter whose output buffers shadow its input (charset's recoding,
// sub): the last buffer made from an input one points to it (shadow), and when that buffer has
// been sent the input is marked consumed, so that its producer may reuse it.
struct ShadowChains {
  ChainLink* busy = nullptr;
  ChainLink** busy_tail = &busy;  // the context holding this is made in place and never copied
  ChainLink* free = nullptr;

  // After the filter passed out (ending at *out_tail) down: out joins busy; then the buffers at
  // busy's head that have been sent go to free when they carry tag, the inputs they shadow
  // consumed, and other buffers' links go back to the pool.
  void update(Pool& pool, ChainLink* out, ChainLink** out_tail, BufTag tag);
};
// Total bytes held by the chain.
off_t chain_size(const ChainLink* in);

// Advances the chain past `sent` bytes; returns the first link with data left (or special), or
// nullptr.
ChainLink* chain_update_sent(ChainLink* in, off_t sent);

// Length of the run of file buffers at *in that continue one another in the same file, up to limit;
// *in is moved past them. nginx: ngx_chain_coalesce_file.
off_t chain_coalesce_file(ChainLink** in, off_t limit);

}  // namespace weir
