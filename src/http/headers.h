// Header lists: request and response headers in arrival/insertion order, pool-allocated, with the
// well-known ones also reachable through named pointers (headers_in.host, headers_out.location
// ...). nginx: src/core/ngx_list.h, ngx_table_elt_t, ngx_http_headers_in_t / ngx_http_headers_out_t
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string_view>

#include "core/pool.h"
#include "core/str.h"

namespace weir::http {

struct Header {
  std::string_view key;
  std::string_view value;
  std::string_view lowcase_key;
  uint32_t hash = 1;  // 0: removed (an output header that a filter dropped)
  // Nonzero: key and value lie in one "key: value\r\n" of this many bytes, copied whole by the
  // HTTP/1 header filter while key and value still are those views (whole_line()).
  uint8_t line = 0;
  Header* next = nullptr;
  Header* next_same = nullptr;  // the next line of the same name (Cache-Control's, for expires)
};

// The hash header-name tables are built on (at compile time too).
constexpr uint32_t header_name_hash(std::string_view lowcase) {
  return static_cast<uint32_t>(hash_bytes(lowcase));
}

// Whether h is still the whole line it was made as: its key and value are the views into it.
inline bool whole_line(const Header& h) {
  return h.line != 0 && h.line == h.key.size() + h.value.size() + 4 &&
         h.value.data() == h.key.data() + h.key.size() + 2;
}

class HeaderList {
 public:
  Header* push(Pool& pool, std::string_view key, std::string_view value) {
    auto* h = pool.make<Header>();
    h->key = key;
    h->value = value;
    append(h, h);
    return h;
  }
  // Appends nodes already linked by next (first ... last), made by the caller.
  void append(Header* first, Header* last) {
    if (last_ != nullptr) {
      last_->next = first;
    } else {
      first_ = first;
    }
    last_ = last;
  }
  // Appends the nodes of other (which then shares them).
  void append(const HeaderList& other) {
    if (other.first_ != nullptr) append(other.first_, other.last_);
  }
  void clear() { first_ = last_ = nullptr; }
  bool empty() const { return first_ == nullptr; }

  struct iterator {
    Header* h;
    Header* operator*() const { return h; }
    iterator& operator++() {
      h = h->next;
      return *this;
    }
    bool operator!=(const iterator& o) const { return h != o.h; }
  };
  iterator begin() const { return {first_}; }
  iterator end() const { return {nullptr}; }

  // The first live header with this name (case-insensitive).
  Header* find(std::string_view name) const;

 private:
  Header* first_ = nullptr;
  Header* last_ = nullptr;
};

enum class ConnectionType : uint8_t { None, Close, KeepAlive };

struct HeadersIn {
  HeaderList headers;

  Header* host = nullptr;
  Header* connection = nullptr;
  Header* if_modified_since = nullptr;
  Header* if_unmodified_since = nullptr;
  Header* if_match = nullptr;
  Header* if_none_match = nullptr;
  Header* user_agent = nullptr;
  Header* referer = nullptr;
  Header* content_length = nullptr;
  Header* content_range = nullptr;
  Header* content_type = nullptr;
  Header* range = nullptr;
  Header* if_range = nullptr;
  Header* transfer_encoding = nullptr;
  Header* te = nullptr;
  Header* expect = nullptr;
  Header* upgrade = nullptr;
  Header* accept_encoding = nullptr;
  Header* via = nullptr;
  Header* authorization = nullptr;
  Header* keep_alive = nullptr;
  Header* x_forwarded_for = nullptr;
  Header* cookie = nullptr;

  std::string_view server;  // the validated Host (or the absolute URI's host), lower case, no port
  off_t content_length_n = -1;
  uint32_t count = 0;  // header lines kept, for max_headers
  ConnectionType connection_type = ConnectionType::None;
  bool chunked = false;
  bool msie = false;
  bool msie6 = false;
  bool opera = false;
  bool gecko = false;
  bool chrome = false;
  bool safari = false;
  bool konqueror = false;
};

struct HeadersOut {
  HeaderList headers;

  int status = 0;
  std::string_view status_line;  // a full "200 OK" when set (upstreams)

  Header* server = nullptr;
  Header* date = nullptr;
  Header* content_length = nullptr;
  Header* content_encoding = nullptr;
  Header* location = nullptr;
  Header* refresh = nullptr;
  Header* last_modified = nullptr;
  Header* content_range = nullptr;
  Header* accept_ranges = nullptr;
  Header* www_authenticate = nullptr;
  Header* expires = nullptr;
  Header* etag = nullptr;
  Header* cache_control = nullptr;  // the first line; the others by next_same

  HeaderList trailers;  // add_trailer's, written by the chunked filter after the last chunk

  std::string_view content_type;
  size_t content_type_len = 0;  // without parameters, for matching (gzip_types ...)
  std::string_view charset;
  std::string_view override_charset;  // X-Accel-Charset, for the charset filter
  std::string_view content_type_lowcase;

  off_t content_length_n = -1;
  off_t content_offset = 0;
  time_t date_time = 0;
  time_t last_modified_time = -1;
  std::string_view
      last_modified_text;  // last_modified_time already formatted (the open file cache's)
};

}  // namespace weir::http
