#include "conf/module.h"

namespace weir {

namespace {
std::span<Module* const> g_modules;
}

void set_modules(std::span<Module* const> modules) { g_modules = modules; }

std::span<Module* const> all_modules() { return g_modules; }

void number_modules() {
  int counts[3] = {0, 0, 0};
  int i = 0;
  for (Module* m : g_modules) {
    m->index = i++;
    m->ctx_index = counts[static_cast<int>(m->type)]++;
  }
}

int module_count(ModuleType type) {
  int n = 0;
  for (Module* m : g_modules) n += m->type == type;
  return n;
}

}  // namespace weir
