// What the FastCGI module's files share: its location configuration, its per-request state, the
// record framing, and the two sides of its protocol (fastcgi_request.cc builds the records of the
// request, fastcgi_response.cc reads the records of the response).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/setting.h"
#include "core/regex.h"
#include "http/parse.h"
#include "http/script.h"
#include "upstream/cgi_params.h"
#include "upstream/event_pipe.h"
#include "upstream/upstream.h"
#include "upstream/upstream_settings.h"

namespace weir::http {

extern Module http_fastcgi_module;

namespace fastcgi {

// The record types of FastCGI 1.0 that nginx's side of the protocol uses.
enum class RecordType : uint8_t {
  BeginRequest = 1,
  EndRequest = 3,
  Params = 4,
  Stdin = 5,
  Stdout = 6,
  Stderr = 7,
};
constexpr size_t kHeaderSize = 8;

struct FastcgiLocConf {
  static constexpr Module* kModule = &http_fastcgi_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  CgiPass pass;
  UpstreamSettings up;  // fastcgi_buffers, fastcgi_read_timeout ...
  CgiParams params;     // fastcgi_param
  Setting<std::string> index;
  std::shared_ptr<Regex> split_path_info;
  Setting<bool> keep_conn;
  std::vector<std::string>* catch_stderr = nullptr;
  UpstreamConf upstream;
};

// The response's record walk: where in the records the next byte falls.
struct Records {
  uint8_t head[kHeaderSize] = {};
  uint8_t head_len = 0;  // bytes of the next record's header read so far
  RecordType type = RecordType::Stdout;
  size_t content_left = 0;
  size_t padding_left = 0;
  // The header's preread: stdout bytes the header parse gathered already, at the start of the
  // first input the body filters see.
  size_t gathered = 0;
  bool ended = false;          // END_REQUEST read (or the body cut at its Content-Length)
  bool stdout_closed = false;  // the empty STDOUT record read
  bool short_body = false;     // ... or END_REQUEST, short of the header's Content-Length
  bool extra = false;          // bytes after it
  // The body's bytes still to come by the header's Content-Length: kUnbounded without one,
  // kDeferred for HEAD until a body comes (as nginx, which bounds a HEAD answer's body only then).
  static constexpr off_t kUnbounded = -1;
  static constexpr off_t kDeferred = -2;
  off_t rest = kUnbounded;
  // A STDERR record's text, logged as one line when the record ends (or this fills), however the
  // reads cut it.
  char err[1024];
  size_t err_len = 0;
};

struct FastcgiCtx {
  static constexpr Module* kModule = &http_fastcgi_module;
  Records records;
  // The header: stdout gathered at the buffer's start, then header lines parsed from it.
  char* gathered_end = nullptr;
  char* parsed = nullptr;
  HeaderLineState header;
  bool header_started = false;
  // fastcgi_split_path_info, once per request.
  bool split = false;
  std::string_view script_name;
  std::string_view path_info;
};

inline FastcgiLocConf& fastcgi_conf(Request& r) {
  return r.loc<FastcgiLocConf>();
}
// The request's context, made when first asked for (a variable may ask before the handler runs).
FastcgiCtx& fastcgi_ctx(Request& r);

// Request side: the records of the request (BEGIN_REQUEST, PARAMS, STDIN), a streamed body's
// STDIN records, and the start over before a retry.
Code create_request(Request& r);
ChainLink* body_filter(Request& r, ChainLink* in, bool last);
Code reinit_request(Request& r);

// Response side: the header from the stdout records, and the body's filters.
HeaderResult process_header(Request& r);
Rc input_filter_init(Request& r);
Rc input_filter(Request& r, size_t bytes);
Rc pipe_input_filter(EventPipe& p, Buffer* raw, char* from);

}  // namespace fastcgi
}  // namespace weir::http
