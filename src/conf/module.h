// Modules and their directive tables. A module declares its directives (name, the contexts it may
// appear in, its argument-count rule, a setter) and its configuration hooks; the module list in one
// file (src/main/module_list.cc) fixes their order. nginx: src/core/ngx_module.h,
// src/core/ngx_conf_file.h (ngx_command_t, NGX_CONF_TAKE1 ...)
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "core/status.h"

namespace weir {

struct ConfContext;
struct ConfNode;
struct Cycle;

// Where a directive may appear.
inline constexpr uint32_t kMainConf = 1u << 0;
inline constexpr uint32_t kEventConf = 1u << 1;
inline constexpr uint32_t kHttpMainConf = 1u << 2;
inline constexpr uint32_t kHttpSrvConf = 1u << 3;
inline constexpr uint32_t kHttpLocConf = 1u << 4;
inline constexpr uint32_t kHttpUpsConf = 1u << 5;
inline constexpr uint32_t kHttpSifConf = 1u << 6;  // `if` inside server
inline constexpr uint32_t kHttpLifConf = 1u << 7;  // `if` inside location
inline constexpr uint32_t kHttpLmtConf = 1u << 8;  // limit_except
inline constexpr uint32_t kAnyConf = 0xffu | kHttpLmtConf;
// The usual context sets, spelled once.
inline constexpr uint32_t kHttpMainSrv = kHttpMainConf | kHttpSrvConf;
inline constexpr uint32_t kHttpMainSrvLoc = kHttpMainSrv | kHttpLocConf;
inline constexpr uint32_t kHttpMainSrvLocLif =
    kHttpMainSrvLoc | kHttpLifConf;  // also `if` in location
inline constexpr uint32_t kHttpSrvLocIf = kHttpSrvConf | kHttpSifConf | kHttpLocConf | kHttpLifConf;

// How many arguments it takes (after its name).
inline constexpr uint32_t kNoArgs = 1u << 12;
inline constexpr uint32_t kTake1 = 1u << 13;
inline constexpr uint32_t kTake2 = 1u << 14;
inline constexpr uint32_t kTake3 = 1u << 15;
inline constexpr uint32_t kTake4 = 1u << 16;
inline constexpr uint32_t kTake5 = 1u << 17;
inline constexpr uint32_t kTake6 = 1u << 18;
inline constexpr uint32_t kTake7 = 1u << 19;
inline constexpr uint32_t kTake12 = kTake1 | kTake2;
inline constexpr uint32_t kTake13 = kTake1 | kTake3;
inline constexpr uint32_t kTake23 = kTake2 | kTake3;
inline constexpr uint32_t kTake123 = kTake1 | kTake2 | kTake3;
inline constexpr uint32_t kTake1234 = kTake1 | kTake2 | kTake3 | kTake4;
inline constexpr uint32_t kBlock = 1u << 20;
inline constexpr uint32_t kFlag = 1u << 21;
inline constexpr uint32_t kAnyArgs = 1u << 22;
inline constexpr uint32_t kOneMore = 1u << 23;
inline constexpr uint32_t kTwoMore = 1u << 24;

// Which configuration object an HTTP directive's setter receives.
enum class ConfLevel : uint8_t { Main, Srv, Loc };

using DirectiveSetter = Status (*)(ConfContext& cf, const ConfNode& node, void* conf);

struct Directive {
  std::string_view name;
  uint32_t type;  // contexts | argument rule
  DirectiveSetter set;
  ConfLevel level = ConfLevel::Loc;
};

enum class ModuleType { Core, Event, Http };

struct Module {
  std::string_view name;
  ModuleType type = ModuleType::Core;
  std::span<const Directive> directives = {};

  // Core and event modules: one configuration per cycle.
  void* (*create_conf)(ConfContext& cf) = nullptr;
  Status (*init_conf)(ConfContext& cf, void* conf) = nullptr;

  // HTTP modules (nginx's ngx_http_module_t).
  Status (*preconfiguration)(ConfContext& cf) = nullptr;  // registers variables
  void* (*create_main_conf)(ConfContext& cf) = nullptr;
  Status (*init_main_conf)(ConfContext& cf, void* conf) = nullptr;
  void* (*create_srv_conf)(ConfContext& cf) = nullptr;
  Status (*merge_srv_conf)(ConfContext& cf, void* parent, void* child) = nullptr;
  void* (*create_loc_conf)(ConfContext& cf) = nullptr;
  Status (*merge_loc_conf)(ConfContext& cf, void* parent, void* child) = nullptr;
  Status (*postconfiguration)(ConfContext& cf) = nullptr;  // phase handlers, filters

  // In each worker (or the single process) once it runs; and when it exits.
  Status (*init_process)(Cycle& cycle) = nullptr;
  void (*exit_process)(Cycle& cycle) = nullptr;

  int index = -1;      // position in the module list
  int ctx_index = -1;  // position among the modules of its type
};

// The module list in use (src/main/module_list.cc hands it over at start-up), in nginx's order.
void set_modules(std::span<Module* const> modules);
std::span<Module* const> all_modules();
// Assigns index/ctx_index.
void number_modules();
int module_count(ModuleType type);

}  // namespace weir
