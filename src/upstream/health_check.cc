#include "upstream/health_check.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>

#include "core/buffer.h"
#include "core/regex.h"
#include "core/shm_mutex.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "event/peer_connection.h"
#include "http/parse.h"
#include "upstream/resolved_peers.h"
#include "upstream/upstream.h"
#include "upstream/upstream_group.h"

namespace weir::http {

namespace {

// The most of an answer a check reads: its header and the start of its body.
constexpr size_t kMaxAnswer = 64 * 1024;

// --- configuration ---------------------------------------------------------------------------

Status parse_status_test(ConfContext& cf, const ConfNode& line, HealthMatch& m) {
  HealthMatch::StatusTest t;
  size_t i = 1;
  if (i < line.args.size() && line.args[i] == "!") {
    t.negated = true;
    i++;
  }
  if (i == line.args.size()) return cf.error_at(line, "invalid number of arguments in \"status\"");
  for (; i < line.args.size(); i++) {
    std::string_view a = line.args[i];
    size_t dash = a.find('-');
    std::optional<int64_t> lo = parse_int(a.substr(0, dash));
    std::optional<int64_t> hi = dash == std::string_view::npos ? lo : parse_int(a.substr(dash + 1));
    if (!lo || !hi || *lo < 100 || *hi > 999 || *lo > *hi) {
      return cf.error_at(line, strprintf("invalid status \"%s\"", line.args[i].c_str()));
    }
    t.ranges.emplace_back(static_cast<int>(*lo), static_cast<int>(*hi));
  }
  m.status.push_back(std::move(t));
  return {};
}

// header Name; header ! Name; header Name = v; != v; ~ re; !~ re
Status parse_header_test(ConfContext& cf, const ConfNode& line, HealthMatch& m) {
  HealthMatch::HeaderTest t;
  const auto& a = line.args;
  if (a.size() == 2) {
    t.name = a[1];
  } else if (a.size() == 3 && a[1] == "!") {
    t.name = a[2];
    t.op = HealthMatch::Op::Absent;
  } else if (a.size() == 4) {
    t.name = a[1];
    t.value = a[3];
    if (a[2] == "=") {
      t.op = HealthMatch::Op::Equal;
    } else if (a[2] == "!=") {
      t.op = HealthMatch::Op::NotEqual;
    } else if (a[2] == "~" || a[2] == "!~") {
      t.op = a[2] == "~" ? HealthMatch::Op::Matches : HealthMatch::Op::NotMatches;
      t.re = std::make_unique<Regex>();
      if (Status s = t.re->compile(a[3], false); !s.ok()) return cf.error_at(line, s.message());
    } else {
      return cf.error_at(line, strprintf("invalid operator \"%s\"", a[2].c_str()));
    }
  } else {
    return cf.error_at(line, "invalid number of arguments in \"header\"");
  }
  m.headers.push_back(std::move(t));
  return {};
}

Status parse_body_test(ConfContext& cf, const ConfNode& line, HealthMatch& m) {
  const auto& a = line.args;
  if (a.size() != 3 || (a[1] != "~" && a[1] != "!~")) {
    return cf.error_at(line, "invalid \"body\" test: \"body ~ regex\" or \"body !~ regex\"");
  }
  auto t = std::make_unique<HealthMatch::BodyTest>();
  t->negated = a[1] == "!~";
  if (Status s = t->re.compile(a[2], false); !s.ok()) return cf.error_at(line, s.message());
  m.body.push_back(std::move(t));
  return {};
}

// --- the checks --------------------------------------------------------------------------------

// What a check found in an answer.
struct Answer {
  int status = 0;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;
};

// The status line and header of text (read until the peer closed or kMaxAnswer), by the parsers
// a proxied response goes through; false when they are not a whole HTTP/1 answer.
bool parse_answer(std::string& text, Answer& a) {
  Buffer b;
  b.start = b.pos = text.data();
  b.end = b.last = text.data() + text.size();
  StatusLine status;
  if (parse_status_line(status, b) != ParseResult::Ok || status.http_major != 1 ||
      status.code < 100) {
    return false;
  }
  a.status = status.code;
  HeaderLineState line;
  for (;;) {
    switch (parse_header_line(line, b, true)) {
      case ParseResult::Ok:
        a.headers.emplace_back(
            std::string_view(line.name_start, static_cast<size_t>(line.name_end - line.name_start)),
            std::string_view(line.value_start,
                             static_cast<size_t>(line.value_end - line.value_start)));
        break;
      case ParseResult::HeaderDone:
        a.body = {b.pos, static_cast<size_t>(b.last - b.pos)};
        return true;
      default:
        return false;  // invalid, or the header did not end
    }
  }
}

bool passes(const HealthMatch* m, const Answer& a) {
  if (m == nullptr) return a.status >= 200 && a.status < 400;
  for (const auto& t : m->status) {
    bool in = std::any_of(t.ranges.begin(), t.ranges.end(), [&](const std::pair<int, int>& r) {
      return a.status >= r.first && a.status <= r.second;
    });
    if (in == t.negated) return false;
  }
  for (const auto& t : m->headers) {
    const std::string_view* value = nullptr;
    for (const auto& [name, v] : a.headers) {
      if (iequals(name, t.name)) {
        value = &v;
        break;
      }
    }
    bool ok = false;
    switch (t.op) {
      case HealthMatch::Op::Present:
        ok = value != nullptr;
        break;
      case HealthMatch::Op::Absent:
        ok = value == nullptr;
        break;
      case HealthMatch::Op::Equal:
        ok = value != nullptr && *value == t.value;
        break;
      case HealthMatch::Op::NotEqual:
        ok = value != nullptr && *value != t.value;
        break;
      case HealthMatch::Op::Matches:
        ok = value != nullptr && t.re->match(*value, nullptr, 0);
        break;
      case HealthMatch::Op::NotMatches:
        ok = value != nullptr && !t.re->match(*value, nullptr, 0);
        break;
    }
    if (!ok) return false;
  }
  for (const auto& t : m->body) {
    if (t->re.match(a.body, nullptr, 0) == t->negated) return false;
  }
  return true;
}

// One check of one peer: connect, send the request, read the answer until the peer closes, judge.
class Probe {
 public:
  // The lock and the state are the zone's: they outlive the worker's peer sets (which a name that
  // resolves to new addresses replaces).
  Probe(const HealthCheck& hc, RoundRobinPeers& set, RoundRobinPeer& peer, const Log& parent)
      : hc_(hc), lock_(*set.lock), st_(*peer.st) {
    log_.sink = parent.sink;
    log_.action = "checking health";
    log_.handler = log_handler;
    log_.data = this;
    addr_ = peer.addr;
    if (hc.port != 0) addr_.set_port(hc.port);
    addr_text_ = addr_.to_string();
    request_ = "GET " + hc.uri + " HTTP/1.0\r\nHost: " + hc.group->host +
               "\r\nUser-Agent: weir health check\r\n\r\n";
  }
  ~Probe() {
    if (c_ != nullptr) close_connection(*c_);
  }

  void start() {
    PeerConnection pc;
    pc.sockaddr = &addr_;
    pc.name = addr_text_;
    pc.log = &log_;
    Rc rc = open_peer(pc);
    // A refusal was logged by open_peer.
    if (rc != Rc::Ok && rc != Rc::Again) return finish(false, "connect() failed");
    c_ = pc.connection;
    c_->data = this;
    c_->read.handler = [](Event& ev) { of(ev).on_read(); };
    c_->write.handler = [](Event& ev) { of(ev).on_write(); };
    c_->idle = true;  // an exiting worker does not wait for a check
    c_->read.cancelable = c_->write.cancelable = true;
    out_.start = out_.pos = request_.data();
    out_.last = out_.end = request_.data() + request_.size();
    out_.temporary = true;
    connected_ = rc == Rc::Ok;
    add_timer(c_->write, hc_.upstream->connect_timeout);
    if (rc == Rc::Ok) on_write();
  }

 private:
  static Probe& of(Event& ev) {
    return *static_cast<Probe*>(static_cast<Connection*>(ev.data)->data);
  }
  // ", health check of peer ... in upstream "..."" after the action.
  static char* log_handler(const Log& log, char* p, char* end) {
    const auto& pr = *static_cast<const Probe*>(log.data);
    int n = std::snprintf(p, end - p, " while %s, health check of peer %s in upstream \"%s\"",
                          log.action, pr.addr_text_.c_str(), pr.hc_.group->host.c_str());
    return p + std::min<ptrdiff_t>(n, end - p - 1);
  }

  void on_write() {
    if (c_->close) return finish(false, "the worker is exiting");
    if (c_->write.timedout) return finish(false, "timed out", ETIMEDOUT);
    if (!connected_) {
      if (int err = connect_error(*c_); err != 0) return finish(false, "connect() failed", err);
      connected_ = true;
    }
    if (out_.pos == out_.last) return;
    ChainLink cl{&out_, nullptr};
    if (c_->send_chain(&cl, 0).rc == Rc::Error) return finish(false, "send() failed");
    if (out_.pos != out_.last) return;
    del_timer(c_->write);
    add_timer(c_->read, hc_.upstream->read_timeout);
    if (c_->read.ready) on_read();
  }

  void on_read() {
    if (c_->close) return finish(false, "the worker is exiting");
    if (c_->read.timedout) return finish(false, "timed out", ETIMEDOUT);
    if (!connected_) return on_write();  // a read event before the connect ended: it failed
    char buf[4096];
    for (;;) {
      IoResult res = c_->recv(buf, sizeof buf);
      if (res.rc == Rc::Again) return;
      if (res.rc == Rc::Error) return finish(false, "recv() failed");
      if (res.rc == Rc::Done) break;
      in_.append(buf, std::min(res.n, kMaxAnswer - in_.size()));
      if (in_.size() == kMaxAnswer) break;  // enough to judge by
    }
    Answer a;
    if (!parse_answer(in_, a)) return finish(false, "no valid HTTP answer");
    char cause[48];
    std::snprintf(cause, sizeof cause, "its answer (status %d) did not pass", a.status);
    finish(passes(hc_.match, a), cause);
  }

  // The result into the zone's state (under its lock); a change of health logged, with the cause
  // of the failure that made it. The probe deletes itself.
  void finish(bool ok, const char* cause, int err = 0) {
    bool now_unhealthy = false, now_healthy = false;
    {
      ShmLock lock(lock_);
      PeerState& s = st_;
      s.checks++;
      s.last_check_passed = ok;
      if (ok) {
        s.check_fails = 0;
        if (s.unhealthy && ++s.check_passes >= hc_.passes) {
          s.unhealthy = false;
          s.check_passes = 0;
          s.fails = 0;                     // the passive count starts afresh too
          s.recovered_ms = clock::msec();  // slow_start counts from here
          now_healthy = true;
        }
      } else {
        s.checks_failed++;
        s.check_passes = 0;
        if (!s.unhealthy && ++s.check_fails >= hc_.fails) {
          s.unhealthy = true;
          s.check_fails = 0;
          s.became_unhealthy++;
          now_unhealthy = true;
        }
      }
    }
    if (now_unhealthy) log_error(LogLevel::Warn, log_, err, "peer is unhealthy: %s", cause);
    if (now_healthy) log_error(LogLevel::Notice, log_, 0, "peer is healthy again");
    delete this;
  }

  const HealthCheck& hc_;
  ShmMutex& lock_;
  PeerState& st_;
  SockAddr addr_;
  std::string addr_text_;
  Log log_;
  Connection* c_ = nullptr;
  bool connected_ = false;
  std::string request_;
  Buffer out_;
  std::string in_;
};

// A check's timer in one worker: each round takes the peers whose check is due.
struct Checker {
  explicit Checker(const HealthCheck* check) : hc(check) {}
  const HealthCheck* hc;
  Log log;
  Event tick;
  std::minstd_rand jitter{static_cast<unsigned>(::getpid())};
};

uint64_t round_ms(const HealthCheck& hc) {
  // Often enough that a due check waits little, seldom enough to cost nothing.
  return std::clamp<uint64_t>(hc.interval_ms / 4, 50, 1000);
}

void run_round(Event& ev) {
  if (worker_exiting()) return;  // the next workers check
  auto& ck = *static_cast<Checker*>(ev.data);
  const HealthCheck& hc = *ck.hc;
  follow_resolved_peers(*hc.group);
  uint64_t now = clock::msec();
  for (RoundRobinPeers* set = hc.group->peers; set != nullptr; set = set->backup) {
    for (RoundRobinPeer& p : set->peers) {
      if (p.down) continue;
      bool mine = false;
      {
        ShmLock lock(*set->lock);
        if (p.st->next_check_ms <= now) {
          uint64_t jitter = hc.jitter_ms != 0 ? ck.jitter() % (hc.jitter_ms + 1) : 0;
          p.st->next_check_ms = now + hc.interval_ms + jitter;
          mine = true;
        }
      }
      if (mine) (new Probe(hc, *set, p, ck.log))->start();
    }
  }
  ev.cancelable = true;
  add_timer(ev, round_ms(hc));
}

}  // namespace

Status parse_health_check(ConfContext& cf, const ConfNode& n, const UpstreamConf& upstream,
                          HealthCheck& hc) {
  hc.upstream = &upstream;
  hc.file = n.file;
  hc.line = n.line;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    auto value = [&](std::string_view name) { return a.substr(name.size()); };
    if (a.starts_with("interval=") || a.starts_with("jitter=")) {
      bool interval = a.starts_with("interval=");
      std::optional<int64_t> ms = parse_time(value(interval ? "interval=" : "jitter="), false);
      if (!ms || (interval && *ms == 0)) {
        return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
      }
      (interval ? hc.interval_ms : hc.jitter_ms) = static_cast<uint64_t>(*ms);
    } else if (a.starts_with("fails=") || a.starts_with("passes=")) {
      bool fails = a.starts_with("fails=");
      std::optional<int64_t> v = parse_int(value(fails ? "fails=" : "passes="));
      if (!v || *v < 1 || *v > 1000000) {
        return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
      }
      (fails ? hc.fails : hc.passes) = static_cast<int>(*v);
    } else if (a.starts_with("uri=")) {
      hc.uri = value("uri=");
      if (!hc.uri.starts_with('/')) return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
    } else if (a.starts_with("port=")) {
      std::optional<int64_t> v = parse_int(value("port="));
      if (!v || *v < 1 || *v > 65535) {
        return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
      }
      hc.port = static_cast<uint16_t>(*v);
    } else if (a.starts_with("match=")) {
      hc.match_name = value("match=");
    } else if (a == "mandatory") {
      hc.mandatory = true;
    } else if (a == "persistent") {
      hc.persistent = true;
    } else {
      return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
    }
  }
  if (hc.persistent && !hc.mandatory) return cf.error("\"persistent\" requires \"mandatory\"");
  return {};
}

Status parse_match(ConfContext& cf, const ConfNode& n, HealthMatches& matches) {
  if (!n.block) return cf.error("\"match\" needs a block");
  auto m = std::make_unique<HealthMatch>();
  for (const ConfNode& line : n.children) {
    const std::string& d = line.args[0];
    Status s;
    if (d == "status") {
      s = parse_status_test(cf, line, *m);
    } else if (d == "header") {
      s = parse_header_test(cf, line, *m);
    } else if (d == "body") {
      s = parse_body_test(cf, line, *m);
    } else if (d == "require") {
      s = cf.error_at(line, "\"require\" is not supported by weir's \"match\" yet");
    } else {
      s = cf.error_at(line, strprintf("unknown directive \"%s\"", d.c_str()));
    }
    if (!s.ok()) return s;
  }
  if (!matches.emplace(n.args[1], std::move(m)).second) {
    return cf.errorf("duplicate match \"%s\"", n.args[1].c_str());
  }
  return {};
}

Status resolve_health_checks(std::span<HealthCheck* const> checks, const HealthMatches& matches) {
  for (HealthCheck* hc : checks) {
    auto error = [&](const std::string& msg) {
      return Status::located(conf_error_at(hc->file, hc->line, msg));
    };
    UpstreamGroup* g = hc->upstream->group;
    if (g == nullptr) return error("\"health_check\" needs a \"proxy_pass\" to an upstream group");
    if (g->zone == nullptr) {
      return error(
          strprintf("upstream \"%s\" must reside in shared memory (\"zone\") for "
                    "\"health_check\"",
                    g->host.c_str()));
    }
    hc->group = g;
    if (!hc->match_name.empty()) {
      auto it = matches.find(hc->match_name);
      if (it == matches.end())
        return error(strprintf("match \"%s\" not found", hc->match_name.c_str()));
      hc->match = it->second.get();
    }
    if (hc->persistent) g->persistent_check = true;
    if (hc->mandatory) {
      g->mandatory_check = true;
      for (RoundRobinPeers* set = g->peers; set != nullptr; set = set->backup) {
        for (RoundRobinPeer& p : set->peers) p.own.unhealthy = true;
      }
    }
  }
  return {};
}

void keep_health(UpstreamGroup& g, const UpstreamGroup& old) {
  if (!g.persistent_check || old.zone == nullptr || old.peers == nullptr) return;
  ShmLock lock(*old.peers->lock);
  for (RoundRobinPeers* set = g.peers; set != nullptr; set = set->backup) {
    for (RoundRobinPeer& p : set->peers) {
      for (const RoundRobinPeers* before = old.peers; before != nullptr; before = before->backup) {
        for (const RoundRobinPeer& o : before->peers) {
          if (o.addr == p.addr) p.st->unhealthy = o.st->unhealthy;
        }
      }
    }
  }
}

void start_health_checks(std::span<HealthCheck* const> checks, const Log& log) {
  // The worker's checkers, for its whole life; a single process's reload replaces them (probes
  // under way finish on their own).
  static std::vector<std::unique_ptr<Checker>> checkers;
  for (auto& ck : checkers) del_timer(ck->tick);
  checkers.clear();
  for (const HealthCheck* hc : checks) {
    auto* ck = checkers.emplace_back(std::make_unique<Checker>(hc)).get();
    start_worker_timer(ck->tick, ck->log, log, run_round, ck);
  }
}

}  // namespace weir::http
