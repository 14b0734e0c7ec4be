#include "modules/ssi/ssi_parser.h"

#include <cstring>

namespace weir::http {

namespace {

constexpr std::string_view kOpening = "<!--";
constexpr size_t kMaxParams = 16;

bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

}  // namespace

void SsiParser::begin(const char* pos) {
  text_ = state_ == State::Text || partial() ? pos : nullptr;
  lt_ = nullptr;
  carried_ = partial() ? looked_ : 0;
}

SsiEvent SsiParser::match_failed(const char*& p) {
  size_t held = carried_;
  carried_ = 0;
  if (*p == '<') {
    lt_ = p;
    looked_ = 1;
    state_ = State::Lt;
  } else {
    lt_ = nullptr;
    looked_ = 0;
    state_ = State::Text;
  }
  p++;
  // Bytes matched in this buffer are already in the text run; those from earlier buffers are not.
  if (held > 0) return {SsiEvent::Kind::Text, kOpening.substr(0, held)};
  return {};
}

SsiEvent SsiParser::fail(const char*& p, State next, std::string message) {
  error_ = std::move(message);
  state_ = next;
  p++;
  return {SsiEvent::Kind::Error, {}};
}

SsiEvent SsiParser::end_of_buffer(const char* end) {
  const char* until = state_ == State::Text ? end : partial() ? lt_ : nullptr;
  if (until == nullptr || text_ == nullptr || until <= text_) return {};
  SsiEvent ev{SsiEvent::Kind::Text, {text_, static_cast<size_t>(until - text_)}};
  text_ = until;
  return ev;
}

// Appends a value character unless the value is at ssi_value_length (then an error).
bool SsiParser::add_value_char(char ch, const char*& p, SsiEvent& ev) {
  SsiParam& param = params_.back();
  if (param.value.size() == value_len_) {
    ev = fail(p, State::Error,
              "too long " + quoted(param.value + ch + "...") + " value of " + quoted(param.name) +
                  " parameter in " + quoted(command_) + " SSI command");
    return false;
  }
  param.value += ch;
  return true;
}

SsiEvent SsiParser::next(const char*& p, const char* end) {
  SsiEvent ev;
  while (p < end) {
    char ch = *p;
    switch (state_) {
      case State::Text: {
        const void* lt = std::memchr(p, '<', static_cast<size_t>(end - p));
        if (lt == nullptr) {
          p = end;
          break;
        }
        p = static_cast<const char*>(lt);
        lt_ = p++;
        looked_ = 1;
        state_ = State::Lt;
        break;
      }
      case State::Lt:
      case State::Bang:
      case State::Dash1:
        if (ch != kOpening[looked_]) {
          ev = match_failed(p);
          if (ev.kind != SsiEvent::Kind::More) return ev;
          break;
        }
        looked_++;
        state_ = state_ == State::Lt     ? State::Bang
                 : state_ == State::Bang ? State::Dash1
                                         : State::Dash2;
        p++;
        break;
      case State::Dash2:
        if (ch != '#') {
          ev = match_failed(p);
          if (ev.kind != SsiEvent::Kind::More) return ev;
          break;
        }
        // A command: the text before its "<" goes first (a "<" in an earlier buffer ended the
        // text there).
        if (carried_ == 0 && lt_ != nullptr && text_ != nullptr && lt_ > text_) {
          ev = {SsiEvent::Kind::Text, {text_, static_cast<size_t>(lt_ - text_)}};
        }
        text_ = lt_ = nullptr;
        carried_ = looked_ = 0;
        state_ = State::PreCommand;
        p++;
        if (ev.kind != SsiEvent::Kind::More) return ev;
        break;
      case State::PreCommand:
        if (!is_space(ch)) {
          command_.assign(1, ch);
          params_.clear();
          state_ = State::Command;
        }
        p++;
        break;
      case State::Command:
        if (is_space(ch)) {
          state_ = State::PreParam;
        } else if (ch == '-') {
          state_ = State::End0;
        } else if (command_.size() == kCommandLen) {
          return fail(p, State::Error,
                      "the " + quoted(command_ + ch + "...") + " SSI command is too long");
        } else {
          command_ += ch;
        }
        p++;
        break;
      case State::PreParam:
        if (ch == '-') {
          state_ = State::End0;
        } else if (!is_space(ch)) {
          if (params_.size() == kMaxParams) {
            return fail(p, State::Error, "too many SSI command parameters: " + quoted(command_));
          }
          params_.push_back({std::string(1, ch), {}});
          state_ = State::Param;
        }
        p++;
        break;
      case State::Param: {
        std::string& name = params_.back().name;
        if (is_space(ch)) {
          state_ = State::PreEqual;
        } else if (ch == '=') {
          state_ = State::PreValue;
        } else if (ch == '-') {
          return fail(p, State::ErrorEnd0,
                      "unexpected \"-\" symbol after " + quoted(name) + " parameter in " +
                          quoted(command_) + " SSI command");
        } else if (name.size() == kParamLen) {
          return fail(p, State::Error,
                      "too long " + quoted(name + ch + "...") + " parameter in " +
                          quoted(command_) + " SSI command");
        } else {
          name += ch;
        }
        p++;
        break;
      }
      case State::PreEqual:
        if (ch == '=') {
          state_ = State::PreValue;
        } else if (!is_space(ch)) {
          return fail(p, ch == '-' ? State::ErrorEnd0 : State::Error,
                      "unexpected " + quoted(std::string(1, ch)) + " symbol after " +
                          quoted(params_.back().name) + " parameter in " + quoted(command_) +
                          " SSI command");
        }
        p++;
        break;
      case State::PreValue:
        if (ch == '"') {
          state_ = State::DoubleQuoted;
        } else if (ch == '\'') {
          state_ = State::SingleQuoted;
        } else if (!is_space(ch)) {
          return fail(p, ch == '-' ? State::ErrorEnd0 : State::Error,
                      "unexpected " + quoted(std::string(1, ch)) + " symbol before value of " +
                          quoted(params_.back().name) + " parameter in " + quoted(command_) +
                          " SSI command");
        }
        p++;
        break;
      case State::DoubleQuoted:
      case State::SingleQuoted:
        if (ch == (state_ == State::DoubleQuoted ? '"' : '\'')) {
          state_ = State::PostParam;
          p++;
          break;
        }
        if (ch == '\\') {
          // The backslash stays in the value (evaluation reads escapes); the next character is
          // taken whatever it is.
          quoted_ = state_;
          state_ = State::QuotedSymbol;
        }
        if (!add_value_char(ch, p, ev)) return ev;
        p++;
        break;
      case State::QuotedSymbol:
        state_ = quoted_;
        if (!add_value_char(ch, p, ev)) return ev;
        p++;
        break;
      case State::PostParam:
        if (is_space(ch)) {
          state_ = State::PreParam;
        } else if (ch == '-') {
          state_ = State::End0;
        } else {
          const SsiParam& param = params_.back();
          return fail(p, State::Error,
                      "unexpected " + quoted(std::string(1, ch)) + " symbol after " +
                          quoted(param.value) + " value of " + quoted(param.name) +
                          " parameter in " + quoted(command_) + " SSI command");
        }
        p++;
        break;
      case State::End0:
      case State::End1:
        if (ch == '-' && state_ == State::End0) {
          state_ = State::End1;
        } else if (ch == '>' && state_ == State::End1) {
          state_ = State::Text;
          text_ = ++p;
          return {SsiEvent::Kind::Command, {}};
        } else {
          return fail(p, State::Error,
                      "unexpected " + quoted(std::string(1, ch)) + " symbol in " +
                          quoted(command_) + " SSI command");
        }
        p++;
        break;
      case State::Error:
        if (ch == '-') state_ = State::ErrorEnd0;
        p++;
        break;
      case State::ErrorEnd0:
        state_ = ch == '-' ? State::ErrorEnd1 : State::Error;
        p++;
        break;
      case State::ErrorEnd1:
        if (ch == '>') {
          state_ = State::Text;
          text_ = ++p;
          return {SsiEvent::Kind::ErrorEnd, {}};
        }
        state_ = State::Error;
        p++;
        break;
    }
  }
  return end_of_buffer(end);
}

}  // namespace weir::http
