"""xslt (ngx_http_xslt_filter_module, Debian's libnginx-mod-http-xslt-filter): XML documents
transformed by weir and by Debian's nginx with the module loaded, answer by answer: an HTML result
(its type), an XML one with the stylesheet's media type and encoding (and an imported stylesheet's),
two stylesheets in turn, xslt_param (XPath), xslt_string_param and a stylesheet's own parameters
(with variables and %-escapes), xml_entities' DTD, EXSLT, xslt_types, xslt_last_modified, a
proxied document, and what fails: a document that is not well formed, a bad parameter."""

import pytest

from conftest import NGINX, WEIR, load_error, parity_answer as answer
from conftest import weir_and_nginx

MODULE = "load_module /usr/lib/nginx/modules/ngx_http_xslt_filter_module.so;"

DOC = b"""<?xml version="1.0"?>
<!DOCTYPE catalog SYSTEM "catalog.dtd">
<catalog>
  <item id="1" price="3">Caf&eacute; &amp; cr&egrave;me</item>
  <item id="2" price="5">Tea &copyright;</item>
  <item id="3" price="8">Water</item>
</catalog>
"""

PLAIN = b"""<?xml version="1.0"?><catalog><item id="9" price="1">Plain</item></catalog>"""

DTD = b"""<!ENTITY eacute "&#233;"><!ENTITY egrave "&#232;"><!ENTITY copyright "(c) weir">"""

HTML_SHEET = b"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:str="http://exslt.org/strings" extension-element-prefixes="str">
  <xsl:output method="html"/>
  <xsl:param name="title" select="'untitled'"/>
  <xsl:param name="limit" select="100"/>
  <xsl:param name="a" select="'-'"/>
  <xsl:param name="b" select="'-'"/>
  <xsl:template match="/">
    <html><head><title><xsl:value-of select="$title"/></title></head><body>
      <p>a=<xsl:value-of select="$a"/> b=<xsl:value-of select="$b"/></p>
      <ul><xsl:for-each select="catalog/item[@price &lt;= $limit]">
        <li id="{@id}"><xsl:value-of select="."/></li>
      </xsl:for-each></ul>
      <p><xsl:for-each select="str:tokenize('x,y,z', ',')"><xsl:value-of select="."/>;</xsl:for-each></p>
    </body></html>
  </xsl:template>
</xsl:stylesheet>
"""

XML_SHEET = b"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" media-type="application/xhtml+xml" encoding="ISO-8859-1" indent="yes"/>
  <xsl:template match="/">
    <list count="{count(//item)}"><xsl:for-each select="//item | //li">
      <entry><xsl:value-of select="."/></entry></xsl:for-each></list>
  </xsl:template>
</xsl:stylesheet>
"""

# Items with their id, as XML again: the second of a chain reads what the first made.
RENAME_SHEET = b"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/catalog"><catalog><xsl:for-each select="item">
    <item id="{@id * 10}" price="{@price}">#<xsl:value-of select="."/></item>
  </xsl:for-each></catalog></xsl:template>
</xsl:stylesheet>
"""

IMPORTING_SHEET = b"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:import href="xml.xsl"/>
</xsl:stylesheet>
"""

FILES = {"x/doc.xml": DOC, "x/plain.xml": PLAIN, "x/bad.xml": b"<catalog><item></catalog>",
         "x/doc.txt": PLAIN, "x/catalog.dtd": DTD, "x/html.xsl": HTML_SHEET,
         "x/xml.xsl": XML_SHEET, "x/rename.xsl": RENAME_SHEET, "x/importing.xsl": IMPORTING_SHEET}

CONF = r"""
    include %%DIR%%/conf/mime.types;
    xml_entities %%DIR%%/html/x/catalog.dtd;
    server {
        listen 127.0.0.1:%%PORT%%;
        root %%DIR%%/html;
        location /raw/ { alias %%DIR%%/html/x/; }
        location /html/ { alias %%DIR%%/html/x/;
            xslt_stylesheet %%DIR%%/html/x/html.xsl "a='one%20two':b=$arg_b";
            xslt_string_param title "A 'quoted' title";
            xslt_param limit $arg_limit; }
        location /plainhtml/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/html.xsl; }
        location /xml/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/xml.xsl; }
        location /chain/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/rename.xsl;
                           xslt_stylesheet %%DIR%%/html/x/html.xsl; }
        location /import/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/importing.xsl; }
        location /types/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/xml.xsl;
                           xslt_types text/plain; }
        location /lm/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/xml.xsl;
                        xslt_last_modified on; }
        location /badparam/ { alias %%DIR%%/html/x/; xslt_stylesheet %%DIR%%/html/x/html.xsl novalue; }
        location /proxied/ { xslt_stylesheet %%DIR%%/html/x/xml.xsl;
                             proxy_pass http://127.0.0.1:%%PORT%%/raw/; }
    }
"""

# (A stylesheet's parameters are XPath expressions: "B%21" unescaped is none, and answers 500.)
PATHS = ["/html/doc.xml", "/html/doc.xml?b=B%21&limit=4", "/html/doc.xml?b=42&limit=4",
         "/html/doc.xml?b=%27x%27&limit=count(//item)",
         "/html/plain.xml", "/plainhtml/doc.xml", "/xml/doc.xml", "/xml/plain.xml",
         "/chain/doc.xml", "/import/doc.xml", "/types/doc.txt", "/xml/doc.txt", "/lm/doc.xml",
         "/xml/bad.xml", "/html/bad.xml", "/badparam/doc.xml", "/proxied/doc.xml",
         "/proxied/bad.xml", "/raw/doc.xml", "/xml/missing.xml"]


@pytest.fixture(scope="module")
def pair():
    yield from weir_and_nginx(CONF, FILES, main_conf=MODULE)


@pytest.mark.parametrize("path", PATHS)
def test_answers_as_nginx(pair, path):
    weir, nginx = pair
    assert answer(weir.port, path) == answer(nginx.port, path)


def test_methods_as_nginx(pair):
    weir, nginx = pair
    for path in ("/html/doc.xml", "/xml/doc.xml"):
        extra = "Range: bytes=0-10\r\n"  # no ranges of a transformed answer
        assert answer(weir.port, path, "GET", extra) == answer(nginx.port, path, "GET", extra)
        # HEAD: no body comes to transform, and both answer 500 (whose page's length counts the
        # server's name).
        assert answer(weir.port, path, "HEAD")[0][0] == answer(nginx.port, path, "HEAD")[0][0]


def test_what_it_makes(pair):
    weir, _ = pair
    lines, body = answer(weir.port, "/html/doc.xml?b=%27B%21%27&limit=4")
    assert lines[0] == "HTTP/1.1 200 OK" and "Content-Type: text/html" in lines
    assert b"<title>A 'quoted' title</title>" in body and b"a=one two b=B!" in body
    assert "Caf\u00e9 &amp; cr\u00e8me".encode() in body and b"Tea" not in body  # price <= 4
    assert b"x;y;z;" in body  # EXSLT
    assert not any(l.startswith(("Last-Modified", "ETag")) for l in lines)
    lines, body = answer(weir.port, "/xml/doc.xml")
    assert "Content-Type: application/xhtml+xml; charset=ISO-8859-1" in lines
    assert b"<entry>Tea (c) weir</entry>" in body  # xml_entities' DTD
    assert answer(weir.port, "/xml/bad.xml")[0][0] == "HTTP/1.1 500 Internal Server Error"
    log = open(weir.path("logs/error.log")).read()
    assert ('libxml2 error: "Opening and ending tag mismatch: item line 1 and catalog" while '
            'sending response to client') in log
    assert "xmlParseChunk() failed, error:76" in log
    assert 'invalid libxslt parameter "novalue"' in log


@pytest.mark.parametrize("directive,message", [
    ("xslt_stylesheet /nonexistent.xsl;", 'xsltParseStylesheetFile("/nonexistent.xsl") failed'),
    ("xml_entities /nonexistent.dtd;", "xmlParseDTD() failed"),
])
def test_load_errors_as_nginx(tmp_path, directive, message):
    """(nginx reports these two at [error], and fails the configuration.)"""
    text = "%s\nevents {}\nhttp {\nserver { location / {\n%s\n} }\n}\n" % (MODULE, directive)
    for binary in (WEIR, NGINX):
        assert load_error(tmp_path, text, binary, 5, "error") == message