// The SSI parser: a streaming state machine over a document's bytes, fed buffer by buffer, that
// finds `<!--#command param="value" ... -->` and reports, in document order, the text around the
// commands (as slices of the buffer it is given: nothing is copied), the bytes of a "<!--" that
// turned out not to start a command after a buffer boundary (from a constant), each command with
// its parameters (copied, within nginx's limits: 32-byte names, ssi_value_length values), and
// malformed commands (an error when found, and its end). A command may be split across buffers at
// any byte. nginx: ngx_http_ssi_parse (src/http/modules/ngx_http_ssi_filter_module.c)
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace weir::http {

struct SsiParam {
  std::string name;
  std::string value;
};

struct SsiEvent {
  enum class Kind : uint8_t {
    More,      // the buffer is used up with nothing (more) to report
    Text,      // text: a slice of the current buffer, or a "<!--" prefix held from an earlier one
    Command,   // a complete command: command() and params()
    Error,     // a malformed command was found (error() says how); it lasts until its "-->"
    ErrorEnd,  // the malformed command ended: nginx writes its error message here
  };
  Kind kind = Kind::More;
  std::string_view text;
};

class SsiParser {
 public:
  static constexpr size_t kCommandLen = 32;
  static constexpr size_t kParamLen = 32;

  explicit SsiParser(size_t value_len) : value_len_(value_len) {}

  // A new buffer starts at pos; the events that follow may slice it.
  void begin(const char* pos);
  // The next event from [p, end); p moves past what it covered. Call until it returns More.
  SsiEvent next(const char*& p, const char* end);

  const std::string& command() const { return command_; }
  const std::vector<SsiParam>& params() const { return params_; }
  const std::string& error() const { return error_; }
  bool in_command() const { return state_ >= State::PreCommand; }

 private:
  enum class State : uint8_t {
    Text,
    Lt,     // "<"
    Bang,   // "<!"
    Dash1,  // "<!-"
    Dash2,  // "<!--": a "#" starts a command
    PreCommand,
    Command,
    PreParam,
    Param,
    PreEqual,
    PreValue,
    DoubleQuoted,
    SingleQuoted,
    QuotedSymbol,  // after a backslash in a value
    PostParam,
    End0,  // "-"
    End1,  // "--": a ">" ends the command
    Error,
    ErrorEnd0,
    ErrorEnd1,
  };

  bool partial() const { return state_ >= State::Lt && state_ <= State::Dash2; }
  // The current character does not continue "<!--#": what was matched is text.
  SsiEvent match_failed(const char*& p);
  SsiEvent fail(const char*& p, State next, std::string message);
  SsiEvent end_of_buffer(const char* end);
  bool add_value_char(char ch, const char*& p, SsiEvent& ev);

  State state_ = State::Text;
  State quoted_ = State::DoubleQuoted;  // the value state a backslash returns to
  size_t looked_ = 0;                   // bytes of "<!--" matched
  size_t carried_ = 0;                  // of them, those in earlier buffers
  const char* text_ = nullptr;          // where the text not yet reported starts
  const char* lt_ = nullptr;            // the "<" of a match that began in this buffer
  size_t value_len_;
  std::string command_;
  std::vector<SsiParam> params_;
  std::string error_;
};

}  // namespace weir::http
