#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/regex.h"

#include <pcre2.h>

#include "core/status.h"

namespace weir {

namespace {

bool g_jit = true;
pcre2_match_data* g_match_data = nullptr;
constexpr int kMaxCaptures = 100;

pcre2_match_data* match_data() {
  if (g_match_data == nullptr) g_match_data = pcre2_match_data_create(kMaxCaptures + 1, nullptr);
  return g_match_data;
}

}  // namespace

void Regex::set_jit(bool on) {
  g_jit = on;
}

Regex::~Regex() {
  if (code_ != nullptr) pcre2_code_free(code_);
}

Status Regex::compile(std::string_view pattern, bool caseless) {
  pattern_ = std::string(pattern);
  int errcode;
  PCRE2_SIZE erroff;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                        caseless ? PCRE2_CASELESS : 0, &errcode, &erroff, nullptr);
  if (code_ == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof msg);
    // nginx names where the pattern went wrong only when something is left there.
    if (erroff >= pattern.size()) {
      return Status::errorf("pcre2_compile() failed: %s in \"%s\"", reinterpret_cast<char*>(msg),
                            pattern_.c_str());
    }
    std::string at(pattern.substr(erroff));
    return Status::errorf("pcre2_compile() failed: %s in \"%s\" at \"%s\"",
                          reinterpret_cast<char*>(msg), pattern_.c_str(), at.c_str());
  }
  if (g_jit)
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if it fails
  uint32_t n = 0;
  pcre2_pattern_info(code_, PCRE2_INFO_CAPTURECOUNT, &n);
  if (n > kMaxCaptures) return Status::errorf("too many captures in \"%s\"", pattern_.c_str());
  captures_ = static_cast<int>(n);
  uint32_t name_count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(code_, PCRE2_INFO_NAMECOUNT, &name_count);
  if (name_count > 0) {
    pcre2_pattern_info(code_, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
    pcre2_pattern_info(code_, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < name_count; i++) {
      const unsigned char* e = table + i * entry_size;
      int idx = (e[0] << 8) | e[1];
      names_.emplace_back(reinterpret_cast<const char*>(e + 2), idx);
    }
  }
  return {};
}

bool Regex::match(std::string_view subject, int* caps, int ncaps) const {
  pcre2_match_data* md = match_data();
  int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0, 0,
                       md, nullptr);
  if (rc < 0) return false;
  if (caps != nullptr) {
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    int pairs = captures_ + 1;
    for (int i = 0; i < pairs && 2 * i + 1 < ncaps; i++) {
      if (i < rc && ov[2 * i] != PCRE2_UNSET) {
        caps[2 * i] = static_cast<int>(ov[2 * i]);
        caps[2 * i + 1] = static_cast<int>(ov[2 * i + 1]);
      } else {
        caps[2 * i] = caps[2 * i + 1] = -1;
      }
    }
  }
  return true;
}

}  // namespace weir
