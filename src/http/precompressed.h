// What gzip_static, brotli_static and zstd_static share: a request for a file with a
// precompressed "<file><suffix>" beside it gets that file with its Content-Encoding, when the
// client may have the coding (`on`) or in any case (`always`). With `on`, a file that exists makes
// the answer depend on Accept-Encoding (Vary, as gzip_vary says). A content handler ahead of the
// static one; nothing is compressed here. nginx: src/http/modules/ngx_http_gzip_static_module.c
#pragma once

#include <string_view>

#include "conf/setting.h"
#include "http/content_coding.h"
#include "http/core_module.h"

namespace weir::http {

enum class StaticMode : uint8_t { Off, On, Always };

inline constexpr EnumName<StaticMode> kStaticModes[] = {
    {"off", StaticMode::Off},
    {"on", StaticMode::On},
    {"always", StaticMode::Always},
};

// Serves "<file><suffix>" with Content-Encoding: coding, or declines. ok: the client may have it.
Code serve_precompressed(Request& r, StaticMode mode, bool ok, std::string_view suffix,
                         std::string_view coding);

// brotli_static and zstd_static: "<file>.br" / "<file>.zst" for a client that prefers the coding
// (content_coding.h) where nginx's gzip rules allow compression.
Code serve_preferred(Request& r, StaticMode mode, Coding coding);

}  // namespace weir::http
