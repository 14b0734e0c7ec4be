// The tokenizer and parser: quoting and escapes, comments, blocks, variables with braces, includes
// with globs, and nginx's error texts with file:line.
#include "conf/conf_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace weir {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/weir-conf-XXXXXX";
  return std::string(mkdtemp(tmpl)) + "/";
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

Status parse(const std::string& text, std::vector<ConfNode>& out, std::string* path_out = nullptr) {
  static std::vector<std::unique_ptr<ConfReader>> readers;  // nodes point into the reader's files
  std::string dir = temp_dir();
  std::string path = dir + "nginx.conf";
  write(path, text);
  if (path_out) *path_out = path;
  readers.push_back(std::make_unique<ConfReader>(dir));
  return readers.back()->read_file(path, out);
}

TEST(ConfTokenizer, WordsQuotesEscapesComments) {
  std::vector<ConfNode> n;
  ASSERT_TRUE(parse("a b 'c d' \"e\\\"f\" g\\ h; # comment ;\n"
                    "x \"\\t\\n\\\\\" ${var}s $y;\n"
                    "blk { inner 1; }\n",
                    n)
                  .ok());
  ASSERT_EQ(n.size(), 3u);
  // A backslash before anything but a quote, a backslash, t, r or n stays (nginx's rule).
  EXPECT_EQ(n[0].args, (std::vector<std::string>{"a", "b", "c d", "e\"f", "g\\ h"}));
  EXPECT_EQ(n[0].line, 1);
  EXPECT_EQ(n[1].args, (std::vector<std::string>{"x", "\t\n\\", "${var}s", "$y"}));
  EXPECT_EQ(n[2].name(), "blk");
  EXPECT_TRUE(n[2].block);
  ASSERT_EQ(n[2].children.size(), 1u);
  EXPECT_EQ(n[2].children[0].args, (std::vector<std::string>{"inner", "1"}));
  EXPECT_EQ(n[2].end_line, 3);
}

TEST(ConfTokenizer, IfConditionParenthesesAfterQuotes) {
  std::vector<ConfNode> n;
  ASSERT_TRUE(parse("if ($a = \"\") { }\n", n).ok());
  EXPECT_EQ(n[0].args, (std::vector<std::string>{"if", "($a", "=", "", ")"}));
}

TEST(ConfTokenizer, Errors) {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"a;\n}\n", "unexpected \"}\" in %s:2"},
      {"a {\n b;\n", "unexpected end of file, expecting \"}\" in %s:3"},
      {"a b", "unexpected end of file, expecting \";\" or \"}\" in %s:1"},
      {";", "unexpected \";\" in %s:1"},
      {"{", "unexpected \"{\" in %s:1"},
      {"a \"b\"c;", "unexpected \"c\" in %s:1"},
      {"a b }", "unexpected \"}\" in %s:1"},
      {"include nope.conf;", "open() \""},
  };
  for (const Case& c : cases) {
    std::vector<ConfNode> n;
    std::string path;
    Status s = parse(c.text, n, &path);
    ASSERT_FALSE(s.ok()) << c.text;
    std::string want = c.message;
    if (size_t p = want.find("%s"); p != std::string::npos) want.replace(p, 2, path);
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message() << " / " << want;
  }
}

TEST(ConfReader, IncludesWithGlobsRelativeToTheConfDir) {
  std::string dir = temp_dir();
  ::mkdir((dir + "sites").c_str(), 0755);
  write(dir + "sites/b.conf", "second;\n");
  write(dir + "sites/a.conf", "first;\n");
  write(dir + "main.conf",
        "before;\ninclude sites/*.conf;\nhttp { include sites/a.conf; }\nafter;\n");
  ConfReader reader(dir);
  std::vector<ConfNode> n;
  ASSERT_TRUE(reader.read_file(dir + "main.conf", n).ok());
  ASSERT_EQ(n.size(), 5u);
  EXPECT_EQ(n[1].name(), "first");
  EXPECT_EQ(n[1].file->path, dir + "sites/a.conf");
  EXPECT_EQ(n[2].name(), "second");
  EXPECT_EQ(n[3].children[0].name(), "first");
  EXPECT_EQ(n[4].name(), "after");
  EXPECT_EQ(n[4].line, 4);
  EXPECT_EQ(reader.files().size(), 4u);
}

TEST(ConfReader, CommandLine) {
  ConfReader reader("/");
  std::vector<ConfNode> n;
  ASSERT_TRUE(reader.read_command_line("daemon off; master_process on;", n).ok());
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(conf_error_at(n[0].file, n[0].line, "x"), "x in command line");
  std::vector<ConfNode> m;
  Status s = reader.read_command_line("daemon off", m);
  EXPECT_EQ(s.message(), "unexpected end of parameter, expecting \";\" in command line");
}

}  // namespace
}  // namespace weir
