// The phase engine: handlers of every phase in one array, each with the step (nginx's checker) that
// interprets its answer (continue in the phase, skip to the next phase, suspend, or finish the
// request), plus the core's own steps: find_config, post_rewrite, post_access, try_files and the
// content phase's fallbacks. run_phases switches on the step, so the small ones are inline. nginx:
// src/http/ngx_http_core_module.c (ngx_http_core_*_phase), src/http/ngx_http.c
//        (ngx_http_init_phase_handlers), src/http/modules/ngx_http_try_files_module.c
#include <cstring>

#include "core/str.h"
#include "http/core_module.h"
#include "http/open_file.h"
#include "http/request_body.h"

namespace weir::http {

namespace {

Rc generic_phase(Request& r, const PhaseHandler& ph) {
  WEIR_DEBUG(r.log(), "generic phase: %d", r.phase_handler);
  Code rc = ph.handler(r);
  if (rc == Rc::Ok) {
    r.phase_handler = ph.next;
    return Rc::Again;
  }
  if (rc == Rc::Declined) {
    r.phase_handler++;
    return Rc::Again;
  }
  if (rc == Rc::Again || rc == Rc::Done) return Rc::Ok;
  finalize_request(r, rc);
  return Rc::Ok;
}

Rc rewrite_phase(Request& r, const PhaseHandler& ph) {
  WEIR_DEBUG(r.log(), "rewrite phase: %d", r.phase_handler);
  Code rc = ph.handler(r);
  if (rc == Rc::Declined) {
    r.phase_handler++;
    return Rc::Again;
  }
  if (rc == Rc::Done) return Rc::Ok;
  finalize_request(r, rc);
  return Rc::Ok;
}

Rc find_config_phase(Request& r) {
  r.content_handler = nullptr;
  r.uri_changed = false;
  Rc rc = find_location(r);
  if (rc == Rc::Error) {
    finalize_request(r, Code::status(500));
    return Rc::Ok;
  }
  CoreLocConf& clcf = core_loc(r);
  if (!r.internal && *clcf.internal) {
    finalize_request(r, Code::status(404));
    return Rc::Ok;
  }
  r.valid_location = true;
  update_location_config(r);

  CoreLocConf& lc = core_loc(r);
  WEIR_DEBUG(r.log(), "using configuration \"%s%s\"", lc.noname ? "*" : (lc.exact_match ? "=" : ""),
             lc.name.c_str());
  WEIR_DEBUG(r.log(), "http cl:%lld max:%lld",
             static_cast<long long>(r.headers_in.content_length_n),
             static_cast<long long>(*lc.client_max_body_size));
  if (r.headers_in.content_length_n != -1 && !r.discard_body && *lc.client_max_body_size != 0 &&
      *lc.client_max_body_size < r.headers_in.content_length_n) {
    log_error(LogLevel::Error, r.log(), 0, "client intended to send too large body: %lld bytes",
              static_cast<long long>(r.headers_in.content_length_n));
    r.expect_tested = true;
    (void)discard_request_body(r);
    finalize_request(r, Code::status(413));
    return Rc::Ok;
  }

  if (rc == Rc::Done) {
    // A prefix location "/dir/" asked for "/dir": redirect to the slash (for proxied locations).
    clear_location(r);
    std::string_view loc = lc.name;
    if (!r.args.empty()) {
      char* p = r.pool->alloc_bytes(loc.size() + 1 + r.args.size());
      char* e = put(p, loc);
      *e++ = '?';
      e = put(e, r.args);
      loc = {p, static_cast<size_t>(e - p)};
    }
    r.headers_out.location = add_header_out(r, "Location", loc);
    finalize_request(r, Code::status(301));
    return Rc::Ok;
  }
  r.phase_handler++;
  return Rc::Again;
}

Rc post_rewrite_phase(Request& r, const PhaseHandler& ph) {
  WEIR_DEBUG(r.log(), "post rewrite phase: %d", r.phase_handler);
  if (!r.uri_changed) {
    r.phase_handler++;
    return Rc::Again;
  }
  if (--r.uri_changes == 0) {
    log_error(LogLevel::Error, r.log(), 0,
              "rewrite or internal redirection cycle while processing \"%.*s\"",
              static_cast<int>(r.uri.size()), r.uri.data());
    finalize_request(r, Code::status(500));
    return Rc::Ok;
  }
  WEIR_DEBUG(r.log(), "uri changes: %d", r.uri_changes);
  r.phase_handler = ph.next;
  r.loc_conf = core_srv(r).ctx->loc_conf;
  return Rc::Again;
}

Rc access_phase(Request& r, const PhaseHandler& ph) {
  WEIR_DEBUG(r.log(), "access phase: %d", r.phase_handler);
  if (!r.is_main()) {
    r.phase_handler = ph.next;
    return Rc::Again;
  }
  Code rc = ph.handler(r);
  if (rc == Rc::Declined) {
    r.phase_handler++;
    return Rc::Again;
  }
  if (rc == Rc::Again || rc == Rc::Done) return Rc::Ok;
  if (*core_loc(r).satisfy == 0) {  // all
    if (rc == Rc::Ok) {
      r.phase_handler++;
      return Rc::Again;
    }
  } else {  // any
    if (rc == Rc::Ok) {
      r.access_code = 0;
      r.phase_handler = ph.next;
      return Rc::Again;
    }
    if (rc.is_status() && (rc.http_status() == 403 || rc.http_status() == 401)) {
      if (r.access_code != 401) r.access_code = rc.http_status();
      r.phase_handler++;
      return Rc::Again;
    }
  }
  finalize_request(r, rc);
  return Rc::Ok;
}

Rc post_access_phase(Request& r) {
  WEIR_DEBUG(r.log(), "post access phase: %d", r.phase_handler);
  int code = r.access_code;
  r.phase_handler++;
  if (code != 0) {
    r.access_code = 0;
    if (code == 403) log_error(LogLevel::Error, r.log(), 0, "access forbidden by rule");
    finalize_request(r, Code::status(code));
    return Rc::Ok;
  }
  return Rc::Again;
}

Rc content_phase(Request& r, const PhaseHandler& ph) {
  WEIR_DEBUG(r.log(), "content phase: %d", r.phase_handler);
  if (r.content_handler != nullptr) {
    r.write_event_handler = request_empty_handler;
    finalize_request(r, r.content_handler(r));
    return Rc::Ok;
  }
  Code rc = ph.handler(r);
  if (rc != Rc::Declined) {
    finalize_request(r, rc);
    return Rc::Ok;
  }
  const PhaseHandler* next = &ph + 1;
  if (next->step != PhaseStep::End) {
    r.phase_handler++;
    return Rc::Again;
  }
  // No content handler took the request.
  if (!r.uri.empty() && r.uri.back() == '/') {
    size_t root;
    std::string_view path = map_uri_to_path(r, &root, 0);
    if (!path.empty()) {
      log_error(LogLevel::Error, r.log(), 0, "directory index of \"%.*s\" is forbidden",
                static_cast<int>(path.size()), path.data());
    }
    finalize_request(r, Code::status(403));
    return Rc::Ok;
  }
  log_error(LogLevel::Error, r.log(), 0, "no handler found");
  finalize_request(r, Code::status(404));
  return Rc::Ok;
}

// try_files: the first file (or directory, for "name/") that exists becomes the URI; otherwise the
// last argument: a URI (internal redirect), a named location or "=code".
Code try_files_handler(Request& r) {
  CoreLocConf& clcf = core_loc(r);
  if (clcf.try_files == nullptr) return Rc::Declined;
  const auto& list = *clcf.try_files;
  size_t alias = clcf.alias && clcf.regex == nullptr ? clcf.alias_prefix_len : 0;
  std::string_view root = location_root(r);
  if (root.empty()) return Code::status(500);
  for (size_t i = 0; i + 1 < list.size(); i++) {
    const TryFile& tf = list[i];
    std::string_view name = tf.value.eval(r);
    // With an alias, a name under the location's prefix is mapped like the URI would be.
    if (alias != 0 && name.size() >= alias && name.substr(0, alias) == r.uri.substr(0, alias)) {
      name = name.substr(alias);
    }
    char* buf = r.pool->alloc_bytes(root.size() + name.size() + 1);
    char* e = put(put(buf, root), name);
    *e = '\0';
    std::string_view path(buf, e - buf);

    OpenFileInfo of;
    init_open_file_info(r, clcf, of);
    set_disable_symlinks(r, clcf, path, of);
    of.test_only = true;
    of.test_dir = tf.test_dir;
    if (!open_cached_file(clcf.open_file_cache, path, of, *r.pool)) {
      if (of.err != ENOENT && of.err != ENOTDIR && of.err != ENAMETOOLONG) {
        log_error(LogLevel::Crit, r.log(), of.err, "%s \"%.*s\" failed", of.failed,
                  static_cast<int>(path.size()), path.data());
      }
      continue;
    }
    if (of.is_dir != tf.test_dir) continue;

    std::string_view uri = name;
    if (alias != 0) {
      char* u = r.pool->alloc_bytes(alias + name.size());
      std::memcpy(u, r.uri.data(), alias);
      std::memcpy(u + alias, name.data(), name.size());
      uri = {u, alias + name.size()};
    } else if (clcf.alias && clcf.regex != nullptr) {
      // A regex alias (with captures) is the whole path: what was tried follows it, as nginx.
      if (tf.test_dir) return Rc::Declined;
      r.add_uri_to_alias = true;
    }
    r.uri = uri;
    r.exten = uri_exten(r.uri);
    return Rc::Declined;
  }

  std::string_view last = list.back().value.eval(r);
  if (!last.empty() && last[0] == '@') {
    (void)named_location(r, last);
    finalize_request(r, Rc::Done);  // the redirect took a reference of its own
    return Rc::Done;
  }
  if (!last.empty() && last[0] == '=') {
    auto code = parse_int(last.substr(1));
    if (!code || *code > 999) {
      log_error(LogLevel::Error, r.log(), 0, "invalid code \"%.*s\"", static_cast<int>(last.size()),
                last.data());
      return Code::status(500);
    }
    return Code::status(static_cast<int>(*code));
  }
  std::string_view args;
  if (size_t q = last.find('?'); q != std::string_view::npos) {
    args = last.substr(q + 1);
    last = last.substr(0, q);
  } else {
    args = r.args;
  }
  (void)internal_redirect(r, last, args);
  finalize_request(r, Rc::Done);
  return Rc::Done;
}

}  // namespace

Status init_phase_engine(ConfContext& cf, CoreMainConf& cmcf) {
  if (cmcf.try_files) cmcf.phases[static_cast<int>(Phase::Precontent)].push_back(try_files_handler);

  auto& phases = cmcf.phases;
  bool use_rewrite = !phases[static_cast<int>(Phase::Rewrite)].empty();
  bool use_access = !phases[static_cast<int>(Phase::Access)].empty();
  PhaseEngine& pe = cmcf.phase_engine;
  std::vector<PhaseHandler>& out = pe.handlers;
  out.clear();
  for (int i = 0; i < static_cast<int>(Phase::Log); i++) {
    auto phase = static_cast<Phase>(i);
    PhaseStep step = PhaseStep::Generic;
    switch (phase) {
      case Phase::ServerRewrite:
        pe.server_rewrite_index = static_cast<int>(out.size());
        step = PhaseStep::Rewrite;
        break;
      case Phase::FindConfig:
        pe.find_config_index = static_cast<int>(out.size());
        out.push_back(PhaseHandler{PhaseStep::FindConfig, nullptr, 0});
        continue;
      case Phase::Rewrite:
        pe.location_rewrite_index = static_cast<int>(out.size());
        step = PhaseStep::Rewrite;
        break;
      case Phase::PostRewrite:
        if (use_rewrite)
          out.push_back(PhaseHandler{PhaseStep::PostRewrite, nullptr, pe.find_config_index});
        continue;
      case Phase::Access:
        step = PhaseStep::Access;
        break;
      case Phase::PostAccess:
        if (use_access) out.push_back(PhaseHandler{PhaseStep::PostAccess, nullptr, 0});
        continue;
      case Phase::Content:
        step = PhaseStep::Content;
        break;
      default:
        break;
    }
    const auto& hs = phases[i];
    int next = static_cast<int>(out.size() + hs.size());
    // Handlers registered later run first, as in nginx.
    for (size_t j = hs.size(); j-- > 0;) out.push_back(PhaseHandler{step, hs[j], next});
  }
  // Fix post_access's "next" (the handler after it).
  for (size_t i = 0; i < out.size(); i++) {
    if (out[i].step == PhaseStep::PostAccess) out[i].next = static_cast<int>(i + 1);
  }
  out.push_back(PhaseHandler{});  // the end
  (void)cf;
  return {};
}

void run_phases(Request& r) {
  const PhaseHandler* handlers = core_main(r).phase_engine.handlers.data();
  for (;;) {
    const PhaseHandler& ph = handlers[r.phase_handler];
    Rc rc = Rc::Again;
    switch (ph.step) {
      case PhaseStep::End:
        return;
      case PhaseStep::Generic:
        rc = generic_phase(r, ph);
        break;
      case PhaseStep::Rewrite:
        rc = rewrite_phase(r, ph);
        break;
      case PhaseStep::FindConfig:
        rc = find_config_phase(r);
        break;
      case PhaseStep::PostRewrite:
        rc = post_rewrite_phase(r, ph);
        break;
      case PhaseStep::Access:
        rc = access_phase(r, ph);
        break;
      case PhaseStep::PostAccess:
        rc = post_access_phase(r);
        break;
      case PhaseStep::Content:
        rc = content_phase(r, ph);
        break;
    }
    if (rc == Rc::Ok) return;  // the request goes on elsewhere (or is done)
  }
}

void core_run_phases(Request& r) {
  run_phases(r);
}

void update_location_config(Request& r) {
  CoreLocConf* clcf = &core_loc(r);
  if ((r.method & clcf->limit_except) && clcf->limit_except_loc_conf != nullptr) {
    r.loc_conf = clcf->limit_except_loc_conf;
    clcf = &core_loc(r);
  }
  Connection& c = *r.connection;
  if (r.is_main()) c.log->sink = clcf->error_log;
  c.io.use_sendfile = *clcf->sendfile && c.ssl == nullptr;  // TLS: through SSL_write
  c.io.nopush = *clcf->tcp_nopush;
  if (*clcf->keepalive_timeout == 0 || c.requests >= *clcf->keepalive_requests ||
      clock::msec() - c.start_msec > *clcf->keepalive_time ||
      (r.headers_in.msie6 && r.method == kPost &&
       (*clcf->keepalive_disable & kKeepaliveDisableMsie6)) ||
      (r.headers_in.safari && (*clcf->keepalive_disable & kKeepaliveDisableSafari))) {
    r.keepalive = false;
  }
  if (clcf->handler != nullptr) r.content_handler = clcf->handler;
}

}  // namespace weir::http
