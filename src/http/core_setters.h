// Setters of the HTTP core's block directives, defined next to the logic they feed
// (core_servers.cc, core_locations.cc) and listed in core_module.cc's directive table.
#pragma once

#include "conf/conf_context.h"

namespace weir::http {

struct CoreSrvConf;
struct CoreLocConf;

Status server_block(ConfContext& cf, const ConfNode& n);
Status listen_directive(ConfContext& cf, const ConfNode& n, CoreSrvConf& cscf);
Status server_name_directive(ConfContext& cf, const ConfNode& n, CoreSrvConf& cscf);
Status location_block(ConfContext& cf, const ConfNode& n, CoreLocConf& pclcf);
Status limit_except_block(ConfContext& cf, const ConfNode& n, CoreLocConf& pclcf);

}  // namespace weir::http
