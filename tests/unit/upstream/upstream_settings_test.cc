// The upstream settings' directives made from a prefix: the names are nginx 1.22's, the set that
// proxy, fastcgi, uwsgi and scgi share (27, besides *_pass and the cache's) and memcached's
// connection-only set; each row writes into the settings of the protocol's configuration.
#include "upstream/upstream_settings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "conf/conf_context.h"
#include "conf/conf_file.h"
#include "test_http.h"

namespace weir::http {
namespace {

struct FakeConf {
  static constexpr Module* kModule = nullptr;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  int before = 0;
  UpstreamSettings up;
};

template <size_t N>
std::set<std::string> names(const std::array<Directive, N>& table) {
  std::set<std::string> out;
  for (const Directive& d : table) out.emplace(d.name);
  return out;
}

TEST(UpstreamSettings, SharedDirectivesHaveNginxNames) {
  constexpr auto full =
      upstream_directives<FakeConf, &FakeConf::up, "fastcgi", SettingsKind::Full>();
  // nginx 1.22: the directives ngx_http_{proxy,fastcgi,uwsgi,scgi}_module.c all have, without
  // *_pass.
  std::set<std::string> nginx;
  for (const char* s : {"bind",
                        "buffer_size",
                        "cache",
                        "cache_background_update",
                        "cache_bypass",
                        "cache_convert_head",
                        "cache_key",
                        "cache_lock",
                        "cache_lock_age",
                        "cache_lock_timeout",
                        "cache_max_range_offset",
                        "cache_methods",
                        "cache_min_uses",
                        "cache_path",
                        "cache_revalidate",
                        "cache_use_stale",
                        "cache_valid",
                        "no_cache",
                        "buffering",
                        "buffers",
                        "busy_buffers_size",
                        "connect_timeout",
                        "force_ranges",
                        "hide_header",
                        "ignore_client_abort",
                        "ignore_headers",
                        "intercept_errors",
                        "limit_rate",
                        "max_temp_file_size",
                        "next_upstream",
                        "next_upstream_timeout",
                        "next_upstream_tries",
                        "pass_header",
                        "pass_request_body",
                        "pass_request_headers",
                        "read_timeout",
                        "request_buffering",
                        "send_timeout",
                        "socket_keepalive",
                        "store",
                        "store_access",
                        "temp_file_write_size",
                        "temp_path"}) {
    nginx.insert(std::string("fastcgi_") + s);
  }
  EXPECT_EQ(names(full), nginx);
  EXPECT_EQ(full.size(), nginx.size());

  constexpr auto conn =
      upstream_directives<FakeConf, &FakeConf::up, "memcached", SettingsKind::Memcached>();
  // ngx_http_memcached_module.c, without memcached_pass and memcached_gzip_flag.
  std::set<std::string> memcached;
  for (const char* s :
       {"bind", "socket_keepalive", "connect_timeout", "send_timeout", "read_timeout",
        "buffer_size", "next_upstream", "next_upstream_tries", "next_upstream_timeout"}) {
    memcached.insert(std::string("memcached_") + s);
  }
  EXPECT_EQ(names(conn), memcached);
}

TEST(UpstreamSettings, RowsWriteIntoTheProtocolsSettings) {
  constexpr auto full = upstream_directives<FakeConf, &FakeConf::up, "uwsgi", SettingsKind::Full>();
  test::TestConf loaded("");
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  Pool pool;
  ConfContext cf(loaded.cycle(), pool);
  FakeConf conf;
  auto run = [&](std::vector<std::string> args) {
    auto it = std::find_if(full.begin(), full.end(),
                           [&](const Directive& d) { return d.name == args[0]; });
    EXPECT_NE(it, full.end()) << args[0];
    ConfNode n;
    n.args = std::move(args);
    return it->set(cf, n, &conf);
  };
  EXPECT_TRUE(run({"uwsgi_read_timeout", "90s"}).ok());
  EXPECT_TRUE(run({"uwsgi_buffers", "4", "16k"}).ok());
  EXPECT_TRUE(run({"uwsgi_next_upstream", "error", "http_502"}).ok());
  EXPECT_TRUE(run({"uwsgi_hide_header", "X-Powered-By"}).ok());
  EXPECT_FALSE(run({"uwsgi_read_timeout", "10s"}).ok());  // duplicate
  EXPECT_FALSE(run({"uwsgi_next_upstream", "off"}).ok());
  EXPECT_EQ(conf.before, 0);
  EXPECT_EQ(*conf.up.read_timeout, 90000u);
  EXPECT_EQ(conf.up.bufs->num, 4u);
  EXPECT_EQ(conf.up.bufs->size, 16384u);
  EXPECT_EQ(*conf.up.next_upstream, kNextError | kNext502);
  ASSERT_NE(conf.up.hide, nullptr);
  EXPECT_EQ(conf.up.hide->front(), "x-powered-by");
}

}  // namespace
}  // namespace weir::http
