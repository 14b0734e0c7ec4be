#include "conf/module.h"

namespace weir {

namespace {
std::span<Module* const> g_modules;
int g_counts[3] = {0, 0, 0};  // per ModuleType: asked for on every request
}  // namespace

void set_modules(std::span<Module* const> modules) {
  g_modules = modules;
  for (int& n : g_counts) n = 0;
  for (Module* m : g_modules) g_counts[static_cast<int>(m->type)]++;
}

std::span<Module* const> all_modules() {
  return g_modules;
}

void number_modules() {
  int counts[3] = {0, 0, 0};
  int i = 0;
  for (Module* m : g_modules) {
    m->index = i++;
    m->ctx_index = counts[static_cast<int>(m->type)]++;
  }
}

int module_count(ModuleType type) {
  return g_counts[static_cast<int>(type)];
}

}  // namespace weir
