#include "core/buffer.h"

#include "core/file.h"

namespace weir {

Buffer* Buffer::create_temp(Pool& pool, size_t size) {
  auto* b = pool.make<Buffer>();
  b->start = pool.alloc_bytes(size);
  b->pos = b->last = b->start;
  b->end = b->start + size;
  b->temporary = true;
  return b;
}

Buffer* Buffer::create_memory(Pool& pool, std::string_view s) {
  auto* b = pool.make<Buffer>();
  b->start = b->pos = const_cast<char*>(s.data());
  b->last = b->end = b->pos + s.size();
  b->memory = true;
  return b;
}

Buffer* Buffer::create_special(Pool& pool, bool last_buf, bool flush) {
  auto* b = pool.make<Buffer>();
  b->last_buf = last_buf;
  b->flush = flush;
  return b;
}

void chain_add_copy(Pool& pool, ChainLink** chain, ChainLink* in) {
  ChainLink** ll = chain;
  for (ChainLink* cl = *chain; cl != nullptr; cl = cl->next) ll = &cl->next;
  for (; in != nullptr; in = in->next) {
    ChainLink* cl = pool.alloc_link();
    cl->buf = in->buf;
    cl->next = nullptr;
    *ll = cl;
    ll = &cl->next;
  }
}

ChainLink* chain_get_free_buf(Pool& pool, ChainLink** free) {
  if (*free != nullptr) {
    ChainLink* cl = *free;
    *free = cl->next;
    cl->next = nullptr;
    return cl;
  }
  ChainLink* cl = pool.alloc_link();
  cl->buf = pool.make<Buffer>();
  cl->next = nullptr;
  return cl;
}

void update_chains(Pool& pool, ChainLink** free, ChainLink** busy, ChainLink** out, BufTag tag) {
  if (*out != nullptr) {
    if (*busy == nullptr) {
      *busy = *out;
    } else {
      ChainLink* cl = *busy;
      while (cl->next != nullptr) cl = cl->next;
      cl->next = *out;
    }
    *out = nullptr;
  }

  while (*busy != nullptr) {
    ChainLink* cl = *busy;
    if (cl->buf->tag != tag) {
      // Not ours to recycle: drop the link, whatever is left in the buffer is its owner's business.
      *busy = cl->next;
      pool.free_link(cl);
      continue;
    }
    if (cl->buf->size() != 0) break;  // still being sent: everything behind it waits too
    cl->buf->pos = cl->buf->start;
    cl->buf->last = cl->buf->start;
    *busy = cl->next;
    cl->next = *free;
    *free = cl;
  }
}

void ShadowChains::update(Pool& pool, ChainLink* out, ChainLink** out_tail, BufTag tag) {
  if (out != nullptr) {
    *busy_tail = out;
    busy_tail = out_tail;
  }
  while (busy != nullptr && busy->buf->size() == 0) {
    ChainLink* cl = busy;
    busy = cl->next;
    if (busy == nullptr) busy_tail = &busy;
    Buffer* b = cl->buf;
    if (b->tag != tag) {
      pool.free_link(cl);
      continue;
    }
    if (b->shadow != nullptr) b->shadow->pos = b->shadow->last;
    cl->next = free;
    free = cl;
  }
}

off_t chain_size(const ChainLink* in) {
  off_t n = 0;
  for (; in != nullptr; in = in->next) n += in->buf->size();
  return n;
}

ChainLink* chain_update_sent(ChainLink* in, off_t sent) {
  for (; in != nullptr; in = in->next) {
    Buffer* b = in->buf;
    if (b->special()) continue;
    if (sent == 0) break;
    off_t size = b->size();
    if (sent >= size) {
      sent -= size;
      if (b->in_memory()) b->pos = b->last;
      if (b->in_file) b->file_pos = b->file_last;
      continue;
    }
    if (b->in_memory()) b->pos += sent;
    if (b->in_file) b->file_pos += sent;
    break;
  }
  return in;
}

off_t chain_coalesce_file(ChainLink** in, off_t limit) {
  off_t total = 0;
  ChainLink* cl = *in;
  int fd = cl->buf->file->fd;
  off_t prev_last = 0;
  do {
    off_t size = cl->buf->file_last - cl->buf->file_pos;
    if (size > limit - total) {
      size = limit - total;
      // On to the end of its page when the buffer has it, so that later sends start aligned (as
      // nginx does).
      off_t aligned = (cl->buf->file_pos + size + 4095) & ~off_t{4095};
      if (aligned <= cl->buf->file_last) size = aligned - cl->buf->file_pos;
      total += size;
      break;
    }
    total += size;
    prev_last = cl->buf->file_pos + size;
    cl = cl->next;
  } while (cl != nullptr && cl->buf->in_file && total < limit && fd == cl->buf->file->fd &&
           prev_last == cl->buf->file_pos);
  *in = cl;
  return total;
}

}  // namespace weir
