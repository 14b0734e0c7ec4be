// The filter order equals the seed's (shared/seeds/004: ngx_modules[] from write up to
// not_modified), and the chains built from a real configuration follow it, ending with the header
// serialiser and the writer.
#include "http/filter_order.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "conf/cycle.h"
#include "http/core_module.h"
#include "main/module_list.h"

namespace weir::http {
namespace {

TEST(FilterOrder, IsTheSeeds) {
  // The seed's list, verbatim in order: write, header, chunked, range_header, gzip, postpone, ssi,
  // charset, userid, headers, copy, range_body, not_modified. The last registered runs first.
  const std::vector<std::string> seed = {
      "write",   "header", "chunked", "range_header", "gzip",       "postpone",    "ssi",
      "charset", "userid", "headers", "copy",         "range_body", "not_modified"};
  // slice (Debian's build has it: --with-http_slice_module) is registered last, and runs first.
  // gunzip, sub and addition are not in the seed's default build; nginx (auto/modules) puts sub
  // right after charset, then addition and gunzip, before userid, where Debian's build has them.
  std::vector<std::string> with_gunzip = seed;
  with_gunzip.insert(with_gunzip.begin() + 8, {"sub", "addition", "gunzip"});
  // brotli and zstd (weir's, beside gzip) right after gzip: their header filters run before its.
  with_gunzip.insert(with_gunzip.begin() + 5, {"zstd", "brotli"});
  // The HTTP/2 filter (HTTP_V2_FILTER_MODULE in auto/modules) right after chunked: for a stream it
  // writes the head as a HEADERS frame, and chunked and the HTTP/1 header filter never see it.
  with_gunzip.insert(with_gunzip.begin() + 3, "http2");
  // headers-more, image_filter and xslt, dynamic modules in Debian's build: nginx loads each right
  // before copy, in modules-enabled's (alphabetical) order.
  with_gunzip.insert(std::find(with_gunzip.begin(), with_gunzip.end(), "copy"),
                     {"headers_more", "image_filter", "xslt"});
  with_gunzip.emplace_back("slice");
  std::vector<std::string> reg;
  for (FilterId id : kSeedRegistrationOrder) reg.emplace_back(filter_name(id));
  EXPECT_EQ(reg, with_gunzip);
  std::vector<std::string> run;
  for (FilterId id : kFilterRunOrder) run.emplace_back(filter_name(id));
  EXPECT_EQ(run.front(), "slice");
  EXPECT_EQ(run.back(), "write");
  EXPECT_EQ(std::vector<std::string>(run.rbegin(), run.rend()), with_gunzip);
}

// The chains a configuration builds (the cycle keeps them).
const FilterChains& chains_of(Cycle& cycle, const std::string& http_block) {
  use_builtin_modules();
  char tmpl[] = "/tmp/weir-fo-XXXXXX";
  std::string dir = std::string(mkdtemp(tmpl)) + "/";
  std::ofstream(dir + "nginx.conf")
      << "events {}\nhttp { " << http_block << " server { listen 127.0.0.1:1; } }\n";
  cycle.prefix = dir;
  cycle.conf_prefix = dir;
  cycle.conf_file = dir + "nginx.conf";
  Status s = cycle.load();
  EXPECT_TRUE(s.ok()) << s.message();
  unlink((dir + "nginx.conf").c_str());
  rmdir(dir.c_str());
  auto* ctx = static_cast<HttpConfCtx*>(cycle.confs[http_module.index]);
  return conf_of<CoreMainConf>(ctx->main_conf).filters;
}

TEST(FilterOrder, BuiltChainsFollowIt) {
  // Filters of modules nobody configures stay out of the chains: configure them all (off).
  Cycle cycle;
  const FilterChains& fc =
      chains_of(cycle,
                "gzip off; brotli off; zstd off; gunzip off; charset off; userid off; "
                "add_header X \"\"; add_trailer Y \"\";");
  auto positions = [](const std::vector<FilterId>& ids) {
    std::vector<int> p;
    for (FilterId id : ids) p.push_back(filter_position(id));
    return p;
  };
  std::vector<int> hp = positions(fc.header_ids), bp = positions(fc.body_ids);
  EXPECT_TRUE(std::is_sorted(hp.begin(), hp.end()));
  EXPECT_TRUE(std::is_sorted(bp.begin(), bp.end()));
  EXPECT_EQ(fc.header_ids.back(), FilterId::Header);
  EXPECT_EQ(fc.body_ids.back(), FilterId::Write);
  EXPECT_EQ(fc.header_ids.front(), FilterId::NotModified);
  // The filters weir has today, in their places.
  EXPECT_EQ(fc.header_ids,
            (std::vector<FilterId>{FilterId::NotModified, FilterId::Headers, FilterId::Userid,
                                   FilterId::Gunzip, FilterId::Charset, FilterId::Brotli,
                                   FilterId::Zstd, FilterId::Gzip, FilterId::RangeHeader,
                                   FilterId::Chunked, FilterId::Header}));
  EXPECT_EQ(fc.body_ids,
            (std::vector<FilterId>{FilterId::RangeBody, FilterId::Copy, FilterId::Headers,
                                   FilterId::Gunzip, FilterId::Charset, FilterId::Postpone,
                                   FilterId::Brotli, FilterId::Zstd, FilterId::Gzip,
                                   FilterId::Chunked, FilterId::Write}));
}

TEST(FilterOrder, Http2JoinsWhereItIsSpoken) {
  Cycle cycle;
  const FilterChains& fc = chains_of(cycle, "http2 on;");
  EXPECT_EQ(fc.header_ids,
            (std::vector<FilterId>{FilterId::NotModified, FilterId::RangeHeader, FilterId::Http2,
                                   FilterId::Chunked, FilterId::Header}));
}

TEST(FilterOrder, UnconfiguredModulesStayOut) {
  Cycle cycle;
  const FilterChains& fc = chains_of(cycle, "");
  EXPECT_EQ(fc.header_ids, (std::vector<FilterId>{FilterId::NotModified, FilterId::RangeHeader,
                                                  FilterId::Chunked, FilterId::Header}));
}

}  // namespace
}  // namespace weir::http
