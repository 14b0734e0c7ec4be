#include "http/script.h"

#include <cstring>

#include "conf/conf_context.h"
#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/parse.h"
#include "http/request.h"
#include "http/variables.h"

namespace weir::http {

namespace {

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

Status ComplexValue::compile(ConfContext& cf, std::string_view value, bool allow_captures) {
  source_ = std::string(value);
  parts_.clear();
  literals_.clear();
  dynamic_ = false;
  captures_mask_ = 0;
  max_capture_ = -1;
  size_t i = 0;
  size_t lit_start = 0;
  auto flush_literal = [&](size_t end) {
    if (end > lit_start) {
      auto off = static_cast<uint32_t>(literals_.size());
      literals_.append(value.substr(lit_start, end - lit_start));
      parts_.push_back(Part{Kind::Literal, -1, off, static_cast<uint32_t>(end - lit_start)});
    }
  };
  while (i < value.size()) {
    if (value[i] != '$') {
      i++;
      continue;
    }
    flush_literal(i);
    i++;
    if (i < value.size() && value[i] >= '0' && value[i] <= '9') {
      int n = value[i] - '0';
      if (!allow_captures)
        return cf.errorf("using variable \"$%d\" requires regular expression", n);
      parts_.push_back(Part{Kind::Capture, n});
      captures_mask_ |= 1u << n;
      if (n > max_capture_) max_capture_ = n;
      dynamic_ = true;
      i++;
      lit_start = i;
      continue;
    }
    std::string_view name;
    if (i < value.size() && value[i] == '{') {
      size_t close = value.find('}', i + 1);
      if (close == std::string_view::npos) {
        return cf.errorf("the closing bracket in \"%.*s\" variable is missing",
                         static_cast<int>(value.size() - i - 1), value.data() + i + 1);
      }
      name = value.substr(i + 1, close - i - 1);
      for (char c : name) {
        if (!is_name_char(c)) return cf.errorf("invalid variable name in \"%s\"", source_.c_str());
      }
      i = close + 1;
    } else {
      size_t start = i;
      while (i < value.size() && is_name_char(value[i])) i++;
      name = value.substr(start, i - start);
    }
    if (name.empty()) return cf.errorf("invalid variable name in \"%s\"", source_.c_str());
    int index = core_main_conf(cf).variables.index_of(cf, name);
    parts_.push_back(Part{Kind::Variable, index});
    dynamic_ = true;
    lit_start = i;
  }
  flush_literal(value.size());
  if (!dynamic_) source_literal_ = std::string(value);
  only_variable_ = parts_.size() == 1 && parts_[0].kind == Kind::Variable ? parts_[0].index : -1;
  return {};
}

std::string_view ComplexValue::eval_dynamic(Request& r, CaptureEscape escape) const {
  // The captures escaped: all, or those after the first literal part with a "?" (the args).
  size_t args_from = escape == CaptureEscape::All ? 0 : parts_.size();
  if (escape == CaptureEscape::InArgs) {
    for (size_t i = 0; i < parts_.size(); i++) {
      if (parts_[i].kind == Kind::Literal &&
          literal(parts_[i]).find('?') != std::string_view::npos) {
        args_from = i;
        break;
      }
    }
  }
  VariableValue* small[16];
  VariableValue** vals =
      parts_.size() <= 16
          ? small
          : static_cast<VariableValue**>(r.pool->alloc(
                sizeof(VariableValue*) * parts_.size()));  // NOLINT(bugprone-sizeof-expression)
  size_t len = 0;
  for (size_t i = 0; i < parts_.size(); i++) {
    const Part& p = parts_[i];
    switch (p.kind) {
      case Kind::Literal:
        len += p.len;
        break;
      case Kind::Variable: {
        VariableValue* v = get_flushed_variable(r, p.index);
        vals[i] = v;
        if (v->valid) len += v->len;
        break;
      }
      case Kind::Capture: {
        int n = p.index * 2;
        if (n + 1 < r.ncaptures && r.captures[n] >= 0) {
          std::string_view cap =
              r.captures_data.substr(r.captures[n], r.captures[n + 1] - r.captures[n]);
          len += i >= args_from ? escape_uri(nullptr, cap, Escape::Args) : cap.size();
        }
        break;
      }
    }
  }
  char* out = r.pool->alloc_bytes(len ? len : 1);
  char* e = out;
  for (size_t i = 0; i < parts_.size(); i++) {
    const Part& p = parts_[i];
    switch (p.kind) {
      case Kind::Literal:
        e = put(e, literal(p));
        break;
      case Kind::Variable:
        if (vals[i]->valid) e = put(e, vals[i]->view());
        break;
      case Kind::Capture: {
        int n = p.index * 2;
        if (n + 1 < r.ncaptures && r.captures[n] >= 0) {
          std::string_view cap =
              r.captures_data.substr(r.captures[n], r.captures[n + 1] - r.captures[n]);
          e += i >= args_from ? escape_uri(e, cap, Escape::Args)
                              : (std::memcpy(e, cap.data(), cap.size()), cap.size());
        }
        break;
      }
    }
  }
  return {out, static_cast<size_t>(e - out)};
}

Status compile_http_regex(ConfContext& cf, HttpRegex& out, std::string_view pattern,
                          bool caseless) {
  if (Status s = out.re.compile(pattern, caseless); !s.ok()) return cf.error(s.message());
  CoreMainConf& cmcf = core_main_conf(cf);
  if (out.re.captures() > cmcf.ncaptures) cmcf.ncaptures = out.re.captures();
  for (const auto& [name, group] : out.re.names()) {
    if (Result<Variable*> v = cmcf.variables.add(cf, name, kVarChangeable); !v.ok()) {
      return v.status();
    }
    int index = cmcf.variables.index_of(cf, name);
    out.named.emplace_back(index, group);
  }
  return {};
}

bool regex_exec(Request& r, const HttpRegex& re, std::string_view s) {
  int need = 2 * (re.re.captures() + 1);
  if (r.captures == nullptr) {
    // Room for the regex with the most groups in the configuration.
    int alloc = 2 * (core_main(r).ncaptures + 1);
    if (alloc < need) alloc = need;
    r.captures = static_cast<int*>(r.pool->alloc(sizeof(int) * alloc, alignof(int)));
  }
  if (!re.re.match(s, r.captures, need)) return false;
  r.ncaptures = need;
  r.captures_data = s;
  for (const auto& [index, group] : re.named) {
    VariableValue& v = r.variables[index];
    int a = r.captures[2 * group], b = r.captures[2 * group + 1];
    if (a >= 0) {
      v.set(s.substr(a, b - a));
    } else {
      v.set({});
    }
  }
  return true;
}

}  // namespace weir::http
