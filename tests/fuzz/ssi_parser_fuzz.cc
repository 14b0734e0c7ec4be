// libFuzzer target: the SSI parser on arbitrary documents, fed whole and then cut into pieces whose
// sizes come from the input - the events must be the same (text, commands with their parameters,
// errors), every text slice must lie inside the buffer it was given for, and no command name,
// parameter name or value may exceed its limit. Built by `make fuzz`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "modules/ssi/ssi_parser.h"

using namespace weir::http;

namespace {

constexpr size_t kValueLen = 64;

std::string parse(const std::string& doc, size_t step, size_t grow) {
  SsiParser parser(kValueLen);
  std::string out;
  for (size_t at = 0; at < doc.size() || at == 0;) {
    size_t n = std::min(step, doc.size() - at);
    std::string piece = doc.substr(at, n);  // a buffer of its own: slices must stay inside it
    at += n;
    step = step % 31 + grow;
    const char* p = piece.data();
    const char* end = p + piece.size();
    parser.begin(p);
    for (;;) {
      SsiEvent ev = parser.next(p, end);
      if (ev.kind == SsiEvent::Kind::More) break;
      if (ev.kind == SsiEvent::Kind::Text) {
        bool inside = ev.text.data() >= piece.data() && ev.text.data() + ev.text.size() <= end;
        if (!inside && std::string_view("<!--").substr(0, ev.text.size()) != ev.text) {
          __builtin_trap();
        }
        if (ev.text.empty()) __builtin_trap();
        out += ev.text;
      } else if (ev.kind == SsiEvent::Kind::Command) {
        if (parser.command().size() > SsiParser::kCommandLen) __builtin_trap();
        out += "\x01" + parser.command();
        for (const SsiParam& prm : parser.params()) {
          if (prm.name.size() > SsiParser::kParamLen || prm.value.size() > kValueLen) {
            __builtin_trap();
          }
          out += "\x02" + prm.name + "\x03" + prm.value;
        }
      } else if (ev.kind == SsiEvent::Kind::Error) {
        out += "\x04" + parser.error();
      } else {
        out += "\x05";
      }
    }
    if (doc.empty()) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string doc(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string whole = parse(doc, doc.size() + 1, 0);
  if (parse(doc, 1, 1) != whole) __builtin_trap();
  if (parse(doc, data[0] % 16 + 1, data[0] / 16 + 1) != whole) __builtin_trap();
  return 0;
}
