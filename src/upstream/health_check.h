// Active health checks, NGINX Plus's `health_check` (in a location that proxies to a group with a
// `zone`) and `match` blocks: every `interval` each peer of the group gets an HTTP request for
// `uri` (on `port`, else its own), and passes when the answer is 2xx or 3xx, or meets the `match`
// block (status, header and body tests). `fails` failures in a row make the peer unhealthy for
// every worker, and the balancers skip it until `passes` checks in a row pass; `mandatory` peers
// start unhealthy (after a reload too) until their first check passes. The workers run the checks
// from their event loops; the time of each peer's next check is in the zone, and the worker that
// takes it first makes it, so a peer gets one check per interval whatever the number of workers.
// nginx: NGINX Plus's ngx_http_upstream_hc_module (documentation only).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/conf_context.h"
#include "conf/conf_file.h"
#include "core/log.h"
#include "core/regex.h"
#include "core/status.h"

namespace weir::http {

struct UpstreamConf;
struct UpstreamGroup;

// A `match` block: every test must hold.
struct HealthMatch {
  struct StatusTest {
    bool negated = false;
    std::vector<std::pair<int, int>> ranges;  // inclusive
  };
  enum class Op : uint8_t { Present, Absent, Equal, NotEqual, Matches, NotMatches };
  struct HeaderTest {
    std::string name;
    Op op = Op::Present;
    std::string value;
    std::unique_ptr<Regex> re;
  };
  struct BodyTest {
    bool negated = false;
    Regex re;
  };
  std::vector<StatusTest> status;
  std::vector<HeaderTest> headers;
  std::vector<std::unique_ptr<BodyTest>> body;
};

struct HealthCheck {
  uint64_t interval_ms = 5000;
  uint64_t jitter_ms = 0;
  int fails = 1;
  int passes = 1;
  std::string uri = "/";
  uint16_t port = 0;  // 0: the peer's own
  std::string match_name;
  const HealthMatch* match = nullptr;
  bool mandatory = false;
  bool persistent = false;  // with mandatory: a peer healthy before a reload stays so after it
  const UpstreamConf* upstream = nullptr;  // the location's: its group and timeouts
  UpstreamGroup* group = nullptr;          // resolved once the http block is read
  const ConfFile* file = nullptr;          // where it was written, for errors
  int line = 0;
};

using HealthMatches = std::unordered_map<std::string, std::unique_ptr<HealthMatch>>;

// health_check [interval=time] [jitter=time] [fails=n] [passes=n] [uri=uri] [port=n] [match=name]
// [mandatory [persistent]], for the location whose upstream settings are upstream.
Status parse_health_check(ConfContext& cf, const ConfNode& n, const UpstreamConf& upstream,
                          HealthCheck& hc);
// match name { status ...; header ...; body ...; }
Status parse_match(ConfContext& cf, const ConfNode& n, HealthMatches& matches);
// Once the groups are built (before their zones are made): each check's group, which must have a
// zone, and match block; the peers of a mandatory check start unhealthy.
Status resolve_health_checks(std::span<HealthCheck* const> checks, const HealthMatches& matches);

// persistent: the group's peers that were healthy in old (its configuration before a reload, in
// the master while the old zone is still mapped) start healthy; the others stay out until they
// pass.
void keep_health(UpstreamGroup& g, const UpstreamGroup& old);

// In a worker: the checks start (their timers do not keep a worker that is exiting alive).
void start_health_checks(std::span<HealthCheck* const> checks, const Log& log);

}  // namespace weir::http
