// Setters of the HTTP core's block directives, defined next to the logic they feed
// (core_servers.cc, core_locations.cc) and listed in core_module.cc's directive table.
#pragma once

#include "conf/conf_context.h"

namespace weir::http {

Status server_block(ConfContext& cf, const ConfNode& n, void* conf);
Status listen_directive(ConfContext& cf, const ConfNode& n, void* conf);
Status server_name_directive(ConfContext& cf, const ConfNode& n, void* conf);
Status location_block(ConfContext& cf, const ConfNode& n, void* conf);
Status limit_except_block(ConfContext& cf, const ConfNode& n, void* conf);

}  // namespace weir::http
