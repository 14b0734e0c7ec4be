#include "http/file_aio.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "conf/thread_pools.h"
#include "event/event_loop.h"
#include "http/core_module.h"

namespace weir::http {

namespace {

// A thread brings in this much past what is asked for at once, so that reading output_buffers'
// 32k at a time does not cost a thread's round trip each.
constexpr off_t kReadAhead = 512 * 1024;
// And at most this much per task (sendfile_max_chunk 0 asks for no limit).
constexpr off_t kMaxRange = 4 * 1024 * 1024;

struct PreloadTask;
struct DirectReadTask;

}  // namespace

// A request's file range: the one brought in, or the task bringing one in; for a directio file,
// the read being made in a thread, or made and waiting to be taken.
struct FileAio {
  Request* r = nullptr;
  const File* file = nullptr;
  int fd = -1;
  off_t from = 0;
  off_t to = 0;
  PreloadTask* pending = nullptr;
  DirectReadTask* direct_pending = nullptr;
  DirectReadTask* direct_done = nullptr;
  Pool::Cleanup cleanup{};
};

namespace {

struct PreloadTask : ThreadTask {
  int fd = -1;
  off_t pos = 0;
  off_t size = 0;
  FileAio* owner = nullptr;  // nullptr once the request is gone; read and written in the loop only
};

TaskCache<PreloadTask> g_tasks;

// directio: the thread reads into the task's buffer (the request's may be gone when it is done);
// the loop copies it out.
struct DirectReadTask : ThreadTask {
  File file;
  off_t pos = 0;
  off_t size = 0;
  std::vector<char> data;
  ssize_t got = 0;
  int err = 0;
  bool aio_request = false;  // counted among the loop's worker_aio_requests (aio on)
  FileAio* owner = nullptr;  // nullptr once the request is gone; read and written in the loop only
};

TaskCache<DirectReadTask> g_direct_tasks;

void read_direct(ThreadTask& t) {
  auto& task = static_cast<DirectReadTask&>(t);
  task.got =
      read_file_direct(task.file, task.data.data(), static_cast<size_t>(task.size), task.pos);
  task.err = task.got < 0 ? errno : 0;
}

void direct_read_done(ThreadTask& t) {
  auto& task = static_cast<DirectReadTask&>(t);
  if (task.aio_request) {
    task.aio_request = false;
    EventLoop::current->release_aio_request();
  }
  FileAio* a = task.owner;
  if (a == nullptr) {
    g_direct_tasks.put(&task);
    return;
  }
  a->direct_pending = nullptr;
  a->direct_done = &task;
  post_event(a->r->connection->write);
}

// In the thread. Only the descriptor is the request's: if the request ended and it now names
// another file or a socket, the read is of no use or fails, and nothing is written anywhere.
void preload(ThreadTask& t) {
  auto& task = static_cast<PreloadTask&>(t);
  constexpr size_t kScratch = 256 * 1024;
  thread_local std::unique_ptr<char[]> scratch(new char[kScratch]);
  off_t pos = task.pos;
  off_t end = task.pos + task.size;
  while (pos < end) {
    size_t n = static_cast<size_t>(std::min<off_t>(end - pos, static_cast<off_t>(kScratch)));
    ssize_t got = ::pread(task.fd, scratch.get(), n, pos);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    pos += got;
  }
}

// In the loop: the request, if it is still there, goes on.
void preloaded(ThreadTask& t) {
  auto& task = static_cast<PreloadTask&>(t);
  FileAio* a = task.owner;
  g_tasks.put(&task);
  if (a == nullptr) return;
  a->pending = nullptr;
  a->fd = task.fd;
  a->from = task.pos;
  // A failed read is not reported here: the send or read that follows meets the error itself
  // and logs it in nginx's words.
  a->to = task.pos + task.size;
  post_event(a->r->connection->write);
}

ThreadPool* pool_of(Request& r, const CoreLocConf& clcf) {
  if (clcf.thread_pool_value == nullptr) return clcf.thread_pool;
  std::string_view name = clcf.thread_pool_value->eval(r);
  ThreadPool* tp = find_thread_pool(*core_main(r).cycle, name);
  if (tp == nullptr) {
    log_error(LogLevel::Error, r.log(), 0, "thread pool \"%.*s\" not found",
              static_cast<int>(name.size()), name.data());
  }
  return tp;
}

FileAio& aio_state(Request& main) {
  if (main.file_aio != nullptr) return *main.file_aio;
  auto* a = main.pool->make<FileAio>();
  a->r = &main;
  main.file_aio = a;
  // A task still at work when the request goes finds no one to wake.
  main.pool->add_cleanup(
      a->cleanup,
      [](void* p) {
        auto* fa = static_cast<FileAio*>(p);
        if (fa->pending != nullptr) fa->pending->owner = nullptr;
        if (fa->direct_pending != nullptr) fa->direct_pending->owner = nullptr;
        if (fa->direct_done != nullptr) g_direct_tasks.put(fa->direct_done);
      },
      a);
  return *a;
}

}  // namespace

ThreadPool* aio_thread_pool(Request& r) {
  const CoreLocConf& clcf = core_loc(r);
  return *clcf.aio == AioMode::Threads ? pool_of(r, clcf) : nullptr;
}

Rc file_aio_ready(Request& r, const Buffer& b, off_t want, off_t& ready) {
  ready = want;
  const CoreLocConf& clcf = core_loc(r);
  if (*clcf.aio != AioMode::Threads || want == 0) return Rc::Ok;
  Request& main = *r.main;
  FileAio* a = main.file_aio;
  if (a != nullptr) {
    if (a->pending != nullptr) return Rc::Again;
    if (a->file == b.file && a->fd == b.file->fd && b.file_pos >= a->from && b.file_pos < a->to) {
      ready = std::min(want, a->to - b.file_pos);
      return Rc::Ok;
    }
  }
  ThreadPool* tp = pool_of(r, clcf);
  if (tp == nullptr) return Rc::Error;
  if (!tp->running()) return Rc::Ok;  // not in a worker (cannot happen) - read in the loop
  if (a == nullptr) a = &aio_state(main);
  PreloadTask* task = g_tasks.get(preload, preloaded);
  off_t avail = b.file_last - b.file_pos;
  task->fd = b.file->fd;
  task->pos = b.file_pos;
  off_t size = std::min({avail, std::max(want, kReadAhead), kMaxRange});
  // To a page's end, as a send that stops inside a page goes on to its end (chain_coalesce_file).
  off_t end = (b.file_pos + size + 4095) & ~off_t{4095};
  task->size = end <= b.file_last ? end - b.file_pos : size;
  task->owner = a;
  a->file = b.file;
  if (!tp->post(*task, r.log())) {
    // The queue is full (logged): this range is read in the loop rather than failing the request.
    g_tasks.put(task);
    return Rc::Ok;
  }
  a->pending = task;
  return Rc::Again;
}

Rc file_aio_sendable(Request& r, off_t& limit) {
  off_t before = 0;  // bytes ahead of the file range in question
  for (ChainLink* cl = r.out; cl != nullptr; cl = cl->next) {
    const Buffer& b = *cl->buf;
    if (limit != 0 && before >= limit) return Rc::Ok;
    if (!b.in_file || b.in_memory()) {
      before += b.size();
      continue;
    }
    off_t want = b.size();
    if (limit != 0) want = std::min(want, limit - before);
    off_t ready;
    Rc rc = file_aio_ready(r, b, std::min(want, kMaxRange), ready);
    if (rc == Rc::Error) return rc;
    if (rc == Rc::Again) {
      if (before == 0) return Rc::Again;
      limit = before;  // what comes before it goes now
      return Rc::Ok;
    }
    if (ready < b.size()) {
      limit = before + ready;
      return Rc::Ok;
    }
    before += b.size();
  }
  return Rc::Ok;
}

}  // namespace weir::http

namespace weir::http {

Rc file_aio_read_direct(Request& r, const Buffer& b, char* dst, off_t size, ssize_t& n) {
  FileAio& a = aio_state(*r.main);
  if (a.direct_pending != nullptr) return Rc::Again;
  if (DirectReadTask* t = a.direct_done) {
    a.direct_done = nullptr;
    g_direct_tasks.put(t);
    if (t->file.fd == b.file->fd && t->pos == b.file_pos && t->size == size) {
      if (t->got < 0) {
        n = -1;
        errno = t->err;
        return Rc::Ok;
      }
      n = t->got;
      std::memcpy(dst, t->data.data(), static_cast<size_t>(n));
      return Rc::Ok;
    }
  }
  const CoreLocConf& clcf = core_loc(r);
  ThreadPool* tp = pool_of(r, clcf);
  if (tp == nullptr) return Rc::Error;
  // aio on: worker_aio_requests reads at a time, the next ones here (nginx's io_submit() EAGAIN).
  bool aio_request = *clcf.aio == AioMode::On;
  if (!tp->running() || (aio_request && !EventLoop::current->take_aio_request())) {
    n = read_file_direct(*b.file, dst, static_cast<size_t>(size), b.file_pos);
    return Rc::Ok;
  }
  DirectReadTask* task = g_direct_tasks.get(read_direct, direct_read_done);
  task->file = *b.file;
  task->pos = b.file_pos;
  task->size = size;
  task->data.resize(static_cast<size_t>(size));
  task->aio_request = aio_request;
  if (!tp->post(*task, r.log())) {
    // The queue is full (logged): read here.
    if (aio_request) EventLoop::current->release_aio_request();
    g_direct_tasks.put(task);
    n = read_file_direct(*b.file, dst, static_cast<size_t>(size), b.file_pos);
    return Rc::Ok;
  }
  task->owner = &a;
  a.direct_pending = task;
  return Rc::Again;
}

}  // namespace weir::http
