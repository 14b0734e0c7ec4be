// The table of nginx's modules weir lacks never claims a directive weir has, and names the module
// of a few directives as nginx's sources place them.
#include "conf/nginx_modules.h"

#include <gtest/gtest.h>

#include "conf/module.h"
#include "main/module_list.h"

namespace weir {
namespace {

TEST(NginxModules, NoneOfWeirsDirectives) {
  use_builtin_modules();
  for (Module* m : all_modules()) {
    for (const Directive& d : m->directives) {
      EXPECT_EQ(nginx_module_of(d.name), "") << d.name << " of " << m->name;
    }
  }
}

TEST(NginxModules, NamesTheModule) {
  EXPECT_EQ(nginx_module_of("perl_modules"), "ngx_http_perl_module");
  EXPECT_EQ(nginx_module_of("dav_ext_methods"), "ngx_http_dav_ext_module (third-party)");
  EXPECT_EQ(nginx_module_of("geoip2"), "");
  EXPECT_EQ(nginx_module_of("mail"), "ngx_mail_module");
  EXPECT_EQ(nginx_module_of("content_by_lua_block"), "ngx_http_lua_module");
  EXPECT_EQ(nginx_module_of("stream"), "ngx_stream_module");
  EXPECT_EQ(nginx_module_of("foo"), "");
  EXPECT_TRUE(built_in_nginx_module("ngx_http_brotli_filter_module"));
  EXPECT_TRUE(built_in_nginx_module("ngx_http_geoip_module"));
  EXPECT_TRUE(built_in_nginx_module("ngx_http_image_filter_module"));
  EXPECT_TRUE(built_in_nginx_module("ngx_http_geoip2_module"));
  EXPECT_TRUE(built_in_nginx_module("ngx_http_xslt_filter_module"));
  EXPECT_FALSE(built_in_nginx_module("ngx_http_perl_module"));
}

}  // namespace
}  // namespace weir
