// The HTTP core module's configuration: the main conf (servers, phases, variables, filter chains),
// the server conf (names, header buffers and timeouts) and the location conf (matching, root/alias,
// types, timeouts, sendfile, limits, error pages, try_files ...), and the phases that modules hook
// into. nginx: src/http/ngx_http_core_module.h
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/conf_context.h"
#include "conf/module.h"
#include "conf/setting.h"
#include "core/file.h"
#include "core/host_names.h"
#include "core/inet.h"
#include "core/regex.h"
#include "core/string_table.h"
#include "event/resolver.h"
#include "event/thread_pool.h"
#include "http/filter.h"
#include "http/open_file.h"
#include "http/request.h"
#include "http/script.h"
#include "http/variables.h"
#include "os/socket.h"

namespace weir::http {

extern Module http_module;       // the `http { }` block (a core module)
extern Module http_core_module;  // the HTTP core directives

enum class Phase : uint8_t {
  PostRead,
  ServerRewrite,
  FindConfig,
  Rewrite,
  PostRewrite,
  Preaccess,
  Access,
  PostAccess,
  Precontent,
  Content,
  Log,
};
constexpr int kPhaseCount = 11;

using PhaseHandlerFn = Code (*)(Request& r);

// How the engine reads a handler's answer (nginx's phase checkers), or a step of the core's own: a
// switch in run_phases rather than a call through a pointer per step.
enum class PhaseStep : uint8_t {
  End,  // ends the array
  Generic,
  Rewrite,
  FindConfig,
  PostRewrite,
  Access,
  PostAccess,
  Content,
};

struct PhaseHandler {
  PhaseStep step = PhaseStep::End;
  PhaseHandlerFn handler = nullptr;
  int next = 0;  // the first handler of the next phase
};

struct PhaseEngine {
  std::vector<PhaseHandler> handlers;
  int server_rewrite_index = -1;
  int location_rewrite_index = -1;
  int find_config_index = 0;
};

struct CoreSrvConf;
// gzip_proxied's conditions (bits).
enum : uint32_t {
  kGzipProxiedOff = 0x0002,
  kGzipProxiedExpired = 0x0004,
  kGzipProxiedNoCache = 0x0008,
  kGzipProxiedNoStore = 0x0010,
  kGzipProxiedPrivate = 0x0020,
  kGzipProxiedNoLastModified = 0x0040,
  kGzipProxiedNoEtag = 0x0080,
  kGzipProxiedAuth = 0x0100,
  kGzipProxiedAny = 0x0200,
};

enum class AioMode : uint8_t { Off, On, Threads };

struct CoreLocConf;

// One `listen` directive.
struct ListenConf {
  SockAddr addr;
  std::string addr_text;
  ListenOptions opt;
  bool default_server = false;
  bool bind = false;
  bool wildcard = false;
  bool proxy_protocol = false;
  bool ssl = false;
  bool http2 = false;
  CoreSrvConf* server = nullptr;
  const ConfNode* node = nullptr;
};

struct ServerName {
  std::string name;  // lower case; "" matches requests without Host
  HttpRegex* regex = nullptr;
  CoreSrvConf* server = nullptr;
  // A wildcard not in one of nginx's three forms: refused where servers share the address (nginx
  // builds and checks its names hash only there), never matched.
  bool invalid = false;
};

// The virtual servers behind one address: lookup by Host (exact, wildcards, then regexes in order).
struct VirtualServers {
  CoreSrvConf* default_server = nullptr;
  HostNames<CoreSrvConf*> names;
  std::vector<std::pair<HttpRegex*, CoreSrvConf*>> regex;
  // One server, named by no regex: every name finds it or nothing, and the default stays either
  // way, so find() says nothing without looking.
  bool only_default = false;
  CoreSrvConf* find(Request* r, std::string_view host) const;
};

// An address a listening socket serves (several when a wildcard socket covers specific addresses).
struct HttpAddr {
  SockAddr addr;
  std::string addr_text;
  VirtualServers servers;
  bool proxy_protocol = false;  // connections start with a PROXY protocol header
  bool ssl = false;             // listen ... ssl: connections start with a TLS handshake
  bool http2 = false;           // listen ... http2: HTTP/2 by ALPN, or by its preface in plain
};

struct HttpPort {
  std::vector<HttpAddr> addrs;  // the wildcard, if any, last
};

// A compression filter's offer to encode responses (http/content_coding.h).
struct CodingOffer {
  uint8_t coding = 0;
  bool (*eligible)(Request& r) = nullptr;
};

struct CoreMainConf {
  static constexpr Module* kModule = &http_core_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;

  std::vector<CoreSrvConf*> servers;
  std::array<std::vector<PhaseHandlerFn>, kPhaseCount> phases;
  PhaseEngine phase_engine;
  Variables variables;
  FilterChains filters;
  std::vector<std::pair<FilterId, HeaderFilterFn>> header_registrations;
  std::vector<std::pair<FilterId, BodyFilterFn>> body_registrations;
  std::vector<ListenConf> listens;
  std::vector<std::unique_ptr<HttpPort>> ports;

  Setting<size_t> server_names_hash_max_size;
  Setting<size_t> server_names_hash_bucket_size;
  Setting<size_t> variables_hash_max_size;
  Setting<size_t> variables_hash_bucket_size;
  std::vector<CodingOffer> codings;  // the compression filters configured, in preference order
  int ncaptures = 0;
  bool try_files = false;
  Cycle* cycle = nullptr;  // its thread pools, for `aio threads=$name`
  std::string prefix;      // the -p prefix, for roots with variables that end up relative
  // The never-stale file cache of every location without open_file_cache (open_file_cache_auto).
  OpenFileCache* auto_file_cache = nullptr;
};

struct CoreSrvConf {
  static constexpr Module* kModule = &http_core_module;
  static constexpr ConfLevel kLevel = ConfLevel::Srv;

  std::vector<ServerName> server_names;
  HttpConfCtx* ctx = nullptr;
  const ConfNode* node = nullptr;
  std::string server_name;  // the first name, for $server_name and redirects
  bool has_listen = false;
  bool has_server_name = false;

  Setting<size_t> connection_pool_size;
  Setting<size_t> request_pool_size;
  Setting<size_t> client_header_buffer_size;
  Setting<Bufs> large_client_header_buffers;
  Setting<uint64_t> client_header_timeout;
  Setting<bool> ignore_invalid_headers;
  Setting<uint32_t> max_headers;
  Setting<bool> merge_slashes;
  Setting<bool> underscores_in_headers;

  std::vector<CoreLocConf*> named_locations;
};

// `types`: lower-case extension -> content type (looked up with find_caseless).
using TypesMap = StringTable<std::string>;

struct ErrorPage {
  int status = 0;
  int overwrite =
      -1;  // -1: keep the status; 0: "=" (the redirect's own status); else the new status
  ComplexValue value;
};

struct TryFile {
  ComplexValue value;
  bool test_dir = false;
};

enum class ServerTokens : uint8_t { Off, On, Build };
enum class LingeringClose : uint8_t { Off, On, Always };
enum class IfModifiedSince : uint8_t { Off, Exact, Before };
enum class BodyInFileOnly : uint8_t { Off, On, Clean };
enum : uint32_t {
  kKeepaliveDisableNone = 0,
  kKeepaliveDisableMsie6 = 1,
  kKeepaliveDisableSafari = 2
};

struct CoreLocConf {
  static constexpr Module* kModule = &http_core_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  std::string name;
  HttpRegex* regex = nullptr;
  bool exact_match = false;
  bool noregex = false;
  bool named = false;
  bool noname = false;  // `if` and limit_except blocks
  bool auto_redirect = false;
  bool lmt_excpt = false;
  const ConfNode* node = nullptr;
  void** loc_conf = nullptr;  // this location's configuration array

  std::vector<CoreLocConf*> locations;         // nested, as written
  std::vector<CoreLocConf*> static_locations;  // prefix and exact, longest first
  std::vector<CoreLocConf*> regex_locations;   // in configuration order

  ContentHandler handler = nullptr;
  uint32_t limit_except = 0;  // methods allowed without the limit_except block's rules
  void** limit_except_loc_conf = nullptr;

  // root / alias
  std::string root;
  bool root_set = false;
  bool alias = false;
  size_t alias_prefix_len = 0;          // the location name's length, replaced by the alias
  ComplexValue* root_values = nullptr;  // when root/alias has variables

  const TypesMap* types = nullptr;
  Setting<std::string> default_type;
  Setting<std::string> post_action;  // a URI or @name run once the response is done

  Setting<off_t> client_max_body_size;
  Setting<size_t> client_body_buffer_size;
  Setting<bool> client_body_in_single_buffer;
  Setting<BodyInFileOnly> client_body_in_file_only;
  Setting<TempPath> client_body_temp_path;
  Setting<uint64_t> client_body_timeout;
  Setting<size_t> client_body_min_rate;
  Setting<size_t>
      subrequest_output_buffer_size;  // weir's: bytes/s a body must average (0: no minimum)
  Setting<uint64_t> send_timeout;
  Setting<size_t> send_lowat;    // taken with nginx's warning: Linux has no SO_SNDLOWAT
  Resolver* resolver = nullptr;  // `resolver`: names known only at request time
  Setting<uint64_t> keepalive_timeout;
  Setting<time_t> keepalive_header;
  Setting<uint64_t> keepalive_requests;
  Setting<uint64_t> keepalive_time;
  Setting<uint32_t> keepalive_disable;
  Setting<uint64_t> lingering_time;
  Setting<uint64_t> lingering_timeout;
  Setting<LingeringClose> lingering_close;
  Setting<bool> reset_timedout_connection;
  Setting<uint64_t> resolver_timeout;
  Setting<uint64_t> auth_delay;

  Setting<bool> sendfile;
  Setting<size_t> sendfile_max_chunk;
  Setting<bool> tcp_nopush;
  Setting<bool> tcp_nodelay;
  Setting<size_t> postpone_output;
  Setting<size_t> limit_rate;
  ComplexValue* limit_rate_values = nullptr;
  Setting<size_t> limit_rate_after;
  ComplexValue* limit_rate_after_values = nullptr;
  Setting<off_t> directio;  // -1: off
  Setting<size_t> directio_alignment;
  Setting<size_t> read_ahead;
  // aio: off; on (Linux's AIO reads only directio files: without directio, as off); threads
  // (file reads wait in a thread pool, http/file_aio). aio_write: temp-file writes too.
  Setting<AioMode> aio;
  ThreadPool* thread_pool = nullptr;
  ComplexValue* thread_pool_value = nullptr;  // aio threads=$name
  Setting<bool> aio_write;

  Setting<bool> internal;
  Setting<bool> absolute_redirect;
  Setting<bool> server_name_in_redirect;
  Setting<bool> port_in_redirect;
  Setting<bool> msie_padding;
  Setting<bool> msie_refresh;
  Setting<bool> log_not_found;
  Setting<bool> log_subrequest;
  Setting<bool> recursive_error_pages;
  Setting<ServerTokens> server_tokens;
  Setting<bool> chunked_transfer_encoding;
  Setting<bool> etag;
  Setting<IfModifiedSince> if_modified_since;
  Setting<uint64_t> max_ranges;
  Setting<uint32_t> satisfy;  // 0 all, 1 any

  // Who may get a gzipped response (the gzip filter and gzip_static; nginx keeps them in the core).
  Setting<bool> gzip_vary;
  Setting<int> gzip_http_version;  // 1000 or 1001
  Setting<uint32_t> gzip_proxied;  // kGzipProxied* bits
  Setting<bool> gzip_disable_msie6;
  std::vector<std::unique_ptr<Regex>>* gzip_disable = nullptr;  // User-Agent patterns

  std::vector<ErrorPage> error_pages;
  bool error_pages_set = false;
  std::vector<TryFile>* try_files = nullptr;

  LogSink* error_log = nullptr;

  // open_file_cache: nullptr when off.
  OpenFileCache* open_file_cache = nullptr;
  bool open_file_cache_set = false;
  Setting<time_t> open_file_cache_valid;
  Setting<uint64_t> open_file_cache_min_uses;
  Setting<bool> open_file_cache_errors;
  Setting<bool> open_file_cache_events;
  // weir's own: with no open_file_cache, a never-stale cache of the worker's (http/file_watch.h).
  Setting<bool> open_file_cache_auto;
  // disable_symlinks, and its from= (nullptr: the whole path is checked).
  Setting<SymlinkRule> disable_symlinks;
  Setting<const ComplexValue*> disable_symlinks_from;
};

// The open-file parameters of a location, and when r's bytes arrived, ready for open_cached_file.
void init_open_file_info(const Request& r, const CoreLocConf& clcf, OpenFileInfo& of);
// disable_symlinks for path: the rule, and how much of path from= leaves unchecked. nginx:
// ngx_http_set_disable_symlinks
void set_symlinks_from(Request& r, const CoreLocConf& clcf, std::string_view path,
                       OpenFileInfo& of);
inline void set_disable_symlinks(Request& r, const CoreLocConf& clcf, std::string_view path,
                                 OpenFileInfo& of) {
  of.symlinks = *clcf.disable_symlinks;
  if (of.symlinks != SymlinkRule::Off && *clcf.disable_symlinks_from != nullptr) {
    set_symlinks_from(r, clcf, path, of);
  }
}

// Phase engine and locations.
Status init_phase_engine(ConfContext& cf, CoreMainConf& cmcf);
void run_phases(Request& r);
void core_run_phases(Request& r);
// Finds the location for r.uri among the server's locations (ngx_http_core_find_location).
// Returns Ok (found), Done (auto redirect wanted) or Declined (no location).
Rc find_location(Request& r);
void update_location_config(Request& r);
Status init_locations(ConfContext& cf, CoreSrvConf& cscf, CoreLocConf& pclcf);

// The server for a Host value within the connection's address.
CoreSrvConf* find_virtual_server(Request& r, std::string_view host);

// The `resolver` directive's parameters: a resolver made in cf's pool, or nginx's error.
Status parse_resolver(ConfContext& cf, const ConfNode& n, Resolver*& out);

// The http block's listening sockets.
Status add_listening(ConfContext& cf, CoreMainConf& cmcf);

// The default and the configured keep-alive etc. as the request sees them.
inline CoreLocConf& core_loc(const Request& r) {
  return r.loc<CoreLocConf>();
}
inline CoreSrvConf& core_srv(const Request& r) {
  return r.srv<CoreSrvConf>();
}
inline CoreMainConf& core_main(const Request& r) {
  return r.main_cf<CoreMainConf>();
}

// Registers a phase handler (modules' postconfiguration).
void add_phase_handler(ConfContext& cf, Phase phase, PhaseHandlerFn fn);
CoreMainConf& core_main_conf(ConfContext& cf);

// Content handler of a location (proxy_pass, return ...): set from a directive.
inline void set_location_handler(ConfContext& cf, ContentHandler h) {
  conf_of<CoreLocConf>(cf.http->loc_conf).handler = h;
}

// Creates the configuration arrays of a new level (server, location, if) for every HTTP module.
Status create_level_confs(ConfContext& cf, HttpConfCtx& ctx, bool srv);

}  // namespace weir::http
