// Request: one HTTP request from its first byte to its log line - the parsed request line and
// headers, the configuration it runs under, the phase it is in, per-module contexts, variables'
// values, the response headers and the write filter's pending output. And the functions that drive
// it: finalize, internal redirects, keep-alive or close. nginx: src/http/ngx_http_request.h,
// src/http/ngx_http_request.c, src/http/ngx_http_core_module.c
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "conf/conf_context.h"
#include "core/buffer.h"
#include "core/status.h"
#include "event/connection.h"
#include "http/code.h"
#include "http/headers.h"
#include "http/parse.h"

namespace weir::http {

struct Request;
struct HttpConnection;
struct RequestBody;
struct VariableValue;
struct CoreLocConf;
struct Upstream;

// Non-standard statuses nginx uses internally.
constexpr int kHttpClose = 444;
constexpr int kHttpRequestHeaderTooLarge = 494;
constexpr int kHttpToHttps = 497;
constexpr int kHttpClientClosedRequest = 499;
constexpr int kHttpSpecialResponse = 300;
// How deep subrequests may nest (nginx's NGX_HTTP_MAX_SUBREQUESTS).
constexpr int kMaxSubrequests = 50;

using RequestHandler = void (*)(Request& r);
using ContentHandler = Code (*)(Request& r);

// A request whose write handler should run once the current event's handlers have returned.
struct PostedRequest {
  Request* request;
  PostedRequest* next;
};

// In a request's postponed list, in output order: a subrequest that has not had its turn yet, or
// output the request made while another one was active. The postpone filter sends them in order.
// nginx: ngx_http_postponed_request_t.
struct PostponedRequest {
  Request* request = nullptr;  // a subrequest, or nullptr for output
  ChainLink* out = nullptr;
  PostponedRequest* next = nullptr;
};

// What the creator of a subrequest wants done when the subrequest's handler is done, before it
// is finalized: SSI's `set` takes its output, `stub` sends a block in place of an empty answer.
// Returns the code to finalize with. nginx: ngx_http_post_subrequest_t.
struct PostSubrequest {
  Code (*handler)(Request& sr, void* data, Code rc) = nullptr;
  void* data = nullptr;
};

// Something outside the request's pool that must end with it - an upstream connection, a counter in
// shared memory, a subrequest's state: run when the request is terminated or freed, whichever comes
// first, last added first, each once. nginx: ngx_http_cleanup_t.
struct RequestCleanup {
  void (*handler)(void* data) = nullptr;
  void* data = nullptr;
  RequestCleanup* next = nullptr;
};

// Bits of Request::buffered.
enum : uint8_t {
  kCopyFilterBuffered = 0x01,
  kSsiBuffered = 0x02,
  kSubBuffered = 0x04,
  kGzipBuffered = 0x08,
  kImageBuffered = 0x10,
};

struct FileAio;
struct Request {
  Connection* connection = nullptr;
  HttpConnection* http_connection = nullptr;
  Pool* pool = nullptr;
  Request* main = nullptr;
  Request* parent = nullptr;

  void** main_conf = nullptr;
  void** srv_conf = nullptr;
  void** loc_conf = nullptr;
  void** ctx = nullptr;  // per-module request contexts, by ctx_index

  RequestHandler read_event_handler = nullptr;
  RequestHandler write_event_handler = nullptr;

  // The request line.
  RequestLineState line;
  HeaderLineState header_line;
  std::string_view request_line;
  std::string_view method_name;
  std::string_view unparsed_uri;
  std::string_view uri;
  std::string_view args;
  std::string_view exten;
  std::string_view http_protocol;
  std::string_view schema;
  uint32_t method = kUnknown;
  int http_version = 1000;  // major * 1000 + minor; 9 for HTTP/0.9

  HeadersIn headers_in;
  HeadersOut headers_out;
  RequestBody* request_body = nullptr;
  Upstream* upstream = nullptr;  // the upstream serving it (src/upstream/)

  time_t start_sec = 0;
  uint64_t start_msec = 0;  // wall clock, for $request_time

  int phase_handler = 0;
  ContentHandler content_handler = nullptr;
  int access_code = 0;

  VariableValue* variables = nullptr;
  int* captures = nullptr;
  int ncaptures = 0;  // 2 * (number of groups + 1) set by the last match
  std::string_view captures_data;

  Buffer* header_in = nullptr;  // the buffer the request line and headers are read into
  ChainLink* out = nullptr;     // what the write filter holds back
  FileAio* file_aio = nullptr;  // aio threads: the file range brought in (http/file_aio)
  PostedRequest* posted_requests = nullptr;  // main request only
  RequestCleanup* cleanup = nullptr;         // main request only: add_request_cleanup
  // Appends ", upstream: \"...\"" to error-log lines while an upstream serves the request (set by
  // the upstream module; nginx: ngx_http_upstream_log_error).
  char* (*log_upstream)(const Request& r, char* p, char* end) = nullptr;
  PostponedRequest* postponed = nullptr;  // subrequests and output waiting their turn
  PostSubrequest* post_subrequest = nullptr;
  off_t limit_rate = 0;
  off_t limit_rate_after = 0;
  off_t request_length = 0;
  uint64_t lingering_time = 0;  // ms deadline for reading a discarded body after the response
  off_t header_size = 0;

  int count = 1;  // references: the request itself, body reading, subrequests ...
  int uri_changes = 11;
  uint8_t subrequests =
      kMaxSubrequests + 1;  // how many more levels of subrequests may nest below this one
  int err_status = 0;
  uint8_t buffered = 0;
  uint8_t coding = 0;  // the content coding negotiated (content_coding.h), once coding_tested
  // limit_req's and limit_conn's outcome (their LimitStatus) on the main request, as in nginx: an
  // internal redirect clears the modules' contexts, and must not count the request again.
  uint8_t limit_req_status = 0;
  uint8_t limit_conn_status = 0;

  bool header_sent : 1 = false;
  bool header_only : 1 = false;
  bool keepalive : 1 = false;
  bool lingering_close : 1 = false;
  bool discard_body : 1 = false;
  bool reading_body : 1 = false;
  bool request_body_in_file_only : 1 = false;  // the body goes to a kept temp file (dav's PUT)
  bool request_body_no_buffering : 1 = false;  // the body streams to its consumer as it comes
  bool internal : 1 = false;
  bool error_page : 1 = false;
  bool filter_finalize : 1 = false;
  bool request_complete : 1 = false;
  bool post_action : 1 = false;  // running the location's post_action: nothing more is sent
  bool request_output : 1 = false;
  bool done : 1 = false;
  bool logged : 1 = false;
  bool terminated : 1 = false;
  bool main_filter_need_in_memory : 1 = false;
  bool filter_need_in_memory : 1 = false;
  bool filter_need_temporary : 1 = false;
  bool allow_ranges : 1 = false;
  bool single_range : 1 = false;  // one range at most (proxy_force_ranges, slice)
  // A subrequest whose output is a piece of the main request's (slice): the main request's ranges
  // cut it, at its content_offset.
  bool subrequest_ranges : 1 = false;
  bool disable_not_modified : 1 = false;
  bool expect_tested : 1 = false;
  bool root_tested : 1 = false;
  bool valid_location : 1 = false;
  bool valid_unparsed_uri : 1 = false;
  bool add_uri_to_alias : 1 = false;  // try_files found a file under a regex alias: uri names it
  bool uri_changed : 1 = false;
  bool quoted_uri : 1 = false;
  bool plus_in_uri : 1 = false;
  bool complex_uri : 1 = false;
  bool empty_path_in_uri : 1 = false;
  bool invalid_header : 1 = false;
  bool chunked : 1 = false;
  bool expect_trailers : 1 = false;
  bool gzip_tested : 1 = false;  // gzip_ok() has looked at this request
  bool gzip_ok : 1 = false;      // ... and it may get gzip
  bool gzip_vary : 1 = false;    // the answer depends on Accept-Encoding (gzip_vary sends Vary)
  bool vary_coding : 1 = false;  // ... and Vary goes whatever gzip_vary says (brotli, zstd)
  bool coding_tested : 1 = false;
  bool stat_reading : 1 = false;  // counted in stub_status's Reading (the header is arriving)
  bool stat_writing : 1 = false;  // ... in Writing (the request is being served)
  bool limit_rate_set : 1 = false;
  bool limit_rate_after_set : 1 = false;
  bool preserve_body : 1 = false;
  bool background : 1 = false;  // a subrequest whose output is dropped and which nobody waits for
  bool subrequest_in_memory : 1 = false;  // its output is kept in out for the parent to read
  bool waited : 1 = false;  // the parent waits for it (done is set when it ends out of turn)

  // Typed access to configuration and contexts.
  template <class Conf>
  Conf& loc() const {
    return conf_of<Conf>(loc_conf);
  }
  template <class Conf>
  Conf& srv() const {
    return conf_of<Conf>(srv_conf);
  }
  template <class Conf>
  Conf& main_cf() const {
    return conf_of<Conf>(main_conf);
  }
  template <class Ctx>
  Ctx* get_ctx() const {
    return static_cast<Ctx*>(ctx[Ctx::kModule->ctx_index]);
  }
  template <class Ctx>
  void set_ctx(Ctx* c) {
    ctx[Ctx::kModule->ctx_index] = c;
  }

  bool is_main() const { return this == main; }
  const Log& log() const { return *connection->log; }
};

// Starts the phases for a parsed request (ngx_http_handler).
void handle_request(Request& r);
// Drives the request to its end with a handler's code (ngx_http_finalize_request).
void finalize_request(Request& r, Code rc);
// Ends the request, whatever it was doing (errors, timeouts). The closing itself is posted and
// happens after the current handlers return, so no caller up the stack is left holding a freed
// request.
void terminate_request(Request& r, Code rc);
void post_request(Request& r);
// Registers fn(data) to run when the request (its main request) ends; nullptr if memory is short.
RequestCleanup* add_request_cleanup(Request& r, void (*fn)(void* data), void* data);
// Runs and forgets the main request's cleanups (terminate_request and free_request call it).
void run_request_cleanups(Request& r);
// Runs posted requests' write handlers (call at the end of every event handler that drives
// requests).
void run_posted_requests(Connection& c);
// Drops one reference; the last one frees the request and decides keep-alive or close.
void close_request(Request& r, int status);
void finalize_connection(Request& r);
// Restarts processing at find_config with a new URI (and optionally args).
Code internal_redirect(Request& r, std::string_view uri, std::string_view args);
Code named_location(Request& r, std::string_view name);

// Event plumbing: a connection's read/write events go to the request's handlers.
void request_event_handler(Event& ev);
void block_reading(Request& r);
void request_empty_handler(Request& r);
// The active request (the one the connection's events go to) is r.http_connection->active.
bool is_active(const Request& r);
// Waits until the write filter has flushed what it holds (ngx_http_set_write_handler /
// ngx_http_writer).
Code set_write_handler(Request& r);

// The location's root (or alias), evaluated when it has variables; empty on error.
std::string_view location_root(Request& r);
// Maps the URI onto the file system (root/alias) in the request pool, NUL-terminated, with
// `reserved` spare bytes after it (for an index file name). *root_len gets the length of the root
// part. Empty on error.
std::string_view map_uri_to_path(Request& r, size_t* root_len, size_t reserved);

// Adds an output header.
inline Header* add_header_out(Request& r, std::string_view key, std::string_view value) {
  return r.headers_out.headers.push(*r.pool, key, value);
}
// Clears the body-describing headers (Content-Length, Last-Modified, ETag, Accept-Ranges ...).
void clear_content_length(Request& r);
void clear_accept_ranges(Request& r);
void clear_location(Request& r);
void clear_last_modified(Request& r);
void clear_etag(Request& r);

// Content-Type from the location's types and the URI's extension.
Rc set_content_type(Request& r);
// Whether the response's type (without parameters) is one of types (lower case; "*" for any): the
// *_types directives. nginx: ngx_http_test_content_type
bool content_type_in(const Request& r, const std::vector<std::string>& types);
// Builds the ETag from Last-Modified and Content-Length (nginx's format).
Rc set_etag(Request& r);
// Makes a weak ETag out of a strong one.
void weak_etag(Request& r);
// A filter changes the body (ssi, sub): Last-Modified and the ETag go, or with its
// *_last_modified on, they stay and the ETag turns weak.
void body_changed_validators(Request& r, bool keep_last_modified);

// A URI a response or a document names (X-Accel-Redirect, SSI's include): %XX decoded, "?" starting
// the arguments; false for one that is not an absolute path, holds a NUL or climbs with "..".
// nginx: ngx_http_parse_unsafe_uri
bool parse_unsafe_uri(Request& r, std::string_view target, std::string_view& uri,
                      std::string_view& args);

// The error-log context printed after a message: ", client: ..., server: ..., request: ..."
char* log_error_handler(const Log& log, char* p, char* end);
// The request line, or for a malformed one the line as far as it came (up to CR or LF), as nginx's
// log handler and $request show it; kept in r.request_line.
std::string_view request_line_so_far(Request& r);

// Sends a full response whose body is text (`return code "text"`); a 301..308 code makes text the
// Location instead. The type is the URI's (default_type ...) unless given. nginx:
// ngx_http_send_response.
Code send_response(Request& r, int status, std::string_view text, std::string_view type = {});
// Sends an empty buffer carrying last_buf and/or flush (nginx: ngx_http_send_special).
Rc send_special(Request& r, bool last, bool flush);
// Runs the log phase's handlers once.
void log_request(Request& r);
// Called for a read event while the response is being written: notices a client that went away.
void test_reading(Request& r);

std::string_view status_text(int status);

}  // namespace weir::http
