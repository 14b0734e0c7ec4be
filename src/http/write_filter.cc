// The write filter (seed 004): collects the response's buffers, holds small output back
// (postpone_output) until a flush, a recycled buffer or the last buffer, paces it (limit_rate,
// limit_rate_after), caps one send (sendfile_max_chunk) and hands the chain to the connection's
// send chain; what the socket does not take stays in r.out for the next write event. nginx:
// src/http/ngx_http_write_filter_module.c
#include "core/assert.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/file_aio.h"

namespace weir::http {

namespace {

off_t complex_size(Request& r, const ComplexValue* cv, size_t fixed) {
  if (cv == nullptr) return static_cast<off_t>(fixed);
  auto v = parse_size(cv->eval(r));
  return v ? *v : 0;
}

// limit_rate's value (with variables) unless X-Accel-Limit-Rate or $limit_rate set it first.
inline off_t fixed_limit_rate(Request& r, const CoreLocConf& clcf) {
  if (!r.limit_rate_set) {
    r.limit_rate = complex_size(r, clcf.limit_rate_values, *clcf.limit_rate);
    r.limit_rate_set = true;
  }
  return r.limit_rate;
}

Rc write_body_filter(Request& r, ChainLink* in, BodyNext) {
  return write_filter(r, in);
}

Status init(ConfContext& cf) {
  register_body_filter(cf, FilterId::Write, write_body_filter);
  return {};
}

}  // namespace

off_t response_limit_rate(Request& r) {
  return fixed_limit_rate(r, core_loc(r));
}

Rc write_filter(Request& r, ChainLink* in) {
  Connection& c = *r.connection;
  if (c.error) return Rc::Error;

  off_t size = 0;
  bool flush = false, sync = false, last = false;
  ChainLink** ll = &r.out;
  auto account = [&](Buffer* b) -> bool {
    if (b->size() == 0 && !b->special()) {
      log_error(LogLevel::Alert, *c.log, 0, "zero size buf in writer t:%d r:%d f:%d", b->temporary,
                b->recycled, b->in_file);
      debug_point();
      return false;
    }
    if (b->size() < 0) {
      log_error(LogLevel::Alert, *c.log, 0, "negative size buf in writer");
      debug_point();
      return false;
    }
    size += b->size();
    if (b->flush || b->recycled) flush = true;
    if (b->sync) sync = true;
    if (b->last_buf) last = true;
    return true;
  };
  for (ChainLink* cl = r.out; cl != nullptr; cl = cl->next) {
    ll = &cl->next;
    if (!account(cl->buf)) return Rc::Error;
  }
  for (ChainLink* ln = in; ln != nullptr; ln = ln->next) {
    ChainLink* cl = r.pool->alloc_link();
    cl->buf = ln->buf;
    *ll = cl;
    ll = &cl->next;
    if (!account(cl->buf)) return Rc::Error;
  }
  *ll = nullptr;
  WEIR_DEBUG(*c.log, "http write filter: l:%d f:%d s:%lld", last ? 1 : 0, flush ? 1 : 0,
             static_cast<long long>(size));

  CoreLocConf& clcf = core_loc(r);
  // Hold small output back until there is a flush point, the last buffer, or enough of it.
  if (!last && !flush && in != nullptr && size < static_cast<off_t>(*clcf.postpone_output))
    return Rc::Ok;

  if (c.write.delayed) {
    c.buffered |= kWriteBuffered;
    return Rc::Again;
  }

  if (size == 0 && !(c.buffered & kLowlevelBuffered) && !(last && c.need_last_buf)) {
    // A call with no chain only pushes what is held: with nothing held it is no work (a parent
    // resumed after its last subrequest). An empty chain that is not a flush point is a bug.
    if (last || flush || sync || in == nullptr) {
      for (ChainLink* cl = r.out; cl != nullptr;) {
        ChainLink* next = cl->next;
        r.pool->free_link(cl);
        cl = next;
      }
      r.out = nullptr;
      c.buffered &= ~kWriteBuffered;
      return Rc::Ok;
    }
    log_error(LogLevel::Alert, *c.log, 0, "the http output chain is empty");
    return Rc::Error;
  }

  off_t limit;
  if (fixed_limit_rate(r, clcf) != 0) {
    if (!r.limit_rate_after_set) {
      r.limit_rate_after = complex_size(r, clcf.limit_rate_after_values, *clcf.limit_rate_after);
      r.limit_rate_after_set = true;
    }
    limit = r.limit_rate * (clock::now() - r.start_sec + 1) - (c.io.sent - r.limit_rate_after);
    if (limit <= 0) {
      c.write.delayed = true;
      add_timer(c.write, static_cast<clock::msec_t>(-limit * 1000 / r.limit_rate + 1));
      c.buffered |= kWriteBuffered;
      return Rc::Again;
    }
    if (*clcf.sendfile_max_chunk != 0 && static_cast<off_t>(*clcf.sendfile_max_chunk) < limit) {
      limit = static_cast<off_t>(*clcf.sendfile_max_chunk);
    }
  } else {
    limit = static_cast<off_t>(*clcf.sendfile_max_chunk);
  }

  if (*clcf.aio == AioMode::Threads) {
    // Only what is in the page cache goes now; a thread brings in the next file range first.
    Rc rc = file_aio_sendable(r, limit);
    if (rc == Rc::Error) return rc;
    if (rc == Rc::Again) {
      c.buffered |= kWriteBuffered;
      return Rc::Again;
    }
  }

  off_t sent = c.io.sent;
  // The response's end on a connection that is closed right after it (no keep-alive, nothing else
  // holding the request: finalize_connection closes or half-closes it at once).
  c.io.fin_follows =
      last && !r.keepalive && &r == r.main && r.count == 1 && !r.reading_body && !r.discard_body;
  if (c.io.fin_follows) WEIR_DEBUG(*c.log, "http write filter: the close follows");
  SendResult sent_result = c.send_chain(r.out, limit);
  if (sent_result.rc == Rc::Error) return Rc::Error;
  ChainLink* chain = sent_result.rest;

  if (r.limit_rate != 0) {
    off_t nsent = c.io.sent;
    off_t s = sent;
    if (r.limit_rate_after != 0) {
      s = std::max<off_t>(0, s - r.limit_rate_after);
      nsent = std::max<off_t>(0, nsent - r.limit_rate_after);
    }
    auto delay = static_cast<clock::msec_t>((nsent - s) * 1000 / r.limit_rate);
    if (delay > 0) {
      limit = 0;
      c.write.delayed = true;
      add_timer(c.write, delay);
    }
  }
  // Stopped at the chunk limit with the socket still writable: continue after the other
  // connections' events.
  if (chain != nullptr && c.write.ready && !c.write.delayed) post_event_next_round(c.write);

  for (ChainLink* cl = r.out; cl != nullptr && cl != chain;) {
    ChainLink* next = cl->next;
    r.pool->free_link(cl);
    cl = next;
  }
  r.out = chain;
  if (chain != nullptr) {
    c.buffered |= kWriteBuffered;
    return Rc::Again;
  }
  c.buffered &= ~kWriteBuffered;
  if (c.buffered & kLowlevelBuffered) return Rc::Again;
  return Rc::Ok;
}

Module http_write_filter_module{
    .name = "http_write_filter",
    .type = ModuleType::Http,
    .postconfiguration = init,
};

}  // namespace weir::http
