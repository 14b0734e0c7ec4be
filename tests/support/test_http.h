// Unit-test support for the HTTP layer: a real configuration loaded from nginx.conf text (every
// built-in module, as weir runs it), a client connection over a socketpair with a request on it,
// and fake header/body sinks that record what a filter passes on. So a filter, a phase handler or a
// variable is tested through the same configuration and request code the server uses, without a
// server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "conf/cycle.h"
#include "event/connection.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/filter.h"
#include "http/http_connection.h"
#include "http/request.h"

namespace weir::test {

// A configuration made from text inside `http { }`, loaded in a temp prefix (deleted at the end).
class TestConf {
 public:
  explicit TestConf(const std::string& http_block, const std::string& main_context = "");
  ~TestConf();
  TestConf(const TestConf&) = delete;
  TestConf& operator=(const TestConf&) = delete;

  bool ok() const { return status_.ok(); }
  const std::string& error() const { return status_.message(); }
  const std::string& prefix() const { return prefix_; }
  Cycle& cycle() { return *cycle_; }
  http::CoreMainConf& core_main();
  // The first server's configuration (the default server of its address).
  HttpConfCtx& first_server();
  // The body / header filter registered under id (nullptr if none).
  http::BodyFilterFn body_filter(http::FilterId id);
  http::HeaderFilterFn header_filter(http::FilterId id);

 private:
  std::string prefix_;
  std::unique_ptr<Cycle> cycle_;
  Status status_;
};

// A request on a client connection over a socketpair (the other end is peer_fd), in the first
// server's configuration, as if its header had just been read: method, URI and headers are set
// with set_request_line() / add_header().
class TestRequest {
 public:
  explicit TestRequest(TestConf& conf);
  ~TestRequest();
  TestRequest(const TestRequest&) = delete;
  TestRequest& operator=(const TestRequest&) = delete;

  http::Request& r() { return *request_; }
  int peer_fd() const { return fds_[1]; }
  // "GET /uri?args HTTP/1.1": sets method, uri, args, version and the location's configuration.
  void set_request_line(const std::string& method, const std::string& uri, int http_version = 1001);
  void add_header(const std::string& name, const std::string& value);
  // A chain of one memory buffer holding text (last_buf when last).
  ChainLink* memory_chain(const std::string& text, bool last);

 private:
  EventLoop loop_;
  ConnectionPool pool_;
  int fds_[2] = {-1, -1};
  Connection* connection_ = nullptr;
  Listening listening_;
  http::Request* request_ = nullptr;
};

// What a fake sink saw: each call's bytes (memory buffers), whether last_buf came, and how many
// calls.
struct Recorded {
  std::string data;
  bool last = false;
  bool flush = false;
  int calls = 0;
  int header_calls = 0;
  Rc answer = Rc::Ok;  // what the sink returns
};

// The recorder the sinks write to (one per test; reset() clears it).
Recorded& recorded();
void reset_recorded();

// Runs a body filter with the recording sink as its next filter.
Rc run_body_filter(http::BodyFilterFn filter, http::Request& r, ChainLink* in);
// Runs a header filter with the recording header sink as its next filter.
http::Code run_header_filter(http::HeaderFilterFn filter, http::Request& r);

}  // namespace weir::test
