#include "conf/cycle.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "conf/conf_context.h"
#include "conf/module.h"
#include "core/str.h"

namespace weir {

OpenFile* Cycle::open_file(const std::string& name) {
  for (OpenFile& f : open_files) {
    if (f.name == name) return &f;
  }
  open_files.push_back(OpenFile{name});
  return &open_files.back();
}

Status Cycle::add_path(const TempPath* path) {
  for (const TempPath* p : paths) {
    if (p->name == path->name) {
      if (p->level != path->level) {
        return Status::errorf("the same path name \"%s\" used with different levels",
                              path->name.c_str());
      }
      return {};
    }
  }
  paths.push_back(path);
  return {};
}

Status parse_zone_param(std::string_view arg, std::string& name, size_t& size) {
  size_t colon = arg.find(':');
  std::string text(arg);
  if (colon == std::string_view::npos)
    return Status::errorf("invalid zone size \"%s\"", text.c_str());
  auto v = parse_size(arg.substr(colon + 1));
  if (!v) return Status::errorf("invalid zone size \"%s\"", text.c_str());
  if (*v < static_cast<int64_t>(8 * SlabPool::kPageSize)) {
    return Status::errorf("zone \"%s\" is too small", text.c_str());
  }
  name = text.substr(5, colon - 5);
  size = static_cast<size_t>(*v);
  return {};
}

Result<SharedZone*> Cycle::add_zone(const std::string& name, size_t size, const void* tag) {
  for (SharedZone& z : zones) {
    if (z.name != name) continue;
    if (z.tag != tag) {
      return Status::errorf("the shared memory zone \"%s\" is already declared for a different use",
                            name.c_str());
    }
    if (size != 0 && z.size != 0 && z.size != size) {
      return Status::errorf(
          "the size %zu of shared memory zone \"%s\" conflicts with already declared size %zu",
          size, name.c_str(), z.size);
    }
    if (z.size == 0) z.size = size;
    return &z;
  }
  SharedZone& z = zones.emplace_back();
  z.name = name;
  z.size = size;
  z.tag = tag;
  return &z;
}

Status Cycle::load() {
  number_modules();
  auto modules = all_modules();
  confs.assign(modules.size(), nullptr);
  ConfContext cf(*this, pool);
  for (Module* m : modules) {
    if (m->type == ModuleType::Core && m->create_conf != nullptr)
      confs[m->index] = m->create_conf(cf);
  }
  reader = std::make_unique<ConfReader>(conf_prefix);
  std::vector<ConfNode> params;
  if (!conf_param.empty()) {
    if (Status s = reader->read_command_line(conf_param, params); !s.ok()) return s;
    if (Status s = cf.parse_block(params); !s.ok()) return s;
  }
  // Nodes must outlive processing: configuration objects keep pointers into them.
  auto* nodes = pool.make<std::vector<ConfNode>>();
  if (Status s = reader->read_file(conf_file, *nodes); !s.ok()) return s;
  if (Status s = cf.parse_block(*nodes); !s.ok()) return s;
  cf.node = nullptr;
  for (Module* m : modules) {
    if (m->type == ModuleType::Core && m->init_conf != nullptr) {
      if (Status s = m->init_conf(cf, confs[m->index]); !s.ok()) return s;
    }
  }
  return {};
}

Status Cycle::open_files_and_paths() {
  for (const TempPath* p : paths) {
    if (Status s = create_full_path(p->name); !s.ok()) return s;
  }
  for (OpenFile& f : open_files) {
    if (f.fd >= 0) continue;
    if (Status s = f.open(); !s.ok()) return s;
  }
  return {};
}

Status Cycle::open_listening(Cycle* old, bool test) {
  for (auto& ls : listening) {
    ls->log_sink = log_sink;
    if (old != nullptr) {
      // Kept across a reload: the old cycle's socket for the same address (closed by it if not
      // taken).
      for (auto& ols : old->listening) {
        if (ols->fd >= 0 && ols->addr == ls->addr && ols->worker == ls->worker &&
            ols->opt.reuseport == ls->opt.reuseport) {
          ls->fd = ols->fd;
          ls->inherited = true;
          break;
        }
      }
    }
    // A kept socket takes this configuration's choice (new ones are opened with it).
    if (ls->inherited && ls->addr.family() != AF_UNIX)
      set_rx_timestamps(ls->fd, ls->opt.rx_timestamps);
  }
  // As nginx: an address in use (an old server still going away) is tried 5 times, 500 ms apart,
  // each failure logged; -t leaves it to the running server.
  for (int tries = 5; tries > 0; tries--) {
    bool in_use = false;
    for (auto& ls : listening) {
      if (ls->fd >= 0) continue;
      Result<int> fd = open_listening_socket(ls->addr, ls->opt);
      if (fd.ok()) {
        ls->fd = *fd;
        continue;
      }
      const std::string& err = fd.status().message();
      if (err.find("(98:") == std::string::npos) return fd.status();
      if (test) continue;  // in use by the running server
      log_error(LogLevel::Emerg, log, 0, "%s", err.c_str());
      in_use = true;
    }
    if (!in_use) return {};
    if (tries > 1) {
      log_error(LogLevel::Notice, log, 0, "try again to bind() after 500ms");
      ::usleep(500 * 1000);
    }
  }
  return Status::error("still could not bind()");
}

Status Cycle::create_zones(Cycle* old) {
  for (SharedZone& z : zones) {
    if (z.size == 0) {
      return Status::errorf("zero size shared memory zone \"%s\"", z.name.c_str());
    }
    void* old_data = nullptr;
    SharedZone* oz = nullptr;  // the old configuration's zone of this name and use
    if (old != nullptr) {
      auto same = [&](const SharedZone& o) {
        return o.name == z.name && o.tag == z.tag && o.mapping != nullptr;
      };
      auto it = std::find_if(old->zones.begin(), old->zones.end(), same);
      if (it != old->zones.end()) oz = &*it;
    }
    if (oz != nullptr && z.noreuse) {
      // New memory: init carries what it chooses from the old zone (mapped until the old cycle
      // goes).
      old_data = oz->data;
    } else if (oz != nullptr && oz->size == z.size) {
      // The memory and the state in it go on; the old cycle keeps its share until it goes (a
      // failed reload leaves it whole).
      z.mapping = oz->mapping;
      z.addr = oz->addr;
      z.slab = oz->slab;
      old_data = oz->data;
    }
    if (z.addr == nullptr) {
      void* addr =
          ::mmap(nullptr, z.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (addr == MAP_FAILED) {
        return Status::errorf("mmap(MAP_ANON|MAP_SHARED, %zu) failed (%d: %s)", z.size, errno,
                              std::strerror(errno));
      }
      size_t size = z.size;
      z.mapping = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
      z.addr = addr;
      z.slab = SlabPool::create(addr, size);
      if (z.slab == nullptr) {
        return Status::errorf("zone \"%s\" is too small", z.name.c_str());
      }
    }
    if (z.init != nullptr) {
      if (Status s = z.init(z, old_data); !s.ok()) return s;
    }
  }
  return {};
}

void Cycle::unlock_zones(pid_t pid) {
  for (SharedZone& z : zones) {
    if (z.slab != nullptr && z.slab->mutex().force_unlock(pid)) {
      log_error(LogLevel::Alert, log, 0, "shared memory zone \"%s\" was locked by %d",
                z.name.c_str(), static_cast<int>(pid));
    }
  }
}

}  // namespace weir
