// Temp files and paths: the layout nginx uses, and errors that name the call and the file.
#include "core/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace weir {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/weir-file-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
};

TEST(CreateFullPath, MakesEveryLevel) {
  TempDir d;
  std::string deep = d.path + "/a/b/c";
  ASSERT_TRUE(create_full_path(deep).ok());
  struct stat st {};
  ASSERT_EQ(::stat(deep.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_TRUE(create_full_path(deep).ok());  // already there
}

TEST(CreateFullPath, ErrorNamesTheDirectory) {
  TempDir d;
  std::string file = d.path + "/plain";
  ASSERT_EQ(::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  Status s = create_full_path(file + "/sub");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "mkdir() \"" + file + "/sub\" failed (20: Not a directory)");
}

TEST(CreateTempFile, LevelsAndUnlink) {
  TempDir d;
  TempPath path{d.path + "/tmp", {1, 2, 0}};
  Pool pool;
  TempFile tf;
  ASSERT_TRUE(create_temp_file(tf, pool, path).ok());
  ASSERT_GE(tf.file.fd, 0);
  std::string name(tf.file.name);
  // <path>/<last digit>/<two before it>/<10-digit number>, unlinked at once.
  ASSERT_EQ(name.size(), path.name.size() + 1 + 1 + 1 + 2 + 1 + 10);
  EXPECT_EQ(name.substr(path.name.size() + 1, 1), name.substr(name.size() - 1));
  EXPECT_EQ(name.substr(path.name.size() + 3, 2), name.substr(name.size() - 3, 2));
  EXPECT_NE(::access(name.c_str(), F_OK), 0);
}

TEST(CreateTempFile, UnwritableDirectoryIsAnErrorNamingTheFile) {
  if (::geteuid() == 0) {
    // root writes anywhere: a path under a plain file fails for everyone.
    TempDir d;
    std::string file = d.path + "/plain";
    ASSERT_EQ(::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0600)), 0);
    TempPath path{file, {0, 0, 0}};
    Pool pool;
    TempFile tf;
    Status s = create_temp_file(tf, pool, path);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.message().rfind("open() \"" + file + "/", 0), 0u) << s.message();
    EXPECT_NE(s.message().find("(20: Not a directory)"), std::string::npos) << s.message();
    return;
  }
  TempDir d;
  ASSERT_EQ(::chmod(d.path.c_str(), 0500), 0);
  TempPath path{d.path, {0, 0, 0}};
  Pool pool;
  TempFile tf;
  Status s = create_temp_file(tf, pool, path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("(13: Permission denied)"), std::string::npos) << s.message();
  ::chmod(d.path.c_str(), 0700);
}

}  // namespace
}  // namespace weir
