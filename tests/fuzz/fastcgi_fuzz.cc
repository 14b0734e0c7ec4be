// libFuzzer target: the FastCGI response walk (records, the CGI header gathered from STDOUT, the
// body filter), through the unit tests' rig (a real configuration and request). The first byte
// says how reads cut the input (1..16 bytes each) and which of two modes runs:
// - raw: the rest of the input is what the application sends; nothing may read or write outside
//   the buffers, and the buffer's pointers stay in order;
// - model: the input is turned into a well-formed answer (a CGI header, a body in STDOUT records
//   of sizes and padding the input chooses, STDERR records between them, END_REQUEST), and the
//   body the filter passes on must be exactly the body sent, ended by END_REQUEST.
// Built by `make fuzz`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "modules/fastcgi/fastcgi.h"
#include "test_http.h"
#include "upstream/upstream.h"

using namespace weir;
using namespace weir::http;
using fastcgi::RecordType;

namespace {

constexpr size_t kBufferSize = 1024;  // fastcgi_buffer_size below

void require(bool ok) {
  if (!ok) std::abort();
}

std::string record(RecordType type, std::string_view content, size_t padding) {
  std::string out(fastcgi::kHeaderSize, '\0');
  out[0] = 1;
  out[1] = static_cast<char>(type);
  out[3] = 1;  // request id 1
  out[4] = static_cast<char>(content.size() >> 8);
  out[5] = static_cast<char>(content.size() & 0xff);
  out[6] = static_cast<char>(padding);
  out += content;
  out.append(padding, '\0');
  return out;
}

// A well-formed answer made from the input, and the body it carries.
struct Answer {
  std::string bytes;
  std::string body;
};

Answer model_answer(const uint8_t* data, size_t size) {
  Answer a;
  a.body.assign(reinterpret_cast<const char*>(data), size);
  bool with_length = size > 0 && (data[0] & 1);
  std::string stdout_stream = "Status: 200 OK\r\nContent-Type: text/plain\r\n";
  if (with_length) stdout_stream += "Content-Length: " + std::to_string(size) + "\r\n";
  stdout_stream += "\r\n" + a.body;
  // Record sizes and padding from the input's bytes, cycled.
  size_t i = 0;
  for (size_t off = 0; off < stdout_stream.size();) {
    uint8_t k = size > 0 ? data[i++ % size] : 0;
    size_t n = std::min<size_t>(stdout_stream.size() - off, 1 + k * 3);
    a.bytes += record(RecordType::Stdout, std::string_view(stdout_stream).substr(off, n), k % 8);
    if (k % 5 == 0) a.bytes += record(RecordType::Stderr, "a warning", k % 3);
    off += n;
  }
  a.bytes += record(RecordType::Stdout, "", 0);
  a.bytes += record(RecordType::EndRequest, std::string(8, '\0'), 0);
  return a;
}

void check_buffer(const Buffer& b) {
  require(b.start <= b.pos && b.pos <= b.last && b.last <= b.end);
}

// What the body filter passed on since the last call.
std::string take_out(Upstream& u) {
  std::string out;
  for (ChainLink* cl = u.out_bufs; cl != nullptr; cl = cl->next) {
    check_buffer(*cl->buf);
    out.append(cl->buf->pos, cl->buf->last);
  }
  u.out_bufs = nullptr;
  u.out_tail = &u.out_bufs;
  return out;
}

struct Walked {
  HeaderResult header = HeaderResult::Again;
  Rc body = Rc::Ok;
  bool ended = false;  // the body's end was seen (u.length 0)
  std::string body_bytes;
};

Walked run(test::TestConf& conf, const std::string& input, size_t step) {
  test::TestRequest t(conf);
  t.set_request_line("GET", "/");
  Request& r = t.r();
  Upstream& u = *create_upstream(r);
  u.conf = &fastcgi::fastcgi_conf(r).upstream;
  u.buffering = false;
  fastcgi::FastcgiCtx& ctx = fastcgi::fastcgi_ctx(r);
  ctx.records = fastcgi::Records{};
  ctx.header_started = false;
  u.buffer = *Buffer::create_temp(*r.pool, kBufferSize);
  u.out_tail = &u.out_bufs;

  Walked res;
  size_t off = 0;
  // The header: reads land after what came before, until the header is done or the buffer full.
  while (res.header == HeaderResult::Again && off < input.size()) {
    size_t room = static_cast<size_t>(u.buffer.end - u.buffer.last);
    if (room == 0) return res;  // "upstream sent too big header"
    size_t n = std::min({step, room, input.size() - off});
    std::memcpy(u.buffer.last, input.data() + off, n);
    u.buffer.last += n;
    off += n;
    res.header = fastcgi::process_header(r);
    check_buffer(u.buffer);
  }
  if (res.header != HeaderResult::Done) return res;
  require(fastcgi::input_filter_init(r) == Rc::Ok);
  // What came with the header goes through the filter first, as the relay does.
  size_t preread = static_cast<size_t>(u.buffer.last - u.buffer.pos);
  u.buffer.last = u.buffer.pos;
  if (preread > 0) res.body = fastcgi::input_filter(r, preread);
  res.body_bytes += take_out(u);
  while (res.body == Rc::Ok && u.length != 0 && !u.error && off < input.size()) {
    u.buffer.pos = u.buffer.last = u.buffer.start;
    size_t n = std::min({step, kBufferSize, input.size() - off});
    std::memcpy(u.buffer.last, input.data() + off, n);
    off += n;
    res.body = fastcgi::input_filter(r, n);
    check_buffer(u.buffer);
    res.body_bytes += take_out(u);
  }
  res.ended = u.length == 0;
  return res;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static test::TestConf conf(
      "server { listen 127.0.0.1:1; location / { fastcgi_pass 127.0.0.1:9; "
      "fastcgi_buffer_size 1k; fastcgi_catch_stderr CATCH; } }");
  require(conf.ok());
  size_t step = static_cast<size_t>(data[0] % 16) + 1;
  if (data[0] & 0x80) {
    Answer a = model_answer(data + 1, size - 1);
    Walked res = run(conf, a.bytes, step);
    require(res.header == HeaderResult::Done && res.body == Rc::Ok && res.ended);
    require(res.body_bytes == a.body);
  } else {
    (void)run(conf, std::string(reinterpret_cast<const char*>(data + 1), size - 1), step);
  }
  return 0;
}
