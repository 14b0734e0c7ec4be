#include "conf/conf_context.h"
#include "conf/cycle.h"
#include "core/cidr.h"
#include "core/str.h"
#include "main/core_module.h"

namespace weir {

namespace {

Status events_block(ConfContext& cf, const ConfNode& n) {
  if (!cf.cycle.event_confs.empty()) return Status::error("is duplicate");
  int count = module_count(ModuleType::Event);
  cf.cycle.event_confs.assign(count, nullptr);
  for (Module* m : all_modules()) {
    if (m->type == ModuleType::Event && m->create_conf != nullptr) {
      cf.cycle.event_confs[m->ctx_index] = m->create_conf(cf);
    }
  }
  ConfContext ec = cf;
  ec.module_type = ModuleType::Event;
  ec.cmd_type = kEventConf;
  ec.node = &n;
  if (Status s = ec.parse_block(n.children); !s.ok()) return s;
  for (Module* m : all_modules()) {
    if (m->type == ModuleType::Event && m->init_conf != nullptr) {
      if (Status s = m->init_conf(ec, cf.cycle.event_confs[m->ctx_index]); !s.ok()) return s;
    }
  }
  return {};
}

Status events_init(ConfContext& cf, void*) {
  if (cf.cycle.event_confs.empty()) return Status::error("no \"events\" section in configuration");
  // A connection for each listening socket and one more, as nginx asks (ngx_event_init_conf).
  uint64_t connections = *event_conf(cf.cycle).connections;
  if (connections < cf.cycle.listening.size() + 1) {
    return Status::errorf("%llu worker_connections are not enough for %zu listening sockets",
                          static_cast<unsigned long long>(connections), cf.cycle.listening.size());
  }
  return {};
}

Status set_use(ConfContext& cf, const ConfNode& n) {
  if (n.args[1] != "epoll") return cf.errorf("invalid event type \"%s\"", n.args[1].c_str());
  return {};
}

// epoll_events, worker_aio_requests: a positive number (nginx takes 0 and then fails every wait,
// or every aio read).
template <auto M>
Status positive_number(ConfContext& cf, const ConfNode& n, EventConf& ec) {
  if (Status s = slot::num<M>(cf, n, ec); !s.ok()) return s;
  if (*(ec.*M) <= 0) return cf.errorf("\"%s\" must be positive", n.name().c_str());
  return {};
}

Status set_connections(ConfContext& cf, const ConfNode& n, EventConf& ec) {
  if (ec.connections.set) return Status::error("is duplicate");
  auto v = parse_int(n.args[1]);
  if (!v) return cf.errorf("invalid number \"%s\"", n.args[1].c_str());
  ec.connections = static_cast<uint64_t>(*v);
  return {};
}

// debug_connection unix: | address[/bits] | name (each of its addresses). nginx:
// ngx_event_debug_connection
Status set_debug_connection(ConfContext& cf, const ConfNode& n, EventConf& ec) {
  const std::string& v = n.args[1];
  cf.cycle.debug_log = true;
  if (v == "unix:") {
    ec.debug_unix = true;
    return {};
  }
  CidrParse parsed = parse_cidr_or_name(v, ec.debug_connection);
  if (parsed == CidrParse::Invalid) {
    return cf.errorf("host not found in debug_connection \"%s\"", v.c_str());
  }
  if (parsed == CidrParse::LowBits) {
    cf.warn(LogLevel::Warn, "low address bits of %s are meaningless", v.c_str());
  }
  return {};
}

EventConf* create_event_conf(ConfContext& cf) {
  return cf.pool.make<EventConf>();
}

Status init_event_conf(ConfContext&, EventConf& ec) {
  ec.connections.merge({}, 512);
  ec.multi_accept.merge({}, false);
  ec.accept_mutex.merge({}, false);
  ec.accept_mutex_delay.merge({}, 500);
  ec.epoll_events.merge({}, 512);
  ec.aio_requests.merge({}, 32);
  return {};
}

constexpr Directive kEventsDirectives[] = {
    directive<events_block>("events", kMainConf | kBlock | kNoArgs),
};
static_assert(directives_of(kEventsDirectives, &events_module));

constexpr Directive kEventCoreDirectives[] = {
    directive<set_connections>("worker_connections", kEventConf | kTake1),
    directive<set_use>("use", kEventConf | kTake1),
    directive<slot::flag<&EventConf::multi_accept>>("multi_accept", kEventConf | kFlag),
    directive<slot::flag<&EventConf::accept_mutex>>("accept_mutex", kEventConf | kFlag),
    directive<slot::msec<&EventConf::accept_mutex_delay>>("accept_mutex_delay",
                                                          kEventConf | kTake1),
    directive<set_debug_connection>("debug_connection", kEventConf | kTake1),
    // nginx's epoll module's: the size of the event list, and of the AIO context.
    directive<positive_number<&EventConf::epoll_events>>("epoll_events", kEventConf | kTake1),
    directive<positive_number<&EventConf::aio_requests>>("worker_aio_requests",
                                                         kEventConf | kTake1),
};
static_assert(directives_of(kEventCoreDirectives, &event_core_module));

}  // namespace

Module events_module{
    .name = "events",
    .type = ModuleType::Core,
    .directives = kEventsDirectives,
    .init_conf = events_init,
};

Module event_core_module{
    .name = "event_core",
    .type = ModuleType::Event,
    .directives = kEventCoreDirectives,
    .create_conf = create_conf<create_event_conf>,
    .init_conf = init_conf<init_event_conf>,
};

EventConf& event_conf(Cycle& cycle) {
  return *static_cast<EventConf*>(cycle.event_confs[event_core_module.ctx_index]);
}

}  // namespace weir
