#include "http/variables.h"

#include <string>
#include <type_traits>

#include "conf/conf_context.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/request.h"

namespace weir::http {

Result<Variable*> Variables::add(ConfContext& cf, std::string_view name_in, uint32_t flags) {
  if (name_in.empty()) return cf.error("invalid variable name \"$\"");
  std::string name = lowercased(name_in);
  auto it = by_name_.find(name);
  if (it != by_name_.end()) {
    Variable& v = it->second;
    if (!(v.flags & kVarChangeable))
      return cf.errorf("the duplicate \"%s\" variable", name.c_str());
    if (!(flags & kVarWeak)) v.flags &= ~kVarWeak;
    return &v;
  }
  Variable& v = by_name_[name];
  v.name = name;
  v.flags = flags;
  return &v;
}

Variable* Variables::add_prefix(std::string_view prefix, VarGetter get, uintptr_t data,
                                uint32_t flags) {
  prefixes_.push_back(Variable{std::string(prefix), get, nullptr, data, flags | kVarPrefix, -1});
  return &prefixes_.back();
}

int Variables::index_of(ConfContext& cf, std::string_view name_in) {
  std::string name = lowercased(name_in);
  for (size_t i = 0; i < indexed_.size(); i++) {
    if (indexed_[i].name == name) return static_cast<int>(i);
  }
  indexed_.push_back(Variable{name});
  first_use_.emplace_back(cf.node, nullptr);
  return static_cast<int>(indexed_.size() - 1);
}

Status Variables::init(ConfContext& cf) {
  for (size_t i = 0; i < indexed_.size(); i++) {
    Variable& v = indexed_[i];
    auto it = by_name_.find(v.name);
    if (it != by_name_.end() && it->second.get != nullptr && !(it->second.flags & kVarWeak)) {
      Variable& def = it->second;
      v.get = def.get;
      v.set = def.set;
      v.data = def.data;
      v.flags = def.flags | kVarIndexed;
      def.flags |= kVarIndexed;
      def.index = static_cast<int>(i);
      v.index = static_cast<int>(i);
      continue;
    }
    const Variable* pv = find_prefix(v.name);
    if (pv != nullptr) {
      v.get = pv->get;
      v.data = reinterpret_cast<uintptr_t>(&v.name);  // the getter reads the full name
      v.flags = pv->flags | kVarIndexed;
      v.index = static_cast<int>(i);
      continue;
    }
    if (it != by_name_.end()) {
      // Declared (`set`, a named capture) but with no value of its own until assigned.
      Variable& def = it->second;
      v.get = def.get;
      v.set = def.set;
      v.data = def.data;
      v.flags = def.flags | kVarIndexed;
      def.flags |= kVarIndexed;  // by name too (SSI's echo, ...) its value is the indexed one
      def.index = static_cast<int>(i);
      v.index = static_cast<int>(i);
      continue;
    }
    const ConfNode* where = first_use_[i].first;
    std::string msg = "unknown \"" + v.name + "\" variable";
    if (where != nullptr) return Status::located(conf_error_at(where->file, where->line, msg));
    return Status::located(msg);
  }
  // Prefixed-family variables reached by name at run time need stable names: indexed_ must not move
  // now.
  return {};
}

const Variable* Variables::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &it->second;
}

const Variable* Variables::find_prefix(std::string_view name) const {
  for (const Variable& p : prefixes_) {
    if (name.size() > p.name.size() && name.substr(0, p.name.size()) == p.name) return &p;
  }
  return nullptr;
}

VariableValue* new_variable_values(Pool& pool, size_t n) {
  return static_cast<VariableValue*>(pool.alloc_zeroed(variable_values_bytes(n)));
}

VariableValue* get_indexed_variable(Request& r, int index) {
  VariableValue& v = r.variables[index];
  if (v.valid || v.not_found) return &v;
  const Variable& def = core_main(r).variables.indexed(index);
  if (def.get == nullptr) {
    v.set_not_found();
    return &v;
  }
  def.get(r, v, def.data);
  if (def.flags & kVarNoCacheable) v.no_cacheable = true;
  return &v;
}

VariableValue* get_flushed_variable(Request& r, int index) {
  VariableValue& v = r.variables[index];
  if ((v.valid || v.not_found) && v.no_cacheable) {
    v.valid = false;
    v.not_found = false;
  }
  return get_indexed_variable(r, index);
}

std::string_view flushed_variable_text(Request& r, int index) {
  const VariableValue* v = get_flushed_variable(r, index);
  // Never a null pointer, even when empty: callers copy from it.
  return v->valid && v->len != 0 ? v->view() : std::string_view("");
}

VariableValue* get_variable(Request& r, std::string_view name) {
  Variables& vars = core_main(r).variables;
  std::string key = lowercased(name);
  const Variable* v = vars.find(key);
  if (v != nullptr) {
    if (v->flags & kVarIndexed && v->index >= 0) return get_flushed_variable(r, v->index);
    auto* vv = r.pool->make<VariableValue>();
    if (v->get != nullptr) {
      v->get(r, *vv, v->data);
    } else {
      vv->set_not_found();
    }
    return vv;
  }
  const Variable* pv = vars.find_prefix(key);
  if (pv == nullptr) return nullptr;
  auto* stored = r.pool->make<std::string>(key);
  auto* vv = r.pool->make<VariableValue>();
  pv->get(r, *vv, reinterpret_cast<uintptr_t>(stored));
  return vv;
}

}  // namespace weir::http
