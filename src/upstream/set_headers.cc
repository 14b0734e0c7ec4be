#include "upstream/set_headers.h"

#include "core/str.h"

namespace weir::http {

Status add_set_header(ConfContext& cf, const ConfNode& n, std::vector<SetHeader>*& list) {
  if (list == nullptr) list = cf.pool.make<std::vector<SetHeader>>();
  SetHeader h;
  h.key = n.args[1];
  h.lowcase_key = lowercased(h.key);
  if (Status s = h.value.compile(cf, n.args[2]); !s.ok()) return s;
  list->push_back(std::move(h));
  return {};
}

Result<std::vector<SetHeader>*> merge_set_headers(
    ConfContext& cf, std::vector<SetHeader>* prev_written, std::vector<SetHeader>*& written,
    std::span<const std::pair<const char*, const char*>> defaults) {
  if (written == nullptr) written = prev_written;
  auto* merged = cf.pool.make<std::vector<SetHeader>>();
  if (written != nullptr) *merged = *written;
  for (const auto& [key, value] : defaults) {
    std::string lc = lowercased(key);
    bool named = false;
    for (const SetHeader& h : *merged) named = named || h.lowcase_key == lc;
    if (named) continue;
    SetHeader h;
    h.key = key;
    h.lowcase_key = std::move(lc);
    if (Status s = h.value.compile(cf, value); !s.ok()) return s;
    merged->push_back(std::move(h));
  }
  return merged;
}

}  // namespace weir::http
