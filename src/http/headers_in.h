// What the client's request headers mean: Host validation and the virtual server it picks, the
// headers weir knows by name (kept in HeadersIn's fields, checked for duplicates and values), and
// the checks once all headers are in (Content-Length, Transfer-Encoding, methods). KnownHeader is
// the table shape the upstream's response headers reuse. nginx: ngx_http_request.c
// (ngx_http_headers_in, ngx_http_process_request_header, ngx_http_validate_host)
#pragma once

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

// The entry for a lower-case name in a table of KnownHeader, or nullptr.
template <class Table>
auto find_known_header(const Table& table, std::string_view lowcase) -> decltype(&table[0]) {
  for (const auto& k : table) {
    if (k.name == lowcase) return &k;
  }
  return nullptr;
}

// Checks a Host value and strips its port and a trailing dot, lower-casing it (in pool) when
// needed.
bool validate_host(std::string_view& host, Pool& pool);
// Switches the request to the virtual server named host (the address's default when none matches).
Rc set_virtual_server(Request& r, std::string_view host);
// Runs the handler of a known header (Host, Connection, If-*, Content-Length, ...): Ok, or Error
// when it finalized the request (a duplicate, an invalid Host).
Rc process_known_header(Request& r, Header* h);
// The checks once the header is complete. Ok, or Error when it finalized the request.
Rc process_request_header(Request& r);

}  // namespace weir::http
