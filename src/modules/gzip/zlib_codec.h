// zlib on the codec engine (the gzip and gunzip filters): its memory from the request's pool, and
// one deflate or inflate call over the engine's cursors.
#pragma once

#include <zlib.h>

#include "http/codec_stream.h"

namespace weir::http {

// Points zlib's allocator at the pool: large blocks go back as soon as zlib frees them.
void zlib_use_pool(z_stream& z, Pool& pool);

// zlib's flush value for what the input asks.
int zlib_flush(CodecFlush f);

// Calls deflate or inflate with the engine's cursors and flush, and moves the cursors on.
int zlib_call(CodecStream& s, z_stream& z, int (*fn)(z_streamp, int));

}  // namespace weir::http
