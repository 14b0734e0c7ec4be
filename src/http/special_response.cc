#include "http/special_response.h"

#include <cstring>

#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/request_body.h"

namespace weir::http {

namespace {

#define WEIR_VER "weir/" WEIR_VERSION

constexpr std::string_view kTailFull =
    "<hr><center>" WEIR_VER "</center>\r\n</body>\r\n</html>\r\n";
constexpr std::string_view kTail = "<hr><center>weir</center>\r\n</body>\r\n</html>\r\n";
constexpr std::string_view kMsiePadding =
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n"
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n"
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n"
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n"
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n"
    "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n";

#define PAGE(title)                                                                 \
  "<html>\r\n<head><title>" title "</title></head>\r\n<body>\r\n<center><h1>" title \
  "</h1></center>\r\n"
#define PAGE2(title, h1, line)                                                   \
  "<html>\r\n<head><title>" title "</title></head>\r\n<body>\r\n<center><h1>" h1 \
  "</h1></center>\r\n"                                                           \
  "<center>" line "</center>\r\n"

struct Page {
  int status;
  std::string_view html;
};

constexpr Page kPages[] = {
    {301, PAGE("301 Moved Permanently")},
    {302, PAGE("302 Found")},
    {303, PAGE("303 See Other")},
    {307, PAGE("307 Temporary Redirect")},
    {308, PAGE("308 Permanent Redirect")},
    {400, PAGE("400 Bad Request")},
    {401, PAGE("401 Authorization Required")},
    {402, PAGE("402 Payment Required")},
    {403, PAGE("403 Forbidden")},
    {404, PAGE("404 Not Found")},
    {405, PAGE("405 Not Allowed")},
    {406, PAGE("406 Not Acceptable")},
    {408, PAGE("408 Request Time-out")},
    {409, PAGE("409 Conflict")},
    {410, PAGE("410 Gone")},
    {411, PAGE("411 Length Required")},
    {412, PAGE("412 Precondition Failed")},
    {413, PAGE("413 Request Entity Too Large")},
    {414, PAGE("414 Request-URI Too Large")},
    {415, PAGE("415 Unsupported Media Type")},
    {416, PAGE("416 Requested Range Not Satisfiable")},
    {421, PAGE("421 Misdirected Request")},
    {429, PAGE("429 Too Many Requests")},
    {494, PAGE2("400 Request Header Or Cookie Too Large", "400 Bad Request",
                "Request Header Or Cookie Too Large")},
    {495, PAGE2("400 The SSL certificate error", "400 Bad Request", "The SSL certificate error")},
    {496, PAGE2("400 No required SSL certificate was sent", "400 Bad Request",
                "No required SSL certificate was sent")},
    {497, PAGE2("400 The plain HTTP request was sent to HTTPS port", "400 Bad Request",
                "The plain HTTP request was sent to HTTPS port")},
    {498, PAGE("404 Not Found")},
    {500, PAGE("500 Internal Server Error")},
    {501, PAGE("501 Not Implemented")},
    {502, PAGE("502 Bad Gateway")},
    {503, PAGE("503 Service Temporarily Unavailable")},
    {504, PAGE("504 Gateway Time-out")},
    {505, PAGE("505 HTTP Version Not Supported")},
    {507, PAGE("507 Insufficient Storage")},
};

std::string_view page_for(int status) {
  for (const Page& p : kPages) {
    if (p.status == status) return p.html;
  }
  return {};
}

Code send_refresh(Request& r) {
  std::string_view loc = r.headers_out.location->value;
  size_t esc = escape_uri(nullptr, loc, Escape::RefreshUri);
  static constexpr std::string_view kHead =
      "<html><head><meta http-equiv=\"Refresh\" content=\"0; URL=";
  static constexpr std::string_view kTailR = "\"></head><body></body></html>\r\n";
  size_t len = kHead.size() + esc + kTailR.size();
  char* p = r.pool->alloc_bytes(len);
  char* e = put(p, kHead);
  e += escape_uri(e, loc, Escape::RefreshUri);
  e = put(e, kTailR);
  r.err_status = 200;
  r.headers_out.status = 200;
  r.headers_out.content_type = "text/html";
  r.headers_out.content_type_len = 9;
  r.headers_out.content_length_n = static_cast<off_t>(len);
  clear_location(r);
  clear_accept_ranges(r);
  clear_last_modified(r);
  clear_etag(r);
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  Buffer* b = Buffer::create_memory(*r.pool, {p, len});
  b->last_buf = r.is_main();
  b->last_in_chain = true;
  ChainLink out{b, nullptr};
  return output_filter(r, &out);
}

// Sends the built-in page for a status (or an empty body when there is none).
Code send_special_page(Request& r, int error) {
  CoreLocConf& clcf = core_loc(r);
  std::string_view page = page_for(error);
  std::string_view tail = *clcf.server_tokens == ServerTokens::Off ? kTail : kTailFull;
  bool padding = *clcf.msie_padding && r.headers_in.msie && r.http_version >= 1000 && error >= 400;
  if (!page.empty()) {
    r.headers_out.content_length_n =
        static_cast<off_t>(page.size() + tail.size() + (padding ? kMsiePadding.size() : 0));
    r.headers_out.content_type = "text/html";
    r.headers_out.content_type_len = 9;
    r.headers_out.content_type_lowcase = {};
  } else {
    r.headers_out.content_length_n = 0;
  }
  if (r.headers_out.content_length != nullptr) {
    r.headers_out.content_length->hash = 0;
    r.headers_out.content_length = nullptr;
  }
  clear_accept_ranges(r);
  clear_last_modified(r);
  clear_etag(r);
  Code rc = send_header(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) return rc;
  if (page.empty()) return send_special(r, true, false);
  ChainLink* out = r.pool->alloc_link();
  ChainLink* second = r.pool->alloc_link();
  out->buf = Buffer::create_memory(*r.pool, page);
  out->next = second;
  second->buf = Buffer::create_memory(*r.pool, tail);
  second->next = nullptr;
  Buffer* last = second->buf;
  if (padding) {
    ChainLink* third = r.pool->alloc_link();
    third->buf = Buffer::create_memory(*r.pool, kMsiePadding);
    third->next = nullptr;
    second->next = third;
    last = third->buf;
  }
  last->last_buf = r.is_main();
  last->last_in_chain = true;
  return output_filter(r, out);
}

// error_page: a URI (internal redirect, method becomes GET), a named location, or a URL to redirect
// to.
Code send_error_page(Request& r, const ErrorPage& ep) {
  int overwrite = ep.overwrite;
  if (overwrite > 0 && overwrite != 200) r.expect_tested = true;
  if (overwrite >= 0) r.err_status = overwrite;  // "=" (0): the new location's own status
  std::string_view uri = ep.value.eval(r);
  if (!uri.empty() && uri[0] == '/') {
    std::string_view args;
    if (size_t q = uri.find('?'); q != std::string_view::npos) {
      args = uri.substr(q + 1);
      uri = uri.substr(0, q);
    }
    if (r.method != kHead) {
      r.method = kGet;
      r.method_name = "GET";
    }
    return internal_redirect(r, uri, args);
  }
  if (!uri.empty() && uri[0] == '@') return named_location(r, uri);

  r.expect_tested = true;
  if (discard_request_body(r) != Rc::Ok) r.keepalive = false;
  if (overwrite != 301 && overwrite != 302 && overwrite != 303 && overwrite != 307 &&
      overwrite != 308) {
    r.err_status = 302;
  }
  clear_location(r);
  r.headers_out.location = add_header_out(r, "Location", uri);
  if (*core_loc(r).msie_refresh && r.headers_in.msie && r.err_status == 302) return send_refresh(r);
  return send_special_page(r, r.err_status);
}

}  // namespace

Code special_response_handler(Request& r, int error) {
  r.err_status = error;
  if (r.keepalive) {
    switch (error) {
      case 400:
      case 413:
      case 414:
      case 497:
      case 495:
      case 496:
      case 500:
      case 501:
        r.keepalive = false;
    }
  }
  if (r.lingering_close) {
    switch (error) {
      case 400:
      case 497:
      case 495:
      case 496:
        r.lingering_close = false;
    }
  }
  r.headers_out.content_type = {};
  CoreLocConf& clcf = core_loc(r);
  if (!r.error_page && !clcf.error_pages.empty() && r.uri_changes != 0) {
    if (!*clcf.recursive_error_pages) r.error_page = true;
    for (const ErrorPage& ep : clcf.error_pages) {
      if (ep.status == error) return send_error_page(r, ep);
    }
  }
  r.expect_tested = true;
  if (discard_request_body(r) != Rc::Ok) r.keepalive = false;
  if (*clcf.msie_refresh && r.headers_in.msie && (error == 301 || error == 302) &&
      r.headers_out.location != nullptr) {
    return send_refresh(r);
  }
  // These have pages of their own but answer 400.
  if (error == 494 || error == 495 || error == 496 || error == 497) r.err_status = 400;
  return send_special_page(r, error);
}

std::string_view status_text(int status) {
  switch (status) {
    case 200:
      return "200 OK";
    case 201:
      return "201 Created";
    case 202:
      return "202 Accepted";
    case 204:
      return "204 No Content";
    case 206:
      return "206 Partial Content";
    case 301:
      return "301 Moved Permanently";
    case 302:
      return "302 Moved Temporarily";
    case 303:
      return "303 See Other";
    case 304:
      return "304 Not Modified";
    case 307:
      return "307 Temporary Redirect";
    case 308:
      return "308 Permanent Redirect";
    case 400:
      return "400 Bad Request";
    case 401:
      return "401 Unauthorized";
    case 402:
      return "402 Payment Required";
    case 403:
      return "403 Forbidden";
    case 404:
      return "404 Not Found";
    case 405:
      return "405 Not Allowed";
    case 406:
      return "406 Not Acceptable";
    case 408:
      return "408 Request Time-out";
    case 409:
      return "409 Conflict";
    case 410:
      return "410 Gone";
    case 411:
      return "411 Length Required";
    case 412:
      return "412 Precondition Failed";
    case 413:
      return "413 Request Entity Too Large";
    case 414:
      return "414 Request-URI Too Large";
    case 415:
      return "415 Unsupported Media Type";
    case 416:
      return "416 Requested Range Not Satisfiable";
    case 421:
      return "421 Misdirected Request";
    case 429:
      return "429 Too Many Requests";
    case 500:
      return "500 Internal Server Error";
    case 501:
      return "501 Not Implemented";
    case 502:
      return "502 Bad Gateway";
    case 503:
      return "503 Service Temporarily Unavailable";
    case 504:
      return "504 Gateway Time-out";
    case 505:
      return "505 HTTP Version Not Supported";
    case 507:
      return "507 Insufficient Storage";
    default:
      return {};
  }
}

Rc filter_finalize_request(Request& r, const Module* keep, int status) {
  r.headers_out = HeadersOut{};
  void* kept = keep != nullptr ? r.ctx[keep->ctx_index] : nullptr;
  int n = module_count(ModuleType::Http);
  for (int i = 0; i < n; i++) r.ctx[i] = nullptr;
  if (keep != nullptr) r.ctx[keep->ctx_index] = kept;
  r.filter_finalize = true;
  Code rc = special_response_handler(r, status);
  if (rc == Rc::Ok || rc == Rc::Done) return Rc::Error;
  return rc.is_status() ? Rc::Error : rc.rc();
}

}  // namespace weir::http
