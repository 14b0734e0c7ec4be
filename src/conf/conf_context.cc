#include "conf/conf_context.h"

#include <cstdarg>

#include "conf/cycle.h"
#include "conf/nginx_modules.h"

namespace weir {

namespace {

bool arity_ok(uint32_t type, size_t nargs) {
  if (type & kAnyArgs) return true;
  if (type & kFlag) return nargs == 1;
  if (type & kOneMore) return nargs >= 1;
  if (type & kTwoMore) return nargs >= 2;
  if (nargs > 7) return false;
  static constexpr uint32_t kByCount[] = {kNoArgs, kTake1, kTake2, kTake3,
                                          kTake4,  kTake5, kTake6, kTake7};
  return (type & kByCount[nargs]) != 0;
}

}  // namespace

Status ConfContext::parse_block(const std::vector<ConfNode>& nodes) {
  for (const ConfNode& n : nodes) {
    if (Status s = handle(n); !s.ok()) return s;
  }
  return {};
}

bool ConfContext::configured(const Module& m) const {
  auto index = static_cast<size_t>(m.index);
  return m.index >= 0 && index < cycle.configured.size() && cycle.configured[index];
}

Status ConfContext::handle(const ConfNode& n) {
  const ConfNode* saved = node;
  node = &n;
  bool found = false;
  const std::string& name = n.name();
  for (Module* m : all_modules()) {
    for (const Directive& d : m->directives) {
      if (d.name != name) continue;
      found = true;
      if (m->type != module_type) continue;
      if (!(d.type & cmd_type)) continue;
      if (!(d.type & kBlock) && n.block) {
        return error("directive \"" + name + "\" is not terminated by \";\"");
      }
      if ((d.type & kBlock) && !n.block) {
        return error("directive \"" + name + "\" has no opening \"{\"");
      }
      if (!arity_ok(d.type, n.nargs())) {
        return error("invalid number of arguments in \"" + name + "\" directive");
      }
      void* conf = nullptr;
      switch (m->type) {
        case ModuleType::Core:
          conf = cycle.confs[m->index];
          break;
        case ModuleType::Event:
          conf = cycle.event_confs.empty() ? nullptr : cycle.event_confs[m->ctx_index];
          break;
        case ModuleType::Http:
          if (http != nullptr) {
            void** confs = d.level == ConfLevel::Main  ? http->main_conf
                           : d.level == ConfLevel::Srv ? http->srv_conf
                                                       : http->loc_conf;
            conf = confs != nullptr ? confs[m->ctx_index] : nullptr;
          }
          break;
      }
      Status s = d.set(*this, n, conf);
      auto index = static_cast<size_t>(m->index);
      if (cycle.configured.size() <= index) cycle.configured.resize(index + 1);
      cycle.configured[index] = true;
      node = saved;
      if (s.ok() || s.is_located()) return s;
      return error_at(n, "\"" + name + "\" directive " + s.message());
    }
  }
  if (found) return error("\"" + name + "\" directive is not allowed here");
  // nginx's message, and which of nginx's modules weir lacks it comes from.
  std::string_view module = nginx_module_of(name);
  if (!module.empty()) {
    return error("unknown directive \"" + name + "\" (from " + std::string(module) +
                 ", which weir does not have)");
  }
  return error("unknown directive \"" + name + "\"");
}

Status ConfContext::error(std::string_view msg) const {
  if (node == nullptr) return Status::located(std::string(msg));
  return error_at(*node, msg);
}

Status ConfContext::error_at(const ConfNode& n, std::string_view msg) const {
  return Status::located(conf_error_at(n.file, n.line, msg));
}

Status ConfContext::errorf(const char* fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  std::string msg = vstrprintf(fmt, ap);
  va_end(ap);
  return error(msg);
}

void ConfContext::warn(LogLevel level, const char* fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  std::string msg = vstrprintf(fmt, ap);
  va_end(ap);
  if (node != nullptr) msg = conf_error_at(node->file, node->line, msg);
  if (log != nullptr) {
    log_error(level, *log, 0, "%s", msg.c_str());
  } else {
    log_stderr(level, 0, "%s", msg.c_str());
  }
}

std::string ConfContext::full_name(std::string_view name, bool conf_prefix) const {
  if (!name.empty() && name[0] == '/') return std::string(name);
  return (conf_prefix ? cycle.conf_prefix : cycle.prefix) + std::string(name);
}

}  // namespace weir
