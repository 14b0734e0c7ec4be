#include "conf/thread_pools.h"

#include "conf/cycle.h"
#include "core/str.h"

namespace weir {

namespace {

constexpr std::string_view kDefault = "default";

Cycle::NamedThreadPool* find(Cycle& cycle, std::string_view name) {
  for (Cycle::NamedThreadPool& p : cycle.thread_pools) {
    if (p.pool.name() == name) return &p;
  }
  return nullptr;
}

Cycle::NamedThreadPool& add(ConfContext& cf, std::string_view name) {
  if (name.empty()) name = kDefault;
  if (Cycle::NamedThreadPool* p = find(cf.cycle, name)) return *p;
  Cycle::NamedThreadPool& p = cf.cycle.thread_pools.emplace_back(std::string(name));
  if (cf.node != nullptr) {
    p.file = cf.node->file;
    p.line = cf.node->line;
  }
  return p;
}

// thread_pool name threads=number [max_queue=number]
Status set_thread_pool(ConfContext& cf, const ConfNode& n) {
  Cycle::NamedThreadPool& p = add(cf, n.args[1]);
  if (p.pool.threads() != 0) return cf.errorf("duplicate thread pool \"%s\"", n.args[1].c_str());
  int threads = 0;
  int max_queue = ThreadPool::kDefaultMaxQueue;
  for (size_t i = 2; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    if (a.starts_with("threads=")) {
      auto v = parse_int(a.substr(8));
      if (!v || *v == 0 || *v > 65536)
        return cf.errorf("invalid threads value \"%s\"", n.args[i].c_str());
      threads = static_cast<int>(*v);
    } else if (a.starts_with("max_queue=")) {
      auto v = parse_int(a.substr(10));
      if (!v || *v > (1 << 30))
        return cf.errorf("invalid max_queue value \"%s\"", n.args[i].c_str());
      max_queue = static_cast<int>(*v);
    } else {
      return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
    }
  }
  if (threads == 0) return cf.error("\"thread_pool\" must have \"threads\" parameter");
  p.pool.configure(threads, max_queue);
  return {};
}

Status init(ConfContext& cf, void*) {
  for (Cycle::NamedThreadPool& p : cf.cycle.thread_pools) {
    if (p.pool.threads() != 0) continue;
    if (p.pool.name() == kDefault) {
      p.pool.configure(ThreadPool::kDefaultThreads, ThreadPool::kDefaultMaxQueue);
      continue;
    }
    return Status::located(
        conf_error_at(p.file, p.line, "unknown thread pool \"" + p.pool.name() + "\""));
  }
  return {};
}

Status init_process(Cycle& cycle) {
  for (Cycle::NamedThreadPool& p : cycle.thread_pools) {
    if (Status s = p.pool.start(cycle.log); !s.ok()) {
      log_error(LogLevel::Alert, cycle.log, 0, "%s", s.message().c_str());
      return s;
    }
  }
  return {};
}

void exit_process(Cycle& cycle) {
  for (Cycle::NamedThreadPool& p : cycle.thread_pools) p.pool.stop();
}

constexpr Directive kDirectives[] = {
    directive<set_thread_pool>("thread_pool", kMainConf | kTake23),
};
static_assert(directives_of(kDirectives, &thread_pool_module));

}  // namespace

Module thread_pool_module{
    .name = "thread_pool",
    .type = ModuleType::Core,
    .directives = kDirectives,
    .init_conf = init,
    .init_process = init_process,
    .exit_process = exit_process,
};

ThreadPool* add_thread_pool(ConfContext& cf, std::string_view name) {
  return &add(cf, name).pool;
}

ThreadPool* find_thread_pool(Cycle& cycle, std::string_view name) {
  Cycle::NamedThreadPool* p = find(cycle, name);
  return p != nullptr ? &p->pool : nullptr;
}

}  // namespace weir
