#include "conf/conf_file.h"

#include <glob.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace weir {

std::string conf_error_at(const ConfFile* file, int line, std::string_view msg) {
  if (file == nullptr) return std::string(msg);
  if (file->command_line()) return std::string(msg) + " in command line";
  return std::string(msg) + " in " + file->path + ":" + std::to_string(line);
}

namespace {

enum class TokenEnd { Statement, BlockStart, BlockDone, FileDone };

// The tokenizer: one call yields the words of the next directive and what ended it.
class Tokenizer {
 public:
  explicit Tokenizer(const ConfFile& f) : file_(f), text_(f.text) {}

  Status next(std::vector<std::string>& args, TokenEnd& end) {
    args.clear();
    bool found = false, need_space = false, last_space = true, sharp_comment = false;
    bool variable = false, quoted = false, s_quoted = false, d_quoted = false;
    size_t start = pos_;
    for (;;) {
      if (pos_ >= text_.size()) {
        if (!args.empty() || !last_space) {
          if (file_.command_line()) return error("unexpected end of parameter, expecting \";\"");
          return error("unexpected end of file, expecting \";\" or \"}\"");
        }
        end = TokenEnd::FileDone;
        return {};
      }
      char ch = text_[pos_++];
      if (ch == '\n') {
        line_++;
        sharp_comment = false;
      }
      if (sharp_comment) continue;
      if (quoted) {
        quoted = false;
        continue;
      }
      if (need_space) {
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
          last_space = true;
          need_space = false;
          continue;
        }
        if (ch == ';') {
          end = TokenEnd::Statement;
          return {};
        }
        if (ch == '{') {
          end = TokenEnd::BlockStart;
          return {};
        }
        if (ch == ')') {
          last_space = true;
          need_space = false;
        } else {
          return error(std::string("unexpected \"") + ch + "\"");
        }
      }
      if (last_space) {
        start = pos_ - 1;
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
        switch (ch) {
          case ';':
          case '{':
            if (args.empty()) return error(std::string("unexpected \"") + ch + "\"");
            end = ch == '{' ? TokenEnd::BlockStart : TokenEnd::Statement;
            return {};
          case '}':
            if (!args.empty()) return error("unexpected \"}\"");
            end = TokenEnd::BlockDone;
            return {};
          case '#':
            sharp_comment = true;
            continue;
          case '\\':
            quoted = true;
            last_space = false;
            continue;
          case '"':
            start++;
            d_quoted = true;
            last_space = false;
            continue;
          case '\'':
            start++;
            s_quoted = true;
            last_space = false;
            continue;
          case '$':
            variable = true;
            last_space = false;
            continue;
          default:
            last_space = false;
        }
      } else {
        if (ch == '{' && variable) continue;
        variable = false;
        if (ch == '\\') {
          quoted = true;
          continue;
        }
        if (ch == '$') {
          variable = true;
          continue;
        }
        if (d_quoted) {
          if (ch == '"') {
            d_quoted = false;
            need_space = true;
            found = true;
          }
        } else if (s_quoted) {
          if (ch == '\'') {
            s_quoted = false;
            need_space = true;
            found = true;
          }
        } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';' || ch == '{') {
          last_space = true;
          found = true;
        }
        if (found) {
          args.push_back(unescape(std::string_view(text_).substr(start, pos_ - 1 - start)));
          if (ch == ';') {
            end = TokenEnd::Statement;
            return {};
          }
          if (ch == '{') {
            end = TokenEnd::BlockStart;
            return {};
          }
          found = false;
        }
      }
    }
  }

  int line() const { return line_; }
  Status error(std::string_view msg) const {
    return Status::error(conf_error_at(&file_, line_, msg));
  }

 private:
  static std::string unescape(std::string_view raw) {
    std::string w;
    w.reserve(raw.size());
    for (size_t i = 0; i < raw.size();) {
      if (raw[i] == '\\' && i + 1 < raw.size()) {
        switch (raw[i + 1]) {
          case '"':
          case '\'':
          case '\\':
            w += raw[i + 1];
            i += 2;
            continue;
          case 't':
            w += '\t';
            i += 2;
            continue;
          case 'r':
            w += '\r';
            i += 2;
            continue;
          case 'n':
            w += '\n';
            i += 2;
            continue;
        }
      }
      w += raw[i++];
    }
    return w;
  }

  const ConfFile& file_;
  const std::string& text_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

Status ConfReader::read_file(const std::string& path, std::vector<ConfNode>& out,
                             const ConfNode* included_from) {
  // A directory opens, and its read fails: nginx's words for it.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::critical(
        strprintf("pread() \"%s\" failed (%d: %s)", path.c_str(), EISDIR, std::strerror(EISDIR)));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string msg =
        strprintf("open() \"%s\" failed (%d: %s)", path.c_str(), err, std::strerror(err));
    if (included_from != nullptr)
      msg = conf_error_at(included_from->file, included_from->line, msg);
    return Status::error(msg);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return read_text(path, ss.str(), out);
}

Status ConfReader::read_text(std::string path, std::string text, std::vector<ConfNode>& out) {
  files_.push_back(ConfFile{std::move(path), std::move(text)});
  return parse(files_.back(), out);
}

Status ConfReader::read_command_line(const std::string& text, std::vector<ConfNode>& out) {
  files_.push_back(ConfFile{"", text});
  const ConfFile& f = files_.back();
  Tokenizer tok(f);
  std::vector<std::string> args;
  for (;;) {
    TokenEnd end;
    if (Status s = tok.next(args, end); !s.ok()) return s;
    if (end == TokenEnd::FileDone) break;
    if (end == TokenEnd::BlockDone) return tok.error("unexpected \"}\"");
    if (end == TokenEnd::BlockStart)
      return tok.error("block directives are not supported in -g option");
    ConfNode n;
    n.args = std::move(args);
    n.file = &f;
    n.line = tok.line();
    out.push_back(std::move(n));
  }
  return {};
}

Status ConfReader::parse(const ConfFile& file, std::vector<ConfNode>& top) {
  Tokenizer tok(file);
  // A stack of the blocks being filled.
  std::vector<std::vector<ConfNode>*> stack{&top};
  std::vector<std::string> args;
  for (;;) {
    TokenEnd end;
    if (Status s = tok.next(args, end); !s.ok()) return s;
    if (end == TokenEnd::FileDone) {
      if (stack.size() > 1) return tok.error("unexpected end of file, expecting \"}\"");
      return {};
    }
    if (end == TokenEnd::BlockDone) {
      if (stack.size() == 1) return tok.error("unexpected \"}\"");
      stack.pop_back();
      stack.back()->back().end_line = tok.line();
      continue;
    }
    ConfNode n;
    n.args = std::move(args);
    n.file = &file;
    n.line = tok.line();
    n.block = end == TokenEnd::BlockStart;
    if (n.name() == "include" && !n.block) {
      if (n.nargs() != 1) {
        return tok.error("invalid number of arguments in \"include\" directive");
      }
      if (++depth_ > 64) return tok.error("too deep include nesting");
      Status s = include(n, *stack.back());
      depth_--;
      if (!s.ok()) return s;
      continue;
    }
    stack.back()->push_back(std::move(n));
    if (stack.back()->back().block) stack.push_back(&stack.back()->back().children);
  }
}

Status ConfReader::include(const ConfNode& node, std::vector<ConfNode>& out) {
  std::string pattern = node.args[1];
  if (pattern.empty() || pattern[0] != '/') pattern = conf_prefix_ + pattern;
  auto read_one = [&](const std::string& path) { return read_file(path, out, &node); };
  if (pattern.find_first_of("*?[") == std::string::npos) return read_one(pattern);
  glob_t gl{};
  int rc = ::glob(pattern.c_str(), 0, nullptr, &gl);
  if (rc != 0 && rc != GLOB_NOMATCH) {
    globfree(&gl);
    return Status::error(conf_error_at(node.file, node.line, "glob() \"" + pattern + "\" failed"));
  }
  Status s;
  for (size_t i = 0; i < gl.gl_pathc && s.ok(); i++) s = read_one(gl.gl_pathv[i]);
  globfree(&gl);
  return s;
}

}  // namespace weir
