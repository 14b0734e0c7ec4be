// proxy_set_header, grpc_set_header (and the *_param lists to come): the fields a protocol module
// sends to its upstream with their values, nginx's inheritance (a level with any line of its own
// does not inherit the outer ones) and the protocol's defaults after the written lines.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "conf/conf_context.h"
#include "http/script.h"

namespace weir::http {

struct SetHeader {
  std::string key;
  std::string lowcase_key;
  ComplexValue value;  // an empty value removes the field
};

// One line of the directive (key, value) added to the level's list.
Status add_set_header(ConfContext& cf, const ConfNode& n, std::vector<SetHeader>*& list);

// The list a location sends: its own lines (or the outer level's when it wrote none), then each
// default whose field none of them names. written is updated with the inherited list.
Result<std::vector<SetHeader>*> merge_set_headers(
    ConfContext& cf, std::vector<SetHeader>* prev_written, std::vector<SetHeader>*& written,
    std::span<const std::pair<const char*, const char*>> defaults);

}  // namespace weir::http
