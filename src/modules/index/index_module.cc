// The index module: a URI ending in "/" is served by the first `index` file that exists in that
// directory (an internal redirect), or by the last index when it is an absolute URI. nginx:
// src/http/modules/ngx_http_index_module.c
#include <cstring>

#include "http/core_module.h"
#include "http/open_file.h"

namespace weir::http {

extern Module http_index_module;

namespace {

struct IndexConf {
  static constexpr Module* kModule = &http_index_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<ComplexValue>* indices = nullptr;
  size_t max_index_len = 0;
};

Code index_error(Request& r, CoreLocConf& clcf, std::string_view file, int err) {
  if (err == EACCES) {
    log_error(LogLevel::Error, r.log(), err, "\"%.*s\" is forbidden", static_cast<int>(file.size()),
              file.data());
    return Code::status(403);
  }
  if (*clcf.log_not_found) {
    log_error(LogLevel::Error, r.log(), err, "\"%.*s\" is not found", static_cast<int>(file.size()),
              file.data());
  }
  return Code::status(404);
}

Code test_dir(Request& r, CoreLocConf& clcf, std::string_view dir) {
  char* d = r.pool->alloc_bytes(dir.size() + 1);
  std::memcpy(d, dir.data(), dir.size());
  d[dir.size()] = '\0';
  OpenFileInfo of;
  init_open_file_info(r, clcf, of);
  set_disable_symlinks(r, clcf, {d, dir.size()}, of);
  of.test_only = true;
  of.test_dir = true;
  if (!open_cached_file(clcf.open_file_cache, {d, dir.size()}, of, *r.pool)) {
    if (of.err == ENOENT) return index_error(r, clcf, {d, dir.size()}, ENOENT);
    if (of.err == EACCES) return Rc::Ok;  // searching the directory is allowed, reading it is not
    log_error(LogLevel::Crit, r.log(), of.err, "%s \"%s\" failed", of.failed, d);
    return Code::status(500);
  }
  if (of.is_dir) return Rc::Ok;
  log_error(LogLevel::Alert, r.log(), 0, "\"%s\" is not a directory", d);
  return Code::status(500);
}

Code index_handler(Request& r) {
  if (r.uri.empty() || r.uri.back() != '/') return Rc::Declined;
  if (!(r.method & (kGet | kHead | kPost))) return Rc::Declined;
  IndexConf& ilcf = r.loc<IndexConf>();
  CoreLocConf& clcf = core_loc(r);
  bool dir_tested = false;
  for (const ComplexValue& index : *ilcf.indices) {
    // An empty name (a variable with no value) names the directory itself, as in nginx: it
    // exists, and the redirect to it cycles.
    std::string_view name = index.eval(r);
    if (!name.empty() && name[0] == '/') return internal_redirect(r, name, r.args);
    size_t root;
    std::string_view dir = map_uri_to_path(r, &root, name.size() + 1);
    if (dir.empty()) return Code::status(500);
    char* p = const_cast<char*>(dir.data()) + dir.size();
    std::memcpy(p, name.data(), name.size());
    p[name.size()] = '\0';
    std::string_view path(dir.data(), dir.size() + name.size());
    WEIR_DEBUG(r.log(), "open index \"%.*s\"", static_cast<int>(path.size()), path.data());

    OpenFileInfo of;
    init_open_file_info(r, clcf, of);
    set_disable_symlinks(r, clcf, path, of);
    of.test_only = true;
    if (!open_cached_file(clcf.open_file_cache, path, of, *r.pool)) {
      if (of.err == ENOTDIR || of.err == ENAMETOOLONG || of.err == EACCES) {
        return index_error(r, clcf, path, of.err);
      }
      if (!dir_tested) {
        if (Code rc = test_dir(r, clcf, dir); rc != Rc::Ok) return rc;
        dir_tested = true;
      }
      if (of.err == ENOENT) continue;
      log_error(LogLevel::Crit, r.log(), of.err, "%s \"%.*s\" failed", of.failed,
                static_cast<int>(path.size()), path.data());
      return Code::status(500);
    }
    // The new URI: the request's URI plus the index name.
    char* u = r.pool->alloc_bytes(r.uri.size() + name.size());
    std::memcpy(u, r.uri.data(), r.uri.size());
    std::memcpy(u + r.uri.size(), name.data(), name.size());
    return internal_redirect(r, {u, r.uri.size() + name.size()}, r.args);
  }
  return Rc::Declined;
}

Status set_index(ConfContext& cf, const ConfNode& n, IndexConf& ilcf) {
  if (ilcf.indices == nullptr) ilcf.indices = cf.pool.make<std::vector<ComplexValue>>();
  for (size_t i = 1; i < n.args.size(); i++) {
    const std::string& v = n.args[i];
    if (v.empty()) return cf.errorf("index \"%s\" in \"index\" directive is invalid", v.c_str());
    if (v[0] == '/' && i != n.args.size() - 1) {
      cf.warn(LogLevel::Warn, "only the last index in \"index\" directive should be absolute");
    }
    ComplexValue cv;
    if (Status s = cv.compile(cf, v); !s.ok()) return s;
    ilcf.indices->push_back(std::move(cv));
    if (v.size() > ilcf.max_index_len) ilcf.max_index_len = v.size();
  }
  return {};
}

IndexConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<IndexConf>();
}

// prev is not const: the default index list is made once, at the parent, and shared.
Status merge_loc_conf(ConfContext& cf, IndexConf& prev, IndexConf& conf) {
  if (conf.indices == nullptr) {
    if (prev.indices == nullptr) {
      prev.indices = cf.pool.make<std::vector<ComplexValue>>();
      ComplexValue cv;
      if (Status s = cv.compile(cf, "index.html"); !s.ok()) return s;
      prev.indices->push_back(std::move(cv));
      prev.max_index_len = 10;
    }
    conf.indices = prev.indices;
    conf.max_index_len = prev.max_index_len;
  }
  return {};
}

Status init(ConfContext& cf) {
  add_phase_handler(cf, Phase::Content, index_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<set_index>("index", kHttpMainSrvLoc | kOneMore),
};
static_assert(directives_of(kDirectives, &http_index_module));

}  // namespace

Module http_index_module{
    .name = "http_index",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
