// The relays of the response's body (seed 000), once its header went to the client: non-buffered
// (one buffer, the data leaves as it comes) or through the event pipe (many buffers, spilling to a
// temp file, kept whole for proxy_store), with their timers and their end; and the lifecycle's own
// input filters for a protocol that has none. nginx: ngx_http_upstream_process_non_buffered_*,
// ngx_http_upstream_process_upstream / _downstream, ngx_http_upstream_store

#include <cerrno>
#include <string>

#include "core/assert.h"
#include "core/file_ops.h"
#include "core/time_cache.h"
#include "event/event_loop.h"
#include "http/core_module.h"
#include "http/file_aio.h"
#include "http/filter.h"
#include "http/script.h"
#include "os/kernel_pipe.h"
#include "upstream/event_pipe.h"
#include "upstream/lifecycle.h"
#include "upstream/upstream_cache.h"

namespace weir::http {

namespace {

void process_non_buffered_request(Request& r, Upstream& u, bool do_write);
bool can_splice(const Request& r, const Upstream& u);
bool can_splice_buffered(Request& r, const Upstream& u);
void start_splice(Request& r, Upstream& u);
void start_event_pipe(Request& r, Upstream& u, bool with_preread);
void process_pipe_request(Request& r, Upstream& u);

Rc init_input_filter(Request& r, Upstream& u) {
  return u.protocol->input_filter_init != nullptr ? u.protocol->input_filter_init(r)
                                                  : default_input_filter_init(r);
}

Rc input_filter(Request& r, Upstream& u, size_t bytes) {
  return u.protocol->input_filter != nullptr ? u.protocol->input_filter(r, bytes)
                                             : default_input_filter(r, bytes);
}

// proxy_read_timeout while relaying the body: 504 (the client's connection closes, as the header
// went out). True when it ended the request.
bool upstream_timed_out(Request& r, Upstream& u) {
  Connection& c = *u.peer.connection;
  if (!c.read.timedout) return false;
  c.read.timedout = false;
  log_error(LogLevel::Error, *c.log, ETIMEDOUT, "upstream timed out");
  finalize_upstream(r, u, Code::status(504));
  return true;
}

// send_timeout on the client while relaying: 408. True when it ended the request.
bool client_timed_out(Request& r, Upstream& u) {
  Connection& c = *r.connection;
  if (!c.write.timedout) return false;
  c.timedout = true;
  log_error(LogLevel::Info, *c.log, ETIMEDOUT, "client timed out");
  finalize_upstream(r, u, Code::status(408));
  return true;
}

// The relay waits: send_timeout runs while the client cannot take more, proxy_read_timeout while
// the upstream is expected to send.
void set_relay_timers(Request& r, Upstream& u, bool upstream_expected) {
  Connection& down = *r.connection;
  // A delayed write's timer is limit_rate's: it must fire, and send_timeout must not replace it
  // (the client would wait for send_timeout, and then some, for each pause).
  if (!down.write.delayed) {
    if (down.write.active && !down.write.ready) {
      add_timer(down.write, *core_loc(r).send_timeout);
    } else if (down.write.timer_set) {
      del_timer(down.write);
    }
  }
  if (u.peer.connection == nullptr) return;  // released: the client side alone is left
  Connection& up = *u.peer.connection;
  if (up.read.delayed) return;  // proxy_limit_rate's timer: it must fire
  if (upstream_expected && !up.read.ready) {
    add_timer(up.read, u.conf->read_timeout);
  } else if (up.read.timer_set) {
    del_timer(up.read);
  }
}

// The upstream's part of the body is over: complete (all of it, or up to its close when no length
// was given), or cut short.
void end_relay(Request& r, Upstream& u, bool complete, bool eof) {
  if (complete) {
    finalize_upstream(r, u, Rc::Ok);
    return;
  }
  if (eof) {
    log_error(LogLevel::Error, *u.peer.connection->log, 0,
              "upstream prematurely closed connection");
  }
  finalize_upstream(r, u, Code::status(502));
}

void non_buffered_upstream(Request& r, Upstream& u) {
  r.connection->log->action = "reading upstream";
  if (upstream_timed_out(r, u)) return;
  process_non_buffered_request(r, u, false);
}

void non_buffered_downstream(Request& r) {
  Upstream& u = *r.upstream;
  r.connection->log->action = "sending to client";
  if (client_timed_out(r, u)) return;
  process_non_buffered_request(r, u, true);
}

void process_non_buffered_request(Request& r, Upstream& u, bool do_write) {
  Connection& up = *u.peer.connection;
  Connection& down = *r.connection;
  for (;;) {
    if (do_write) {
      if (u.out_bufs != nullptr || u.busy_bufs != nullptr || down.buffered != 0) {
        if (output_filter(r, u.out_bufs) == Rc::Error) {
          finalize_upstream(r, u, Rc::Error);
          return;
        }
        update_chains(*r.pool, &u.free_bufs, &u.busy_bufs, &u.out_bufs, u.conf->tag);
        u.out_tail = &u.out_bufs;
      }
      if (u.buffering && u.busy_bufs != nullptr) {
        // Buffered, and the client did not take the header and the preread at once: the event
        // pipe reads on for it (the write filter sends what it holds first).
        start_event_pipe(r, u, false);
        return;
      }
      if (u.busy_bufs == nullptr) {
        bool complete = !u.error && (u.length == 0 || (up.read.eof && u.length == -1));
        if (complete || up.read.eof || up.read.error || u.error) {
          end_relay(r, u, complete, up.read.eof && !u.error);
          return;
        }
        u.buffer.pos = u.buffer.last = u.buffer.start;
        if (down.buffered == 0 && can_splice(r, u)) {
          start_splice(r, u);  // what came before (the header, the preread) has all gone out
          return;
        }
        if (u.buffering) {
          start_event_pipe(r, u, false);
          return;
        }
      }
    }
    size_t room = static_cast<size_t>(u.buffer.end - u.buffer.last);
    if (room > 0 && up.read.ready && !u.error) {
      IoResult res = up.recv(u.buffer.last, room);
      if (res.rc == Rc::Again) break;
      if (res.rc == Rc::Ok) {
        u.state->bytes_received += static_cast<off_t>(res.n);
        u.state->response_length += static_cast<off_t>(res.n);
        if (input_filter(r, u, res.n) != Rc::Ok) {
          finalize_upstream(r, u, Rc::Error);
          return;
        }
      }
      do_write = true;
      continue;
    }
    break;
  }
  set_relay_timers(r, u, up.read.active);
}

// The splice relay: the rest of a non-buffered body that no filter needs to see goes from the
// upstream's socket to the client's through a kernel pipe (os/kernel_pipe), a pipe's worth per call
// each way, never through the worker's memory. Neither side may be TLS or an HTTP/2 stream, the
// protocol must pass the body as it is (proxy: Content-Length or up to the close, not chunked), and
// the response must leave unchanged (no gzip, SSI, charset recoding, chunked framing, subrequest).
// Beyond nginx, which copies each proxy_buffer_size through user space.
bool can_splice(const Request& r, const Upstream& u) {
  const Connection& down = *r.connection;
  // A filter that changes the body changes the status or the length too (range, gzip, SSI): both
  // as the upstream sent them are a second guard beside the filters' own flags.
  return u.body_as_is && !u.ssl && u.peer.connection->ops == nullptr && down.ops == nullptr &&
         r.main == &r && !r.chunked && !r.main_filter_need_in_memory && !r.filter_need_in_memory &&
         !r.filter_need_temporary && u.length != 0 && r.headers_out.status == u.headers_in.status &&
         r.headers_out.content_length_n == u.headers_in.content_length_n;
}

// Buffered: spliced while the client keeps up; the event pipe takes over when it does not (see
// process_splice). Not with proxy_store or a response to cache (the body goes to a file),
// proxy_limit_rate or limit_rate.
bool can_splice_buffered(Request& r, const Upstream& u) {
  return can_splice(r, u) && !u.conf->store && !(u.cache != nullptr && u.cache->store) &&
         u.conf->limit_rate == 0 && response_limit_rate(r) == 0;
}

void splice_upstream(Request& r, Upstream& u);
void splice_downstream(Request& r);

void process_splice(Request& r, Upstream& u) {
  WEIR_ASSERT(u.spliced && u.pipe == nullptr && u.phase == UpstreamPhase::Relaying);
  Connection& up = *u.peer.connection;
  Connection& down = *r.connection;
  KernelPipe& pipe = u.kernel_pipe;
  bool pipe_full = false;
  for (;;) {
    bool moved = false;
    if (pipe.held > 0 && down.write.ready) {
      Rc rc = down.send_from_pipe(pipe).rc;
      if (rc == Rc::Error) {
        finalize_upstream(r, u, Rc::Error);
        return;
      }
      moved = rc == Rc::Ok;
    }
    if (u.length != 0 && up.read.ready && !up.read.eof && pipe.room() > 0) {
      size_t want = pipe.room();
      if (u.length > 0 && static_cast<size_t>(u.length) < want)
        want = static_cast<size_t>(u.length);
      IoResult in = splice_in(up.fd, pipe, want, pipe_full);
      if (in.rc == Rc::Ok) {
        u.state->bytes_received += static_cast<off_t>(in.n);
        u.state->response_length += static_cast<off_t>(in.n);
        if (u.length > 0) u.length -= static_cast<off_t>(in.n);
        moved = true;
      } else if (in.rc == Rc::Done) {
        up.read.ready = false;
        up.read.eof = true;
      } else if (in.rc == Rc::Again) {
        if (!pipe_full) up.read.ready = false;
      } else {
        int err = errno;
        up.read.ready = false;
        up.read.error = true;
        log_error(LogLevel::Error, *up.log, err, "splice() failed");
      }
    }
    if (!moved) break;
  }
  if (pipe.held == 0) {
    bool complete = u.length == 0 || (up.read.eof && u.length == -1);
    if (u.length == 0 && u.keepalive_at_end) {
      // The body ended where its length says. Bytes beyond it were never read: if any wait, the
      // connection cannot carry another response.
      u.keepalive = !socket_has_data(up.fd);
      if (!u.keepalive) {
        const char* action = r.connection->log->action;
        r.connection->log->action = "reading upstream";  // where nginx finds them
        log_error(LogLevel::Warn, r.log(), 0,
                  "upstream sent more data than specified in \"Content-Length\" header");
        r.connection->log->action = action;
      }
    }
    if (complete || up.read.eof || up.read.error) {
      end_relay(r, u, complete, up.read.eof);
      return;
    }
  }
  if (u.buffering && !down.write.ready && up.read.ready && (pipe_full || pipe.room() == 0)) {
    // Buffered, the client behind and the pipe full: rather than hold the upstream, the event
    // pipe reads on into its buffers and the temp file; what the kernel pipe holds goes first.
    start_event_pipe(r, u, false);
    return;
  }
  set_relay_timers(r, u, u.length != 0 && !pipe_full);
}

void splice_upstream(Request& r, Upstream& u) {
  r.connection->log->action = "reading upstream";
  if (upstream_timed_out(r, u)) return;
  process_splice(r, u);
}

void splice_downstream(Request& r) {
  Upstream& u = *r.upstream;
  r.connection->log->action = "sending to client";
  if (client_timed_out(r, u)) return;
  process_splice(r, u);
}

void start_splice(Request& r, Upstream& u) {
  if (!open_kernel_pipe(u.kernel_pipe)) {
    // No pipe (the descriptor limit): the body goes on through the buffer, or the event pipe.
    u.body_as_is = false;
    if (u.buffering) {
      start_event_pipe(r, u, false);
    } else {
      process_non_buffered_request(r, u, false);
    }
    return;
  }
  // However the request ends, the pipe goes back to the spares (empty) or is closed.
  r.pool->add_cleanup([](void* p) { close_kernel_pipe(*static_cast<KernelPipe*>(p)); },
                      &u.kernel_pipe);
  u.spliced = true;
  u.read_event_handler = splice_upstream;
  r.write_event_handler = splice_downstream;
  process_splice(r, u);
}

void pipe_upstream(Request& r, Upstream& u) {
  Event& rev = u.peer.connection->read;
  if (rev.delayed && rev.timedout) {
    rev.delayed = false;  // proxy_limit_rate's pause is over
    rev.timedout = false;
  }
  r.connection->log->action = "reading upstream";
  if (upstream_timed_out(r, u)) return;
  if (run_event_pipe(*u.pipe, false) == Rc::Abort) {
    finalize_upstream(r, u, Rc::Error);
    return;
  }
  process_pipe_request(r, u);
}

void pipe_downstream(Request& r) {
  Upstream& u = *r.upstream;
  r.connection->log->action = "sending to client";
  if (client_timed_out(r, u)) return;
  if (run_event_pipe(*u.pipe, true) == Rc::Abort) {
    finalize_upstream(r, u, Rc::Error);
    return;
  }
  process_pipe_request(r, u);
}

// proxy_store: a 200 response that came whole is moved from the temp file into place - made
// readable as store_access says, dated by its Last-Modified, its directories made - and anything
// else is deleted with the temp file. nginx: ngx_http_upstream_store, ngx_ext_rename_file
void store_response(Request& r, Upstream& u, bool complete) {
  EventPipe& p = *u.pipe;
  const UpstreamHeadersIn& in = u.headers_in;
  if (in.status != 200 || !complete) return;
  if (make_pipe_temp_file(p) != Rc::Ok) return;  // an empty response: an empty file
  TempFile& tf = *p.temp_file;
  if (in.content_length_n != -1 && in.content_length_n != tf.file.offset) return;
  std::string_view path;
  if (u.conf->store_path != nullptr) {
    path = u.conf->store_path->eval(r);
  } else {
    size_t root;
    path = map_uri_to_path(r, &root, 0);
  }
  if (path.empty()) return;
  RenameOptions o;
  o.access = u.conf->store_access;
  o.path_access = u.conf->store_access;
  o.create_path = true;
  for (Header* h : in.headers) {
    if (h->hash == 0 || h->lowcase_key != "last-modified") continue;
    if (auto t = clock::parse_http_time(h->value)) o.time = *t;
    break;
  }
  // On failure the temp file goes with the request, as every unfinished one does.
  if (!ext_rename_file(std::string(tf.file.name), std::string(path), o, *r.connection->log)) return;
  tf.clean = false;  // it is the stored file now
}

void process_pipe_request(Request& r, Upstream& u) {
  EventPipe& p = *u.pipe;
  bool complete = p.upstream_done || (p.upstream_eof && p.length == -1);
  bool finished = complete || p.upstream_eof || p.upstream_error;
  if (p.store && finished) {
    if (u.cache != nullptr && u.cache->store) {
      finish_cache_file(r, u, complete);
    } else {
      store_response(r, u, complete);
    }
    p.store = false;  // once
  }
  if (p.downstream_error) {
    if (p.store && !finished) {
      // The client is gone; the upstream's body still goes to the file, within read timeouts.
      if (r.connection->write.timer_set) del_timer(r.connection->write);
      Event& up = u.peer.connection->read;
      if (!up.ready && !up.delayed) add_timer(up, u.conf->read_timeout);
      return;
    }
    // A header-only answer was whole when it went out; a client that failed gets no more.
    finalize_upstream(r, u, r.header_only && !r.connection->error ? Rc::Ok : Rc::Error);
    return;
  }
  if (p.downstream_done) {
    end_relay(r, u, complete, p.upstream_eof);
    return;
  }
  if (complete && u.phase == UpstreamPhase::Relaying) {
    // The upstream is done: its connection (and max_conns slot, least_conn count) is free now,
    // cached when it may be; the client drains the rest from memory and the temp file on its own.
    release_upstream(r, u, Rc::Ok);
  }
  set_relay_timers(r, u, !finished && !p.upstream_blocked);
}

}  // namespace

void add_non_buffered_out(Request& r, Upstream& u, char* pos, char* last) {
  ChainLink* cl = chain_get_free_buf(*r.pool, &u.free_bufs);
  Buffer* b = cl->buf;
  *b = Buffer{};
  b->start = b->pos = pos;
  b->end = b->last = last;
  b->temporary = true;
  b->flush = true;  // non-buffered: out at once
  b->tag = u.conf->tag;
  cl->next = nullptr;
  *u.out_tail = cl;
  u.out_tail = &cl->next;
}

Rc default_input_filter_init(Request& r) {
  // Up to the upstream's close, unless the header gave a length (a CGI answer's Content-Length).
  Upstream& u = *r.upstream;
  int status = u.headers_in.status;
  u.length = status == 204 || status == 304 ? 0
             : r.method & kHead             ? -1
                                            : u.headers_in.content_length_n;
  u.body_as_is = true;
  return Rc::Ok;
}

Rc default_input_filter(Request& r, size_t bytes) {
  Upstream& u = *r.upstream;
  char* from = u.buffer.last;
  u.buffer.last += bytes;
  char* last = u.buffer.last;
  if (u.length >= 0 && last - from > u.length) {
    log_error(LogLevel::Warn, r.log(), 0,
              "upstream sent more data than specified in \"Content-Length\" header");
    last = from + u.length;
  }
  if (u.length > 0) u.length -= last - from;
  if (last > from) add_non_buffered_out(r, u, from, last);
  return Rc::Ok;
}

Rc default_pipe_input_filter(EventPipe& p, Buffer* raw, char* from) {
  if (p.length == 0 || (p.length > 0 && raw->last - from > p.length)) {
    log_error(LogLevel::Warn, *p.request->connection->log, 0,
              "upstream sent more data than specified in \"Content-Length\" header");
  }
  return pipe_copy_filter(p, raw, from);
}

namespace {

void start_event_pipe(Request& r, Upstream& u, bool with_preread) {
  auto* p = r.pool->make<EventPipe>();
  u.pipe = p;
  const UpstreamConf& conf = *u.conf;
  p->upstream = u.peer.connection;
  p->request = &r;
  p->pool = r.pool;
  p->tag = conf.tag;
  p->bufs = conf.bufs;
  p->busy_size = conf.busy_buffers_size;
  p->max_temp_file_size = conf.temp_path != nullptr ? conf.max_temp_file_size : 0;
  p->store = conf.store && conf.temp_path != nullptr;
  p->temp_file_write_size = conf.temp_file_write_size;
  p->temp_path = conf.temp_path;
  if (*core_loc(r).aio_write) p->write_pool = aio_thread_pool(r);
  p->read_timeout = conf.read_timeout;
  p->limit_rate = conf.limit_rate;
  p->start_sec = clock::now();
  p->send_timeout = *core_loc(r).send_timeout;
  p->input_filter = u.protocol->pipe_input_filter != nullptr ? u.protocol->pipe_input_filter
                                                             : default_pipe_input_filter;
  p->input_ctx = &r;
  p->length = u.length;
  if (with_preread && u.buffer.pos < u.buffer.last) {
    p->preread = &u.buffer;
    p->preread_size = u.buffer.last - u.buffer.pos;
  }
  if (u.kernel_pipe.open()) p->ahead = &u.kernel_pipe;
  if (p->length == 0) p->upstream_done = true;
  if (u.cache != nullptr && u.cache->store) (void)start_cache_file(r, u, *p);
  // The client has its whole answer (header only): the pipe reads for the file alone, as nginx's.
  if (r.header_only) p->downstream_error = true;
  u.read_event_handler = pipe_upstream;
  r.write_event_handler = pipe_downstream;
  if (run_event_pipe(*p, true) == Rc::Abort) {
    finalize_upstream(r, u, Rc::Error);
    return;
  }
  process_pipe_request(r, u);
}

}  // namespace

void start_relay(Request& r, Upstream& u) {
  if (init_input_filter(r, u) != Rc::Ok) {
    finalize_upstream(r, u, Rc::Error);
    return;
  }
  if (r.header_only) {
    if (u.buffering && u.cache != nullptr && u.cache->store) {
      // A 304 the cache answered for a response it keeps: the body goes to the file alone.
      start_event_pipe(r, u, true);
      return;
    }
    // HEAD: whatever the upstream sends after the header is not wanted; the connection is reused
    // only when the protocol knows nothing follows.
    finalize_upstream(r, u, Rc::Ok);
    return;
  }
  r.connection->log->action = "reading upstream";
  if (u.buffering && !can_splice_buffered(r, u)) {
    start_event_pipe(r, u, true);
    return;
  }
  // Non-buffered, or buffered with a body that may be spliced: the header and what came with it
  // go out first, then the rest is spliced when it may be.
  u.read_event_handler = non_buffered_upstream;
  r.write_event_handler = non_buffered_downstream;
  if (!u.buffering) {
    // The relay runs at the upstream's pace, as nginx's (no limit_rate).
    r.limit_rate = 0;
    r.limit_rate_set = true;
  }
  if (*core_loc(r).tcp_nodelay) r.connection->set_tcp_nodelay();  // small writes leave at once
  size_t preread = static_cast<size_t>(u.buffer.last - u.buffer.pos);
  u.buffer.last = u.buffer.pos;
  if (preread > 0) {
    // As nginx: with body bytes at hand the client is written to first (the event pipe's input
    // filter, which buffered mode stands for here, reads them as reading upstream).
    if (!u.buffering) r.connection->log->action = "sending to client";
    u.state->response_length += static_cast<off_t>(preread);
    if (input_filter(r, u, preread) != Rc::Ok) {
      finalize_upstream(r, u, Rc::Error);
      return;
    }
  } else {
    // Nothing of the body yet: the header leaves now, not with the first body bytes (an event
    // stream may wait long before them).
    u.buffer.pos = u.buffer.last = u.buffer.start;
    if (send_special(r, false, true) == Rc::Error) {
      finalize_upstream(r, u, Rc::Error);
      return;
    }
  }
  process_non_buffered_request(r, u, true);
}

}  // namespace weir::http
