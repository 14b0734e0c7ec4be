// random_index (ngx_http_random_index_module, which Debian's nginx has): a request for a directory
// ("/.../") in a location with `random_index on` is redirected internally to one of the directory's
// files, drawn at random; names beginning with "." are left out, symbolic links count by what they
// point to, and a directory with no file leaves the request to the next handler (index).
// nginx: src/http/modules/ngx_http_random_index_module.c

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "core/random.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_random_index_module;

namespace {

struct RandomIndexLocConf {
  static constexpr Module* kModule = &http_random_index_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<bool> enable;
};

// Whether the entry is a regular file, following a symbolic link (a dangling one is not).
bool is_file(const std::string& dir, const dirent& e, const Log& log, bool& failed) {
  if (e.d_type == DT_REG) return true;
  if (e.d_type != DT_UNKNOWN && e.d_type != DT_LNK) return false;
  std::string path = dir + "/" + e.d_name;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return S_ISREG(st.st_mode);
  if (errno != ENOENT) {
    log_error(LogLevel::Crit, log, errno, "stat() \"%s\" failed", path.c_str());
    failed = true;
  }
  return false;
}

Code random_index_handler(Request& r) {
  if (r.uri.empty() || r.uri.back() != '/') return Rc::Declined;
  if (!(r.method & (kGet | kHead | kPost))) return Rc::Declined;
  if (!*r.loc<RandomIndexLocConf>().enable) return Rc::Declined;
  size_t root;
  std::string dir(map_uri_to_path(r, &root, 0));
  if (dir.empty()) return Code::status(500);
  dir.pop_back();  // the slash
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    int err = errno;
    bool missing = err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG;
    log_error(missing || err == EACCES ? LogLevel::Error : LogLevel::Crit, r.log(), err,
              "opendir() \"%s\" failed", dir.c_str());
    return Code::status(missing ? 404 : err == EACCES ? 403 : 500);
  }
  std::vector<std::string> names;
  bool failed = false;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) {
        log_error(LogLevel::Crit, r.log(), errno, "readdir() \"%s\" failed", dir.c_str());
        failed = true;
      }
      break;
    }
    if (e->d_name[0] == '.') continue;
    if (is_file(dir, *e, r.log(), failed)) names.emplace_back(e->d_name);
    if (failed) break;
  }
  ::closedir(d);
  if (failed) return Code::status(500);
  if (names.empty()) return Rc::Declined;
  const std::string& name = names[worker_random() % names.size()];
  size_t n = r.uri.size() + name.size();
  char* uri = r.pool->alloc_bytes(n);
  std::copy(name.begin(), name.end(), std::copy(r.uri.begin(), r.uri.end(), uri));
  return internal_redirect(r, {uri, n}, r.args);
}

RandomIndexLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<RandomIndexLocConf>();
}

Status merge_loc_conf(ConfContext&, const RandomIndexLocConf& prev, RandomIndexLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  return {};
}

Status init(ConfContext& cf) {
  if (cf.configured(http_random_index_module)) {
    add_phase_handler(cf, Phase::Content, random_index_handler);
  }
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&RandomIndexLocConf::enable>>("random_index", kHttpLocConf | kFlag),
};
static_assert(directives_of(kDirectives, &http_random_index_module));

}  // namespace

Module http_random_index_module{
    .name = "http_random_index",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
