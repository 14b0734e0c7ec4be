// nginx's modules that weir does not have: Debian's dynamic ones (the libnginx-mod-* packages a
// stock modules-enabled/ loads), the modules of nginx's own build weir lacks yet, and the common
// third-party ones, each with its directives - so that `load_module` of one is a warning rather
// than a dead end, and an unknown directive says which module it came from. The modules weir
// builds in (brotli, zstd) load as a no-op. nginx: src/core/ngx_module.c (ngx_load_module)
#pragma once

#include <string_view>

namespace weir {

// The nginx module a directive belongs to among those weir lacks ("" when none).
std::string_view nginx_module_of(std::string_view directive);
// Whether a module named as its file names it ("ngx_http_brotli_filter_module") is built into weir.
bool built_in_nginx_module(std::string_view name);

}  // namespace weir
