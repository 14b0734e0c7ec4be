// Variables: a registry that maps names to getters at configuration time, indexes for the ones
// configuration refers to (resolved once, unknown names are errors), prefixed families ($http_*,
// $sent_http_*, $cookie_*, $arg_*), and per-request cached values. nginx:
// src/http/ngx_http_variables.c
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/inet.h"
#include "core/status.h"

namespace weir {
struct ConfContext;
struct ConfNode;
class Pool;
}  // namespace weir

namespace weir::http {

struct Request;
class HeaderList;
struct Header;

struct VariableValue {
  const char* data = nullptr;
  uint32_t len = 0;
  bool valid : 1 = false;
  bool no_cacheable : 1 = false;
  bool not_found : 1 = false;
  bool escape : 1 = false;

  std::string_view view() const { return {data, len}; }
  void set(std::string_view s) {
    data = s.data();
    len = static_cast<uint32_t>(s.size());
    valid = true;
    not_found = false;
    no_cacheable = false;
  }
  void set_not_found() {
    valid = false;
    not_found = true;
  }
};

using VarGetter = void (*)(Request& r, VariableValue& v, uintptr_t data);
using VarSetter = void (*)(Request& r, std::string_view value, uintptr_t data);

enum : uint32_t {
  kVarChangeable = 1,   // `set` may assign it
  kVarNoCacheable = 2,  // evaluated on every use
  kVarIndexed = 4,
  kVarNoHash = 8,  // not reachable by name at run time (SSI, ...)
  kVarWeak = 16,
  kVarPrefix = 32,  // a family: the name is a prefix ($http_...)
};

struct Variable {
  std::string name;
  VarGetter get = nullptr;
  VarSetter set = nullptr;
  uintptr_t data = 0;
  uint32_t flags = 0;
  int index = -1;
};

class Variables {
 public:
  // Declares a variable (modules at preconfiguration, `set` at parse time). Declaring twice is an
  // error unless both declarations are changeable.
  Result<Variable*> add(ConfContext& cf, std::string_view name, uint32_t flags);
  Variable* add_prefix(std::string_view prefix, VarGetter get, uintptr_t data, uint32_t flags);
  // The index of a variable configuration refers to; resolved (or rejected) by init().
  int index_of(ConfContext& cf, std::string_view name);
  // Resolves every indexed reference; an unknown name is an error at the place it was first used.
  Status init(ConfContext& cf);

  size_t count() const { return indexed_.size(); }
  const Variable& indexed(int i) const { return indexed_[i]; }
  Variable& indexed_mut(int i) { return indexed_[i]; }
  const Variable* find(std::string_view name) const;
  const Variable* find_prefix(std::string_view name) const;

 private:
  std::unordered_map<std::string, Variable> by_name_;
  std::vector<Variable> prefixes_;
  std::vector<Variable> indexed_;  // resolved copies of the definitions, by index
  std::vector<std::pair<const ConfNode*, const std::string*>> first_use_;
};

// A variable a module declares at preconfiguration: its name, getter, setter and flags.
struct VariableDef {
  std::string_view name;
  VarGetter get = nullptr;
  VarSetter set = nullptr;
  uint32_t flags = 0;
  uintptr_t data = 0;  // what the getter is given
};
// Declares one variable whose getter reads `data` (map, split_clients: a table each).
Status add_variable(ConfContext& cf, std::string_view name, uint32_t flags, VarGetter get,
                    uintptr_t data);
// Declares each of defs (an error if a name is taken by a variable that is not changeable).
Status add_variables(ConfContext& cf, std::span<const VariableDef> defs);

// The value of the argument `name` in an args string ("a=1&b=2"), as $arg_name reads it. nginx:
// ngx_http_arg
bool find_arg(std::string_view args, std::string_view name, std::string_view& value);
// The value of the first cookie `name` in the request's Cookie lines, as $cookie_name reads it, and
// the line it is on.
bool find_cookie(Request& r, std::string_view name, std::string_view& value,
                 const Header** line = nullptr);
// The address the request came to (the listening address, or the socket's when that is a
// wildcard), as $server_addr reads it.
SockAddr local_sockaddr(Request& r);

// A request's n variable slots, none computed yet: zeroed memory, which is VariableValue's default
// (one memset rather than a constructor per slot), of variable_values_bytes(n).
VariableValue* new_variable_values(Pool& pool, size_t n);
constexpr size_t variable_values_bytes(size_t n) {
  static_assert(std::is_trivially_copyable_v<VariableValue> &&
                std::is_trivially_destructible_v<VariableValue>);
  return sizeof(VariableValue) * (n != 0 ? n : 1);
}
// The value of an indexed variable, computed once per request (or every time when no_cacheable).
VariableValue* get_indexed_variable(Request& r, int index);
// Same, but recomputes a no_cacheable variable.
VariableValue* get_flushed_variable(Request& r, int index);
// Its text ("" when not found), in one call: what a value made of one variable is.
std::string_view flushed_variable_text(Request& r, int index);
// By name at run time (names not known at configuration time); nullptr when unknown.
VariableValue* get_variable(Request& r, std::string_view name);

// Registers the core variables ($uri, $host, $remote_addr ...).
Status add_core_variables(ConfContext& cf);

// The value of the header a variable suffix names ("x_foo" matches "X-Foo") in a list ($http_*,
// $sent_http_*, $upstream_http_*); not found when absent.
void unknown_header_variable(Request& r, VariableValue& v, std::string_view var_suffix,
                             const HeaderList& headers);

// Case-insensitive lookup of a request header by a variable suffix ("user_agent" -> "User-Agent").
std::string_view find_header_value(Request& r, std::string_view var_suffix, bool join_cookies);

}  // namespace weir::http
