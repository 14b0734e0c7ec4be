// The `error_log file [level ...]` directive, shared by the main context and the HTTP contexts:
// opens (or shares) the file and inserts a destination into a context's list, highest level first.
// nginx: src/core/ngx_log.c (ngx_log_set_log, ngx_log_insert)
#pragma once

#include "conf/conf_context.h"
#include "core/log.h"

namespace weir {

Status parse_error_log(ConfContext& cf, const ConfNode& n, LogSink** head);

}  // namespace weir
