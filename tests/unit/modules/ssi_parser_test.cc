// The SSI parser: what it finds in documents, nginx's error messages, and the same events whatever
// the buffer boundaries - every split of each document into two and three buffers.
#include "modules/ssi/ssi_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir::http {
namespace {

// The events of a document fed in the given buffers, as one string: text as it is, a command as
// [name k=v ...], an error as {message}, an error's end as {end}.
std::string parse(const std::vector<std::string>& buffers, size_t value_len = 255) {
  SsiParser parser(value_len);
  std::string out;
  for (const std::string& b : buffers) {
    const char* p = b.data();
    const char* end = p + b.size();
    parser.begin(p);
    for (;;) {
      SsiEvent ev = parser.next(p, end);
      if (ev.kind == SsiEvent::Kind::More) break;
      switch (ev.kind) {
        case SsiEvent::Kind::Text:
          EXPECT_FALSE(ev.text.empty());
          out += ev.text;
          break;
        case SsiEvent::Kind::Command:
          out += "[" + parser.command();
          for (const SsiParam& prm : parser.params()) out += " " + prm.name + "=" + prm.value;
          out += "]";
          break;
        case SsiEvent::Kind::Error:
          out += "{" + parser.error() + "}";
          break;
        case SsiEvent::Kind::ErrorEnd:
          out += "{end}";
          break;
        case SsiEvent::Kind::More:
          break;
      }
    }
  }
  return out;
}

std::string whole(const std::string& doc, size_t value_len = 255) {
  return parse({doc}, value_len);
}

TEST(SsiParser, FindsCommandsAndParams) {
  EXPECT_EQ(whole("a<!--#echo var=\"x\" -->b"), "a[echo var=x]b");
  EXPECT_EQ(whole("<!--# include virtual='/a?b=c' wait = \"yes\"-->"),
            "[include virtual=/a?b=c wait=yes]");
  EXPECT_EQ(whole("<!--#endif-->"), "[endif]");
  EXPECT_EQ(whole("<!--#set var=\"v\" value=\"a\\\"b\\\\c\" -->"), "[set var=v value=a\\\"b\\\\c]");
  EXPECT_EQ(whole("x\n<!--#config\ttimefmt=\"%A\"\r\n-->\n"), "x\n[config timefmt=%A]\n");
}

TEST(SsiParser, WhatIsNotACommandIsText) {
  for (const char* doc : {"<", "<!", "<!-", "a < b", "<<!--", "<!-- comment -->", "<!-x", "<!--x",
                          "<<<!!--", "<!--#"}) {
    std::string want = doc;
    if (want == "<!--#") want = "";  // an unfinished command at the end is dropped, as nginx
    if (want == "<!" || want == "<!-" || want == "<" || want == "<<!--") {
      // A trailing partial opening is held for the next buffer; none comes.
      want = want == "<<!--" ? "<" : "";
    }
    EXPECT_EQ(whole(doc), want) << doc;
  }
  EXPECT_EQ(whole("<!-- <!--#echo var=\"a\" --> -->"), "<!-- [echo var=a] -->");
}

TEST(SsiParser, ErrorsInNginxWords) {
  EXPECT_EQ(whole("<!--#echo var=x -->!"),
            "{unexpected \"x\" symbol before value of \"var\" parameter in \"echo\" SSI "
            "command}{end}!");
  EXPECT_EQ(whole("<!--#echo var-->"),
            "{unexpected \"-\" symbol after \"var\" parameter in \"echo\" SSI command}{end}");
  EXPECT_EQ(whole("<!--#echo var=\"a\"x -->"),
            "{unexpected \"x\" symbol after \"a\" value of \"var\" parameter in \"echo\" SSI "
            "command}{end}");
  EXPECT_EQ(whole("<!--#echo -x-->ok"), "{unexpected \"x\" symbol in \"echo\" SSI command}{end}ok");
  EXPECT_EQ(whole("<!--#" + std::string(33, 'c') + " -->"),
            "{the \"" + std::string(32, 'c') + "c...\" SSI command is too long}{end}");
  EXPECT_EQ(whole("<!--#e " + std::string(33, 'p') + "=\"\" -->"),
            "{too long \"" + std::string(32, 'p') + "p...\" parameter in \"e\" SSI command}{end}");
  EXPECT_EQ(whole("<!--#e v=\"abcd\" -->", 3),
            "{too long \"abcd...\" value of \"v\" parameter in \"e\" SSI command}{end}");
  std::string many = "<!--#e";
  for (int i = 0; i < 17; i++) many += " p" + std::to_string(i) + "=\"\"";
  EXPECT_EQ(whole(many + " -->"), "{too many SSI command parameters: \"e\"}{end}");
}

TEST(SsiParser, EverySplitGivesTheSameEvents) {
  const std::string docs[] = {
      "head<!--#include virtual=\"/a\" -->mid<!--#echo var='x' default=\"d\\\"q\" -->tail",
      "<<!-<!--#if expr=\"$a = /b/\" -->y<!--#else -->n<!--#endif -->",
      "a<!--#bad var=x -->b<!--#e -->c<!-- plain -->d<!--#e v=\"1\"-->",
      "<!--#set var=\"v\" value=\"<!--#not a command-->\" --><",
  };
  for (const std::string& doc : docs) {
    std::string want = whole(doc);
    for (size_t i = 0; i <= doc.size(); i++) {
      ASSERT_EQ(parse({doc.substr(0, i), doc.substr(i)}), want) << doc << " @" << i;
      for (size_t j = i; j <= doc.size(); j++) {
        ASSERT_EQ(parse({doc.substr(0, i), doc.substr(i, j - i), doc.substr(j)}), want)
            << doc << " @" << i << "," << j;
      }
    }
    // One byte at a time.
    std::vector<std::string> bytes;
    for (char c : doc) bytes.emplace_back(1, c);
    ASSERT_EQ(parse(bytes), want) << doc;
  }
}

}  // namespace
}  // namespace weir::http
