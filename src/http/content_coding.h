// What the compression filters (brotli, zstd, gzip) share: which responses they may encode, which
// coding a response gets when more than one could encode it, the headers an encoded response
// gets, and their $..._ratio variables. Each configured filter offers its coding at
// postconfiguration; a response gets the offered coding, among those eligible for it, with the
// highest q in the client's Accept-Encoding, br before zstd before gzip when equal, never one with
// q=0. With gzip alone nothing is negotiated and gzip keeps nginx's own rule.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "http/core_module.h"
#include "http/variables.h"

namespace weir::http {

// The codings in order of preference when their q-values are equal.
enum class Coding : uint8_t { None, Brotli, Zstd, Gzip };

// The q-value (0..1000) Accept-Encoding gives a coding's token, a "*" giving it to tokens not
// named; -1 when neither is there.
int coding_quality(std::string_view accept_encoding, std::string_view token);

// Whether Accept-Encoding gives `coding` a q above 0 and above every other coding's (ties going
// to br, then zstd, then gzip): the precompressed files' rule, where whether another coding's
// file exists is not known.
bool coding_preferred(std::string_view accept_encoding, Coding coding);

// Whether a response may be encoded by a filter with these settings: status 200, 403 or 404, not
// encoded already, at least min_length long (when its length is known), of one of the types, with
// a body.
bool compressible(const Request& r, bool enable, off_t min_length,
                  const std::vector<std::string>& types);

// Whether nginx's gzip rules outside Accept-Encoding let the request have a compressed answer: a
// main request, gzip_http_version, gzip_proxied for requests through a proxy, gzip_disable.
bool compression_allowed(Request& r);

// At postconfiguration: a configured filter offers its coding; eligible(r) says whether it would
// encode this response for this client.
void offer_coding(ConfContext& cf, Coding coding, bool (*eligible)(Request& r));

// Whether `coding` is the one the response gets (tested once per request).
bool coding_chosen(Request& r, Coding coding);

// The header filter of brotli and zstd: whether a response their settings make compressible gets
// `coding` (marking it Vary: Accept-Encoding either way).
bool take_coding(Request& r, Coding coding, bool compressible);

// The token of a coding in Accept-Encoding and Content-Encoding ("br", "zstd", "gzip").
std::string_view coding_token(Coding coding);

// The headers of a response the filter encodes: Content-Encoding, and no Content-Length,
// Accept-Ranges or strong ETag.
void set_encoded_headers(Request& r, std::string_view token);

// $gzip_ratio and its twins: input over output, two decimals rounded as nginx does.
void ratio_variable(Request& r, VariableValue& v, uint64_t in, uint64_t out);

}  // namespace weir::http
