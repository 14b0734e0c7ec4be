#include "conf/setting.h"

namespace weir::slot {

Status parse_flag(ConfContext& cf, const ConfNode& n, bool& out) {
  if (iequals(n.args[1], "on")) {
    out = true;
  } else if (iequals(n.args[1], "off")) {
    out = false;
  } else {
    return cf.errorf("invalid value \"%s\" in \"%s\" directive, it must be \"on\" or \"off\"",
                     n.args[1].c_str(), n.name().c_str());
  }
  return {};
}

Status parse_access(ConfContext& cf, const ConfNode& n, uint32_t& out) {
  uint32_t mode = 0;
  uint32_t user = 0600;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    int shift;
    if (a.starts_with("user:")) {
      shift = 6;
      user = 0;
    } else if (a.starts_with("group:")) {
      shift = 3;
    } else if (a.starts_with("all:")) {
      shift = 0;
    } else {
      return cf.errorf("invalid value \"%s\"", n.args[i].c_str());
    }
    std::string_view rights = a.substr(a.find(':') + 1);
    if (rights != "rw" && rights != "r") {
      return cf.errorf("invalid value \"%s\"", n.args[i].c_str());
    }
    mode |= (rights == "rw" ? 6u : 4u) << shift;
  }
  out = mode | user;
  return {};
}

Status parse_bufs(const ConfNode& n, Bufs& out) {
  // nginx's bufs slot names neither argument.
  if (n.nargs() != 2) return Status::error("invalid value");
  auto num = parse_int(n.args[1]);
  if (!num || *num == 0) return Status::error("invalid value");
  auto size = parse_size(n.args[2]);
  if (!size || *size == 0) return Status::error("invalid value");
  out.num = static_cast<int>(*num);
  out.size = static_cast<size_t>(*size);
  return {};
}

Status parse_path(ConfContext& cf, const ConfNode& n, TempPath& out) {
  std::string name = n.args[1];
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  out.name = cf.full_name(name);
  out.level = {0, 0, 0};
  // Up to three levels of any length, as nginx takes them, within the 10 digits of a temp file's
  // number that they are cut from.
  int64_t digits = 0;
  for (size_t i = 2; i < n.args.size(); i++) {
    if (i - 2 >= out.level.size()) return Status::error("invalid value");
    auto v = parse_int(n.args[i]);
    if (!v || *v < 1 || (digits += *v) > 10) return Status::error("invalid value");
    out.level[i - 2] = static_cast<int>(*v);
  }
  return {};
}

}  // namespace weir::slot
