// Modules and their directive tables. A module declares its directives (name, the contexts it may
// appear in, its argument-count rule, a setter) and its configuration hooks; the module list in one
// file (src/main/module_list.cc) fixes their order. nginx: src/core/ngx_module.h,
// src/core/ngx_conf_file.h (ngx_command_t, NGX_CONF_TAKE1 ...)
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

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

// Which configuration object an HTTP directive's setter receives. Each configuration struct says
// its own (`static constexpr ConfLevel kLevel`), beside the module it belongs to (`kModule`); core
// and event modules have one configuration per cycle, at Main.
enum class ConfLevel : uint8_t { Main, Srv, Loc };

using DirectiveSetter = Status (*)(ConfContext& cf, const ConfNode& node, void* conf);

struct Module;

// A directive table row. Made with directive<setter>(name, type), never by hand: the setter's
// parameter type gives the level and the owning module, so no row can write one struct's field into
// another.
struct Directive {
  std::string_view name;
  uint32_t type;  // contexts | argument rule
  DirectiveSetter set;
  ConfLevel level = ConfLevel::Loc;
  const Module* owner = nullptr;  // the module whose configuration the setter writes
  bool owned = false;             // false: it writes no module's struct (a block)
};

namespace conf_detail {

template <class F>
struct Setter;
// Status fn(ConfContext&, const ConfNode&, Conf&): writes into one module's configuration.
template <class C>
struct Setter<Status (*)(ConfContext&, const ConfNode&, C&)> {
  using Conf = C;
};
// Status fn(ConfContext&, const ConfNode&): a block or a directive that keeps nothing in a struct.
template <>
struct Setter<Status (*)(ConfContext&, const ConfNode&)> {
  using Conf = void;
};

template <auto Fn>
Status call_setter(ConfContext& cf, const ConfNode& n, void* conf) {
  using C = typename Setter<decltype(Fn)>::Conf;
  if constexpr (std::is_void_v<C>) {
    return Fn(cf, n);
  } else {
    return Fn(cf, n, *static_cast<C*>(conf));
  }
}

template <class F>
struct Init;
template <class C>
struct Init<Status (*)(ConfContext&, C&)> {
  using Conf = C;
};

template <class F>
struct Merge;
template <class P, class C>
struct Merge<Status (*)(ConfContext&, P&, C&)> {
  using Parent = P;  // const, unless the merge shares something it makes with the parent
  using Child = C;
};

}  // namespace conf_detail

// A directive table row for a typed setter (a slot:: template or a module's own function).
template <auto Fn>
consteval Directive directive(std::string_view name, uint32_t type) {
  using C = typename conf_detail::Setter<decltype(Fn)>::Conf;
  if constexpr (std::is_void_v<C>) {
    return Directive{name, type, &conf_detail::call_setter<Fn>, ConfLevel::Main, nullptr, false};
  } else {
    return Directive{name, type, &conf_detail::call_setter<Fn>, C::kLevel, C::kModule, true};
  }
}

// Two directive tables as one: a module's own rows and a set it shares with others (the upstream
// protocols' *_buffers, *_timeout ...).
template <size_t A, size_t B>
consteval std::array<Directive, A + B> join_directives(const std::array<Directive, A>& a,
                                                       const std::array<Directive, B>& b) {
  std::array<Directive, A + B> out{};
  for (size_t i = 0; i < A; i++) out[i] = a[i];
  for (size_t i = 0; i < B; i++) out[A + i] = b[i];
  return out;
}

// True when every row of a table writes into a configuration of module m (or into none): checked by
// a static_assert beside each table.
consteval bool directives_of(std::span<const Directive> table, const Module* m) {
  for (const Directive& d : table) {
    // `owned`, not a null test: sanitizer builds cannot compare an address with null at compile
    // time.
    if (d.owned && d.owner != m) return false;
  }
  return true;
}

// Typed configuration hooks for Module: `Conf* create(ConfContext&)`,
// `Status merge(ConfContext&, const Conf& parent, Conf& child)` and `Status init(ConfContext&,
// Conf&)`, wrapped as create_conf<fn>, merge_conf<fn> and init_conf<fn>.
template <auto Fn>
void* create_conf(ConfContext& cf) {
  return Fn(cf);
}
template <auto Fn>
Status merge_conf(ConfContext& cf, void* parent, void* child) {
  using M = conf_detail::Merge<decltype(Fn)>;
  static_assert(std::is_same_v<std::remove_const_t<typename M::Parent>, typename M::Child>);
  return Fn(cf, *static_cast<typename M::Parent*>(parent), *static_cast<typename M::Child*>(child));
}
template <auto Fn>
Status init_conf(ConfContext& cf, void* conf) {
  return Fn(cf, *static_cast<typename conf_detail::Init<decltype(Fn)>::Conf*>(conf));
}

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

  // HTTP modules: the request context outlives an internal redirect, which clears every other
  // module's (realip's: the address it replaced, as nginx recovers it from the pool's cleanups).
  bool ctx_survives_redirect = false;

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
