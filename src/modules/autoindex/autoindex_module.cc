// autoindex: a request for a directory ("/dir/") with no index file gets its listing, in nginx's
// exact HTML (names cut at 50 columns with "..&gt;", UTF-8 names counted in characters when the
// response's charset is utf-8, dates, sizes exact or scaled), or as XML, JSON or JSONP
// (autoindex_format). Hidden files are left out, directories come first, then names in byte order;
// a broken symlink is listed as itself. nginx: src/http/modules/ngx_http_autoindex_module.c
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "core/escape.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "core/utf8.h"
#include "http/core_module.h"
#include "http/request_body.h"
#include "http/variables.h"

namespace weir::http {

extern Module http_autoindex_module;

namespace {

enum class Format : uint8_t { Html, Xml, Json, Jsonp };

constexpr EnumName<Format> kFormats[] = {
    {"html", Format::Html},
    {"xml", Format::Xml},
    {"json", Format::Json},
    {"jsonp", Format::Jsonp},
};

struct AutoindexLocConf {
  static constexpr Module* kModule = &http_autoindex_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  Setting<bool> enable;
  Setting<Format> format;
  Setting<bool> exact_size;
  Setting<bool> localtime;
};

struct Entry {
  std::string name;
  bool dir = false;
  bool file = false;
  time_t mtime = 0;
  off_t size = 0;
};

constexpr size_t kNameLen = 50;  // the HTML listing's name column

// A JSON string's contents (nginx: ngx_escape_json).
void put_json(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
      case '\\':
        out += '\\';
        out += ch;
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}

void put_size(std::string& out, const Entry& e, bool exact) {
  char buf[32];
  if (exact) {
    if (e.dir) {
      out += "                  -";
    } else {
      std::snprintf(buf, sizeof buf, "%19lld", static_cast<long long>(e.size));
      out += buf;
    }
    return;
  }
  if (e.dir) {
    out += "      -";
    return;
  }
  off_t length = e.size;
  long long size;
  char scale = 0;
  if (length > 1024 * 1024 * 1024 - 1) {
    size = length / (1024 * 1024 * 1024);
    if (length % (1024 * 1024 * 1024) > 1024 * 1024 * 1024 / 2 - 1) size++;
    scale = 'G';
  } else if (length > 1024 * 1024 - 1) {
    size = length / (1024 * 1024);
    if (length % (1024 * 1024) > 1024 * 1024 / 2 - 1) size++;
    scale = 'M';
  } else if (length > 9999) {
    size = length / 1024;
    if (length % 1024 > 511) size++;
    scale = 'K';
  } else {
    size = length;
  }
  if (scale != 0) {
    std::snprintf(buf, sizeof buf, "%6lld%c", size, scale);
  } else {
    std::snprintf(buf, sizeof buf, " %6lld", size);
  }
  out += buf;
}

void html(Request& r, const std::vector<Entry>& entries, const AutoindexLocConf& conf,
          std::string& out) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  bool utf8 = iequals(r.headers_out.charset, "utf-8");
  out += "<html>\r\n<head><title>Index of ";
  append_html_escaped(out, r.uri);
  out += "</title></head>\r\n<body>\r\n<h1>Index of ";
  append_html_escaped(out, r.uri);
  out += "</h1><hr><pre><a href=\"../\">../</a>\r\n";
  for (const Entry& e : entries) {
    out += "<a href=\"";
    size_t at = out.size();
    out.resize(at + e.name.size() * 3);
    out.resize(at + escape_uri(out.data() + at, e.name, Escape::UriComponent));
    if (e.dir) out += '/';
    out += "\">";
    size_t len = utf8 ? utf8_length(e.name) : e.name.size();
    std::string_view shown =
        utf8 ? utf8_prefix(e.name, len > kNameLen ? kNameLen - 3 : kNameLen)
             : std::string_view(e.name).substr(0, len > kNameLen ? kNameLen - 3 : kNameLen);
    append_html_escaped(out, shown);
    if (len > kNameLen) {
      out += "..&gt;</a>";
    } else {
      if (e.dir && kNameLen > len) {
        out += '/';
        len++;
      }
      out += "</a>";
      if (kNameLen > len) out.append(kNameLen - len, ' ');
    }
    out += ' ';
    time_t t = e.mtime;
    struct tm tm;
    if (*conf.localtime) {
      localtime_r(&t, &tm);
    } else {
      gmtime_r(&t, &tm);
    }
    char date[64];
    std::snprintf(date, sizeof date, "%02d-%s-%d %02d:%02d ", tm.tm_mday, kMonths[tm.tm_mon],
                  tm.tm_year + 1900, tm.tm_hour, tm.tm_min);
    out += date;
    put_size(out, e, *conf.exact_size);
    out += "\r\n";
  }
  out += "</pre><hr></body>\r\n</html>\r\n";
}

const char* type_of(const Entry& e) {
  return e.dir ? "directory" : e.file ? "file" : "other";
}

void json(const std::vector<Entry>& entries, std::string_view callback, std::string& out) {
  if (!callback.empty()) {
    out += "/* callback */\r\n";
    out += callback;
    out += '(';
  }
  out += '[';
  for (const Entry& e : entries) {
    out += "\r\n{ \"name\":\"";
    put_json(out, e.name);
    out += "\", \"type\":\"";
    out += type_of(e);
    out += "\", \"mtime\":\"";
    char t[clock::kHttpTimeLen];
    clock::format_http_time(t, e.mtime);
    out.append(t, clock::kHttpTimeLen);
    if (e.file) {
      out += "\", \"size\":";
      out += std::to_string(static_cast<long long>(e.size));
    } else {
      out += '"';
    }
    out += " },";
  }
  if (!entries.empty()) out.pop_back();  // the last comma
  out += "\r\n]";
  if (!callback.empty()) out += ");";
}

void xml(const std::vector<Entry>& entries, std::string& out) {
  out += "<?xml version=\"1.0\"?>\r\n<list>\r\n";
  for (const Entry& e : entries) {
    out += '<';
    out += type_of(e);
    struct tm tm;
    gmtime_r(&e.mtime, &tm);
    char date[64];
    std::snprintf(date, sizeof date, " mtime=\"%4d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    out += date;
    if (e.file) {
      out += "\" size=\"";
      out += std::to_string(static_cast<long long>(e.size));
    }
    out += "\">";
    append_html_escaped(out, e.name);
    out += "</";
    out += type_of(e);
    out += ">\r\n";
  }
  out += "</list>\r\n";
}

// ?callback= for JSONP: letters, digits, '_' and '.', at most 128. Ok (maybe empty: plain JSON) or
// 400 when the client sent a bad one.
Code jsonp_callback(Request& r, std::string_view& callback) {
  callback = {};
  if (!find_arg(r.args, "callback", callback)) return Rc::Ok;
  const char* what = nullptr;
  if (callback.size() > 128) {
    what = "client sent too long callback name: \"%.*s\"";
  } else {
    for (char ch : callback) {
      char c = static_cast<char>(ch | 0x20);
      if ((c >= 'a' && c <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.') continue;
      what = "client sent invalid callback name: \"%.*s\"";
      break;
    }
  }
  if (what == nullptr) return Rc::Ok;
  log_error(LogLevel::Info, r.log(), 0, what, static_cast<int>(callback.size()), callback.data());
  return Code::status(400);
}

Code autoindex_handler(Request& r) {
  if (r.uri.empty() || r.uri.back() != '/') return Rc::Declined;
  if (!(r.method & (kGet | kHead))) return Rc::Declined;
  const auto& conf = r.loc<AutoindexLocConf>();
  if (!*conf.enable) return Rc::Declined;
  if (Code rc = discard_request_body(r); rc != Rc::Ok) return rc;
  size_t root;
  std::string_view mapped = map_uri_to_path(r, &root, 0);
  if (mapped.empty()) return Code::status(500);
  std::string path(mapped);
  if (path.size() > 1) path.pop_back();  // the URI's slash
  Format format = *conf.format;
  std::string_view callback;
  if (format == Format::Jsonp) {
    if (Code rc = jsonp_callback(r, callback); rc != Rc::Ok) return rc;
    if (callback.empty()) format = Format::Json;
  }
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) {
    int err = errno;
    int status = err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG ? 404
                 : err == EACCES                                        ? 403
                                                                        : 500;
    log_error(status == 500 ? LogLevel::Crit : LogLevel::Error, r.log(), err,
              "opendir() \"%s\" failed", path.c_str());
    return Code::status(status);
  }
  std::vector<Entry> entries;
  std::string file = path + "/";
  size_t base = file.size();
  while (dirent* de = readdir(dir)) {
    if (de->d_name[0] == '.') continue;
    file.resize(base);
    file += de->d_name;
    struct stat st;
    if (stat(file.c_str(), &st) != 0) {
      int err = errno;
      if (err != ENOENT && err != ELOOP) {
        log_error(LogLevel::Crit, r.log(), err, "stat() \"%s\" failed", file.c_str());
        if (err == EACCES) continue;
        closedir(dir);
        return Code::status(500);
      }
      if (lstat(file.c_str(), &st) != 0) {  // a broken link: the link itself
        log_error(LogLevel::Crit, r.log(), errno, "lstat() \"%s\" failed", file.c_str());
        closedir(dir);
        return Code::status(500);
      }
    }
    Entry e;
    e.name = de->d_name;
    e.dir = S_ISDIR(st.st_mode);
    e.file = S_ISREG(st.st_mode);
    e.mtime = st.st_mtime;
    e.size = st.st_size;
    entries.push_back(std::move(e));
  }
  closedir(dir);
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.dir != b.dir) return a.dir;  // directories first
    return std::strcmp(a.name.c_str(), b.name.c_str()) < 0;
  });

  HeadersOut& out = r.headers_out;
  out.status = 200;
  switch (format) {
    case Format::Json:
      out.content_type = "application/json";
      break;
    case Format::Jsonp:
      out.content_type = "application/javascript";
      break;
    case Format::Xml:
      out.content_type = "text/xml";
      out.charset = "utf-8";
      break;
    case Format::Html:
      out.content_type = "text/html";
      break;
  }
  out.content_type_len = out.content_type.size();
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;

  std::string text;
  switch (format) {
    case Format::Json:
    case Format::Jsonp:
      json(entries, callback, text);
      break;
    case Format::Xml:
      xml(entries, text);
      break;
    case Format::Html:
      html(r, entries, conf, text);
      break;
  }
  Buffer* b = Buffer::create_memory(*r.pool, r.pool->dup(text));
  b->last_buf = r.is_main();
  b->last_in_chain = true;
  ChainLink cl{b, nullptr};
  return output_filter(r, &cl);
}

AutoindexLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<AutoindexLocConf>();
}

Status merge_loc_conf(ConfContext&, const AutoindexLocConf& prev, AutoindexLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.format.merge(prev.format, Format::Html);
  conf.exact_size.merge(prev.exact_size, true);
  conf.localtime.merge(prev.localtime, false);
  return {};
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_autoindex_module)) return {};
  add_phase_handler(cf, Phase::Content, autoindex_handler);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&AutoindexLocConf::enable>>("autoindex", kHttpMainSrvLoc | kFlag),
    directive<slot::enum_<&AutoindexLocConf::format, kFormats>>("autoindex_format",
                                                                kHttpMainSrvLoc | kTake1),
    directive<slot::flag<&AutoindexLocConf::exact_size>>("autoindex_exact_size",
                                                         kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&AutoindexLocConf::localtime>>("autoindex_localtime",
                                                        kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_autoindex_module));

}  // namespace

Module http_autoindex_module{
    .name = "http_autoindex",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
