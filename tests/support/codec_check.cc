#include "codec_check.h"

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <memory>

#include "test_http.h"

namespace weir::test {

namespace {

using http::FilterId;

const char* kConf =
    "server { listen 127.0.0.1:1; types { text/plain txt; } default_type text/plain;"
    " location /gzip { gzip on; gzip_types text/plain; gzip_buffers 2 1k; gzip_min_length 0; }"
    " location /br { brotli on; brotli_types text/plain; brotli_buffers 2 1k;"
    "                brotli_min_length 0; brotli_comp_level 1; }"
    " location /zstd { zstd on; zstd_types text/plain; zstd_buffers 2 1k; zstd_min_length 0; }"
    " location /gunzip { gunzip on; gunzip_buffers 2 1k; } }";

// A streaming decoder of what the filter wrote; decode() returns false on corrupt input.
struct Decoder {
  Codec codec;
  z_stream z{};
  BrotliDecoderState* br = nullptr;
  ZSTD_DCtx* zstd = nullptr;
  std::string out;
  size_t fed = 0;  // bytes of the encoded stream given so far
  std::string error;

  explicit Decoder(Codec c) : codec(c) {
    if (c == Codec::Gzip) inflateInit2(&z, 16 + MAX_WBITS);
    if (c == Codec::Brotli) br = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    if (c == Codec::Zstd) zstd = ZSTD_createDCtx();
  }
  ~Decoder() {
    if (codec == Codec::Gzip) inflateEnd(&z);
    if (br != nullptr) BrotliDecoderDestroyInstance(br);
    if (zstd != nullptr) ZSTD_freeDCtx(zstd);
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Decodes the encoded bytes not yet fed, as far as they go.
  bool decode(const std::string& encoded) {
    std::string_view in(encoded.data() + fed, encoded.size() - fed);
    fed = encoded.size();
    char buf[4096];
    if (codec == Codec::Gunzip) {
      out.append(in);
      return true;
    }
    if (codec == Codec::Gzip) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      do {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        int rc = inflate(&z, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return false;
        out.append(buf, sizeof buf - z.avail_out);
      } while (z.avail_out == 0);
      return true;
    }
    if (codec == Codec::Brotli) {
      size_t avail_in = in.size();
      const auto* next_in = reinterpret_cast<const uint8_t*>(in.data());
      for (;;) {
        size_t avail_out = sizeof buf;
        auto* next_out = reinterpret_cast<uint8_t*>(buf);
        BrotliDecoderResult rc =
            BrotliDecoderDecompressStream(br, &avail_in, &next_in, &avail_out, &next_out, nullptr);
        out.append(buf, sizeof buf - avail_out);
        if (rc == BROTLI_DECODER_RESULT_ERROR) return false;
        if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT && !BrotliDecoderHasMoreOutput(br)) {
          return true;
        }
      }
    }
    if (in.empty()) return true;  // zstd takes calls without input as an error
    ZSTD_inBuffer zin{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer zout{buf, sizeof buf, 0};
      size_t rc = ZSTD_decompressStream(zstd, &zout, &zin);
      if (ZSTD_isError(rc)) {
        error = ZSTD_getErrorName(rc);
        return false;
      }
      out.append(buf, zout.pos);
      if (zin.pos == zin.size && zout.pos < zout.size) return true;
    }
  }
};

const char* path_of(Codec c) {
  switch (c) {
    case Codec::Gzip:
      return "/gzip/x.txt";
    case Codec::Brotli:
      return "/br/x.txt";
    case Codec::Zstd:
      return "/zstd/x.txt";
    case Codec::Gunzip:
      return "/gunzip/x.txt";
  }
  return "/";
}

FilterId filter_of(Codec c) {
  switch (c) {
    case Codec::Gzip:
      return FilterId::Gzip;
    case Codec::Brotli:
      return FilterId::Brotli;
    case Codec::Zstd:
      return FilterId::Zstd;
    case Codec::Gunzip:
      return FilterId::Gunzip;
  }
  return FilterId::Gzip;
}

}  // namespace

std::string check_codec(Codec codec, const std::vector<CodecPiece>& pieces) {
  static TestConf conf(kConf);
  if (!conf.ok()) return "configuration: " + conf.error();
  TestRequest t(conf);
  http::Request& r = t.r();
  t.set_request_line("GET", path_of(codec));
  if (codec != Codec::Gunzip) t.add_header("Accept-Encoding", "gzip, br, zstd");
  r.headers_out.status = 200;
  r.headers_out.content_type = "text/plain";
  r.headers_out.content_type_len = r.headers_out.content_type.size();
  r.headers_out.content_length_n = -1;
  if (codec == Codec::Gunzip) {
    r.headers_out.content_encoding = http::add_header_out(r, "Content-Encoding", "gzip");
  }
  reset_recorded();
  FilterId id = filter_of(codec);
  if (run_header_filter(conf.header_filter(id), r) != Rc::Ok) return "header filter failed";
  bool encoded = r.headers_out.content_encoding != nullptr;
  if (encoded == (codec == Codec::Gunzip)) return "the filter did not take the response";

  http::BodyFilterFn body = conf.body_filter(id);
  Decoder dec(codec);
  std::string sent;  // the input so far (plain; for gunzip the gzip stream)
  std::string plain_expected;
  for (size_t i = 0; i <= pieces.size(); i++) {
    bool last = i == pieces.size();
    CodecPiece piece = last ? CodecPiece{} : pieces[i];
    ChainLink* in = t.memory_chain(piece.data, last);
    in->buf->flush = piece.flush;
    sent += piece.data;
    recorded().answer = piece.sink_again ? Rc::Again : Rc::Ok;
    Rc rc = run_body_filter(body, r, in);
    if (rc == Rc::Error) return "the filter failed at piece " + std::to_string(i);
    // The client catches up: the filter is called with nothing while it waits for it.
    recorded().answer = Rc::Ok;
    for (int guard = 0; rc == Rc::Again; guard++) {
      if (guard > 100000) return "the filter never finished passing its output";
      rc = run_body_filter(body, r, nullptr);
      if (rc == Rc::Error) return "the filter failed resuming";
    }
    if (last && (r.buffered & http::kGzipBuffered) != 0) return "the filter still holds input";
    if (!dec.decode(recorded().data)) return "the output does not decode: " + dec.error;
    if ((piece.flush || last) && codec != Codec::Gunzip && dec.out != sent) {
      return "after a flush (piece " + std::to_string(i) +
             (piece.sink_again ? ", sink again" : "") + ", " + std::to_string(piece.data.size()) +
             " bytes, " + std::to_string(recorded().data.size()) + " encoded), " +
             std::to_string(dec.out.size()) + " of " + std::to_string(sent.size()) +
             " bytes decode";
    }
  }
  if (!recorded().last) return "no last buffer";
  if (codec == Codec::Gunzip) {
    // The plain text is what gunzip made of the stream.
    uLongf len = 1 << 20;
    std::string plain(len, '\0');
    z_stream z{};
    inflateInit2(&z, 16 + MAX_WBITS);
    z.next_in = reinterpret_cast<Bytef*>(sent.data());
    z.avail_in = static_cast<uInt>(sent.size());
    z.next_out = reinterpret_cast<Bytef*>(plain.data());
    z.avail_out = static_cast<uInt>(len);
    inflate(&z, Z_FINISH);
    plain.resize(z.total_out);
    inflateEnd(&z);
    if (dec.out != plain) return "gunzip's output is not the stream's text";
  } else if (dec.out != sent) {
    return "decoded " + std::to_string(dec.out.size()) + " bytes, sent " +
           std::to_string(sent.size());
  }
  return {};
}

}  // namespace weir::test
