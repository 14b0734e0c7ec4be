// thread_pool: the named pools of threads `aio threads` hands file reads and temp-file writes to;
// each worker starts its own threads. nginx: src/core/ngx_thread_pool.c (ngx_thread_pool_add,
// ngx_thread_pool_get)
#pragma once

#include <string_view>

#include "conf/conf_context.h"
#include "event/thread_pool.h"

namespace weir {

extern Module thread_pool_module;

// The pool of that name (an empty name: "default"), made if the configuration has not named it
// yet; thread_pool may declare it later. nullptr never: a pool left undeclared fails the load.
ThreadPool* add_thread_pool(ConfContext& cf, std::string_view name);
// At run time (a pool named by a variable): nullptr when there is none of that name.
ThreadPool* find_thread_pool(Cycle& cycle, std::string_view name);

}  // namespace weir
