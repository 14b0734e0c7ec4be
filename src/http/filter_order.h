// The order of the output filters, stated once (seed 004's module list; "the filter order is
// important"). nginx registers filters from the bottom of its list up and each new filter becomes
// the top, so the chains run in the reverse of that list: a request's response meets not_modified
// first and write last. nginx: auto/modules (HTTP_FILTER_MODULES), ngx_modules.c
#pragma once

#include <array>
#include <string_view>

namespace weir::http {

enum class FilterId {
  Slice,
  NotModified,
  RangeBody,
  Copy,
  Xslt,
  Image,
  HeadersMore,
  Headers,
  Userid,
  Gunzip,
  Addition,
  Sub,
  Charset,
  Ssi,
  Postpone,
  Brotli,
  Zstd,
  Gzip,
  RangeHeader,
  Http2,
  Chunked,
  Header,
  Write,
};

// The seed's module list in registration order (ngx_modules[]): write first, not_modified last.
// brotli and zstd (not nginx's) come right after gzip, so that their header filters run before
// gzip's: the coding negotiated (http/content_coding.h) is set before gzip looks. image_filter and
// xslt are where Debian's nginx loads them, dynamic modules each put right before copy (in
// modules-enabled's order), so that they run after copy has read the file into memory.
inline constexpr std::array kSeedRegistrationOrder = {
    FilterId::Write,       FilterId::Header,      FilterId::Chunked, FilterId::Http2,
    FilterId::RangeHeader, FilterId::Gzip,        FilterId::Zstd,    FilterId::Brotli,
    FilterId::Postpone,    FilterId::Ssi,         FilterId::Charset, FilterId::Sub,
    FilterId::Addition,    FilterId::Gunzip,      FilterId::Userid,  FilterId::Headers,
    FilterId::HeadersMore, FilterId::Image,       FilterId::Xslt,    FilterId::Copy,
    FilterId::RangeBody,   FilterId::NotModified, FilterId::Slice,
};

// Run order: the registration order reversed.
inline constexpr auto kFilterRunOrder = [] {
  std::array<FilterId, kSeedRegistrationOrder.size()> out{};
  for (size_t i = 0; i < out.size(); i++) out[i] = kSeedRegistrationOrder[out.size() - 1 - i];
  return out;
}();

constexpr int filter_position(FilterId id) {
  for (size_t i = 0; i < kFilterRunOrder.size(); i++) {
    if (kFilterRunOrder[i] == id) return static_cast<int>(i);
  }
  return -1;
}

std::string_view filter_name(FilterId id);

}  // namespace weir::http
