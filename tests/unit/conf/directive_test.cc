// Typed directives: a row's level and owning module come from its setter's configuration type (so a
// srv-level field can never be written at loc level), and a loaded configuration puts each value
// in the struct of the level it was written at.
#include <gtest/gtest.h>

#include "http/core_module.h"
#include "test_http.h"

namespace weir {
namespace {

using http::CoreLocConf;
using http::CoreMainConf;
using http::CoreSrvConf;

constexpr Directive kLoc = directive<slot::flag<&CoreLocConf::sendfile>>("sendfile", kHttpLocConf);
constexpr Directive kSrv = directive<slot::num<&CoreSrvConf::max_headers>>("max_headers", 0);
constexpr Directive kMain =
    directive<slot::num<&CoreMainConf::variables_hash_max_size>>("variables_hash_max_size", 0);
static_assert(kLoc.level == ConfLevel::Loc && kLoc.owner == &http::http_core_module);
static_assert(kSrv.level == ConfLevel::Srv && kSrv.owner == &http::http_core_module);
static_assert(kMain.level == ConfLevel::Main);
static_assert(directives_of(std::span<const Directive>(&kLoc, 1), &http::http_core_module));
static_assert(!directives_of(std::span<const Directive>(&kLoc, 1), &http::http_module));

TEST(Directives, ValuesLandAtTheirLevel) {
  test::TestConf conf(
      "max_headers 7; variables_hash_max_size 2048;\n"
      "server { listen 127.0.0.1:1; max_headers 9; location / { sendfile on; } }\n"
      "server { listen 127.0.0.1:2; }");
  ASSERT_TRUE(conf.ok()) << conf.error();
  CoreMainConf& cmcf = conf.core_main();
  EXPECT_EQ(*cmcf.variables_hash_max_size, 2048u);
  ASSERT_EQ(cmcf.servers.size(), 2u);
  auto& first = conf_of<CoreSrvConf>(cmcf.servers[0]->ctx->srv_conf);
  auto& second = conf_of<CoreSrvConf>(cmcf.servers[1]->ctx->srv_conf);
  EXPECT_EQ(*first.max_headers, 9u);   // set in the server
  EXPECT_EQ(*second.max_headers, 7u);  // inherited from http
  auto& server_loc = conf_of<CoreLocConf>(cmcf.servers[0]->ctx->loc_conf);
  ASSERT_EQ(server_loc.static_locations.size(), 1u);
  auto& root = conf_of<CoreLocConf>(server_loc.static_locations[0]->loc_conf);
  EXPECT_TRUE(*root.sendfile);
  EXPECT_FALSE(*server_loc.sendfile);  // the default (off), where it was not written
}

TEST(Directives, WrongContextIsAnError) {
  test::TestConf conf("server { listen 127.0.0.1:1; location / { max_headers 3; } }");
  EXPECT_FALSE(conf.ok());
  EXPECT_NE(conf.error().find("\"max_headers\" directive is not allowed here"), std::string::npos)
      << conf.error();
}

}  // namespace
}  // namespace weir
