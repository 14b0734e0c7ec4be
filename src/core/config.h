// Build-wide switches. Sanitizer builds (make asan, make fuzz) recycle no memory - pool blocks and
// connection state go back to the allocator - so that AddressSanitizer sees every use after free.
#pragma once

// Build-time paths, nginx's configure options (CMake: -DWEIR_PREFIX=... and the rest): a relative
// path is by the prefix. `weir -V` shows them.
#ifndef WEIR_PREFIX
#define WEIR_PREFIX "/usr/local/weir/"
#endif
#ifndef WEIR_CONF_PATH
#define WEIR_CONF_PATH "conf/weir.conf"
#endif
#ifndef WEIR_PID_PATH
#define WEIR_PID_PATH "logs/weir.pid"
#endif
#ifndef WEIR_LOCK_PATH
#define WEIR_LOCK_PATH "logs/weir.lock"
#endif
#ifndef WEIR_ERROR_LOG_PATH
#define WEIR_ERROR_LOG_PATH "logs/error.log"
#endif
#ifndef WEIR_HTTP_LOG_PATH
#define WEIR_HTTP_LOG_PATH "logs/access.log"
#endif
#ifndef WEIR_CLIENT_BODY_TEMP_PATH
#define WEIR_CLIENT_BODY_TEMP_PATH "client_body_temp"
#endif
#ifndef WEIR_PROXY_TEMP_PATH
#define WEIR_PROXY_TEMP_PATH "proxy_temp"
#endif
#ifndef WEIR_FASTCGI_TEMP_PATH
#define WEIR_FASTCGI_TEMP_PATH "fastcgi_temp"
#endif
#ifndef WEIR_UWSGI_TEMP_PATH
#define WEIR_UWSGI_TEMP_PATH "uwsgi_temp"
#endif
#ifndef WEIR_SCGI_TEMP_PATH
#define WEIR_SCGI_TEMP_PATH "scgi_temp"
#endif

namespace weir {

#ifdef WEIR_NO_RECYCLE
inline constexpr bool kRecycleMemory = false;
#else
inline constexpr bool kRecycleMemory = true;
#endif

}  // namespace weir
