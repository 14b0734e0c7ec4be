#include "http/headers.h"

#include "core/str.h"

namespace weir::http {

Header* HeaderList::find(std::string_view name) const {
  for (Header* h = first_; h != nullptr; h = h->next) {
    if (h->hash != 0 && iequals(h->key, name)) return h;
  }
  return nullptr;
}

}  // namespace weir::http
