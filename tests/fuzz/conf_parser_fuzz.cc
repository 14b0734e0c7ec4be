// libFuzzer target: the nginx.conf tokenizer and parser on arbitrary text. Every node of an
// accepted tree has a name and a position inside the text; a rejected text has an error that names
// its position. Inputs that mention `include` are skipped: they would read arbitrary files. Built
// by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "conf/conf_file.h"

using namespace weir;

namespace {

void check(const std::vector<ConfNode>& nodes, int lines) {
  for (const ConfNode& n : nodes) {
    if (n.args.empty() || n.line < 1 || n.line > lines) __builtin_trap();
    if (!n.block && !n.children.empty()) __builtin_trap();
    if (n.block && n.end_line < n.line) __builtin_trap();
    check(n.children, lines);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find("lude") != std::string::npos) return 0;
  int lines = 1;
  for (char c : text) lines += c == '\n';
  ConfReader reader("/nonexistent/");
  std::vector<ConfNode> nodes;
  Status s = reader.read_text("/fuzz/nginx.conf", text, nodes);
  if (s.ok()) {
    check(nodes, lines);
  } else if (s.message().find(" in /fuzz/nginx.conf:") == std::string::npos) {
    __builtin_trap();
  }
  return 0;
}
