// xslt (ngx_http_xslt_filter_module, Debian's libnginx-mod-http-xslt-filter): an XML response of
// xslt_types (text/xml) is parsed as it arrives (libxml2's push parser; xml_entities names a DTD
// for its entities) and transformed by each xslt_stylesheet of the location in turn (libxslt,
// with EXSLT), with xslt_param (XPath) and xslt_string_param values and the stylesheet's own
// "name=value:name=value" parameters. The header is held back until the result is made; it then
// goes with the result's length, the last stylesheet's media type and encoding, and without
// Last-Modified and ETag unless xslt_last_modified is on. A document that is not well formed
// answers 500. nginx: src/http/modules/ngx_http_xslt_filter_module.c
#include <libexslt/exslt.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxslt/transform.h>
#include <libxslt/variables.h>
#include <libxslt/xslt.h>
#include <libxslt/xsltInternals.h>
#include <libxslt/xsltutils.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/escape.h"
#include "core/str.h"
#include "http/core_module.h"
#include "http/filter.h"
#include "http/script.h"
#include "http/special_response.h"

namespace weir::http {

extern Module http_xslt_filter_module;

namespace {

inline constexpr char kTextXml[] = "text/xml";

// A parameter: xslt_param and xslt_string_param (named; a string one is quoted for XPath), or a
// stylesheet's "a=1:b=2" list (no name).
struct Param {
  std::string name;
  bool quote = false;
  ComplexValue value;
};

struct Sheet {
  xsltStylesheetPtr stylesheet = nullptr;
  std::vector<Param> params;
};

// The files each configuration parsed, by name: a DTD or a stylesheet named twice is parsed once.
struct XsltMainConf {
  static constexpr Module* kModule = &http_xslt_filter_module;
  std::map<std::string, xmlDtdPtr> dtds;
  std::map<std::string, xsltStylesheetPtr> stylesheets;
  ~XsltMainConf() {
    for (auto& [name, dtd] : dtds) xmlFreeDtd(dtd);
    for (auto& [name, sheet] : stylesheets) xsltFreeStylesheet(sheet);
  }
};

struct XsltLocConf {
  static constexpr Module* kModule = &http_xslt_filter_module;
  static constexpr ConfLevel kLevel = ConfLevel::Loc;
  xmlDtdPtr dtd = nullptr;
  std::vector<Sheet>* sheets = nullptr;  // a level with any replaces the outer ones
  std::vector<Param>* params = nullptr;  // likewise
  Setting<std::vector<std::string>> types;
  Setting<bool> last_modified;
};

struct XsltCtx {
  static constexpr Module* kModule = &http_xslt_filter_module;
  Request* request = nullptr;
  xmlParserCtxtPtr parser = nullptr;
  xmlDocPtr doc = nullptr;
  xsltTransformContextPtr transform = nullptr;
  std::vector<const char*> params;  // name, value, ... for xsltApplyStylesheetUser
  bool done = false;
  HeaderNext header_next{};
};

// --- the header, held back -------------------------------------------------------------------

Code xslt_header_filter(Request& r, HeaderNext next) {
  if (r.headers_out.status == 304) return next(r);
  const auto& conf = r.loc<XsltLocConf>();
  if (conf.sheets == nullptr || !content_type_in(r, *conf.types)) return next(r);
  if (r.get_ctx<XsltCtx>() != nullptr) return next(r);
  auto* ctx = r.pool->make<XsltCtx>();
  ctx->header_next = next;
  r.set_ctx(ctx);
  r.main_filter_need_in_memory = true;
  r.allow_ranges = false;
  return Rc::Ok;
}

// --- parsing -----------------------------------------------------------------------------------

// A document with an external subset gets xml_entities' DTD in its place (shared, never copied).
void external_subset(void* data, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* parser = static_cast<xmlParserCtxtPtr>(data);
  auto* ctx = static_cast<XsltCtx*>(parser->sax->_private);
  parser->myDoc->extSubset = ctx->request->loc<XsltLocConf>().dtd;
}

void parse_error(void* data, const char* msg, ...) {
  auto* parser = static_cast<xmlParserCtxtPtr>(data);
  auto* ctx = static_cast<XsltCtx*>(parser->sax->_private);
  char buf[2048];
  va_list ap;
  va_start(ap, msg);
  int n = std::vsnprintf(buf, sizeof buf, msg, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : std::min(static_cast<size_t>(n), sizeof buf - 1);
  while (len > 1 && (buf[len - 1] == '\r' || buf[len - 1] == '\n')) len--;
  log_error(LogLevel::Error, ctx->request->log(), 0, "libxml2 error: \"%.*s\"",
            static_cast<int>(len), buf);
}

bool add_chunk(Request& r, XsltCtx& ctx, Buffer& b) {
  if (ctx.parser == nullptr) {
    xmlParserCtxtPtr parser = xmlCreatePushParserCtxt(nullptr, nullptr, nullptr, 0, nullptr);
    if (parser == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "xmlCreatePushParserCtxt() failed");
      return false;
    }
    xmlCtxtUseOptions(parser, XML_PARSE_NOENT | XML_PARSE_DTDLOAD | XML_PARSE_NOWARNING);
    parser->sax->externalSubset = external_subset;
    parser->sax->setDocumentLocator = nullptr;
    parser->sax->error = parse_error;
    parser->sax->fatalError = parse_error;
    parser->sax->_private = &ctx;
    ctx.parser = parser;
    ctx.request = &r;
  }
  int err = xmlParseChunk(ctx.parser, b.pos, static_cast<int>(b.last - b.pos),
                          (b.last_buf || b.last_in_chain) ? 1 : 0);
  if (err == 0) {
    b.pos = b.last;
    return true;
  }
  log_error(LogLevel::Error, r.log(), 0, "xmlParseChunk() failed, error:%d", err);
  return false;
}

// The parsed document, without the shared DTD (which it must not free).
void free_document(xmlDocPtr doc) {
  if (doc == nullptr) return;
  doc->extSubset = nullptr;
  xmlFreeDoc(doc);
}

// --- transforming ------------------------------------------------------------------------------

// A stylesheet's "name=value:name=value" (values %-escaped), or a named parameter. False: logged.
bool add_params(Request& r, XsltCtx& ctx, const std::vector<Param>& params) {
  for (const Param& p : params) {
    std::string_view value = p.value.eval(r);
    char* text = r.pool->alloc_bytes(value.size() + 1);
    std::memcpy(text, value.data(), value.size());
    text[value.size()] = '\0';
    if (!p.name.empty()) {
      if (p.quote) {
        if (xsltQuoteOneUserParam(ctx.transform, reinterpret_cast<const xmlChar*>(p.name.c_str()),
                                  reinterpret_cast<const xmlChar*>(text)) != 0) {
          log_error(LogLevel::Error, r.log(), 0, "xsltQuoteOneUserParam(\"%s\", \"%s\") failed",
                    p.name.c_str(), text);
          return false;
        }
        continue;
      }
      ctx.params.push_back(p.name.c_str());
      ctx.params.push_back(text);
      continue;
    }
    for (char* s = text; s != nullptr && *s != '\0';) {
      char* name = s;
      s = std::strchr(s, '=');
      if (s == nullptr) {
        log_error(LogLevel::Error, r.log(), 0, "invalid libxslt parameter \"%s\"", name);
        return false;
      }
      *s++ = '\0';
      ctx.params.push_back(name);
      char* v = s;
      s = std::strchr(s, ':');
      size_t len;
      if (s != nullptr) {
        len = static_cast<size_t>(s - v);
        *s++ = '\0';
      } else {
        len = std::strlen(v);
      }
      v[unescape_uri(v, {v, len}, Unescape::Plain)] = '\0';  // in place: never longer
      ctx.params.push_back(v);
    }
  }
  return true;
}

// A stylesheet's media type or encoding, else the first of its imports'.
const char* sheet_property(xsltStylesheetPtr s, xmlChar* xsltStylesheet::*field) {
  if (s->*field != nullptr) return reinterpret_cast<const char*>(s->*field);
  for (xsltStylesheetPtr i = s->imports; i != nullptr; i = i->next) {
    if (const char* v = sheet_property(i, field)) return v;
  }
  return nullptr;
}

// Each stylesheet in turn; the result as a buffer, its type and charset set (nullptr: logged).
Buffer* apply_stylesheets(Request& r, XsltCtx& ctx) {
  const auto& conf = r.loc<XsltLocConf>();
  xmlDocPtr doc = ctx.doc;
  xsltStylesheetPtr last = nullptr;
  for (const Sheet& sheet : *conf.sheets) {
    ctx.transform = xsltNewTransformContext(sheet.stylesheet, doc);
    if (ctx.transform == nullptr) {
      xmlFreeDoc(doc);
      return nullptr;
    }
    ctx.params.clear();
    if ((conf.params != nullptr && !add_params(r, ctx, *conf.params)) ||
        !add_params(r, ctx, sheet.params)) {
      xsltFreeTransformContext(ctx.transform);
      xmlFreeDoc(doc);
      return nullptr;
    }
    ctx.params.push_back(nullptr);
    xmlDocPtr res = xsltApplyStylesheetUser(sheet.stylesheet, doc, ctx.params.data(), nullptr,
                                            nullptr, ctx.transform);
    xsltFreeTransformContext(ctx.transform);
    xmlFreeDoc(doc);
    if (res == nullptr) {
      log_error(LogLevel::Error, r.log(), 0, "xsltApplyStylesheet() failed");
      return nullptr;
    }
    doc = res;
    last = sheet.stylesheet;
  }
  const char* type = r.is_main() ? sheet_property(last, &xsltStylesheet::mediaType) : nullptr;
  const char* encoding = sheet_property(last, &xsltStylesheet::encoding);
  bool html = doc->type == XML_HTML_DOCUMENT_NODE;
  xmlChar* out = nullptr;
  int len = 0;
  int rc = xsltSaveResultToString(&out, &len, doc, last);
  xmlFreeDoc(doc);
  if (rc != 0) {
    log_error(LogLevel::Error, r.log(), 0, "xsltSaveResultToString() failed");
    return nullptr;
  }
  if (len == 0) {
    xmlFree(out);
    log_error(LogLevel::Error, r.log(), 0, "xsltSaveResultToString() returned zero-length result");
    return nullptr;
  }
  r.pool->add_cleanup([](void* p) { xmlFree(p); }, out);
  Buffer* b =
      Buffer::create_memory(*r.pool, {reinterpret_cast<char*>(out), static_cast<size_t>(len)});
  if (encoding != nullptr) r.headers_out.charset = encoding;
  if (!r.is_main()) return b;
  b->last_buf = true;
  if (type != nullptr) {
    r.headers_out.content_type = type;
    r.headers_out.content_type_len = r.headers_out.content_type.size();
  } else if (html) {
    r.headers_out.content_type = "text/html";
    r.headers_out.content_type_len = r.headers_out.content_type.size();
  }
  r.headers_out.content_type_lowcase = {};
  return b;
}

// The held-back header with the result (nullptr: 500), then the result.
Rc send(Request& r, XsltCtx& ctx, Buffer* b, BodyNext next) {
  ctx.done = true;
  if (b == nullptr) return filter_finalize_request(r, &http_xslt_filter_module, 500);
  if (r.is_main()) {
    clear_content_length(r);  // the header line the document had
    r.headers_out.content_length_n = b->last - b->pos;
    if (!*r.loc<XsltLocConf>().last_modified) {
      clear_last_modified(r);
      clear_etag(r);
    } else {
      weak_etag(r);
    }
  }
  Code rc = ctx.header_next(r);
  if (rc == Rc::Error || rc.is_status() || r.header_only) {
    return rc == Rc::Error || rc.is_status() ? Rc::Error : rc.rc();
  }
  ChainLink out{b, nullptr};
  return next(r, &out);
}

Rc xslt_body_filter(Request& r, ChainLink* in, BodyNext next) {
  if (in == nullptr) return next(r, in);
  auto* ctx = r.get_ctx<XsltCtx>();
  if (ctx == nullptr || ctx->done) return next(r, in);
  for (ChainLink* cl = in; cl != nullptr; cl = cl->next) {
    if (!add_chunk(r, *ctx, *cl->buf)) {
      if (ctx->parser != nullptr) {
        free_document(ctx->parser->myDoc);
        xmlFreeParserCtxt(ctx->parser);
      }
      return send(r, *ctx, nullptr, next);
    }
    if (cl->buf->last_buf || cl->buf->last_in_chain) {
      ctx->doc = ctx->parser->myDoc;
      if (ctx->doc != nullptr) ctx->doc->extSubset = nullptr;
      bool well_formed = ctx->parser->wellFormed != 0;
      xmlFreeParserCtxt(ctx->parser);
      ctx->parser = nullptr;
      if (well_formed && ctx->doc != nullptr)
        return send(r, *ctx, apply_stylesheets(r, *ctx), next);
      free_document(ctx->doc);
      log_error(LogLevel::Error, r.log(), 0, "not well formed XML document");
      return send(r, *ctx, nullptr, next);
    }
  }
  return Rc::Ok;
}

// --- configuration -----------------------------------------------------------------------------

// xml_entities file: the DTD whose entities documents may use.
Status xml_entities(ConfContext& cf, const ConfNode& n, XsltLocConf& conf) {
  if (conf.dtd != nullptr) return Status::error("is duplicate");
  auto& mcf = conf_of<XsltMainConf>(cf.http->main_conf);
  const std::string& file = n.args[1];
  if (auto it = mcf.dtds.find(file); it != mcf.dtds.end()) {
    conf.dtd = it->second;
    return {};
  }
  conf.dtd = xmlParseDTD(nullptr, reinterpret_cast<const xmlChar*>(file.c_str()));
  if (conf.dtd == nullptr) return cf.error("xmlParseDTD() failed").at_error_level();
  mcf.dtds.emplace(file, conf.dtd);
  return {};
}

Status compile_param(ConfContext& cf, Param& p, const std::string& value) {
  return p.value.compile(cf, value);
}

// xslt_stylesheet file [a=1:b=2 ...]
Status xslt_stylesheet(ConfContext& cf, const ConfNode& n, XsltLocConf& conf) {
  if (conf.sheets == nullptr) conf.sheets = cf.pool.make<std::vector<Sheet>>();
  auto& mcf = conf_of<XsltMainConf>(cf.http->main_conf);
  std::string file = cf.full_name(n.args[1]);
  Sheet& sheet = conf.sheets->emplace_back();
  if (auto it = mcf.stylesheets.find(file); it != mcf.stylesheets.end()) {
    sheet.stylesheet = it->second;
  } else {
    sheet.stylesheet = xsltParseStylesheetFile(reinterpret_cast<const xmlChar*>(file.c_str()));
    if (sheet.stylesheet == nullptr) {
      return cf.error("xsltParseStylesheetFile(\"" + file + "\") failed").at_error_level();
    }
    mcf.stylesheets.emplace(file, sheet.stylesheet);
  }
  sheet.params.resize(n.args.size() - 2);
  for (size_t i = 2; i < n.args.size(); i++) {
    if (Status s = compile_param(cf, sheet.params[i - 2], n.args[i]); !s.ok()) return s;
  }
  return {};
}

// xslt_param name value (an XPath expression); xslt_string_param name value (a string).
template <bool kQuote>
Status xslt_param(ConfContext& cf, const ConfNode& n, XsltLocConf& conf) {
  if (conf.params == nullptr) conf.params = cf.pool.make<std::vector<Param>>();
  Param& p = conf.params->emplace_back();
  p.name = n.args[1];
  p.quote = kQuote;
  return compile_param(cf, p, n.args[2]);
}

XsltMainConf* create_main_conf(ConfContext& cf) {
  return cf.pool.make<XsltMainConf>();
}

XsltLocConf* create_loc_conf(ConfContext& cf) {
  return cf.pool.make<XsltLocConf>();
}

Status merge_loc_conf(ConfContext&, const XsltLocConf& prev, XsltLocConf& conf) {
  if (conf.dtd == nullptr) conf.dtd = prev.dtd;
  if (conf.sheets == nullptr) conf.sheets = prev.sheets;
  if (conf.params == nullptr) conf.params = prev.params;
  conf.types.merge(prev.types, {kTextXml});
  conf.last_modified.merge(prev.last_modified, false);
  return {};
}

Status preconfiguration(ConfContext&) {
  xmlInitParser();
  exsltRegisterAll();
  return {};
}

Status init(ConfContext& cf) {
  if (cf.configured(http_xslt_filter_module)) {
    register_header_filter(cf, FilterId::Xslt, xslt_header_filter);
    register_body_filter(cf, FilterId::Xslt, xslt_body_filter);
  }
  return {};
}

constexpr Directive kDirectives[] = {
    directive<xml_entities>("xml_entities", kHttpMainSrvLoc | kTake1),
    directive<xslt_stylesheet>("xslt_stylesheet", kHttpLocConf | kOneMore),
    directive<xslt_param<false>>("xslt_param", kHttpMainSrvLoc | kTake2),
    directive<xslt_param<true>>("xslt_string_param", kHttpMainSrvLoc | kTake2),
    directive<slot::mime_types<&XsltLocConf::types, kTextXml>>("xslt_types",
                                                               kHttpMainSrvLoc | kOneMore),
    directive<slot::flag<&XsltLocConf::last_modified>>("xslt_last_modified",
                                                       kHttpMainSrvLoc | kFlag),
};
static_assert(directives_of(kDirectives, &http_xslt_filter_module));

}  // namespace

Module http_xslt_filter_module{
    .name = "http_xslt",
    .type = ModuleType::Http,
    .directives = kDirectives,
    .preconfiguration = preconfiguration,
    .create_main_conf = create_conf<create_main_conf>,
    .create_loc_conf = create_conf<create_loc_conf>,
    .merge_loc_conf = merge_conf<merge_loc_conf>,
    .postconfiguration = init,
};

}  // namespace weir::http
