// aio threads: before the event loop sends a file range (sendfile) or reads it into a buffer, a
// thread of the location's pool reads it, so that its pages are in the page cache and the loop
// never waits for the disk; the request waits for the thread meanwhile, woken by its write event.
// The thread reads into a buffer of its own and touches nothing of the request's, so a request that
// ends while its range is being read only leaves the task to finish alone. nginx does the
// sendfile() or the pread() itself in the thread (ngx_linux_sendfile_thread, ngx_thread_read);
// reading ahead of the loop gives the same: no disk wait in the loop.
#pragma once

#include "core/buffer.h"
#include "event/thread_pool.h"
#include "http/request.h"

namespace weir::http {

// How much of the file buffer b, from its file_pos, may be read or sent now without waiting for
// the disk: Ok with ready (up to want), Again while a thread reads it (the request's write event
// comes when it has), Error (a pool named by a variable that does not exist; logged).
Rc file_aio_ready(Request& r, const Buffer& b, off_t want, off_t& ready);

// directio with aio: size bytes of b from its file_pos read in a thread of the location's pool; Ok
// with n (as read_file_direct answers) once read, Again meanwhile (the write event comes), Error
// (no such pool; logged).
Rc file_aio_read_direct(Request& r, const Buffer& b, char* dst, off_t size, ssize_t& n);

// The location's pool with `aio threads` (nullptr without; or when a pool named by a variable does
// not exist, which is logged).
ThreadPool* aio_thread_pool(Request& r);

// The bytes of r.out the write filter may send now, up to limit (0: no limit), or Again while the
// first file range is read.
Rc file_aio_sendable(Request& r, off_t& limit);

}  // namespace weir::http
