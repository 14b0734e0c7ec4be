#include "test_http.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "http/parse.h"
#include "main/module_list.h"
#include "main/process_cycle.h"

namespace weir::test {

namespace {

Recorded g_recorded;

Rc record_body(http::Request&, ChainLink* in, http::BodyNext) {
  Recorded& rec = g_recorded;
  rec.calls++;
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    Buffer& b = *cl->buf;
    if (b.in_memory()) rec.data.append(b.pos, b.last);
    rec.last = rec.last || b.last_buf;
    rec.flush = rec.flush || b.flush;
    // The sink takes everything: what was passed on is consumed, as the write filter would.
    if (b.in_memory()) b.pos = b.last;
    if (b.in_file) b.file_pos = b.file_last;
  }
  return rec.answer;
}

http::Code record_header(http::Request&, http::HeaderNext) {
  g_recorded.header_calls++;
  return g_recorded.answer;
}

constexpr http::BodyFilterFn kBodySink[] = {record_body};
constexpr http::HeaderFilterFn kHeaderSink[] = {record_header};

uint32_t method_bit(const std::string& m) {
  using namespace http;
  if (m == "GET") return kGet;
  if (m == "HEAD") return kHead;
  if (m == "POST") return kPost;
  if (m == "PUT") return kPut;
  if (m == "DELETE") return kDelete;
  if (m == "OPTIONS") return kOptions;
  return kUnknown;
}

}  // namespace

Recorded& recorded() {
  return g_recorded;
}
void reset_recorded() {
  g_recorded = Recorded{};
}

Rc run_body_filter(http::BodyFilterFn filter, http::Request& r, ChainLink* in) {
  return filter(r, in, http::BodyNext{kBodySink});
}

http::Code run_header_filter(http::HeaderFilterFn filter, http::Request& r) {
  return filter(r, http::HeaderNext{kHeaderSink});
}

TestConf::TestConf(const std::string& http_block, const std::string& main_context) {
  static bool modules = (use_builtin_modules(), true);
  (void)modules;
  char tmpl[] = "/tmp/weir-unit-XXXXXX";
  prefix_ = std::string(::mkdtemp(tmpl)) + "/";
  std::filesystem::create_directories(prefix_ + "conf");
  std::filesystem::create_directories(prefix_ + "logs");
  std::ofstream(prefix_ + "conf/nginx.conf")
      << "daemon off;\nmaster_process off;\nerror_log " << prefix_ << "logs/error.log;\n"
      << main_context << "\nevents { worker_connections 16; }\nhttp {\n"
      << http_block << "\n}\n";
  Options opt;
  opt.prefix = prefix_;
  opt.conf_file = prefix_ + "conf/nginx.conf";
  cycle_ = load_cycle(opt, nullptr);
  status_ = cycle_->load();
  // The logs and temp paths in the prefix, as a starting server has them (else every access-log
  // line is an alert about a bad descriptor).
  if (status_.ok()) status_ = cycle_->open_files_and_paths();
}

TestConf::~TestConf() {
  cycle_.reset();
  std::error_code ec;
  std::filesystem::remove_all(prefix_, ec);
}

http::CoreMainConf& TestConf::core_main() {
  auto* ctx = static_cast<HttpConfCtx*>(cycle_->confs[http::http_module.index]);
  return conf_of<http::CoreMainConf>(ctx->main_conf);
}

HttpConfCtx& TestConf::first_server() {
  return *core_main().servers.front()->ctx;
}

http::BodyFilterFn TestConf::body_filter(http::FilterId id) {
  const http::FilterChains& fc = core_main().filters;
  for (size_t i = 0; i < fc.body_ids.size(); i++) {
    if (fc.body_ids[i] == id) return fc.body[i];
  }
  return nullptr;
}

http::HeaderFilterFn TestConf::header_filter(http::FilterId id) {
  const http::FilterChains& fc = core_main().filters;
  for (size_t i = 0; i < fc.header_ids.size(); i++) {
    if (fc.header_ids[i] == id) return fc.header[i];
  }
  return nullptr;
}

TestRequest::TestRequest(TestConf& conf) {
  EXPECT_TRUE(loop_.init(16).ok());
  pool_.init(4);
  ConnectionPool::current = &pool_;
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
  Log log;
  connection_ = pool_.get(fds_[0], log);
  connection_->listening = &listening_;  // a client connection (http_connection_of checks)
  EXPECT_EQ(loop_.add_connection(*connection_), Rc::Ok);
  auto* hc = new http::HttpConnection();
  hc->conf_ctx = &conf.first_server();
  connection_->data = hc;
  connection_->buffer = Buffer::create_temp(connection_->pool, 1024);
  request_ = http::create_request(*connection_);
  set_request_line("GET", "/");
}

TestRequest::~TestRequest() {
  auto* hc = http::http_connection_of(*connection_);
  hc->request = nullptr;
  connection_->data = nullptr;
  delete hc;
  close_connection(*connection_);
  ::close(fds_[1]);
  ConnectionPool::current = nullptr;
}

void TestRequest::set_request_line(const std::string& method, const std::string& uri,
                                   int http_version) {
  http::Request& r = *request_;
  std::string line = method + " " + uri + " HTTP/" + std::to_string(http_version / 1000) + "." +
                     std::to_string(http_version % 1000);
  r.request_line = r.pool->dup(line);
  r.method_name = r.pool->dup(method);
  r.method = method_bit(method);
  r.http_version = http_version;
  std::string_view raw = r.pool->dup(uri);
  r.unparsed_uri = raw;
  size_t q = raw.find('?');
  r.uri = raw.substr(0, q);
  r.args = q == std::string_view::npos ? std::string_view() : raw.substr(q + 1);
  r.exten = http::uri_exten(r.uri);
  r.loc_conf = http::core_srv(r).ctx->loc_conf;
  EXPECT_NE(http::find_location(r), Rc::Error);
  http::update_location_config(r);
}

void TestRequest::add_header(const std::string& name, const std::string& value) {
  http::Request& r = *request_;
  http::Header* h = r.headers_in.headers.push(*r.pool, r.pool->dup(name), r.pool->dup(value));
  std::string low(name);
  for (char& c : low) c = to_lower(c);
  h->lowcase_key = r.pool->dup(low);
  h->hash = 1;
  http::HeadersIn& in = r.headers_in;
  if (low == "if-none-match") in.if_none_match = h;
  if (low == "if-modified-since") in.if_modified_since = h;
  if (low == "if-match") in.if_match = h;
  if (low == "if-unmodified-since") in.if_unmodified_since = h;
  if (low == "range") in.range = h;
  if (low == "if-range") in.if_range = h;
  if (low == "host") in.host = h;
  if (low == "accept-encoding") in.accept_encoding = h;
}

ChainLink* TestRequest::memory_chain(const std::string& text, bool last) {
  http::Request& r = *request_;
  auto* b = r.pool->make<Buffer>();
  std::string_view copy = r.pool->dup(text);
  b->start = b->pos = const_cast<char*>(copy.data());
  b->end = b->last = b->pos + copy.size();
  b->temporary = !text.empty();
  b->last_buf = last;
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  return cl;
}

}  // namespace weir::test
