// The access log: `log_format` (with escape=default|json|none; `combined` built in) and
// `access_log` (a path, possibly with variables, a format, buffer=, flush=, gzip=, if=), written in
// the log phase. Buffered logs collect lines per file and are written when full, on the flush
// timer, before a reopen and at exit. nginx: src/http/modules/ngx_http_log_module.c
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "conf/cycle.h"
#include "core/escape.h"
#include "core/syslog.h"
#include "event/event_loop.h"
#include "http/core_module.h"

namespace weir::http {

extern Module http_log_module;

namespace {

enum class LogEscape : uint8_t { Default, Json, None };

// What a format is made of. Values with a fixed shape (numbers, times) are written directly, as
// nginx's log module does; everything else goes through the variables and is escaped.
enum class LogOp : uint8_t {
  Literal,
  Variable,
  Status,
  TimeLocal,
  TimeIso8601,
  Msec,
  RequestTime,
  BytesSent,
  BodyBytesSent,
  RequestLength,
  Pipe,
};

struct LogFormat {
  std::string name;
  LogEscape escape = LogEscape::Default;
  // An op writes the literal text before it, then its value: half as many steps as one op per
  // piece. A format's trailing text is an op of kind Literal.
  struct Op {
    LogOp kind;
    uint32_t lit_off, lit_len;  // the literal before the value, in `literals`
    uint32_t slot;              // a variable's place among the evaluated values
  };
  std::vector<Op> ops;
  std::vector<int> variables;  // the variable indexes, in slot order
  std::string literals;
  size_t fixed_len = 0;  // literals and the fixed-shape values at their longest
};

// One file's write buffer (shared by every access_log naming the file with a buffer).
struct LogBuffer {
  size_t size = 0;
  uint64_t flush_ms = 0;
  int gzip = 0;  // gzip's level: each write is a gzip member of its own; 0: plain
  char* start = nullptr;
  char* pos = nullptr;
  char* end = nullptr;
  Event timer;
  OpenFile* file = nullptr;
};

struct AccessLog {
  OpenFile* file = nullptr;             // a fixed path
  SyslogPeer* syslog = nullptr;         // syslog:...
  ComplexValue* path_values = nullptr;  // a path with variables
  LogFormat* format = nullptr;
  LogBuffer* buffer = nullptr;
  ComplexValue* filter = nullptr;  // if=
};

struct LogMainConf {
  static constexpr Module* kModule = &http_log_module;
  static constexpr ConfLevel kLevel = ConfLevel::Main;
  std::vector<LogFormat*> formats;
};

struct LogLocConf {
  static constexpr Module* kModule = &http_log_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  std::vector<AccessLog>* logs = nullptr;
  bool off = false;
};

constexpr std::string_view kCombined =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
    "\"$http_referer\" "
    "\"$http_user_agent\"";

// --- escaping
// ---------------------------------------------------------------------------------------

constexpr char kHex[] = "0123456789ABCDEF";

// Bytes the default escaping writes as \xHH: controls, '"', '\\', DEL and everything above.
struct EscapeTable {
  bool v[256];
  constexpr EscapeTable() : v() {
    for (int c = 0; c < 256; c++) v[c] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
  }
};
constexpr EscapeTable kDefaultEscape;

// Whether any of 8 bytes needs the default escaping (a false positive only sends a word down the
// slow path).
inline bool word_needs_escape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighs = 0x8080808080808080ull;
  auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  uint64_t below_space = (w - kOnes * 0x20) & ~w & kHighs;
  uint64_t del_or_high = ((w + kOnes) | w) & kHighs;  // 0x7f and up
  return (below_space | del_or_high | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) !=
         0;
}

// The most a value can grow to once escaped.
size_t escaped_bound(size_t n, LogEscape esc) {
  switch (esc) {
    case LogEscape::None:
      return n;
    case LogEscape::Default:
      return n * 4;
    case LogEscape::Json:
      return n * 6;
  }
  return n * 6;
}

// Length of a valid UTF-8 sequence starting at s[i] (0 if invalid).
size_t utf8_len(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

char* write_escaped(char* p, std::string_view v, LogEscape esc) {
  switch (esc) {
    case LogEscape::None:
      return put(p, v);
    case LogEscape::Default: {
      // Runs of bytes that need nothing are copied at once.
      size_t i = 0, n = v.size();
      while (i < n) {
        size_t run = i;
        for (uint64_t w; run + 8 <= n; run += 8) {
          std::memcpy(&w, v.data() + run, 8);
          if (word_needs_escape(w)) break;
        }
        while (run < n && !kDefaultEscape.v[static_cast<unsigned char>(v[run])]) run++;
        p = put(p, v.substr(i, run - i));
        if (run == n) break;
        auto c = static_cast<unsigned char>(v[run]);
        *p++ = '\\';
        *p++ = 'x';
        *p++ = kHex[c >> 4];
        *p++ = kHex[c & 0xf];
        i = run + 1;
      }
      return p;
    }
    case LogEscape::Json:
      for (size_t i = 0; i < v.size();) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c >= 0x80) {
          // Valid UTF-8 goes out as is; a byte that is not (nginx copies it raw and the JSON
          // breaks) is written as the code point of the same value, so the line stays valid JSON.
          size_t n = utf8_len(v, i);
          if (n == 0) {
            p = put(p, "\\u00");
            *p++ = kHex[c >> 4];
            *p++ = kHex[c & 0xf];
            i++;
          } else {
            p = put(p, v.substr(i, n));
            i += n;
          }
          continue;
        }
        switch (c) {
          case '"':
            p = put(p, "\\\"");
            break;
          case '\\':
            p = put(p, "\\\\");
            break;
          case '\n':
            p = put(p, "\\n");
            break;
          case '\r':
            p = put(p, "\\r");
            break;
          case '\t':
            p = put(p, "\\t");
            break;
          case '\b':
            p = put(p, "\\b");
            break;
          case '\f':
            p = put(p, "\\f");
            break;
          default:
            if (c < 0x20) {
              p = put(p, "\\u00");
              *p++ = kHex[c >> 4];
              *p++ = kHex[c & 0xf];
            } else {
              *p++ = static_cast<char>(c);
            }
        }
        i++;
      }
      return p;
  }
  return p;
}

// --- writing
// ---------------------------------------------------------------------------------------

void write_to(int fd, const char* buf, size_t len, const Log& log, const std::string& name) {
  while (len > 0) {
    ssize_t n = ::write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_error(LogLevel::Alert, log, errno, "write() to \"%s\" failed", name.c_str());
      return;
    }
    if (static_cast<size_t>(n) < len) {
      log_error(LogLevel::Alert, log, 0, "write() to \"%s\" was incomplete: %zd of %zu",
                name.c_str(), n, len);
      return;
    }
    buf += n;
    len -= n;
  }
}

// A gzip member of buf's lines (access_log ... gzip): deflated whole, with a window no larger than
// the lines need, as nginx sizes it. nginx: ngx_http_log_gzip
void write_gzipped(int fd, const char* buf, size_t len, int level, const Log& log,
                   const std::string& name) {
  int wbits = MAX_WBITS;
  int memlevel = MAX_MEM_LEVEL - 1;
  while (static_cast<ssize_t>(len) < (1 << (wbits - 1)) - 262) {
    wbits--;
    memlevel--;
  }
  // deflateBound()'s conservative bound, and gzip's 18 bytes of header and trailer.
  std::vector<char> out(len + ((len + 7) >> 3) + ((len + 63) >> 6) + 5 + 18);
  z_stream z{};
  if (int rc = deflateInit2(&z, level, Z_DEFLATED, wbits + 16, memlevel, Z_DEFAULT_STRATEGY);
      rc != Z_OK) {
    log_error(LogLevel::Alert, log, 0, "deflateInit2() failed: %d", rc);
    return;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(buf));
  z.avail_in = static_cast<uInt>(len);
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  size_t size = out.size() - z.avail_out;
  (void)deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    log_error(LogLevel::Alert, log, 0, "deflate(Z_FINISH) failed: %d", rc);
    return;
  }
  write_to(fd, out.data(), size, log, name);
}

// A buffer's lines, or a line that did not fit in it, to the buffer's file.
void write_for(const LogBuffer& b, const char* buf, size_t len, const Log& log) {
  if (b.gzip != 0) return write_gzipped(b.file->fd, buf, len, b.gzip, log, b.file->name);
  write_to(b.file->fd, buf, len, log, b.file->name);
}

void flush_buffer(LogBuffer& b) {
  if (b.start != nullptr && b.pos > b.start) {
    Log log;
    write_for(b, b.start, b.pos - b.start, log);
    b.pos = b.start;
  }
  if (b.timer.timer_set) del_timer(b.timer);
}

void flush_file(OpenFile& f) {
  if (f.data != nullptr) flush_buffer(*static_cast<LogBuffer*>(f.data));
}

void flush_timer_handler(Event& ev) {
  flush_buffer(*static_cast<LogBuffer*>(ev.data));
}

void write_unbuffered(Request& r, AccessLog& al, const char* line, size_t len) {
  if (al.buffer != nullptr) return write_for(*al.buffer, line, len, r.log());  // too long for it
  if (al.file != nullptr) {
    write_to(al.file->fd, line, len, r.log(), al.file->name);
    return;
  }
  std::string_view path = al.path_values->eval(r);
  std::string full = (!path.empty() && path[0] == '/') ? std::string(path)
                                                       : core_main(r).prefix + std::string(path);
  int fd = ::open(full.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    log_error(LogLevel::Error, r.log(), errno, "open() \"%s\" failed", full.c_str());
    return;
  }
  write_to(fd, line, len, r.log(), full);
  ::close(fd);
}

char* put_msec(char* p, uint64_t ms) {
  p = put_uint(p, ms / 1000);
  *p++ = '.';
  return put_uint_pad(p, ms % 1000, 3);
}

// Writes one log line at p (which has room for fmt.fixed_len plus the escaped bound of every
// value).
char* write_line(Request& r, const LogFormat& fmt, VariableValue** vals, char* p) {
  for (size_t i = 0; i < fmt.ops.size(); i++) {
    const LogFormat::Op& op = fmt.ops[i];
    p = put(p, std::string_view(fmt.literals.data() + op.lit_off, op.lit_len));
    switch (op.kind) {
      case LogOp::Literal:
        break;
      case LogOp::Variable: {
        VariableValue* v = vals[op.slot];
        if (v->not_found || !v->valid) {
          if (fmt.escape != LogEscape::Json) *p++ = '-';
        } else {
          p = write_escaped(p, v->view(), fmt.escape);
        }
        break;
      }
      case LogOp::Status: {
        int status = r.err_status != 0 ? r.err_status : r.headers_out.status;
        p = put_uint_pad(p, static_cast<uint64_t>(status % 1000), 3);
        break;
      }
      case LogOp::TimeLocal:
        p = put(p, clock::http_log_time());
        break;
      case LogOp::TimeIso8601:
        p = put(p, clock::iso8601());
        break;
      case LogOp::Msec:
        p = put_msec(p, clock::wall_msec());
        break;
      case LogOp::RequestTime: {
        uint64_t now = clock::wall_msec();
        p = put_msec(p, now > r.start_msec ? now - r.start_msec : 0);
        break;
      }
      case LogOp::BytesSent:
        p = put_uint(p, static_cast<uint64_t>(r.connection->io.sent));
        break;
      case LogOp::BodyBytesSent: {
        off_t sent = r.connection->io.sent - r.header_size;
        p = put_uint(p, static_cast<uint64_t>(sent < 0 ? 0 : sent));
        break;
      }
      case LogOp::RequestLength:
        p = put_uint(p, static_cast<uint64_t>(r.request_length));
        break;
      case LogOp::Pipe:
        *p++ = r.connection->requests > 1 ? 'p' : '.';
        break;
    }
  }
  *p++ = '\n';
  return p;
}

Code log_handler(Request& r) {
  LogLocConf& lcf = r.loc<LogLocConf>();
  if (lcf.off || lcf.logs == nullptr) return Rc::Ok;
  for (AccessLog& al : *lcf.logs) {
    if (al.filter != nullptr) {
      std::string_view v = al.filter->eval(r);
      if (v.empty() || v == "0") continue;
    }
    const LogFormat& fmt = *al.format;
    // Evaluate the variables once; the line's length is bounded by their escaped sizes.
    size_t nvars = fmt.variables.size();
    VariableValue* small[32];
    VariableValue** vals =
        nvars <= 32 ? small
                    : static_cast<VariableValue**>(r.pool->alloc(
                          sizeof(VariableValue*) * nvars));  // NOLINT(bugprone-sizeof-expression)
    size_t bound = fmt.fixed_len + 1;
    for (size_t i = 0; i < nvars; i++) {
      VariableValue* v = get_flushed_variable(r, fmt.variables[i]);
      vals[i] = v;
      bound += v->valid && !v->not_found ? escaped_bound(v->len, fmt.escape) : 1;
    }
    LogBuffer* b = al.buffer;
    if (b != nullptr) {
      if (b->start == nullptr) {
        b->start = b->pos = static_cast<char*>(std::malloc(b->size));
        b->end = b->start + b->size;
      }
      if (bound > static_cast<size_t>(b->end - b->pos)) flush_buffer(*b);
      if (bound <= static_cast<size_t>(b->end - b->pos)) {
        bool was_empty = b->pos == b->start;
        b->pos = write_line(r, fmt, vals, b->pos);
        if (was_empty && b->flush_ms != 0) add_timer(b->timer, b->flush_ms);
        continue;
      }
    }
    char* line = r.pool->alloc_bytes(bound);
    char* end = write_line(r, fmt, vals, line);
    if (al.syslog != nullptr) {
      al.syslog->send({line, static_cast<size_t>(end - line) - 1}, al.syslog->severity);
      continue;
    }
    write_unbuffered(r, al, line, end - line);
  }
  return Rc::Ok;
}

// --- configuration
// ---------------------------------------------------------------------------------

Status compile_format(ConfContext& cf, LogFormat& fmt, std::string_view text) {
  Variables& vars = core_main_conf(cf).variables;
  size_t i = 0, lit = 0;
  // An op carrying the literal text since the previous value (text[lit, end)).
  auto op_after_literal = [&](size_t end) {
    LogFormat::Op op{LogOp::Literal, static_cast<uint32_t>(fmt.literals.size()),
                     static_cast<uint32_t>(end - lit), 0};
    fmt.literals.append(text.substr(lit, end - lit));
    fmt.fixed_len += end - lit;
    return op;
  };
  // Values written directly, with their longest form.
  static constexpr std::pair<std::string_view, std::pair<LogOp, size_t>> kDirect[] = {
      {"status", {LogOp::Status, 3}},
      {"time_local", {LogOp::TimeLocal, 26}},
      {"time_iso8601", {LogOp::TimeIso8601, 25}},
      {"msec", {LogOp::Msec, 24}},
      {"request_time", {LogOp::RequestTime, 24}},
      {"bytes_sent", {LogOp::BytesSent, 20}},
      {"body_bytes_sent", {LogOp::BodyBytesSent, 20}},
      {"request_length", {LogOp::RequestLength, 20}},
      {"pipe", {LogOp::Pipe, 1}},
  };
  while (i < text.size()) {
    if (text[i] != '$') {
      i++;
      continue;
    }
    LogFormat::Op op = op_after_literal(i);
    i++;
    std::string_view name;
    if (i < text.size() && text[i] == '{') {
      size_t close = text.find('}', i);
      if (close == std::string_view::npos) {
        return cf.errorf("the closing bracket in \"%s\" variable is missing",
                         std::string(text.substr(i + 1)).c_str());
      }
      name = text.substr(i + 1, close - i - 1);
      i = close + 1;
    } else {
      size_t s = i;
      while (i < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_'))
        i++;
      name = text.substr(s, i - s);
    }
    if (name.empty()) return cf.errorf("invalid parameter \"%s\"", std::string(text).c_str());
    bool direct = false;
    for (const auto& [dname, what] : kDirect) {
      if (iequals(name, dname)) {
        op.kind = what.first;
        fmt.fixed_len += what.second;
        direct = true;
      }
    }
    if (!direct) {
      op.kind = LogOp::Variable;
      op.slot = static_cast<uint32_t>(fmt.variables.size());
      fmt.variables.push_back(vars.index_of(cf, name));
    }
    fmt.ops.push_back(op);
    lit = i;
  }
  if (text.size() > lit) fmt.ops.push_back(op_after_literal(text.size()));
  return {};
}

LogMainConf* create_main_conf(ConfContext& cf) {
  auto* lmcf = cf.pool.make<LogMainConf>();
  auto* combined = cf.pool.make<LogFormat>();
  combined->name = "combined";
  (void)compile_format(cf, *combined, kCombined);
  lmcf->formats.push_back(combined);
  return lmcf;
}

Status log_format_directive(ConfContext& cf, const ConfNode& n, LogMainConf& lmcf) {
  for (LogFormat* f : lmcf.formats) {
    if (f->name == n.args[1])
      return cf.errorf("duplicate \"log_format\" name \"%s\"", n.args[1].c_str());
  }
  auto* fmt = cf.pool.make<LogFormat>();
  fmt->name = n.args[1];
  size_t i = 2;
  if (n.args[i].starts_with("escape=")) {
    std::string_view e = std::string_view(n.args[i]).substr(7);
    if (e == "json") {
      fmt->escape = LogEscape::Json;
    } else if (e == "none") {
      fmt->escape = LogEscape::None;
    } else if (e != "default") {
      return cf.errorf("unknown log format escaping \"%s\"", n.args[i].c_str() + 7);
    }
    i++;
  }
  if (i >= n.args.size())
    return cf.error("invalid number of arguments in \"log_format\" directive");
  std::string text;
  for (; i < n.args.size(); i++) text += n.args[i];
  if (Status s = compile_format(cf, *fmt, text); !s.ok()) return s;
  lmcf.formats.push_back(fmt);
  return {};
}

Status access_log_directive(ConfContext& cf, const ConfNode& n, LogLocConf& llcf) {
  auto& lmcf = conf_of<LogMainConf>(cf.http->main_conf);
  if (n.args[1] == "off") {
    if (n.nargs() != 1) return cf.errorf("invalid parameter \"%s\"", n.args[2].c_str());
    llcf.off = true;  // whatever else the level names: nginx logs nothing there either
    return {};
  }
  if (llcf.logs == nullptr) llcf.logs = cf.pool.make<std::vector<AccessLog>>();
  const std::string& path = n.args[1];
  AccessLog al;
  if (path.starts_with("syslog:")) {
    Result<SyslogPeer> peer = SyslogPeer::parse(std::string_view(path).substr(7));
    if (!peer.ok()) return cf.error(peer.status().message());
    al.syslog = cf.pool.make<SyslogPeer>(std::move(*peer));
  } else if (path.find('$') != std::string::npos) {
    al.path_values = cf.pool.make<ComplexValue>();
    if (Status s = al.path_values->compile(cf, path); !s.ok()) return s;
  } else {
    al.file = cf.cycle.open_file(cf.full_name(path));
  }
  std::string_view fname = n.nargs() >= 2 ? std::string_view(n.args[2]) : "combined";
  size_t i = n.nargs() >= 2 ? 3 : 2;
  if (n.nargs() >= 2 && (n.args[2].starts_with("buffer=") || n.args[2].starts_with("flush=") ||
                         n.args[2].starts_with("if=") || n.args[2].starts_with("gzip"))) {
    fname = "combined";
    i = 2;
  }
  for (LogFormat* f : lmcf.formats) {
    if (f->name == fname) al.format = f;
  }
  if (al.format == nullptr)
    return cf.errorf("unknown log format \"%s\"", std::string(fname).c_str());
  size_t buffer = 0;
  uint64_t flush = 0;
  int gzip = 0;
  for (; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    if (a.starts_with("buffer=")) {
      auto v = parse_size(a.substr(7));
      if (!v || *v == 0) return cf.errorf("invalid buffer size \"%s\"", n.args[i].c_str() + 7);
      buffer = static_cast<size_t>(*v);
    } else if (a.starts_with("flush=")) {
      auto v = parse_time(a.substr(6), false);
      if (!v || *v == 0) return cf.errorf("invalid flush time \"%s\"", n.args[i].c_str() + 6);
      flush = static_cast<uint64_t>(*v);
    } else if (a.starts_with("if=")) {
      al.filter = cf.pool.make<ComplexValue>();
      if (Status s = al.filter->compile(cf, a.substr(3)); !s.ok()) return s;
    } else if (a == "gzip" || a.starts_with("gzip=")) {
      if (buffer == 0) buffer = 64 * 1024;
      if (a == "gzip") {
        gzip = Z_BEST_SPEED;
        continue;
      }
      auto level = parse_int(a.substr(5));
      if (!level || *level < 1 || *level > 9) {
        return cf.errorf("invalid compression level \"%s\"", n.args[i].c_str() + 5);
      }
      gzip = static_cast<int>(*level);
    } else {
      return cf.errorf("invalid parameter \"%s\"", n.args[i].c_str());
    }
  }
  if (flush != 0 && buffer == 0)
    return cf.errorf("no buffer is defined for access_log \"%s\"", path.c_str());
  if (buffer != 0) {
    if (al.syslog != nullptr) return cf.error("logs to syslog cannot be buffered");
    if (al.file == nullptr) return cf.error("buffered logs cannot have variables in name");
    if (al.file->data != nullptr) {
      auto* b = static_cast<LogBuffer*>(al.file->data);
      if (b->size != buffer || b->flush_ms != flush || b->gzip != gzip) {
        return cf.errorf("access_log \"%s\" already defined with conflicting parameters",
                         path.c_str());
      }
      al.buffer = b;
    } else {
      auto* b = cf.pool.make<LogBuffer>();
      b->size = buffer;
      b->flush_ms = flush;
      b->gzip = gzip;
      b->file = al.file;
      b->timer.handler = flush_timer_handler;
      b->timer.data = b;
      b->timer.cancelable = true;
      al.file->data = b;
      al.file->flush = flush_file;
      al.buffer = b;
    }
  }
  llcf.logs->push_back(al);
  return {};
}

Status open_log_file_cache_directive(ConfContext& cf, const ConfNode& n) {
  // weir opens a log path with variables for each line; the cache's parameters are checked and
  // accepted.
  if (n.args[1] == "off")
    return n.nargs() == 1 ? Status() : cf.errorf("invalid parameter \"%s\"", n.args[2].c_str());
  bool have_max = false;
  for (size_t i = 1; i < n.args.size(); i++) {
    std::string_view a = n.args[i];
    bool ok = false;
    if (a.starts_with("max=")) {
      ok = parse_int(a.substr(4)).has_value();
      have_max = true;
    } else if (a.starts_with("inactive=")) {
      ok = parse_time(a.substr(9), true).has_value();
    } else if (a.starts_with("min_uses=")) {
      ok = parse_int(a.substr(9)).has_value();
    } else if (a.starts_with("valid=")) {
      ok = parse_time(a.substr(6), true).has_value();
    }
    if (!ok)
      return cf.errorf("invalid \"open_log_file_cache\" parameter \"%s\"", n.args[i].c_str());
  }
  if (!have_max) return cf.error("\"open_log_file_cache\" must have \"max\" parameter");
  return {};
}

LogLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<LogLocConf>();
}

Status merge_loc_conf(ConfContext& cf, const LogLocConf& prev, LogLocConf& conf) {
  if (conf.logs != nullptr || conf.off) return {};
  conf.logs = prev.logs;
  conf.off = prev.off;
  if (conf.logs != nullptr || conf.off) return {};
  // No access_log anywhere above: logs/access.log in the combined format.
  auto& lmcf = conf_of<LogMainConf>(cf.http->main_conf);
  conf.logs = cf.pool.make<std::vector<AccessLog>>();
  AccessLog al;
  al.file = cf.cycle.open_file(cf.full_name(WEIR_HTTP_LOG_PATH));
  al.format = lmcf.formats.front();
  conf.logs->push_back(al);
  return {};
}

Status init(ConfContext& cf) {
  add_phase_handler(cf, Phase::Log, log_handler);
  return {};
}

void exit_process(Cycle& cycle) {
  for (OpenFile& f : cycle.open_files) {
    if (f.flush != nullptr) f.flush(f);
  }
}

constexpr Directive kDirectives[] = {
    directive<log_format_directive>("log_format", kHttpMainConf | kTwoMore),
    directive<access_log_directive>("access_log",
                                    kHttpMainSrvLoc | kHttpLifConf | kHttpLmtConf | kOneMore),
    directive<open_log_file_cache_directive>("open_log_file_cache", kHttpMainSrvLoc | kTake1234),
};
static_assert(directives_of(kDirectives, &http_log_module));

}  // namespace

Module http_log_module{
    .name = "http_log",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .create_main_conf = create_conf<create_main_conf>,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
    .exit_process = exit_process,
};

}  // namespace weir::http
