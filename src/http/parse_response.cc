// The parsers for what an upstream sends, also used for chunked request bodies: the chunked
// transfer coding and the status line. Fuzzed by tests/fuzz/response_parser_fuzz.cc. nginx:
// ngx_http_parse.c
#include <cstdint>

#include "core/str.h"
#include "http/parse.h"

namespace weir::http {

namespace {
enum ChState {
  ch_chunk_start = 0,
  ch_chunk_size,
  ch_chunk_extension,
  ch_chunk_extension_almost_done,
  ch_chunk_data,
  ch_after_data,
  ch_after_data_almost_done,
  ch_last_chunk_extension,
  ch_last_chunk_extension_almost_done,
  ch_trailer,
  ch_trailer_almost_done,
  ch_trailer_header,
  ch_trailer_header_almost_done,
};
// Larger sizes would overflow off_t on the next hex digit.
constexpr off_t kMaxChunkSize = INT64_MAX / 16 - 1;

// The least number of bytes a valid body still holds in each state, every line ending in CRLF: what
// a reader may ask the socket for without reading into a pipelined request.
off_t least_remaining(int state, off_t size) {
  constexpr off_t kLastChunk = 5;  // "0" CRLF CRLF
  switch (state) {
    case ch_chunk_start:
      return kLastChunk;
    case ch_chunk_size:
      return size == 0 ? 4 : 2 + size + 2 + kLastChunk;  // "0" read: CRLF CRLF
    case ch_chunk_extension:
      return 2 + size + 2 + kLastChunk;
    case ch_chunk_extension_almost_done:
      return 1 + size + 2 + kLastChunk;
    case ch_chunk_data:
      return size + 2 + kLastChunk;
    case ch_after_data:
      return 2 + kLastChunk;
    case ch_after_data_almost_done:
      return 1 + kLastChunk;
    case ch_last_chunk_extension:
      return 4;
    case ch_last_chunk_extension_almost_done:
      return 3;
    case ch_trailer:
      return 2;
    case ch_trailer_almost_done:
      return 1;
    case ch_trailer_header:
      return 4;
    case ch_trailer_header_almost_done:
      return 3;
  }
  return 1;
}
// A trailer byte kept for proxy_pass_trailers; false when the buffer is full.
bool keep(Buffer& b, unsigned char ch) {
  if (b.last == b.end) return false;
  *b.last++ = static_cast<char>(ch);
  return true;
}

}  // namespace

// Every line of the framing ends in CRLF: a bare LF (which nginx accepts) is an error, as RFC 9112
// allows and as a server behind or in front of a lax parser must, lest the two disagree on where a
// body ends.
ChunkedResult parse_chunked(ChunkedState& ctx, Buffer& b) {
  int state = ctx.state;
  if (state == ch_chunk_data && ctx.size == 0) state = ch_after_data;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case ch_chunk_start: {
        int v = hex_value(static_cast<char>(ch));
        if (v < 0) goto invalid;
        state = ch_chunk_size;
        ctx.size = v;
        break;
      }
      case ch_chunk_size: {
        if (ctx.size > kMaxChunkSize) goto invalid;
        int v = hex_value(static_cast<char>(ch));
        if (v >= 0) {
          ctx.size = ctx.size * 16 + v;
          break;
        }
        bool last = ctx.size == 0;
        switch (ch) {
          case '\r':
            state = last ? ch_last_chunk_extension_almost_done : ch_chunk_extension_almost_done;
            break;
          case ';':
          case ' ':
          case '\t':
            state = last ? ch_last_chunk_extension : ch_chunk_extension;
            break;
          default:
            goto invalid;
        }
        break;
      }
      case ch_chunk_extension:
      case ch_last_chunk_extension:
        if (ch == '\r') {
          state = state == ch_chunk_extension ? ch_chunk_extension_almost_done
                                              : ch_last_chunk_extension_almost_done;
        } else if (ch == '\n' || ++ctx.metadata > kMaxChunkMetadata) {
          goto invalid;
        }
        break;
      case ch_chunk_extension_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_chunk_data;
        break;
      case ch_chunk_data:
        goto data;
      case ch_after_data:
        if (ch != '\r') goto invalid;
        state = ch_after_data_almost_done;
        break;
      case ch_after_data_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_chunk_start;
        break;
      case ch_last_chunk_extension_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_trailer;
        break;
      case ch_trailer:
        if (ch == '\r') {
          state = ch_trailer_almost_done;
        } else if (ch == '\n') {
          goto invalid;
        } else {
          state = ch_trailer_header;
          if (++ctx.metadata > kMaxChunkMetadata) goto invalid;
          if (ctx.trailer != nullptr && !keep(*ctx.trailer, ch)) goto invalid;
        }
        break;
      case ch_trailer_almost_done:
        if (ch != '\n') goto invalid;
        goto last;
      case ch_trailer_header:
        if (ch == '\r') {
          state = ch_trailer_header_almost_done;
        } else if (ch == '\n' || ++ctx.metadata > kMaxChunkMetadata) {
          goto invalid;
        }
        if (ctx.trailer != nullptr && !keep(*ctx.trailer, ch)) goto invalid;
        break;
      case ch_trailer_header_almost_done:
        if (ch != '\n') goto invalid;
        state = ch_trailer;
        if (ctx.trailer != nullptr && !keep(*ctx.trailer, ch)) goto invalid;
        break;
    }
  }

data:
  ctx.state = state;
  b.pos = p;
  if (ctx.size > kMaxChunkSize) goto invalid;
  ctx.length = least_remaining(state, ctx.size);
  return (state == ch_chunk_data && p < b.last) ? ChunkedResult::Ok : ChunkedResult::Again;

last:
  ctx.state = 0;
  ctx.length = 0;
  b.pos = p + 1;
  return ChunkedResult::Done;

invalid:
  return ChunkedResult::Error;
}

namespace {
enum StState {
  st_start = 0,
  st_H,
  st_HT,
  st_HTT,
  st_HTTP,
  st_first_major_digit,
  st_major_digit,
  st_first_minor_digit,
  st_minor_digit,
  st_status,
  st_space_after_status,
  st_status_text,
  st_almost_done,
};
}  // namespace

ParseResult parse_status_line(StatusLine& s, Buffer& b) {
  int state = s.state;
  char* p = b.pos;
  for (; p < b.last; p++) {
    auto ch = static_cast<unsigned char>(*p);
    switch (state) {
      case st_start:
        if (ch != 'H') return ParseResult::InvalidRequest;
        state = st_H;
        break;
      case st_H:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = st_HT;
        break;
      case st_HT:
        if (ch != 'T') return ParseResult::InvalidRequest;
        state = st_HTT;
        break;
      case st_HTT:
        if (ch != 'P') return ParseResult::InvalidRequest;
        state = st_HTTP;
        break;
      case st_HTTP:
        if (ch != '/') return ParseResult::InvalidRequest;
        state = st_first_major_digit;
        break;
      case st_first_major_digit:
        if (ch < '1' || ch > '9') return ParseResult::InvalidRequest;
        s.http_major = ch - '0';
        state = st_major_digit;
        break;
      case st_major_digit:
        if (ch == '.') {
          state = st_first_minor_digit;
          break;
        }
        if (ch < '0' || ch > '9' || s.http_major > 99) return ParseResult::InvalidRequest;
        s.http_major = s.http_major * 10 + (ch - '0');
        break;
      case st_first_minor_digit:
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        s.http_minor = ch - '0';
        state = st_minor_digit;
        break;
      case st_minor_digit:
        if (ch == ' ') {
          state = st_status;
          break;
        }
        if (ch < '0' || ch > '9' || s.http_minor > 99) return ParseResult::InvalidRequest;
        s.http_minor = s.http_minor * 10 + (ch - '0');
        break;
      case st_status:
        if (ch == ' ') break;
        if (ch < '0' || ch > '9') return ParseResult::InvalidRequest;
        s.code = s.code * 10 + (ch - '0');
        if (++s.count == 3) {
          state = st_space_after_status;
          s.start = p - 2;
        }
        break;
      case st_space_after_status:
        switch (ch) {
          case ' ':
          case '.':
            state = st_status_text;
            break;
          case '\r':
            state = st_almost_done;
            break;
          case '\n':
            goto done;
          default:
            return ParseResult::InvalidRequest;
        }
        break;
      case st_status_text:
        if (ch == '\r') {
          state = st_almost_done;
        } else if (ch == '\n') {
          goto done;
        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
          return ParseResult::InvalidRequest;  // a reason phrase is text (RFC 9112 4)
        }
        break;
      case st_almost_done:
        s.end = p - 1;
        if (ch == '\n') goto done;
        return ParseResult::InvalidRequest;
    }
  }
  b.pos = p;
  s.state = state;
  return ParseResult::Again;
done:
  b.pos = p + 1;
  if (s.end == nullptr) s.end = p;
  s.state = st_start;
  return ParseResult::Ok;
}

}  // namespace weir::http
