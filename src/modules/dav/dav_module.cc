// WebDAV's write methods (ngx_http_dav_module, which Debian's nginx has), for the methods
// dav_methods names: PUT puts the body in place (a temp file renamed; 201 with a Location, or 204
// over a file), DELETE removes a file or a whole collection (Depth: infinity), MKCOL makes a
// collection, COPY and MOVE take a Destination (this server's, absolute or a path) with Overwrite
// and Depth. dav_access sets the mode of what is made, create_full_put_path makes a PUT's missing
// directories, min_delete_depth keeps DELETE away from the top of the tree. Failures answer as
// nginx's do (404, 403, 405, 409, 412, 415, 507) with its log lines.
// nginx: src/http/modules/ngx_http_dav_module.c

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "core/escape.h"
#include "core/file_ops.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/request_body.h"

namespace weir::http {

extern Module http_dav_module;

namespace {

constexpr uint32_t kDavOff = 0x80000000;  // dav_methods off: a bit no method has

constexpr EnumName<uint32_t> kMethodNames[] = {
    {"off", kDavOff},  {"put", kPut},   {"delete", kDelete},
    {"mkcol", kMkcol}, {"copy", kCopy}, {"move", kMove},
};

struct DavLocConf {
  static constexpr Module* kModule = &http_dav_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<uint32_t> methods;
  Setting<uint32_t> access;
  Setting<int64_t> min_delete_depth;
  Setting<bool> create_full_put_path;
};

enum class Depth : int8_t { Zero, One, Infinity, Invalid };

// The Depth header, or dflt without one.
Depth depth_of(Request& r, Depth dflt) {
  Header* h = r.headers_in.headers.find("Depth");
  if (h == nullptr) return dflt;
  if (h->value == "0") return Depth::Zero;
  if (h->value == "1") return Depth::One;
  if (h->value == "infinity") return Depth::Infinity;
  log_error(LogLevel::Error, r.log(), 0, "client sent invalid \"Depth\" header: \"%.*s\"",
            static_cast<int>(h->value.size()), h->value.data());
  return Depth::Invalid;
}

// A file system call that failed, as nginx answers and logs it.
Code fs_error(const Log& log, int err, int not_found, const char* failed, const std::string& path) {
  LogLevel level = LogLevel::Error;
  int status;
  if (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG) {
    status = not_found;
  } else if (err == EACCES || err == EPERM) {
    status = 403;
  } else if (err == EEXIST) {
    status = 405;
  } else if (err == ENOSPC) {
    level = LogLevel::Crit;
    status = 507;
  } else {
    level = LogLevel::Crit;
    status = 500;
  }
  log_error(level, log, err, "%s \"%s\" failed", failed, path.c_str());
  return status == 0 ? Code(Rc::Ok) : Code::status(status);
}

// The path the URI maps to; empty on error.
std::string path_of(Request& r) {
  size_t root;
  return std::string(map_uri_to_path(r, &root, 0));
}

// A 201's Location: the URI, escaped (made absolute by the header filter).
void set_location(Request& r) {
  size_t n = escape_uri(nullptr, r.uri, Escape::Uri);
  char* p = r.pool->alloc_bytes(n);
  escape_uri(p, r.uri, Escape::Uri);
  r.headers_out.location = add_header_out(r, "Location", {p, n});
}

bool body_sent(const Request& r) {
  return r.headers_in.content_length_n > 0 || r.headers_in.chunked;
}

// --- PUT ---------------------------------------------------------------------------------------

void put_body_read(Request& r) {
  RequestBody* rb = r.request_body;
  if (rb == nullptr || rb->temp_file == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "PUT request body must be in a file");
    return finalize_request(r, Code::status(500));
  }
  std::string path = path_of(r);
  if (path.empty()) return finalize_request(r, Code::status(500));
  TempFile& tf = *rb->temp_file;
  std::string temp(tf.file.name);
  int status = 201;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    status = 204;
    if (S_ISDIR(st.st_mode)) {
      log_error(LogLevel::Error, r.log(), EISDIR, "\"%s\" could not be created", path.c_str());
      return finalize_request(r, Code::status(409));
    }
  }
  const auto& conf = r.loc<DavLocConf>();
  RenameOptions o;
  o.access = *conf.access;
  o.path_access = *conf.access;
  o.create_path = *conf.create_full_put_path;
  o.delete_source = true;
  if (Header* date = r.headers_in.headers.find("Date")) {
    if (auto t = clock::parse_http_time(date->value)) o.time = *t;
  }
  if (!ext_rename_file(temp, path, o, r.log())) return finalize_request(r, Code::status(500));
  tf.clean = false;  // moved into place (or deleted)
  if (status == 201) {
    set_location(r);
    r.headers_out.content_length_n = 0;
  }
  r.headers_out.status = status;
  r.header_only = true;
  finalize_request(r, send_header(r));
}

Code put(Request& r) {
  if (r.uri.back() == '/') {
    log_error(LogLevel::Error, r.log(), 0, "cannot PUT to a collection");
    return Code::status(409);
  }
  if (r.headers_in.content_range != nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "PUT with range is unsupported");
    return Code::status(501);
  }
  r.request_body_in_file_only = true;
  Code rc = read_client_request_body(r, put_body_read);
  if (rc.is_status() && rc.http_status() >= kHttpSpecialResponse) return rc;
  return Rc::Done;
}

// --- DELETE ------------------------------------------------------------------------------------

// Deletes a file, or a directory with all below it (what cannot go is logged and left, as nginx
// leaves it); 0 when done, else the status.
Code delete_path(Request& r, const std::string& path, bool dir) {
  const Log& log = r.log();
  if (dir) {
    auto remove_file = [&log](const std::string& p, const struct stat&) {
      if (::unlink(p.c_str()) < 0) fs_error(log, errno, 0, "unlink()", p);
      return true;
    };
    TreeHandlers h;
    h.file = remove_file;
    h.special = remove_file;
    h.post_dir = [&log](const std::string& p, const struct stat&) {
      if (::rmdir(p.c_str()) < 0) fs_error(log, errno, 0, "rmdir()", p);
      return true;
    };
    if (!walk_tree(path, h, log)) return Code::status(500);
    if (::rmdir(path.c_str()) == 0) return Rc::Ok;
    return fs_error(log, errno, 404, "rmdir()", path);
  }
  if (::unlink(path.c_str()) == 0) return Rc::Ok;
  return fs_error(log, errno, 404, "unlink()", path);
}

Code delete_method(Request& r, const DavLocConf& conf) {
  if (body_sent(r)) {
    log_error(LogLevel::Error, r.log(), 0, "DELETE with body is unsupported");
    return Code::status(415);
  }
  if (*conf.min_delete_depth != 0) {
    // Enough slashes, and something after the one that makes the depth.
    int64_t d = 0;
    bool deep = false;
    for (size_t i = 0; i < r.uri.size() && !deep;) {
      if (r.uri[i++] == '/' && ++d >= *conf.min_delete_depth && i < r.uri.size()) deep = true;
    }
    if (!deep) {
      log_error(LogLevel::Error, r.log(), 0, "insufficient URI depth:%lld to DELETE",
                static_cast<long long>(d));
      return Code::status(409);
    }
  }
  std::string path = path_of(r);
  if (path.empty()) return Code::status(500);
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    int err = errno;
    return fs_error(r.log(), err, err == ENOTDIR ? 409 : 404, "lstat()", path);
  }
  bool dir = S_ISDIR(st.st_mode);
  if (dir) {
    if (r.uri.back() != '/') {
      log_error(LogLevel::Error, r.log(), EISDIR, "DELETE \"%s\" failed", path.c_str());
      return Code::status(409);
    }
    if (depth_of(r, Depth::Infinity) != Depth::Infinity) {
      log_error(LogLevel::Error, r.log(), 0, "\"Depth\" header must be infinity");
      return Code::status(400);
    }
    path.pop_back();  // the slash
  } else {
    Depth d = depth_of(r, Depth::Zero);
    if (d != Depth::Zero && d != Depth::Infinity) {
      log_error(LogLevel::Error, r.log(), 0, "\"Depth\" header must be 0 or infinity");
      return Code::status(400);
    }
  }
  Code rc = delete_path(r, path, dir);
  return rc == Rc::Ok ? Code::status(204) : rc;
}

// --- MKCOL -------------------------------------------------------------------------------------

Code mkcol(Request& r, const DavLocConf& conf) {
  if (body_sent(r)) {
    log_error(LogLevel::Error, r.log(), 0, "MKCOL with body is unsupported");
    return Code::status(415);
  }
  if (r.uri.back() != '/') {
    log_error(LogLevel::Error, r.log(), 0, "MKCOL can create a collection only");
    return Code::status(409);
  }
  std::string path = path_of(r);
  if (path.empty()) return Code::status(500);
  path.pop_back();
  if (::mkdir(path.c_str(), dir_access(*conf.access)) == 0) {
    set_location(r);
    return Code::status(201);
  }
  return fs_error(r.log(), errno, 409, "mkdir()", path);
}

// --- COPY and MOVE -----------------------------------------------------------------------------

// The Destination's path: "/path", or this server's "http(s)://host[:port]/path"; empty (logged)
// when it is not one.
std::string_view destination_uri(Request& r, std::string_view dest) {
  auto invalid = [&] {
    log_error(LogLevel::Error, r.log(), 0, "client sent invalid \"Destination\" header: \"%.*s\"",
              static_cast<int>(dest.size()), dest.data());
    return std::string_view{};
  };
  if (dest.starts_with('/')) return dest;
  std::string_view host = r.headers_in.server;
  if (host.empty()) {
    log_error(LogLevel::Error, r.log(), 0, "client sent no \"Host\" header");
    return {};
  }
  std::string_view scheme = r.connection->ssl != nullptr ? "https://" : "http://";
  if (!dest.starts_with(scheme)) return invalid();
  std::string_view rest = dest.substr(scheme.size());
  if (!rest.starts_with(host)) {
    log_error(LogLevel::Error, r.log(), 0,
              "\"Destination\" URI \"%.*s\" is handled by different repository than the source "
              "URI",
              static_cast<int>(dest.size()), dest.data());
    return {};
  }
  size_t slash = rest.find('/', host.size());
  if (slash == std::string_view::npos) return invalid();
  return rest.substr(slash);
}

Code copy_move(Request& r) {
  bool move = r.method == kMove;
  if (body_sent(r)) {
    log_error(LogLevel::Error, r.log(), 0, "COPY and MOVE with body are unsupported");
    return Code::status(415);
  }
  Header* dest = r.headers_in.headers.find("Destination");
  if (dest == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "client sent no \"Destination\" header");
    return Code::status(400);
  }
  std::string_view target = destination_uri(r, dest->value);
  if (target.empty()) return Code::status(400);
  std::string_view duri, args;
  if (!parse_unsafe_uri(r, target, duri, args)) {
    log_error(LogLevel::Error, r.log(), 0, "client sent invalid \"Destination\" header: \"%.*s\"",
              static_cast<int>(dest->value.size()), dest->value.data());
    return Code::status(400);
  }
  if ((r.uri.back() == '/') != (dest->value.back() == '/')) {
    log_error(LogLevel::Error, r.log(), 0,
              "both URI \"%.*s\" and \"Destination\" URI \"%.*s\" should be either collections "
              "or non-collections",
              static_cast<int>(r.uri.size()), r.uri.data(), static_cast<int>(dest->value.size()),
              dest->value.data());
    return Code::status(409);
  }
  Depth depth = depth_of(r, Depth::Infinity);
  if (depth != Depth::Infinity) {
    if (!move && depth != Depth::Zero) {
      log_error(LogLevel::Error, r.log(), 0, "\"Depth\" header must be 0 or infinity");
      return Code::status(400);
    }
    if (move) {
      log_error(LogLevel::Error, r.log(), 0, "\"Depth\" header must be infinity");
      return Code::status(400);
    }
  }
  bool overwrite = true;
  if (Header* over = r.headers_in.headers.find("Overwrite")) {
    std::string_view v = over->value;
    if (v == "T" || v == "t") {
      overwrite = true;
    } else if (v == "F" || v == "f") {
      overwrite = false;
    } else {
      log_error(LogLevel::Error, r.log(), 0, "client sent invalid \"Overwrite\" header: \"%.*s\"",
                static_cast<int>(v.size()), v.data());
      return Code::status(400);
    }
  }
  std::string from = path_of(r);
  std::string_view uri = r.uri;
  r.uri = duri;
  std::string to = path_of(r);
  r.uri = uri;
  if (from.empty() || to.empty()) return Code::status(500);
  bool slash = to.back() == '/';
  if (slash) to.pop_back();
  const Log& log = r.log();
  struct stat st {};
  bool dest_dir = false;
  if (::lstat(to.c_str(), &st) < 0) {
    if (errno != ENOENT) return fs_error(log, errno, 404, "lstat()", to);
    overwrite = false;  // nothing there
  } else {
    if (S_ISDIR(st.st_mode) && !slash) {
      log_error(LogLevel::Error, log, 0, "\"%.*s\" could not be %.*sed to collection \"%.*s\"",
                static_cast<int>(r.uri.size()), r.uri.data(),
                static_cast<int>(r.method_name.size()), r.method_name.data(),
                static_cast<int>(dest->value.size()), dest->value.data());
      return Code::status(409);
    }
    if (!overwrite) {
      log_error(LogLevel::Error, log, EEXIST, "\"%s\" could not be created", to.c_str());
      return Code::status(412);
    }
    dest_dir = S_ISDIR(st.st_mode);
  }
  if (::lstat(from.c_str(), &st) < 0) return fs_error(log, errno, 404, "lstat()", from);
  if (S_ISDIR(st.st_mode)) {
    if (r.uri.back() != '/') {
      log_error(LogLevel::Error, log, 0, "\"%.*s\" is collection", static_cast<int>(r.uri.size()),
                r.uri.data());
      return Code::status(400);
    }
    if (overwrite) {
      if (Code rc = delete_path(r, to, dest_dir); rc != Rc::Ok) return rc;
    }
    from.pop_back();  // the slash
    if (move && ::rename(from.c_str(), to.c_str()) == 0) return Code::status(201);
    if (::mkdir(to.c_str(), st.st_mode & 07777) < 0) {
      return fs_error(log, errno, 404, "mkdir()", to);
    }
    // The tree below, each name moved from under `from` to under `to`.
    auto target = [&](const std::string& p) { return to + p.substr(from.size()); };
    TreeHandlers h;
    h.pre_dir = [&](const std::string& p, const struct stat& s) {
      std::string d = target(p);
      if (::mkdir(d.c_str(), dir_access(s.st_mode & 07777)) < 0) {
        fs_error(log, errno, 0, "mkdir()", d);
      }
      return true;
    };
    h.post_dir = [&](const std::string& p, const struct stat& s) {
      std::string d = target(p);
      if (!set_file_time(d, s.st_mtime)) {
        log_error(LogLevel::Alert, log, errno, "utimes() \"%s\" failed", d.c_str());
      }
      return true;
    };
    h.file = [&](const std::string& p, const struct stat& s) {
      copy_file(p, target(p), s.st_mode & 07777, s.st_mtime, log);
      return true;
    };
    if (!walk_tree(from, h, log)) return Code::status(500);
    if (move) {
      if (Code rc = delete_path(r, from, true); rc != Rc::Ok) return rc;
    }
    return Code::status(201);
  }
  if (move) {
    RenameOptions o;
    o.path_access = *r.loc<DavLocConf>().access;
    o.create_path = true;
    return ext_rename_file(from, to, o, log) ? Code::status(204) : Code::status(500);
  }
  if (copy_file(from, to, st.st_mode & 07777, st.st_mtime, log)) return Code::status(204);
  return Code::status(500);
}

Code dav_handler(Request& r) {
  const auto& conf = r.loc<DavLocConf>();
  if (!(r.method & *conf.methods)) return Rc::Declined;
  switch (r.method) {
    case kPut:
      return put(r);
    case kDelete:
      return delete_method(r, conf);
    case kMkcol:
      return mkcol(r, conf);
    case kCopy:
    case kMove:
      return copy_move(r);
    default:
      return Rc::Declined;
  }
}

// --- configuration -----------------------------------------------------------------------------

DavLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<DavLocConf>();
}

Status merge_loc_conf(ConfContext&, const DavLocConf& prev, DavLocConf& conf) {
  conf.methods.merge(prev.methods, kDavOff);
  conf.min_delete_depth.merge(prev.min_delete_depth, 0);
  conf.access.merge(prev.access, 0600);
  conf.create_full_put_path.merge(prev.create_full_put_path, false);
  return {};
}

Status init(ConfContext& cf) {
  if (cf.configured(http_dav_module)) add_phase_handler(cf, Phase::Content, dav_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::bitmask<&DavLocConf::methods, kMethodNames>>("dav_methods",
                                                                 kHttpMainSrvLoc | kOneMore),
    directive<slot::flag<&DavLocConf::create_full_put_path>>("create_full_put_path",
                                                             kHttpMainSrvLoc | kFlag),
    directive<slot::num<&DavLocConf::min_delete_depth>>("min_delete_depth",
                                                        kHttpMainSrvLoc | kTake1),
    directive<slot::access<&DavLocConf::access>>("dav_access", kHttpMainSrvLoc | kTake123),
};
static_assert(directives_of(kDirectives, &http_dav_module));

}  // namespace

Module http_dav_module{
    .name = "http_dav",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
