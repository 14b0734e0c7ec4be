#include "modules/gzip/zlib_codec.h"

namespace weir::http {

namespace {

void* z_alloc(void* opaque, unsigned items, unsigned size) {
  return static_cast<Pool*>(opaque)->alloc(size_t{items} * size);
}

// A large block goes back to the process's cache at once; small ones stay with the pool.
void z_free(void* opaque, void* p) {
  (void)static_cast<Pool*>(opaque)->free_large(p);
}

}  // namespace

void zlib_use_pool(z_stream& z, Pool& pool) {
  z.zalloc = z_alloc;
  z.zfree = z_free;
  z.opaque = &pool;
}

int zlib_flush(CodecFlush f) {
  switch (f) {
    case CodecFlush::None:
      return Z_NO_FLUSH;
    case CodecFlush::Sync:
      return Z_SYNC_FLUSH;
    case CodecFlush::Finish:
      return Z_FINISH;
  }
  return Z_NO_FLUSH;
}

int zlib_call(CodecStream& s, z_stream& z, int (*fn)(z_streamp, int)) {
  // The engine's buffers are smaller than 4 GiB (gzip_buffers, gunzip_buffers): uInt holds them.
  z.next_in = const_cast<Bytef*>(s.next_in);
  z.avail_in = static_cast<uInt>(s.avail_in);
  z.next_out = s.next_out;
  z.avail_out = static_cast<uInt>(s.avail_out);
  int rc = fn(&z, zlib_flush(s.flush));
  s.next_in = z.next_in;
  s.avail_in = z.avail_in;
  s.next_out = z.next_out;
  s.avail_out = z.avail_out;
  return rc;
}

}  // namespace weir::http
