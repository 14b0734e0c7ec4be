// What the client's request headers mean: Host validation and the virtual server it picks, the
// headers weir knows by name (kept in HeadersIn's fields, checked for duplicates and values), and
// the checks once all headers are in (Content-Length, Transfer-Encoding, methods). KnownHeader is
// the table shape the upstream's response headers reuse. nginx: ngx_http_request.c
// (ngx_http_headers_in, ngx_http_process_request_header, ngx_http_validate_host)
#pragma once

#include <bit>
#include <cstdint>
#include <string_view>

#include "core/pool.h"
#include "core/status.h"
#include "http/headers.h"

namespace weir::http {

struct Request;

// A header a module handles by name: where it is kept in a header struct and what processes it.
template <class Headers, class Handler>
struct KnownHeader {
  std::string_view name;  // lower case
  Header* Headers::*slot;
  Handler handler;
};

// A table of KnownHeader found by name: an open-addressed index built at compile time, where a
// lookup hashes the name once and compares it only with an entry of the same hash (a linear scan
// compared every header line with every entry).
template <class Entry, size_t N>
class KnownHeaderIndex {
 public:
  consteval explicit KnownHeaderIndex(const Entry (&table)[N]) : table_(table) {
    static_assert(N < kSlots && N < 255);
    for (size_t i = 0; i < N; i++) {
      uint32_t h = header_name_hash(table[i].name);
      size_t j = h & (kSlots - 1);
      while (entry_[j] != 0) j = (j + 1) & (kSlots - 1);
      entry_[j] = static_cast<uint8_t>(i + 1);
      hash_[j] = h;
    }
  }

  // The entry for a lower-case name (of that hash), or nullptr.
  const Entry* find(std::string_view lowcase) const {
    return find(header_name_hash(lowcase), lowcase);
  }
  const Entry* find(uint32_t h, std::string_view lowcase) const {
    for (size_t j = h & (kSlots - 1); entry_[j] != 0; j = (j + 1) & (kSlots - 1)) {
      const Entry& e = table_[entry_[j] - 1];
      if (hash_[j] == h && e.name == lowcase) return &e;
    }
    return nullptr;
  }

 private:
  static constexpr size_t kSlots = std::bit_ceil(N * 2);
  const Entry* table_;
  uint8_t entry_[kSlots] = {};  // 1 + the entry's place in the table; 0: free
  uint32_t hash_[kSlots] = {};
};

// Checks a Host value and strips its port and a trailing dot, lower-casing it (in pool) when
// needed.
bool validate_host(std::string_view& host, Pool& pool);
// Switches the request to the virtual server named host (the address's default when none matches).
Rc set_virtual_server(Request& r, std::string_view host);
// Runs the handler of a known header (Host, Connection, If-*, Content-Length, ...): Ok, or Error
// when it finalized the request (a duplicate, an invalid Host).
Rc process_known_header(Request& r, Header* h);
// The field of HeadersIn that a known header's first line is kept in (host, user_agent, ...), or
// nullptr.
Header** known_header_in(HeadersIn& in, std::string_view lowcase_key);
// The browser a User-Agent names (HeadersIn's msie ... konqueror flags), set afresh.
void detect_browser(HeadersIn& in, std::string_view user_agent);
// The checks once the header is complete. Ok, or Error when it finalized the request.
Rc process_request_header(Request& r);

}  // namespace weir::http
