// Reading nginx.conf: the tokenizer (words, quotes and escapes, `#` comments, `;` `{` `}`,
// `${var}`) with nginx's exact rules and error texts, and the parser that turns files into a tree
// of ConfNodes, expanding `include` (with globs, relative to the configuration's directory) as it
// goes. nginx: src/core/ngx_conf_file.c (ngx_conf_read_token, ngx_conf_parse, ngx_conf_include)
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace weir {

// A file that was read, kept for error positions and `-T`.
struct ConfFile {
  std::string path;  // empty for the command line (-g)
  std::string text;
  bool command_line() const { return path.empty(); }
};

struct ConfNode {
  std::vector<std::string> args;  // args[0] is the directive's name
  const ConfFile* file = nullptr;
  int line = 0;      // where the directive's ";" or "{" was read (nginx reports errors there)
  int end_line = 0;  // blocks: the line of the closing "}"
  bool block = false;
  std::vector<ConfNode> children;

  const std::string& name() const { return args[0]; }
  size_t nargs() const { return args.size() - 1; }  // arguments after the name
};

// Formats an error the way nginx does: "<msg> in <file>:<line>" or "<msg> in command line".
std::string conf_error_at(const ConfFile* file, int line, std::string_view msg);

class ConfReader {
 public:
  // conf_prefix: the directory relative includes resolve against (with a trailing slash).
  explicit ConfReader(std::string conf_prefix) : conf_prefix_(std::move(conf_prefix)) {}

  // Reads a file into nodes appended to out. Errors carry the position.
  Status read_file(const std::string& path, std::vector<ConfNode>& out,
                   const ConfNode* included_from = nullptr);
  // Parses text as if read from the file `path` (the fuzzer's entry; read_file ends here).
  Status read_text(std::string path, std::string text, std::vector<ConfNode>& out);
  // Reads `-g` directives (no blocks allowed).
  Status read_command_line(const std::string& text, std::vector<ConfNode>& out);

  // Every file read, in order (for -T; command-line text has an empty path).
  const std::deque<ConfFile>& files() const { return files_; }

 private:
  Status parse(const ConfFile& file, std::vector<ConfNode>& out);
  Status include(const ConfNode& node, std::vector<ConfNode>& out);

  std::string conf_prefix_;
  std::deque<ConfFile> files_;  // stable addresses: nodes point here
  int depth_ = 0;
};

}  // namespace weir
