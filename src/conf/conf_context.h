// ConfContext: the state of configuration processing (nginx's ngx_conf_t): which context we are in,
// the configuration objects directives write to, and the dispatcher that finds each directive in
// the module tables, checks where it is and how many arguments it has, and reports errors as nginx
// words them. nginx: src/core/ngx_conf_file.c (ngx_conf_handler, ngx_conf_log_error)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "conf/conf_file.h"
#include "conf/module.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/status.h"

namespace weir {

struct Cycle;

// The configuration objects of one HTTP level: every HTTP module's main, server and location confs.
struct HttpConfCtx {
  void** main_conf = nullptr;
  void** srv_conf = nullptr;
  void** loc_conf = nullptr;
};

struct ConfContext {
  Cycle& cycle;
  Pool& pool;
  uint32_t cmd_type = kMainConf;
  ModuleType module_type = ModuleType::Core;
  HttpConfCtx* http = nullptr;
  const ConfNode* node = nullptr;  // the directive being handled
  const Log* log = nullptr;        // where warnings go (nullptr: stderr, "weir: [warn] ...")

  ConfContext(Cycle& c, Pool& p) : cycle(c), pool(p) {}

  // Handles every directive of a block in the current context.
  Status parse_block(const std::vector<ConfNode>& nodes);
  Status handle(const ConfNode& node);

  // "msg in file:line" at the current directive.
  Status error(std::string_view msg) const;
  [[gnu::format(printf, 2, 3)]] Status errorf(const char* fmt, ...) const;
  Status error_at(const ConfNode& n, std::string_view msg) const;
  // Logs a warning/notice about the current directive ("... in file:line").
  [[gnu::format(printf, 3, 4)]] void warn(LogLevel level, const char* fmt, ...) const;

  // Whether any directive of the module appears in this configuration: a module nobody configures
  // need not put its handler or filters in every request's way.
  bool configured(const Module& m) const;

  // Resolves a relative name against the prefix (or the configuration's directory).
  std::string full_name(std::string_view name, bool conf_prefix = false) const;
};

// Typed access to a module's configuration in an array indexed by ctx_index.
template <class Conf>
Conf& conf_of(void* const* confs) {
  return *static_cast<Conf*>(confs[Conf::kModule->ctx_index]);
}

}  // namespace weir
