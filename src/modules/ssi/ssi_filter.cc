// The SSI filter: responses of ssi_types (text/html) with `ssi on` have their <!--# ... -->
// commands carried out as they stream - include (virtual and file, as ordinary subrequests whose
// output takes its place in the document; `wait` holds the document until one is done, `set` puts
// an in-memory one's output in a variable, `stub` sends a block in place of an empty answer), echo
// (with none, url and entity encodings), set, if/elif/else/endif (regexes with captures), config
// (errmsg, timefmt), block/endblock - with $date_local and $date_gmt. Text is passed as slices of
// the input buffers, which are given back only once the slices are sent, so a document of any
// size passes in the memory the buffers before the filter bound. A bad command is logged in
// nginx's words and replaced by the error message (ssi_silent_errors: by nothing).
// nginx: src/http/modules/ngx_http_ssi_filter_module.c
#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/escape.h"
#include "core/regex.h"
#include "core/str.h"
#include "core/time_cache.h"
#include "http/core_module.h"
#include "http/http_connection.h"
#include "http/subrequest.h"
#include "modules/ssi/ssi_parser.h"

namespace weir::http {

extern Module http_ssi_filter_module;

namespace {

struct SsiLocConf {
  static constexpr Module* kModule = &http_ssi_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;

  Setting<bool> enable;
  Setting<bool> silent_errors;
  Setting<bool> ignore_recycled_buffers;
  Setting<bool> last_modified;
  Setting<size_t> min_file_chunk;
  Setting<size_t> value_len;
  Setting<std::vector<std::string>> types;
};

constexpr std::string_view kDefaultTimefmt = "%A, %d-%b-%Y %H:%M:%S %Z";
constexpr std::string_view kDefaultErrmsg = "[an error occurred while processing the directive]";

enum class Encoding : uint8_t { None, Url, Entity };

// Where `if` stands: inside an if (or elif), or inside its else.
enum Conditional : uint8_t { kNoCondition = 0, kCondIf = 1, kCondElse = 2 };

struct SsiVar {
  std::string name;  // lower case
  std::string_view value;
};

struct SsiBlock {
  std::string name;
  ChainLink* bufs = nullptr;
  int count = 0;
};

struct SsiCtx {
  static constexpr Module* kModule = &http_ssi_filter_module;

  explicit SsiCtx(size_t value_len) : parser(value_len) {}

  SsiParser parser;
  ChainLink* in = nullptr;       // input not parsed yet
  Buffer* buf = nullptr;         // the input being parsed
  const char* pos = nullptr;     // how far into it
  Buffer* tail_slice = nullptr;  // the last output buffer, when it is a slice of buf
  ChainLink* out = nullptr;
  ChainLink** last_out = &out;
  ChainLink* busy = nullptr;
  ChainLink* free = nullptr;
  Request* wait = nullptr;  // a subrequest the document waits for

  std::string timefmt{kDefaultTimefmt};
  std::string_view errmsg = kDefaultErrmsg;
  Encoding encoding = Encoding::Entity;
  bool output = true;          // text and commands are carried out (false in an if not taken)
  bool output_chosen = false;  // a branch of the current if was taken
  bool block = false;          // inside a block: text goes to it
  uint8_t conditional = kNoCondition;

  // The main request's context keeps the document's variables, blocks and regex captures.
  std::vector<SsiVar> variables;
  std::vector<SsiBlock> blocks;
  std::vector<int> captures;
  std::string_view captured;  // the subject the captures point into
  int ncaptures = 0;
};

// What a command's handler makes of it.
enum class SsiRc : uint8_t {
  Ok,
  Again,    // the document waits (a subrequest with wait or set)
  Fail,     // the response is broken
  Invalid,  // a bad command: logged; the error message goes in its place
};

// The context that holds the document's variables, blocks and captures: the main request's (a
// subrequest's own when the main response is not SSI-processed).
SsiCtx& document(Request& r) {
  if (auto* m = r.main->get_ctx<SsiCtx>()) return *m;
  return *r.get_ctx<SsiCtx>();
}

// --- output ------------------------------------------------------------------------------------

ChainLink* free_link(Request& r, SsiCtx& ctx) {
  if (ChainLink* cl = ctx.free) {
    ctx.free = cl->next;
    *cl->buf = Buffer{};
    cl->next = nullptr;
    return cl;
  }
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = r.pool->make<Buffer>();
  cl->next = nullptr;
  return cl;
}

void append_out(SsiCtx& ctx, ChainLink* cl) {
  *ctx.last_out = cl;
  ctx.last_out = &cl->next;
  ctx.tail_slice = nullptr;
}

// Read-only memory that outlives the output (a constant, the pool).
void add_memory(Request& r, SsiCtx& ctx, std::string_view s) {
  if (s.empty()) return;
  ChainLink* cl = free_link(r, ctx);
  cl->buf->memory = true;
  cl->buf->pos = const_cast<char*>(s.data());
  cl->buf->last = cl->buf->pos + s.size();
  append_out(ctx, cl);
}

// Text of the input: a slice of its buffer (or of its file, when long enough to send from there).
void add_text(Request& r, SsiCtx& ctx, std::string_view text, const SsiLocConf& conf) {
  const Buffer& in = *ctx.buf;
  bool from_input = text.data() >= in.start && text.data() < in.end;
  if (!from_input) {
    add_memory(r, ctx, text);  // a held "<!--" prefix
    return;
  }
  ChainLink* cl = free_link(r, ctx);
  Buffer& b = *cl->buf;
  b = in;
  b.pos = const_cast<char*>(text.data());
  b.last = b.pos + text.size();
  b.shadow = nullptr;
  b.last_buf = b.flush = b.recycled = b.last_in_chain = false;
  if (b.in_file) {
    if (*conf.min_file_chunk < text.size()) {
      b.file_last = in.file_pos + (b.last - in.pos);
      b.file_pos = in.file_pos + (b.pos - in.pos);
    } else {
      b.in_file = false;
    }
  }
  append_out(ctx, cl);
  ctx.tail_slice = &b;
}

// Text inside a block: copied, as the block may be sent long after its input is gone.
void add_block_text(Request& r, std::string_view text) {
  auto& blocks = document(r).blocks;
  if (text.empty() || blocks.empty()) return;
  Buffer* b = Buffer::create_temp(*r.pool, text.size());
  b->last = put(b->last, text);
  ChainLink* cl = r.pool->alloc_link();
  cl->buf = b;
  cl->next = nullptr;
  ChainLink** ll = &blocks.back().bufs;
  while (*ll != nullptr) ll = &(*ll)->next;
  *ll = cl;
}

void set_buffered(Request& r, const SsiCtx& ctx) {
  if (ctx.in != nullptr || ctx.buf != nullptr) {
    r.buffered |= kSsiBuffered;
  } else {
    r.buffered &= ~kSsiBuffered;
  }
}

// Passes the output on; sent buffers go back to the free list, and an input buffer whose last
// slice is sent is given back to its owner.
Rc flush_output(Request& r, SsiCtx& ctx, BodyNext next) {
  Rc rc = next(r, ctx.out);
  ChainLink** tail = &ctx.busy;
  while (*tail != nullptr) tail = &(*tail)->next;
  *tail = ctx.out;
  ctx.out = nullptr;
  ctx.last_out = &ctx.out;
  ctx.tail_slice = nullptr;
  while (ctx.busy != nullptr) {
    ChainLink* cl = ctx.busy;
    Buffer* b = cl->buf;
    if (b->size() != 0) break;
    if (b->shadow != nullptr) {
      b->shadow->pos = b->shadow->last;
      if (b->shadow->in_file) b->shadow->file_pos = b->shadow->file_last;
    }
    ctx.busy = cl->next;
    cl->next = ctx.free;
    ctx.free = cl;
  }
  set_buffered(r, ctx);
  return rc;
}

// --- variables and strings -----------------------------------------------------------------------

// A document variable ($1..$9 from the last regex too), or nullptr.
std::string_view* find_ssi_variable(Request& r, std::string_view name) {
  SsiCtx& mctx = document(r);
  if (name.size() == 1 && name[0] >= '0' && name[0] <= '9') {
    int i = name[0] - '0';
    if (i < mctx.ncaptures) {
      auto* v = r.pool->make<std::string_view>();
      int from = mctx.captures[2 * i];
      int to = mctx.captures[2 * i + 1];
      if (from >= 0) *v = mctx.captured.substr(from, to - from);
      return v;
    }
  }
  for (SsiVar& v : mctx.variables) {
    if (v.name == name) return &v.value;
  }
  return nullptr;
}

std::string_view& set_ssi_variable(Request& r, std::string_view name) {
  if (std::string_view* v = find_ssi_variable(r, name)) return *v;
  auto& vars = document(r).variables;
  vars.push_back({std::string(name), {}});
  return vars.back().value;
}

// A variable's value: the document's, else the request's; nullopt when neither has it.
std::optional<std::string_view> variable_value(Request& r, std::string_view name) {
  if (std::string_view* v = find_ssi_variable(r, name)) return *v;
  VariableValue* vv = get_variable(r, name);
  if (vv == nullptr || vv->not_found) return std::nullopt;
  return vv->view();
}

enum EvalFlags : uint8_t { kAddPrefix = 1 };

// nginx's backslash rule outside variables: "\\", "\'", "\"" and "\$" lose the backslash, any
// other escape keeps it.
void append_unescaped(std::string& out, std::string_view s, size_t& i, bool stop_at_dollar) {
  bool quoted = false;
  for (; i < s.size(); i++) {
    char ch = s[i];
    if (!quoted) {
      if (ch == '\\') {
        quoted = true;
        continue;
      }
      if (ch == '$' && stop_at_dollar) return;
    } else {
      quoted = false;
      if (ch != '\\' && ch != '\'' && ch != '"' && ch != '$') out += '\\';
    }
    out += ch;
  }
}

bool is_name_char(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '_';
}

// A parameter with its $variables and ${variables} put in, and (kAddPrefix) a relative URI made
// absolute against the request's. nginx: ngx_http_ssi_evaluate_string
SsiRc evaluate(Request& r, std::string_view text, uint8_t flags, std::string& out) {
  out.clear();
  std::string_view prefix;
  if (flags & kAddPrefix) {
    size_t slash = r.uri.rfind('/');
    if (slash != std::string_view::npos) prefix = r.uri.substr(0, slash + 1);
  }
  if (text.find('$') == std::string_view::npos) {
    if (!prefix.empty() && !text.starts_with('/')) out += prefix;
    size_t i = 0;
    append_unescaped(out, text, i, false);
    return SsiRc::Ok;
  }
  std::string body;
  bool first_part = true;
  bool prefixed = false;
  for (size_t i = 0; i < text.size();) {
    std::string part;
    if (text[i] == '$') {
      if (++i == text.size()) goto invalid;
      bool bracket = text[i] == '{';
      if (bracket && ++i == text.size()) goto invalid;
      size_t start = i;
      while (i < text.size() && is_name_char(text[i])) i++;
      std::string name = lowercased(text.substr(start, i - start));
      if (bracket) {
        if (i == text.size() || text[i] != '}') {
          log_error(LogLevel::Error, r.log(), 0,
                    "the closing bracket in \"%.*s\" variable is missing",
                    static_cast<int>(name.size()), name.data());
          return SsiRc::Invalid;
        }
        i++;
      }
      if (name.empty()) goto invalid;
      std::optional<std::string_view> v = variable_value(r, name);
      if (!v) continue;
      part = *v;
    } else {
      append_unescaped(part, text, i, true);
    }
    // The prefix goes before the first part with something in it, unless that starts with '/'.
    if (first_part && !part.empty()) {
      first_part = false;
      prefixed = !prefix.empty() && part[0] != '/';
    }
    body += part;
  }
  if (prefixed) out += prefix;
  out += body;
  return SsiRc::Ok;
invalid:
  log_error(LogLevel::Error, r.log(), 0, "invalid variable name in \"%.*s\"",
            static_cast<int>(text.size()), text.data());
  return SsiRc::Invalid;
}

std::string_view pool_copy(Request& r, std::string_view s) {
  return r.pool->dup(s);
}

// --- commands ----------------------------------------------------------------------------------

using Params = std::array<const std::string*, 5>;

struct ParamSpec {
  std::string_view name;
  int index;
  bool mandatory;
};

using CommandFn = SsiRc (*)(Request& r, SsiCtx& ctx, const Params& params, BodyNext next);

struct Command {
  std::string_view name;
  CommandFn handler;
  std::span<const ParamSpec> params;
  uint8_t conditional;  // the context it needs: none, inside if, inside if or else
  bool block;           // carried out even where output is off (endblock)
  bool flush;           // the output so far goes first (include: the subrequest's place)
};

Code stub_output(Request& sr, void* data, Code rc) {
  if (rc == Rc::Error || sr.connection->error || sr.request_output) return rc;
  if (!sr.header_sent) {
    sr.headers_out.content_type = sr.parent->headers_out.content_type;
    sr.headers_out.content_type_len = sr.parent->headers_out.content_type_len;
    if (send_header(sr) == Rc::Error) return Rc::Error;
  }
  return output_filter(sr, static_cast<ChainLink*>(data));
}

Code take_output(Request& sr, void* data, Code rc) {
  auto* value = static_cast<std::string_view*>(data);
  if (sr.headers_out.status < kHttpSpecialResponse && sr.out != nullptr && sr.out->buf != nullptr) {
    *value = sr.out->buf->view();
  }
  return rc;
}

enum IncludeParam { kVirtual, kFile, kWait, kSet, kStub };

SsiRc include(Request& r, SsiCtx& ctx, const Params& params, BodyNext) {
  const std::string* uri = params[kVirtual];
  const std::string* file = params[kFile];
  const std::string* wait = params[kWait];
  const std::string* set = params[kSet];
  const std::string* stub = params[kStub];
  if (uri != nullptr && file != nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "inclusion may be either virtual=\"%s\" or file=\"%s\"",
              uri->c_str(), file->c_str());
    return SsiRc::Invalid;
  }
  if (uri == nullptr && file == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "no parameter in \"include\" SSI command");
    return SsiRc::Invalid;
  }
  if (set != nullptr && stub != nullptr) {
    log_error(LogLevel::Error, r.log(), 0,
              "\"set\" and \"stub\" cannot be used together in \"include\" SSI command");
    return SsiRc::Invalid;
  }
  bool waited = false;
  if (wait != nullptr) {
    if (uri == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "\"wait\" cannot be used with file=\"%s\"",
                file->c_str());
      return SsiRc::Invalid;
    }
    if (iequals(*wait, "yes")) {
      waited = true;
    } else if (!iequals(*wait, "no")) {
      log_error(LogLevel::Error, r.log(), 0, "invalid value \"%s\" in the \"wait\" parameter",
                wait->c_str());
      return SsiRc::Invalid;
    }
  }
  if (uri == nullptr) {
    uri = file;
    waited = true;  // a file is waited for
  }
  std::string target;
  if (SsiRc rc = evaluate(r, *uri, kAddPrefix, target); rc != SsiRc::Ok) return rc;
  std::string_view path, args;
  if (!parse_unsafe_uri(r, pool_copy(r, target), path, args)) {
    log_error(LogLevel::Error, r.log(), 0, "unsafe URI \"%s\" was detected", target.c_str());
    return SsiRc::Invalid;
  }

  PostSubrequest* post = nullptr;
  SsiCtx& mctx = document(r);
  if (stub != nullptr) {
    SsiBlock* bl = nullptr;
    for (SsiBlock& b : mctx.blocks) {
      if (b.name == *stub) bl = &b;
    }
    if (bl == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "\"stub\"=\"%s\" for \"include\" not found",
                stub->c_str());
      return SsiRc::Invalid;
    }
    post = r.pool->make<PostSubrequest>();
    post->handler = stub_output;
    if (bl->count++ == 0) {
      post->data = bl->bufs;
    } else {
      // Each use sends the block's buffers afresh.
      ChainLink* copy = nullptr;
      ChainLink** ll = &copy;
      for (ChainLink* tl = bl->bufs; tl != nullptr; tl = tl->next) {
        ChainLink* cl = free_link(r, ctx);
        *cl->buf = *tl->buf;
        cl->buf->pos = cl->buf->start;
        *ll = cl;
        ll = &cl->next;
      }
      post->data = copy;
    }
  }
  SubrequestFlags flags{.waited = waited};
  if (set != nullptr) {
    post = r.pool->make<PostSubrequest>();
    post->handler = take_output;
    std::string_view& value = set_ssi_variable(r, lowercased(*set));
    value = {};
    post->data = &value;
    flags.in_memory = true;
    flags.waited = true;
  }
  Request* sr = create_subrequest(r, path, args, flags, post);
  if (sr == nullptr) return SsiRc::Invalid;
  if (!flags.waited) return SsiRc::Ok;
  if (ctx.wait == nullptr) {
    ctx.wait = sr;
    return SsiRc::Again;
  }
  log_error(LogLevel::Error, r.log(), 0, "can only wait for one subrequest at a time");
  return SsiRc::Ok;
}

enum EchoParam { kEchoVar, kEchoDefault, kEchoEncoding };

SsiRc echo(Request& r, SsiCtx& ctx, const Params& params, BodyNext) {
  std::optional<std::string_view> value = variable_value(r, lowercased(*params[kEchoVar]));
  if (!value) {
    const std::string* def = params[kEchoDefault];
    value = def != nullptr ? std::string_view(*def) : std::string_view("(none)");
  }
  if (const std::string* enc = params[kEchoEncoding]) {
    if (*enc == "none") {
      ctx.encoding = Encoding::None;
    } else if (*enc == "url") {
      ctx.encoding = Encoding::Url;
    } else if (*enc == "entity") {
      ctx.encoding = Encoding::Entity;
    } else {
      log_error(LogLevel::Error, r.log(), 0, "unknown encoding \"%s\" in the \"echo\" command",
                enc->c_str());
    }
  }
  if (value->empty()) return SsiRc::Ok;
  std::string_view text = *value;
  if (ctx.encoding == Encoding::Url) {
    size_t n = escape_uri(nullptr, text, Escape::Html);
    char* p = r.pool->alloc_bytes(text.size() + 2 * n);
    text = {p, static_cast<size_t>(escape_uri(p, text, Escape::Html))};
  } else if (ctx.encoding == Encoding::Entity) {
    std::string escaped;
    append_html_escaped(escaped, text);
    text = pool_copy(r, escaped);
  } else if (value->data() != nullptr) {
    text = pool_copy(r, text);  // the variable may change before the output is sent
  }
  add_memory(r, ctx, text);
  return SsiRc::Ok;
}

enum ConfigParam { kErrmsg, kTimefmt };

SsiRc config(Request& r, SsiCtx& ctx, const Params& params, BodyNext) {
  if (params[kTimefmt] != nullptr) ctx.timefmt = *params[kTimefmt];
  if (params[kErrmsg] != nullptr) ctx.errmsg = pool_copy(r, *params[kErrmsg]);
  return SsiRc::Ok;
}

enum SetParam { kSetVar, kSetValue };

SsiRc set(Request& r, SsiCtx&, const Params& params, BodyNext) {
  std::string value;
  if (SsiRc rc = evaluate(r, *params[kSetValue], 0, value); rc != SsiRc::Ok) return rc;
  set_ssi_variable(r, lowercased(*params[kSetVar])) = pool_copy(r, value);
  return SsiRc::Ok;
}

// A regex match of `subject`; its captures ($1..., named ones as variables) stay for the document.
SsiRc regex_match(Request& r, const std::string& pattern, std::string_view subject, bool& matched) {
  auto* re = r.pool->make<Regex>();
  if (Status s = re->compile(pattern, false); !s.ok()) {
    log_error(LogLevel::Error, r.log(), 0, "%s", s.message().c_str());
    return SsiRc::Invalid;
  }
  SsiCtx& mctx = document(r);
  std::vector<int> caps(2 * (re->captures() + 1));
  matched = re->match(subject, caps.data(), static_cast<int>(caps.size()));
  if (!matched) return SsiRc::Ok;
  std::string_view kept = pool_copy(r, subject);
  mctx.captures = std::move(caps);
  mctx.ncaptures = re->captures() + 1;
  mctx.captured = kept;
  for (const auto& [name, index] : re->names()) {
    int from = mctx.captures[2 * index];
    int to = mctx.captures[2 * index + 1];
    set_ssi_variable(r, lowercased(name)) =
        from >= 0 ? kept.substr(from, to - from) : std::string_view();
  }
  return SsiRc::Ok;
}

SsiRc if_command(Request& r, SsiCtx& ctx, const Params& params, BodyNext) {
  const std::string& expr = *params[0];
  if (ctx.parser.command() == "if" && ctx.conditional != kNoCondition) {
    log_error(LogLevel::Error, r.log(), 0, "the \"if\" command inside the \"if\" command");
    return SsiRc::Invalid;
  }
  if (ctx.output_chosen) {
    ctx.output = false;
    return SsiRc::Ok;
  }
  // The left side: a run of name characters, quotes and $, lower-cased as nginx does.
  std::string lhs;
  size_t p = 0;
  for (; p < expr.size(); p++) {
    char ch = expr[p];
    if (ch >= 'A' && ch <= 'Z') {
      lhs += static_cast<char>(ch | 0x20);
    } else if (is_name_char(ch) || ch == '$' || ch == '{' || ch == '}' || ch == '"' || ch == '\'') {
      lhs += ch;
    } else {
      break;
    }
  }
  while (p < expr.size() && expr[p] == ' ') p++;
  std::string left;
  if (SsiRc rc = evaluate(r, lhs, 0, left); rc != SsiRc::Ok) return rc;
  bool taken;
  if (p == expr.size()) {
    taken = !left.empty();
  } else {
    bool negative;
    if (expr[p] == '=') {
      negative = false;
      p++;
    } else if (p + 1 < expr.size() && expr[p] == '!' && expr[p + 1] == '=') {
      negative = true;
      p += 2;
    } else {
      log_error(LogLevel::Error, r.log(), 0, "invalid expression in \"%s\"", expr.c_str());
      return SsiRc::Invalid;
    }
    while (p < expr.size() && expr[p] == ' ') p++;
    size_t last = expr.size();
    bool regex = false;
    if (last > 0 && p < last - 1 && expr[p] == '/') {
      if (expr[last - 1] != '/') {
        log_error(LogLevel::Error, r.log(), 0, "invalid expression in \"%s\"", expr.c_str());
        return SsiRc::Invalid;
      }
      regex = true;
      p++;
      last--;
    } else if (last > 0 && p < last - 1 && expr[p] == '\\' && expr[p + 1] == '/') {
      p++;
    }
    std::string right;
    if (SsiRc rc = evaluate(r, std::string_view(expr).substr(p, last - p), 0, right);
        rc != SsiRc::Ok) {
      return rc;
    }
    bool equal;
    if (regex) {
      if (SsiRc rc = regex_match(r, right, left, equal); rc != SsiRc::Ok) return rc;
    } else {
      equal = left == right;
    }
    taken = equal != negative;
  }
  ctx.output = taken;
  ctx.output_chosen = taken;
  ctx.conditional = kCondIf;
  return SsiRc::Ok;
}

SsiRc else_command(Request&, SsiCtx& ctx, const Params&, BodyNext) {
  ctx.output = !ctx.output_chosen;
  ctx.conditional = kCondElse;
  return SsiRc::Ok;
}

SsiRc endif_command(Request&, SsiCtx& ctx, const Params&, BodyNext) {
  ctx.output = true;
  ctx.output_chosen = false;
  ctx.conditional = kNoCondition;
  return SsiRc::Ok;
}

SsiRc block(Request& r, SsiCtx& ctx, const Params& params, BodyNext) {
  document(r).blocks.push_back({*params[0], nullptr, 0});
  ctx.output = false;
  ctx.block = true;
  return SsiRc::Ok;
}

SsiRc endblock(Request&, SsiCtx& ctx, const Params&, BodyNext) {
  ctx.output = true;
  ctx.block = false;
  return SsiRc::Ok;
}

constexpr ParamSpec kIncludeParams[] = {
    {"virtual", kVirtual, false}, {"file", kFile, false}, {"wait", kWait, false},
    {"set", kSet, false},         {"stub", kStub, false},
};
constexpr ParamSpec kEchoParams[] = {
    {"var", kEchoVar, true}, {"default", kEchoDefault, false}, {"encoding", kEchoEncoding, false}};
constexpr ParamSpec kConfigParams[] = {{"errmsg", kErrmsg, false}, {"timefmt", kTimefmt, false}};
constexpr ParamSpec kSetParams[] = {{"var", kSetVar, true}, {"value", kSetValue, true}};
constexpr ParamSpec kIfParams[] = {{"expr", 0, true}};
constexpr ParamSpec kBlockParams[] = {{"name", 0, true}};

constexpr Command kCommands[] = {
    {"include", include, kIncludeParams, kNoCondition, false, true},
    {"echo", echo, kEchoParams, kNoCondition, false, false},
    {"config", config, kConfigParams, kNoCondition, false, false},
    {"set", set, kSetParams, kNoCondition, false, false},
    {"if", if_command, kIfParams, kNoCondition, false, false},
    {"elif", if_command, kIfParams, kCondIf, false, false},
    {"else", else_command, {}, kCondIf, false, false},
    {"endif", endif_command, {}, kCondElse, false, false},
    {"block", block, kBlockParams, kNoCondition, false, false},
    {"endblock", endblock, {}, kNoCondition, true, false},
};

// A command as it was written, for a block that holds it.
std::string command_text(const SsiParser& parser) {
  std::string s = "<!--#" + parser.command();
  for (const SsiParam& p : parser.params()) s += " " + p.name + "=\"" + p.value + "\"";
  return s + " -->";
}

// Checks a parsed command against its table entry and carries it out.
SsiRc run_command(Request& r, SsiCtx& ctx, BodyNext next) {
  const SsiParser& parser = ctx.parser;
  const Command* cmd = nullptr;
  for (const Command& c : kCommands) {
    if (c.name == parser.command()) cmd = &c;
  }
  if (cmd == nullptr) {
    if (!ctx.output) return SsiRc::Ok;
    log_error(LogLevel::Error, r.log(), 0, "invalid SSI command: \"%s\"", parser.command().c_str());
    return SsiRc::Invalid;
  }
  if (!ctx.output && !cmd->block) {
    if (ctx.block) {
      add_block_text(r, pool_copy(r, command_text(parser)));
      return SsiRc::Ok;
    }
    if (cmd->conditional == kNoCondition) return SsiRc::Ok;
  }
  if (cmd->conditional != kNoCondition &&
      (ctx.conditional == kNoCondition || ctx.conditional > cmd->conditional)) {
    log_error(LogLevel::Error, r.log(), 0, "invalid context of SSI command: \"%s\"",
              parser.command().c_str());
    return SsiRc::Invalid;
  }
  Params params{};
  for (const SsiParam& p : parser.params()) {
    const ParamSpec* spec = nullptr;
    for (const ParamSpec& s : cmd->params) {
      if (s.name == p.name) spec = &s;
    }
    if (spec == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "invalid parameter name: \"%s\" in \"%s\" SSI command",
                p.name.c_str(), parser.command().c_str());
      return SsiRc::Invalid;
    }
    if (params[spec->index] != nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "duplicate \"%s\" parameter in \"%s\" SSI command",
                p.name.c_str(), parser.command().c_str());
      return SsiRc::Invalid;
    }
    params[spec->index] = &p.value;
  }
  for (const ParamSpec& s : cmd->params) {
    if (s.mandatory && params[s.index] == nullptr) {
      log_error(LogLevel::Error, r.log(), 0,
                "mandatory \"%.*s\" parameter is absent in \"%s\" SSI command",
                static_cast<int>(s.name.size()), s.name.data(), parser.command().c_str());
      return SsiRc::Invalid;
    }
  }
  if (cmd->flush && ctx.out != nullptr && flush_output(r, ctx, next) == Rc::Error) {
    return SsiRc::Fail;
  }
  return cmd->handler(r, ctx, params, next);
}

// --- the filter --------------------------------------------------------------------------------

Code ssi_header_filter(Request& r, HeaderNext next) {
  const auto& conf = r.loc<SsiLocConf>();
  if (!*conf.enable || r.headers_out.content_length_n == 0 || !content_type_in(r, *conf.types)) {
    return next(r);
  }
  auto* ctx = r.pool->make<SsiCtx>(*conf.value_len);
  r.set_ctx(ctx);
  r.filter_need_in_memory = true;
  if (r.is_main()) {
    clear_content_length(r);
    clear_accept_ranges(r);
    r.preserve_body = true;
    body_changed_validators(r, *conf.last_modified);
  }
  return next(r);
}

Rc ssi_body_filter(Request& r, ChainLink* in, BodyNext next) {
  auto* ctx = r.get_ctx<SsiCtx>();
  if (ctx == nullptr ||
      (in == nullptr && ctx->buf == nullptr && ctx->in == nullptr && ctx->busy == nullptr)) {
    return next(r, in);
  }
  if (in != nullptr) chain_add_copy(*r.pool, &ctx->in, in);
  if (ctx->wait != nullptr) {
    if (r.http_connection->active != &r) return Rc::Again;
    if (!ctx->wait->done) return next(r, nullptr);
    ctx->wait = nullptr;
  }
  const auto& conf = r.loc<SsiLocConf>();
  while (ctx->in != nullptr || ctx->buf != nullptr) {
    if (ctx->buf == nullptr) {
      ctx->buf = ctx->in->buf;
      ctx->in = ctx->in->next;
      ctx->pos = ctx->buf->pos;
      ctx->parser.begin(ctx->pos);
      ctx->tail_slice = nullptr;
    }
    const char* end = ctx->buf->in_memory() ? ctx->buf->last : ctx->pos;
    for (;;) {
      SsiEvent ev = ctx->parser.next(ctx->pos, end);
      if (ev.kind == SsiEvent::Kind::More) break;
      SsiRc rc = SsiRc::Ok;
      switch (ev.kind) {
        case SsiEvent::Kind::Text:
          if (ctx->output) {
            add_text(r, *ctx, ev.text, conf);
          } else if (ctx->block) {
            add_block_text(r, pool_copy(r, ev.text));
          }
          break;
        case SsiEvent::Kind::Command:
          rc = run_command(r, *ctx, next);
          break;
        case SsiEvent::Kind::Error:
          log_error(LogLevel::Error, r.log(), 0, "%s", ctx->parser.error().c_str());
          break;
        case SsiEvent::Kind::ErrorEnd:
          rc = SsiRc::Invalid;
          break;
        case SsiEvent::Kind::More:
          break;
      }
      if (rc == SsiRc::Fail) return Rc::Error;
      if (rc == SsiRc::Again) {
        set_buffered(r, *ctx);
        return Rc::Again;
      }
      if (rc == SsiRc::Invalid && !*conf.silent_errors) add_memory(r, *ctx, ctx->errmsg);
    }
    // The input buffer goes back to its owner once the last output made from it is sent: that
    // output (or an empty sync buffer) carries it as its shadow, and its last_buf.
    Buffer* b = ctx->tail_slice;
    if (b == nullptr) {
      ChainLink* cl = free_link(r, *ctx);
      b = cl->buf;
      b->sync = true;
      append_out(*ctx, cl);
    }
    b->last_buf = ctx->buf->last_buf;
    b->last_in_chain = ctx->buf->last_in_chain;
    b->flush = ctx->buf->flush;
    b->shadow = ctx->buf;
    if (!*conf.ignore_recycled_buffers) b->recycled = ctx->buf->recycled;
    ctx->buf = nullptr;
  }
  if (ctx->out == nullptr && ctx->busy == nullptr) {
    set_buffered(r, *ctx);
    return Rc::Ok;
  }
  return flush_output(r, *ctx, next);
}

// $date_local, $date_gmt: now in the document's timefmt ("%s": seconds since the epoch).
void var_date(Request& r, VariableValue& v, uintptr_t gmt) {
  time_t now = clock::now();
  auto* ctx = r.get_ctx<SsiCtx>();
  std::string_view fmt = ctx != nullptr ? std::string_view(ctx->timefmt) : kDefaultTimefmt;
  if (fmt == "%s") {
    char* p = r.pool->alloc_bytes(24);
    v.set({p, static_cast<size_t>(put_uint(p, static_cast<uint64_t>(now)) - p)});
    return;
  }
  struct tm tm;
  if (gmt != 0) {
    gmtime_r(&now, &tm);
  } else {
    localtime_r(&now, &tm);
  }
  char buf[256];
  std::string f(fmt);
  size_t n = strftime(buf, sizeof buf, f.c_str(), &tm);
  v.set(pool_copy(r, {buf, n}));
}

// --- configuration ---------------------------------------------------------------------------

SsiLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<SsiLocConf>();
}

Status merge_loc_conf(ConfContext&, const SsiLocConf& prev, SsiLocConf& conf) {
  conf.enable.merge(prev.enable, false);
  conf.silent_errors.merge(prev.silent_errors, false);
  conf.ignore_recycled_buffers.merge(prev.ignore_recycled_buffers, false);
  conf.last_modified.merge(prev.last_modified, false);
  conf.min_file_chunk.merge(prev.min_file_chunk, 1024);
  conf.value_len.merge(prev.value_len, 255);
  conf.types.merge(prev.types, {"text/html"});
  return {};
}

Status preconfiguration(ConfContext& cf) {
  if (Status s = add_variable(cf, "date_local", kVarNoCacheable, var_date, 0); !s.ok()) return s;
  return add_variable(cf, "date_gmt", kVarNoCacheable, var_date, 1);
}

Status init(ConfContext& cf) {
  if (!cf.configured(http_ssi_filter_module)) return {};
  register_header_filter(cf, FilterId::Ssi, ssi_header_filter);
  register_body_filter(cf, FilterId::Ssi, ssi_body_filter);
  return {};
}

constexpr Directive kDirectives[] = {
    directive<slot::flag<&SsiLocConf::enable>>("ssi", kHttpMainSrvLocLif | kFlag),
    directive<slot::flag<&SsiLocConf::silent_errors>>("ssi_silent_errors", kHttpMainSrvLoc | kFlag),
    directive<slot::flag<&SsiLocConf::ignore_recycled_buffers>>("ssi_ignore_recycled_buffers",
                                                                kHttpMainSrvLoc | kFlag),
    directive<slot::size<&SsiLocConf::min_file_chunk>>("ssi_min_file_chunk",
                                                       kHttpMainSrvLoc | kTake1),
    directive<slot::size<&SsiLocConf::value_len>>("ssi_value_length", kHttpMainSrvLoc | kTake1),
    directive<slot::mime_types<&SsiLocConf::types>>("ssi_types", kHttpMainSrvLoc | kOneMore),
    directive<slot::flag<&SsiLocConf::last_modified>>("ssi_last_modified", kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_ssi_filter_module));

}  // namespace

Module http_ssi_filter_module{
    .name = "http_ssi_filter",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
