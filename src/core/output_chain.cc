#include "core/output_chain.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/assert.h"
#include "core/file.h"

namespace weir {

bool OutputChain::as_is(Buffer& b) const {
  if (b.special()) return true;
  if (b.in_file && !b.in_memory() && b.file->directio) return false;  // read, never sendfile
  if (!sendfile) {
    if (!b.in_memory()) return false;
    b.in_file = false;
  }
  if (need_in_memory && !b.in_memory()) return false;
  if (need_in_temp && (b.memory || b.mmap)) return false;
  return true;
}

namespace {

bool get_buf(OutputChain& ctx, off_t bsize) {
  size_t size = ctx.bufs.size;
  bool recycled = true;
  // A small last buffer (or the small last part of one) gets a buffer of just that size; so does
  // one that, with a single buffer configured, would leave a small remainder (it is taken all at
  // once).
  if (ctx.in->buf->last_in_chain &&
      (bsize < static_cast<off_t>(size) ||
       (ctx.bufs.num == 1 && bsize < static_cast<off_t>(size + size / 4)))) {
    size = static_cast<size_t>(bsize);
    recycled = false;
  }
  Buffer* b = Buffer::create_temp(*ctx.pool, size);
  b->tag = ctx.tag;
  b->recycled = recycled;
  ctx.buf = b;
  ctx.allocated++;
  return true;
}

Rc copy_buf(OutputChain& ctx) {
  Buffer* src = ctx.in->buf;
  Buffer* dst = ctx.buf;
  off_t size = std::min<off_t>(src->size(), dst->end - dst->pos);
  if (src->in_memory()) {
    std::memcpy(dst->pos, src->pos, static_cast<size_t>(size));
    src->pos += size;
    dst->last += size;
    if (src->in_file) {
      if (ctx.sendfile) {
        dst->in_file = true;
        dst->file = src->file;
        dst->file_pos = src->file_pos;
        dst->file_last = src->file_pos + size;
      } else {
        dst->in_file = false;
      }
      src->file_pos += size;
    } else {
      dst->in_file = false;
    }
    if (src->pos == src->last) {
      dst->flush = src->flush;
      dst->last_buf = src->last_buf;
      dst->last_in_chain = src->last_in_chain;
    }
    return Rc::Ok;
  }
  ssize_t n;
  bool direct = src->file->directio;
  if (direct && ctx.read_direct != nullptr) {
    // Read in a thread: Again until it has.
    if (Rc rc = ctx.read_direct(ctx.file_ready_ctx, *src, dst->pos, size, n); rc != Rc::Ok)
      return rc;
  } else if (direct) {
    n = read_file_direct(*src->file, dst->pos, static_cast<size_t>(size), src->file_pos);
  } else {
    if (ctx.file_ready != nullptr) {
      off_t ready;
      if (Rc rc = ctx.file_ready(ctx.file_ready_ctx, *src, size, ready); rc != Rc::Ok) return rc;
      size = std::min(size, ready);
    }
    n = read_file(*src->file, dst->pos, static_cast<size_t>(size), src->file_pos);
  }
  if (n < 0) {
    log_error(LogLevel::Crit, *ctx.log, errno, "pread() \"%.*s\" failed",
              static_cast<int>(src->file->name.size()), src->file->name.data());
    return Rc::Error;
  }
  if (n != size) {
    log_error(LogLevel::Alert, *ctx.log, 0, "pread() read only %zd of %lld from \"%.*s\"", n,
              static_cast<long long>(size), static_cast<int>(src->file->name.size()),
              src->file->name.data());
    return Rc::Error;
  }
  dst->last += n;
  if (ctx.sendfile && !direct) {
    dst->in_file = true;
    dst->file = src->file;
    dst->file_pos = src->file_pos;
    dst->file_last = src->file_pos + n;
  } else {
    dst->in_file = false;
  }
  src->file_pos += n;
  if (src->file_pos == src->file_last) {
    dst->flush = src->flush;
    dst->last_buf = src->last_buf;
    dst->last_in_chain = src->last_in_chain;
  }
  return Rc::Ok;
}

}  // namespace

Rc OutputChain::write(ChainLink* input) {
  if (in == nullptr && busy == nullptr) {
    // The short path: nothing pending and nothing to copy.
    if (input == nullptr) return output(output_ctx, input);
    if (input->next == nullptr && as_is(*input->buf)) return output(output_ctx, input);
  }
  if (input != nullptr) chain_add_copy(*pool, &in, input);

  ChainLink* out = nullptr;
  ChainLink** last_out = &out;
  bool have_last = false;
  Rc last = Rc::Ok;
  for (;;) {
    while (in != nullptr) {
      off_t bsize = in->buf->size();
      if (bsize == 0 && !in->buf->special()) {
        log_error(LogLevel::Alert, *log, 0, "zero size buf in output");
        debug_point();
        in = in->next;
        continue;
      }
      if (as_is(*in->buf)) {
        ChainLink* cl = in;
        in = cl->next;
        cl->next = nullptr;
        *last_out = cl;
        last_out = &cl->next;
        continue;
      }
      if (buf == nullptr) {
        if (free != nullptr) {
          ChainLink* cl = free;
          buf = cl->buf;
          free = cl->next;
          pool->free_link(cl);
        } else if (out != nullptr || allocated == bufs.num) {
          break;  // wait until a buffer is sent and comes back
        } else {
          get_buf(*this, bsize);
        }
      }
      Rc rc = copy_buf(*this);
      if (rc == Rc::Error) return rc;
      if (rc == Rc::Again) {
        // The file's data is being read in a thread: what is copied goes on meanwhile, and buf
        // waits for the rest.
        if (out != nullptr) break;
        return Rc::Again;
      }
      if (in->buf->size() == 0) in = in->next;
      ChainLink* cl = pool->alloc_link();
      cl->buf = buf;
      cl->next = nullptr;
      *last_out = cl;
      last_out = &cl->next;
      buf = nullptr;
    }
    if (out == nullptr && have_last) {
      if (in != nullptr) return Rc::Again;
      return last;
    }
    last = output(output_ctx, out);
    have_last = true;
    if (last == Rc::Error || last == Rc::Done) return last;
    update_chains(*pool, &free, &busy, &out, tag);
    last_out = &out;
  }
}

}  // namespace weir
