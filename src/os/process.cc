#include "os/process.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/status.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

extern char** environ;

namespace weir {

namespace {
char* g_title_start = nullptr;
size_t g_title_size = 0;
// The write end of the pipe the daemonizing parent waits on (-1 when not daemonized or already
// told).
int g_started_fd = -1;
}  // namespace

Status daemonize() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0)
    return Status::errorf("pipe2() failed (%d: %s)", errno, std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) return Status::errorf("fork() failed (%d: %s)", errno, std::strerror(errno));
  if (pid > 0) {
    // Exit only when the daemon has written its pid file (so `weir && cat weir.pid` and systemd's
    // Type=forking never race it), and exit 1 when the daemon died before that.
    ::close(fds[1]);
    char ok = 0;
    ssize_t n;
    do {
      n = ::read(fds[0], &ok, 1);
    } while (n < 0 && errno == EINTR);
    ::_exit(n == 1 && ok == '1' ? 0 : 1);
  }
  ::close(fds[0]);
  g_started_fd = fds[1];
  if (::setsid() < 0)
    return Status::errorf("setsid() failed (%d: %s)", errno, std::strerror(errno));
  ::umask(0);
  int fd = ::open("/dev/null", O_RDWR);
  if (fd < 0)
    return Status::errorf("open(\"/dev/null\") failed (%d: %s)", errno, std::strerror(errno));
  ::dup2(fd, STDIN_FILENO);
  ::dup2(fd, STDOUT_FILENO);
  if (fd > STDERR_FILENO) ::close(fd);
  return {};
}

void daemon_started() {
  if (g_started_fd < 0) return;
  ssize_t n;
  do {
    n = ::write(g_started_fd, "1", 1);
  } while (n < 0 && errno == EINTR);
  ::close(g_started_fd);
  g_started_fd = -1;
}

void init_proc_title(int argc, char** argv) {
  if (argc == 0 || argv[0] == nullptr) return;
  // argv strings and then environ strings usually lie back to back: the title may use all of it
  // once environ is copied elsewhere.
  char* end = argv[0] + std::strlen(argv[0]) + 1;
  for (int i = 1; i < argc; i++) {
    if (argv[i] == end) end = argv[i] + std::strlen(argv[i]) + 1;
  }
  size_t n = 0;
  while (environ[n] != nullptr) n++;
  char** env = static_cast<char**>(std::malloc((n + 1) * sizeof(char*)));
  for (size_t i = 0; i < n; i++) {
    if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
    env[i] = ::strdup(environ[i]);
  }
  env[n] = nullptr;
  // Kept for the life of the process: environ may later point elsewhere (the "env" directive) while
  // its strings stay in use.
  static char** environ_copy = env;
  environ = environ_copy;
  g_title_start = argv[0];
  g_title_size = end - argv[0];
  for (int i = 1; i < argc; i++) argv[i] = nullptr;
}

void check_leaks() {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_do_leak_check();
#endif
}

// The command line shows the title; the kernel's name stays the binary's ("weir"), as nginx's does,
// so that pidof, pgrep -x, ps -C and killall find the processes.
void set_proc_title(const std::string& title) {
  if (g_title_start == nullptr || g_title_size < 2) return;
  size_t n = std::min(title.size(), g_title_size - 1);
  // NOLINTNEXTLINE(bugprone-not-null-terminated-result): the memset below terminates it
  std::memcpy(g_title_start, title.data(), n);
  std::memset(g_title_start + n, 0, g_title_size - n);
}

Status set_nofile_limit(long n) {
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(n);
  if (::setrlimit(RLIMIT_NOFILE, &rl) < 0) {
    return Status::errorf("setrlimit(RLIMIT_NOFILE, %ld) failed (%d: %s)", n, errno,
                          std::strerror(errno));
  }
  return {};
}

Status switch_user(uid_t uid, gid_t gid, const std::string& user, bool keep_net_raw) {
  if (::setgid(gid) < 0) {
    return Status::errorf("setgid(%d) failed (%d: %s)", static_cast<int>(gid), errno,
                          std::strerror(errno));
  }
  if (::initgroups(user.c_str(), gid) < 0) {
    return Status::errorf("initgroups(%s, %d) failed (%d: %s)", user.c_str(), static_cast<int>(gid),
                          errno, std::strerror(errno));
  }
  if (keep_net_raw && ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
    return Status::errorf("prctl(PR_SET_KEEPCAPS, 1) failed (%d: %s)", errno, std::strerror(errno));
  }
  if (::setuid(uid) < 0) {
    return Status::errorf("setuid(%d) failed (%d: %s)", static_cast<int>(uid), errno,
                          std::strerror(errno));
  }
  if (keep_net_raw) {
    // Of what setuid() kept, CAP_NET_RAW alone, and in effect.
    __user_cap_header_struct header{};
    header.version = _LINUX_CAPABILITY_VERSION_1;
    __user_cap_data_struct data{};
    data.effective = data.permitted = 1u << CAP_NET_RAW;
    if (::syscall(SYS_capset, &header, &data) < 0) {
      return Status::errorf("capset() failed (%d: %s)", errno, std::strerror(errno));
    }
  }
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  return {};
}

}  // namespace weir
