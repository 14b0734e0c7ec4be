// libFuzzer target: the blocks that map, geo and split_clients parse themselves, on arbitrary text
// put inside each of them in an otherwise valid nginx.conf, loaded as weir loads a configuration
// (every module's directives and hooks). It must load or be refused; nothing may crash, leak or
// read past what it was given. Inputs that mention
// `include` are skipped: they would read arbitrary files. Built by `make fuzz`.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "conf/cycle.h"
#include "main/module_list.h"

using namespace weir;

namespace {

const std::string& prefix() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/weir-table-fuzz-XXXXXX";
    return std::string(mkdtemp(tmpl)) + "/";
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  if (body.find("lude") != std::string::npos || body.find('\0') != std::string::npos) return 0;
  // The first byte picks the block; the rest is its body.
  if (body.empty()) return 0;
  char which = body[0];
  body.erase(0, 1);
  std::string block;
  switch (which % 3) {
    case 0:
      block = "map $uri $fuzzed {\n" + body + "\n}\n";
      break;
    case 1:
      block = "geo $fuzzed {\n" + body + "\n}\n";
      break;
    default:
      block = "split_clients \"${remote_addr}x\" $fuzzed {\n" + body + "\n}\n";
      break;
  }
  std::string conf =
      "events {}\nhttp {\n" + block + "server { listen 127.0.0.1:1; return 200 \"$fuzzed\"; }\n}\n";
  { std::ofstream(prefix() + "nginx.conf") << conf; }
  use_builtin_modules();
  Cycle cycle;
  cycle.prefix = prefix();
  cycle.conf_prefix = prefix();
  cycle.conf_file = prefix() + "nginx.conf";
  cycle.test_config = true;
  (void)cycle.load();  // loaded or refused: either is an answer
  return 0;
}
