#include "modules/mp4/mp4_cut.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/file.h"

namespace weir::http {

namespace {

// Atom fields are big-endian.
uint32_t get32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | u[3];
}
uint64_t get64(const char* p) {
  return uint64_t{get32(p)} << 32 | get32(p + 4);
}
void set32(char* p, uint64_t v) {  // the low 32 bits, as nginx's ngx_mp4_set_32value
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
void set64(char* p, uint64_t v) {
  set32(p, v >> 32);
  set32(p + 4, v);
}
void set_name(char* header, std::string_view name) {
  std::memcpy(header + 4, name.data(), 4);
}
// A duration field: 32 bits in version 0 atoms, 64 in version 1.
void set_duration(char* p, bool v1, uint64_t duration) {
  if (v1) {
    set64(p, duration);
  } else {
    set32(p, duration);
  }
}

constexpr size_t kHeader = 8;                // size, name
constexpr size_t kHeader64 = 16;             // size 1, name, 64-bit size
constexpr size_t kFullHeader = kHeader + 4;  // and version, flags
// Room kept after a moov atom that precedes mdat, to read on to mdat's header without a new
// buffer (nginx's NGX_HTTP_MP4_MOOV_BUFFER_EXCESS).
constexpr size_t kMoovBufferExcess = 4 * 1024;

// Sizes of the fixed atoms (header included), version 0 and version 1, and where their fields are.
constexpr size_t kMvhdSize = 108, kMvhd64Size = 120;
constexpr size_t kTkhdSize = 92, kTkhd64Size = 100;
constexpr size_t kMdhdSize = 32, kMdhd64Size = 44;
constexpr size_t kStsdSize = 24;
constexpr size_t kTableSize = kFullHeader + 4;  // stts, stss, ctts, stsc, stco, co64: entries
constexpr size_t kStszSize = kFullHeader + 8;   // uniform size, entries

}  // namespace

Mp4Cut::Mp4Cut(Pool& pool, const Log& log, int fd, std::string_view cached, std::string_view name,
               off_t file_size, uint64_t start, uint64_t length, const Mp4Settings& settings)
    : pool_(pool),
      log_(log),
      fd_(fd),
      cached_(cached),
      name_(name),
      end_(file_size),
      start_(start),
      length_(length),
      settings_(settings),
      buffer_size_(settings.buffer_size),
      tracks_(&pool),
      pieces_(&pool) {}

void Mp4Cut::error(const char* fmt, ...) const {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  log_error(LogLevel::Error, log_, 0, "%s", text);
}

// Makes size bytes at buffer_pos_ readable: reads buffer_size_ bytes from offset_ (fewer at the
// end of the file) when they are not there already.
Mp4Cut::Step Mp4Cut::read(size_t size) {
  if (buffer_pos_ != nullptr && size <= static_cast<size_t>(buffer_end_ - buffer_pos_)) {
    return Step::Ok;
  }
  if (offset_ + static_cast<off_t>(buffer_size_) > end_) {
    buffer_size_ = static_cast<size_t>(end_ - offset_);
  }
  if (buffer_size_ < size) {
    error("\"%s\" mp4 file truncated", name_.data());
    return Step::Error;
  }
  if (buffer_ == nullptr) {
    buffer_ = pool_.alloc_bytes(buffer_size_);
    buffer_start_ = buffer_;
  }
  ssize_t n;
  if (cached_.data() != nullptr) {
    std::string_view part =
        cached_.substr(std::min(static_cast<size_t>(offset_), cached_.size()), buffer_size_);
    std::memcpy(buffer_start_, part.data(), part.size());
    n = static_cast<ssize_t>(part.size());
  } else {
    n = read_file(File{.fd = fd_, .name = name_, .log = &log_}, buffer_start_, buffer_size_,
                  offset_);
  }
  if (n < 0) {
    log_error(LogLevel::Crit, log_, errno, "pread() \"%s\" failed", name_.data());
    return Step::Error;
  }
  if (static_cast<size_t>(n) != buffer_size_) {
    log_error(LogLevel::Crit, log_, 0, "pread() read only %zd of %zu from \"%s\"", n, buffer_size_,
              name_.data());
    return Step::Error;
  }
  buffer_pos_ = buffer_start_;
  buffer_end_ = buffer_start_ + buffer_size_;
  return Step::Ok;
}

// Past n bytes of the file; the buffer is given up when they go beyond it.
void Mp4Cut::next(uint64_t n) {
  auto left = static_cast<uint64_t>(buffer_end_ - buffer_pos_);
  buffer_pos_ = n > left ? buffer_end_ : buffer_pos_ + n;
  offset_ += static_cast<off_t>(n);
}

bool Mp4Cut::duplicate(const Span& s, const char* what) {
  if (!s.set()) return false;
  error("duplicate mp4 %s atom in \"%s\"", what, name_.data());
  return true;
}

bool Mp4Cut::too_small(uint64_t need, uint64_t data_size, const char* atom) {
  if (need - kHeader <= data_size) return false;
  error("\"%s\" mp4 %s atom too small", name_.data(), atom);
  return true;
}

// The atoms of a container (the file: data_size is its size) one after another: those named in
// atoms go to their reader, the rest are skipped. A size of 0 ends the container.
Mp4Cut::Step Mp4Cut::read_atoms(std::span<const AtomHandler> atoms, uint64_t data_size) {
  off_t end = offset_ + static_cast<off_t>(data_size);
  while (offset_ < end) {
    if (Step s = read(4); s != Step::Ok) return s;
    uint64_t atom_size = get32(buffer_pos_);
    size_t header_size = kHeader;
    if (atom_size == 0) return Step::Ok;
    if (atom_size < kHeader) {
      if (atom_size != 1) {
        error("\"%s\" mp4 atom is too small:%llu", name_.data(),
              static_cast<unsigned long long>(atom_size));
        return Step::Error;
      }
      if (Step s = read(kHeader64); s != Step::Ok) return s;
      atom_size = get64(buffer_pos_ + kHeader);
      header_size = kHeader64;
      if (atom_size < kHeader64) {
        error("\"%s\" mp4 atom is too small:%llu", name_.data(),
              static_cast<unsigned long long>(atom_size));
        return Step::Error;
      }
    }
    if (Step s = read(kHeader); s != Step::Ok) return s;
    std::string_view name(buffer_pos_ + 4, 4);
    if (atom_size > static_cast<uint64_t>(std::numeric_limits<off_t>::max() - offset_) ||
        offset_ + static_cast<off_t>(atom_size) > end) {
      error("\"%s\" mp4 atom too large:%llu", name_.data(),
            static_cast<unsigned long long>(atom_size));
      return Step::Error;
    }
    const AtomHandler* handler = nullptr;
    for (const AtomHandler& a : atoms) {
      if (a.name == name) handler = &a;
    }
    if (handler == nullptr) {
      next(atom_size);
      continue;
    }
    next(header_size);
    // An atom with a 64-bit size goes out with a 32-bit one: its header is rewritten in the 8
    // bytes before the data, so the name is the handler's, not read back from there.
    current_ = handler->name;
    if (Step s = (this->*handler->handler)(atom_size - header_size); s != Step::Ok) return s;
  }
  return Step::Ok;
}

Mp4Cut::Step Mp4Cut::read_ftyp(uint64_t data_size) {
  if (data_size > 1024 || data_size > static_cast<uint64_t>(buffer_end_ - buffer_pos_)) {
    error("\"%s\" mp4 ftyp atom is too large:%llu", name_.data(),
          static_cast<unsigned long long>(data_size));
    return Step::Error;
  }
  if (duplicate(ftyp_, "ftyp")) return Step::Error;
  // Only the moov atom's bytes stay in the buffer while the answer goes out: ftyp is copied.
  size_t atom_size = kHeader + data_size;
  char* atom = pool_.alloc_bytes(atom_size);
  set32(atom, atom_size);
  set_name(atom, "ftyp");
  std::memcpy(atom + kHeader, buffer_pos_, data_size);
  ftyp_ = {atom, atom + atom_size};
  ftyp_size_ = atom_size;
  content_length_ = static_cast<off_t>(atom_size);
  next(data_size);
  return Step::Ok;
}

Mp4Cut::Step Mp4Cut::read_moov(uint64_t data_size) {
  bool no_mdat = !mdat_read_;
  // moov before mdat and the whole file asked for: the file as it is.
  if (no_mdat && start_ == 0 && length_ == 0) return Step::Declined;
  if (moov_read_) {
    error("duplicate mp4 moov atom in \"%s\"", name_.data());
    return Step::Error;
  }
  if (data_size > buffer_size_) {
    if (data_size > settings_.max_buffer_size) {
      error(
          "\"%s\" mp4 moov atom is too large:%llu, you may want to increase "
          "mp4_max_buffer_size",
          name_.data(), static_cast<unsigned long long>(data_size));
      return Step::Error;
    }
    if (buffer_ != nullptr) pool_.free_large(buffer_);
    buffer_ = buffer_pos_ = buffer_end_ = nullptr;
    buffer_size_ = data_size + (no_mdat ? kMoovBufferExcess : 0);
  }
  if (Step s = read(data_size); s != Step::Ok) return s;
  moov_read_ = true;
  static constexpr AtomHandler kMoovAtoms[] = {
      {"mvhd", &Mp4Cut::read_mvhd},
      {"trak", &Mp4Cut::read_trak},
      {"cmov", &Mp4Cut::read_cmov},
  };
  Step s = read_atoms(kMoovAtoms, data_size);
  if (no_mdat) {
    // The moov atom's bytes stay where they are: reading on to mdat uses what follows them, or a
    // buffer of its own.
    buffer_start_ = buffer_pos_;
    buffer_size_ = kMoovBufferExcess;
    if (buffer_start_ == nullptr ||
        static_cast<size_t>(buffer_end_ - buffer_start_) < buffer_size_) {
      buffer_ = buffer_pos_ = buffer_end_ = nullptr;
    }
  } else {
    offset_ = end_;  // what follows moov is not read
  }
  return s;
}

Mp4Cut::Step Mp4Cut::read_mdat(uint64_t data_size) {
  if (mdat_read_) {
    error("duplicate mp4 mdat atom in \"%s\"", name_.data());
    return Step::Error;
  }
  mdat_read_ = true;
  data_end_ = offset_ + static_cast<off_t>(data_size);
  if (!tracks_.empty()) {
    offset_ = end_;  // moov was read: nothing more is needed
  } else {
    next(data_size);
  }
  return Step::Ok;
}

// What is left of a duration from start_time on (both in the timescale's units), at most the length
// asked for.
uint64_t Mp4Cut::kept(uint64_t duration, uint64_t start_time, uint32_t timescale) const {
  duration -= start_time;
  return length_ != 0 ? std::min(duration, length_ * timescale / 1000) : duration;
}

Mp4Cut::Step Mp4Cut::read_mvhd(uint64_t data_size) {
  if (mvhd_.set()) {
    error("duplicate mp4 mvhd atom in \"%s\"", name_.data());
    return Step::Error;
  }
  char* atom = atom_header();
  set_name(atom, "mvhd");
  if (too_small(kMvhdSize, data_size, "mvhd")) return Step::Error;
  bool v1 = atom[8] != 0;
  if (v1 && too_small(kMvhd64Size, data_size, "mvhd")) return Step::Error;
  uint32_t timescale = get32(atom + (v1 ? 28 : 20));
  uint64_t duration = v1 ? get64(atom + 32) : get32(atom + 24);
  timescale_ = timescale;
  uint64_t start_time = start_ * timescale / 1000;
  if (duration < start_time) {
    error("\"%s\" mp4 start time exceeds file duration", name_.data());
    return Step::Error;
  }
  duration = kept(duration, start_time, timescale);
  size_t atom_size = kHeader + data_size;
  set32(atom, atom_size);
  set_duration(atom + (v1 ? 32 : 24), v1, duration);
  mvhd_ = {atom, atom + atom_size};
  next(data_size);
  return Step::Ok;
}

Mp4Cut::Step Mp4Cut::read_trak(uint64_t data_size) {
  Track& t = tracks_.emplace_back();
  char* atom = atom_header();
  set_name(atom, "trak");
  t.out[kTrak] = {atom, atom + kHeader};
  char* atom_end = buffer_pos_ + data_size;
  off_t atom_file_end = offset_ + static_cast<off_t>(data_size);
  static constexpr AtomHandler kTrakAtoms[] = {
      {"tkhd", &Mp4Cut::read_tkhd},
      {"mdia", &Mp4Cut::read_container},
  };
  Step s = read_atoms(kTrakAtoms, data_size);
  if (s == Step::Declined) {  // a track that ends before the start is left out
    tracks_.pop_back();
    buffer_pos_ = atom_end;
    offset_ = atom_file_end;
    return Step::Ok;
  }
  return s;
}

Mp4Cut::Step Mp4Cut::read_cmov(uint64_t) {
  error("\"%s\" mp4 compressed moov atom (cmov) is not supported", name_.data());
  return Step::Error;
}

Mp4Cut::Step Mp4Cut::read_tkhd(uint64_t data_size) {
  char* atom = atom_header();
  set_name(atom, "tkhd");
  if (too_small(kTkhdSize, data_size, "tkhd")) return Step::Error;
  bool v1 = atom[8] != 0;
  if (v1 && too_small(kTkhd64Size, data_size, "tkhd")) return Step::Error;
  uint64_t duration = v1 ? get64(atom + 36) : get32(atom + 28);
  uint64_t start_time = start_ * timescale_ / 1000;
  if (duration <= start_time) return Step::Declined;
  duration = kept(duration, start_time, timescale_);
  size_t atom_size = kHeader + data_size;
  Track& t = last_track();
  if (duplicate(t.out[kTkhd], "tkhd")) return Step::Error;
  t.tkhd_size = atom_size;
  t.movie_duration = duration;
  set32(atom, atom_size);
  set_duration(atom + (v1 ? 36 : 28), v1, duration);
  t.out[kTkhd] = {atom, atom + atom_size};
  next(data_size);
  return Step::Ok;
}

// mdia, minf and stbl: their header now (its size is known once the children are cut), then the
// children.
Mp4Cut::Step Mp4Cut::read_container(uint64_t data_size) {
  static constexpr AtomHandler kMdiaAtoms[] = {
      {"mdhd", &Mp4Cut::read_mdhd},
      {"hdlr", &Mp4Cut::read_whole},
      {"minf", &Mp4Cut::read_container},
  };
  static constexpr AtomHandler kMinfAtoms[] = {
      {"vmhd", &Mp4Cut::read_whole},
      {"smhd", &Mp4Cut::read_whole},
      {"dinf", &Mp4Cut::read_whole},
      {"stbl", &Mp4Cut::read_container},
  };
  static constexpr AtomHandler kStblAtoms[] = {
      {"stsd", &Mp4Cut::read_stsd},  {"stts", &Mp4Cut::read_table}, {"stss", &Mp4Cut::read_table},
      {"ctts", &Mp4Cut::read_table}, {"stsc", &Mp4Cut::read_table}, {"stsz", &Mp4Cut::read_stsz},
      {"stco", &Mp4Cut::read_table}, {"co64", &Mp4Cut::read_table},
  };
  std::string_view name = current_;
  Part part = name == "mdia" ? kMdia : name == "minf" ? kMinf : kStbl;
  std::span<const AtomHandler> children = kStblAtoms;
  if (part == kMdia) children = kMdiaAtoms;
  if (part == kMinf) children = kMinfAtoms;
  char* atom = atom_header();
  set_name(atom, name);
  Track& t = last_track();
  std::string what(name);
  if (duplicate(t.out[part], what.c_str())) return Step::Error;
  t.out[part] = {atom, atom + kHeader};
  return read_atoms(children, data_size);
}

Mp4Cut::Step Mp4Cut::read_mdhd(uint64_t data_size) {
  char* atom = atom_header();
  set_name(atom, "mdhd");
  if (too_small(kMdhdSize, data_size, "mdhd")) return Step::Error;
  bool v1 = atom[8] != 0;
  if (v1 && too_small(kMdhd64Size, data_size, "mdhd")) return Step::Error;
  uint32_t timescale = get32(atom + (v1 ? 28 : 20));
  uint64_t duration = v1 ? get64(atom + 32) : get32(atom + 24);
  uint64_t start_time = start_ * timescale / 1000;
  if (duration <= start_time) return Step::Declined;
  duration = kept(duration, start_time, timescale);
  size_t atom_size = kHeader + data_size;
  Track& t = last_track();
  if (duplicate(t.out[kMdhd], "mdhd")) return Step::Error;
  t.mdhd_size = atom_size;
  t.timescale = timescale;
  t.duration = duration;
  set32(atom, atom_size);
  t.out[kMdhd] = {atom, atom + atom_size};
  next(data_size);
  return Step::Ok;
}

// hdlr, vmhd, smhd and dinf go out as they are.
Mp4Cut::Step Mp4Cut::read_whole(uint64_t data_size) {
  std::string_view name = current_;
  char* atom = atom_header();
  size_t atom_size = kHeader + data_size;
  set32(atom, atom_size);
  set_name(atom, name);
  Track& t = last_track();
  Part part;
  size_t* size;
  if (name == "hdlr") {
    if (duplicate(t.out[kHdlr], "hdlr")) return Step::Error;
    part = kHdlr;
    size = &t.hdlr_size;
  } else if (name == "dinf") {
    if (duplicate(t.out[kDinf], "dinf")) return Step::Error;
    part = kDinf;
    size = &t.dinf_size;
  } else {
    if (duplicate(t.out[t.out[kVmhd].set() ? kVmhd : kSmhd], "vmhd/smhd")) return Step::Error;
    part = name == "vmhd" ? kVmhd : kSmhd;
    size = part == kVmhd ? &t.vmhd_size : &t.smhd_size;
  }
  t.out[part] = {atom, atom + atom_size};
  *size += atom_size;
  next(data_size);
  return Step::Ok;
}

Mp4Cut::Step Mp4Cut::read_stsd(uint64_t data_size) {
  char* atom = atom_header();
  size_t atom_size = kHeader + data_size;
  set32(atom, atom_size);
  set_name(atom, "stsd");
  if (too_small(kStsdSize, data_size, "stsd")) return Step::Error;
  Track& t = last_track();
  if (duplicate(t.out[kStsd], "stsd")) return Step::Error;
  t.out[kStsd] = {atom, atom + atom_size};
  t.size += atom_size;
  next(data_size);
  return Step::Ok;
}

// The sample tables: a count of entries, then the entries, cut later (update_*). nginx checks a
// duplicate stts, stsc, stco or co64 after the table's size, a duplicate stss or ctts before it.
Mp4Cut::Step Mp4Cut::read_table(uint64_t data_size) {
  struct Table {
    std::string_view name;
    Part atom, data;
    size_t entry_size;
    bool duplicate_first;
    uint32_t Track::*entries;
  };
  static constexpr Table kTables[] = {
      {"stts", kStts, kSttsData, 8, false, &Track::time_to_sample_entries},
      {"stss", kStss, kStssData, 4, true, &Track::sync_samples_entries},
      {"ctts", kCtts, kCttsData, 8, true, &Track::composition_offset_entries},
      {"stsc", kStsc, kStscData, 12, false, &Track::sample_to_chunk_entries},
      {"stco", kStco, kStcoData, 4, false, &Track::chunks},
      {"co64", kCo64, kCo64Data, 8, false, &Track::chunks},
  };
  const Table& k = *std::find_if(std::begin(kTables), std::end(kTables),
                                 [&](const Table& x) { return x.name == current_; });
  std::string name(k.name);
  char* atom = atom_header();
  set_name(atom, k.name);
  if (too_small(kTableSize, data_size, name.c_str())) return Step::Error;
  uint32_t entries = get32(atom + kFullHeader);
  Track& t = last_track();
  bool offsets = k.atom == kStco || k.atom == kCo64;
  auto is_duplicate = [&] {
    if (offsets && (t.out[kStco].set() || t.out[kCo64].set())) {
      error("duplicate mp4 stco/co64 atom in \"%s\"", name_.data());
      return true;
    }
    return !offsets && duplicate(t.out[k.atom], name.c_str());
  };
  if (k.duplicate_first && is_duplicate()) return Step::Error;
  char* table = atom + kTableSize;
  if (k.duplicate_first) {
    t.*k.entries = entries;
    t.out[k.atom] = {atom, table};
  }
  if (too_small(kTableSize + uint64_t{entries} * k.entry_size, data_size, name.c_str())) {
    return Step::Error;
  }
  if (!k.duplicate_first) {
    if (is_duplicate()) return Step::Error;
    t.*k.entries = entries;
    t.out[k.atom] = {atom, table};
  }
  t.out[k.data] = {table, table + uint64_t{entries} * k.entry_size};
  next(data_size);
  return Step::Ok;
}

Mp4Cut::Step Mp4Cut::read_stsz(uint64_t data_size) {
  char* atom = atom_header();
  set_name(atom, "stsz");
  if (too_small(kStszSize, data_size, "stsz")) return Step::Error;
  uint32_t uniform = get32(atom + kFullHeader);
  uint32_t entries = get32(atom + kFullHeader + 4);
  Track& t = last_track();
  if (duplicate(t.out[kStsz], "stsz")) return Step::Error;
  t.sample_sizes_entries = entries;
  char* table = atom + kStszSize;
  t.out[kStsz] = {atom, table};
  if (uniform == 0) {
    if (too_small(kStszSize + uint64_t{entries} * 4, data_size, "stsz")) return Step::Error;
    t.out[kStszData] = {table, table + uint64_t{entries} * 4};
  } else {
    // Samples of one size: the atom goes out as it is (and, as in nginx, the samples of a chunk
    // cut by the start are not counted in its offset). All of it: nginx sends its first 20 bytes
    // and counts the rest in the length, which then says more than is sent.
    size_t atom_size = kHeader + data_size;
    set32(atom, atom_size);
    t.out[kStsz].last = atom + atom_size;
    t.size += atom_size;
  }
  next(data_size);
  return Step::Ok;
}

// A cut table's header: its new size (counted in the track's) and its number of entries, the
// header's last field.
void Mp4Cut::set_table_header(Track& t, Part part, size_t data_size, uint64_t entries) {
  size_t header = part == kStsz ? kStszSize : kTableSize;
  size_t atom_size = header + data_size;
  t.size += atom_size;
  char* atom = t.out[part].pos;
  set32(atom, atom_size);
  set32(atom + header - 4, entries);
}

// stts: the samples from the start time (moved back to a key frame with mp4_start_key_frame, the
// media before it then counted in the edit list's prefix) to the end time.
bool Mp4Cut::update_stts(Track& t) {
  Span& data = t.out[kSttsData];
  if (!data.set()) {
    error("no mp4 stts atoms were found in \"%s\"", name_.data());
    return false;
  }
  if (!crop_stts(t, true) || !crop_stts(t, false)) return false;
  set_table_header(t, kStts, data.size(), t.time_to_sample_entries);
  return true;
}

bool Mp4Cut::crop_stts(Track& t, bool start) {
  uint64_t when;
  if (start) {
    when = start_;
  } else if (length_ != 0) {
    when = length_;
  } else {
    return true;
  }
  Span& data = t.out[kSttsData];
  uint64_t start_time = when * t.timescale / 1000 + t.prefix;
  uint32_t entries = t.time_to_sample_entries;
  uint64_t start_sample = 0;
  char* first = data.pos;
  char* entry = data.pos;
  uint32_t count = 0, duration = 0, rest = 0;
  bool found = false;
  for (; entry < data.last; entry += 8) {
    count = get32(entry);
    duration = get32(entry + 4);
    if (start_time < uint64_t{count} * duration) {
      start_sample += start_time / duration;
      rest = static_cast<uint32_t>(start_time / duration);
      found = true;
      break;
    }
    start_sample += count;
    start_time -= static_cast<uint32_t>(count * duration);  // nginx's 32-bit product
    entries--;
  }
  if (!found) {
    if (start) {
      error("start time is out mp4 stts samples in \"%s\"", name_.data());
      return false;
    }
    t.end_sample = t.start_sample + start_sample;
    return true;
  }
  if (start) {
    uint32_t key_prefix = seek_key_frame(t, static_cast<uint32_t>(start_sample));
    start_sample -= key_prefix;
    while (rest < key_prefix && entry > first) {
      t.prefix += static_cast<uint32_t>(rest * duration);
      key_prefix -= rest;
      entry -= 8;
      entries++;
      count = get32(entry);
      duration = get32(entry + 4);
      rest = count;
    }
    key_prefix = std::min(key_prefix, rest);
    t.prefix += static_cast<uint32_t>(key_prefix * duration);
    t.duration += t.prefix;
    rest -= key_prefix;
    set32(entry, count - rest);
    data.pos = entry;
    t.time_to_sample_entries = entries;
    t.start_sample = start_sample;
  } else {
    set32(entry, rest);
    data.last = entry + 8;
    t.time_to_sample_entries -= entries - 1;
    t.end_sample = t.start_sample + start_sample;
  }
  return true;
}

// With mp4_start_key_frame, how many samples back the sync sample at or before start_sample is.
uint32_t Mp4Cut::seek_key_frame(Track& t, uint32_t start_sample) {
  const Span& data = t.out[kStssData];
  if (!settings_.start_key_frame || !data.set()) return 0;
  start_sample++;  // sync samples count from 1
  uint32_t key_prefix = 0;
  for (const char* entry = data.pos; entry < data.last; entry += 4) {
    uint32_t sample = get32(entry);
    if (sample > start_sample) break;
    key_prefix = start_sample - sample;
  }
  return key_prefix;
}

void Mp4Cut::update_stss(Track& t) {
  Span& data = t.out[kStssData];
  if (!data.set()) return;
  crop_stss(t, true);
  crop_stss(t, false);
  if (t.sync_samples_entries != 0) {
    auto start_sample = static_cast<uint32_t>(t.start_sample);
    for (char* entry = data.pos; entry < data.last; entry += 4) {
      set32(entry, get32(entry) - start_sample);
    }
  } else {
    t.out[kStssData] = {};
  }
  set_table_header(t, kStss, data.size(), t.sync_samples_entries);
}

void Mp4Cut::crop_stss(Track& t, bool start) {
  uint32_t start_sample;
  if (start) {
    start_sample = static_cast<uint32_t>(t.start_sample + 1);
  } else if (length_ != 0) {
    start_sample = static_cast<uint32_t>(t.end_sample + 1);
  } else {
    return;
  }
  Span& data = t.out[kStssData];
  uint32_t entries = t.sync_samples_entries;
  char* entry = data.pos;
  for (; entry < data.last && get32(entry) < start_sample; entry += 4) entries--;
  if (start) {
    data.pos = entry;
    t.sync_samples_entries = entries;
  } else {
    data.last = entry;
    t.sync_samples_entries -= entries;
  }
}

void Mp4Cut::update_ctts(Track& t) {
  Span& data = t.out[kCttsData];
  if (!data.set()) return;
  crop_ctts(t, true);
  crop_ctts(t, false);
  if (t.composition_offset_entries == 0) {
    t.out[kCtts] = {};
    t.out[kCttsData] = {};
    return;
  }
  set_table_header(t, kCtts, data.size(), t.composition_offset_entries);
}

void Mp4Cut::crop_ctts(Track& t, bool start) {
  uint32_t start_sample;
  if (start) {
    start_sample = static_cast<uint32_t>(t.start_sample + 1);
  } else if (length_ != 0) {
    start_sample = static_cast<uint32_t>(t.end_sample - t.start_sample + 1);
  } else {
    return;
  }
  Span& data = t.out[kCttsData];
  uint32_t entries = t.composition_offset_entries;
  for (char* entry = data.pos; entry < data.last; entry += 8) {
    uint32_t count = get32(entry);
    if (start_sample <= count) {
      uint32_t rest = start_sample - 1;
      if (start) {
        set32(entry, count - rest);
        data.pos = entry;
        t.composition_offset_entries = entries;
      } else {
        set32(entry, rest);
        data.last = entry + 8;
        t.composition_offset_entries -= entries - 1;
      }
      return;
    }
    start_sample -= count;
    entries--;
  }
  if (start) {
    data.pos = data.last;
    t.composition_offset_entries = 0;
  }
}

bool Mp4Cut::update_stsc(Track& t) {
  Span& data = t.out[kStscData];
  if (!data.set()) {
    error("no mp4 stsc atoms were found in \"%s\"", name_.data());
    return false;
  }
  if (t.sample_to_chunk_entries == 0) {
    error("zero number of entries in stsc atom in \"%s\"", name_.data());
    return false;
  }
  if (!crop_stsc(t, true) || !crop_stsc(t, false)) return false;
  for (char* entry = data.pos; entry < data.last; entry += 12) {
    set32(entry, get32(entry) - static_cast<uint32_t>(t.start_chunk));
  }
  set_table_header(t, kStsc, size_t{t.sample_to_chunk_entries} * 12, t.sample_to_chunk_entries);
  return true;
}

// stsc: the chunk the start (or end) sample is in, and how many of its samples go; a chunk split
// by the start or the end gets an entry of its own.
bool Mp4Cut::crop_stsc(Track& t, bool start) {
  uint32_t entries = t.sample_to_chunk_entries - 1;
  uint32_t start_sample;
  if (start) {
    start_sample = static_cast<uint32_t>(t.start_sample);
  } else if (length_ != 0) {
    start_sample = static_cast<uint32_t>(t.end_sample - t.start_sample);
    if (t.out[kStscStart].set()) {
      char* first = t.out[kStscStart].pos;
      uint32_t samples = get32(first + 4);
      entries--;
      if (samples > start_sample) {
        samples = start_sample;
        set32(first + 4, samples);
      }
      start_sample -= samples;
    }
  } else {
    return true;
  }
  Span& data = t.out[kStscData];
  char* entry = data.pos;
  uint32_t chunk = get32(entry);
  uint32_t samples = get32(entry + 4);
  uint32_t id = get32(entry + 8);
  uint32_t prev_samples = 0;
  uint32_t next_chunk = 0;
  bool found = false;
  for (entry += 12; entry < data.last; entry += 12) {
    next_chunk = get32(entry);
    uint32_t n = (next_chunk - chunk) * samples;
    if (start_sample < n) {
      found = true;
      break;
    }
    start_sample -= n;
    prev_samples = samples;
    chunk = next_chunk;
    samples = get32(entry + 4);
    id = get32(entry + 8);
    entries--;
  }
  if (!found) {
    next_chunk = t.chunks + 1;
    uint32_t n = (next_chunk - chunk) * samples;
    if (start_sample > n) {
      error("%s time is out mp4 stsc chunks in \"%s\"", start ? "start" : "end", name_.data());
      return false;
    }
  }
  entries++;
  entry -= 12;
  if (samples == 0) {
    error("zero number of samples in \"%s\"", name_.data());
    return false;
  }
  uint64_t target_chunk = static_cast<uint32_t>(chunk - 1);
  target_chunk += start_sample / samples;
  uint64_t chunk_samples = start_sample % samples;
  if (start) {
    data.pos = entry;
    t.sample_to_chunk_entries = entries;
    t.start_chunk = target_chunk;
    t.start_chunk_samples = chunk_samples;
    set32(entry, t.start_chunk + 1);
    samples -= static_cast<uint32_t>(chunk_samples);
  } else {
    if (start_sample != 0) {
      data.last = entry + 12;
      t.sample_to_chunk_entries -= entries - 1;
      t.end_chunk_samples = samples;
    } else {
      data.last = entry;
      t.sample_to_chunk_entries -= entries;
      t.end_chunk_samples = prev_samples;
    }
    if (chunk_samples != 0) {
      t.end_chunk = target_chunk + 1;
      t.end_chunk_samples = chunk_samples;
    } else {
      t.end_chunk = target_chunk;
    }
    samples = static_cast<uint32_t>(chunk_samples);
    next_chunk = chunk + 1;
  }
  if (chunk_samples != 0 && uint64_t{next_chunk} - target_chunk == 2) {
    set32(entry + 4, samples);
  } else if (chunk_samples != 0 && start) {
    set32(t.stsc_start, 1);
    set32(t.stsc_start + 4, samples);
    set32(t.stsc_start + 8, id);
    t.out[kStscStart] = {t.stsc_start, t.stsc_start + 12};
    set32(entry, t.start_chunk + 2);
    t.sample_to_chunk_entries++;
  } else if (chunk_samples != 0) {
    set32(t.stsc_end, t.end_chunk - t.start_chunk);
    set32(t.stsc_end + 4, samples);
    set32(t.stsc_end + 8, id);
    t.out[kStscEnd] = {t.stsc_end, t.stsc_end + 12};
    t.sample_to_chunk_entries++;
  }
  return true;
}

// stsz: the kept samples' sizes, and the bytes of the samples of a split chunk before the start
// (and up to the end), which move the chunk's offset.
bool Mp4Cut::update_stsz(Track& t) {
  Span& data = t.out[kStszData];
  if (!data.set()) return true;
  uint32_t entries = t.sample_sizes_entries;
  if (t.start_sample > entries) {
    error("start time is out mp4 stsz samples in \"%s\"", name_.data());
    return false;
  }
  char* table = data.pos;
  entries -= static_cast<uint32_t>(t.start_sample);
  data.pos += t.start_sample * 4;
  auto sum_before = [&](const char* end, uint64_t samples) {
    uint64_t sum = 0;
    const char* from =
        end - std::min<uint64_t>(samples, static_cast<uint64_t>(end - table) / 4) * 4;
    for (const char* p = from; p < end; p += 4) sum += get32(p);
    return sum;
  };
  t.start_chunk_samples_size = sum_before(data.pos, t.start_chunk_samples);
  if (t.start_chunk_samples_size > static_cast<uint64_t>(end_)) {
    error("too large mp4 start samples size in \"%s\"", name_.data());
    return false;
  }
  if (length_ != 0) {
    if (t.end_sample - t.start_sample > entries) {
      error("end time is out mp4 stsz samples in \"%s\"", name_.data());
      return false;
    }
    entries = static_cast<uint32_t>(t.end_sample - t.start_sample);
    data.last = data.pos + uint64_t{entries} * 4;
    t.end_chunk_samples_size = sum_before(data.last, t.end_chunk_samples);
    if (t.end_chunk_samples_size > static_cast<uint64_t>(end_)) {
      error("too large mp4 end samples size in \"%s\"", name_.data());
      return false;
    }
  }
  set_table_header(t, kStsz, data.size(), entries);
  return true;
}

// stco or co64 (wide): the kept chunks' offsets, the first moved past the samples cut from it.
bool Mp4Cut::update_chunk_offsets(Track& t, bool wide) {
  const char* name = wide ? "co64" : "stco";
  size_t width = wide ? 8 : 4;
  Span& data = t.out[wide ? kCo64Data : kStcoData];
  if (!data.set()) {
    error("no mp4 %s atoms were found in \"%s\"", name, name_.data());
    return false;
  }
  if (t.start_chunk > t.chunks) {
    error("start time is out mp4 %s chunks in \"%s\"", name, name_.data());
    return false;
  }
  auto get = [&](const char* p) { return wide ? get64(p) : get32(p); };
  auto offset_fits = [&](uint64_t chunk_offset, uint64_t samples_size) {
    if (chunk_offset > static_cast<uint64_t>(end_) - samples_size ||
        (!wide && chunk_offset + samples_size > std::numeric_limits<uint32_t>::max())) {
      error("too large chunk offset in \"%s\"", name_.data());
      return false;
    }
    return true;
  };
  data.pos += t.start_chunk * width;
  // All the chunks cut: there is no first offset to move (nginx reads and writes past the table).
  if (data.pos < data.last) {
    uint64_t chunk_offset = get(data.pos);
    if (!offset_fits(chunk_offset, t.start_chunk_samples_size)) return false;
    t.start_offset = static_cast<off_t>(chunk_offset + t.start_chunk_samples_size);
    if (wide) {
      set64(data.pos, static_cast<uint64_t>(t.start_offset));
    } else {
      set32(data.pos, static_cast<uint64_t>(t.start_offset));
    }
  }
  uint64_t entries;
  if (length_ != 0) {
    if (t.end_chunk > t.chunks) {
      error("end time is out mp4 %s chunks in \"%s\"", name, name_.data());
      return false;
    }
    entries = t.end_chunk - t.start_chunk;
    data.last = data.pos + entries * width;
    if (entries != 0) {
      uint64_t chunk_offset = get(data.last - width);
      if (!offset_fits(chunk_offset, t.end_chunk_samples_size)) return false;
      t.end_offset = static_cast<off_t>(chunk_offset + t.end_chunk_samples_size);
    }
  } else {
    entries = t.chunks - t.start_chunk;
    t.end_offset = data_end_;
  }
  if (entries == 0) {
    t.start_offset = end_;
    t.end_offset = 0;
  }
  set_table_header(t, wide ? kCo64 : kStco, data.size(), entries);
  return true;
}

// Once the new moov's size is known: every kept chunk moves by as much as the file's head changed.
void Mp4Cut::adjust_chunk_offsets(Track& t, bool wide, int64_t adjustment) {
  Span& data = t.out[wide ? kCo64Data : kStcoData];
  if (wide) {
    for (char* e = data.pos; e < data.last; e += 8) {
      set64(e, get64(e) + static_cast<uint64_t>(adjustment));
    }
  } else {
    auto a = static_cast<uint32_t>(static_cast<int32_t>(adjustment));
    for (char* e = data.pos; e < data.last; e += 4) set32(e, get32(e) + a);
  }
}

// A key-frame prefix: an edit list that starts the track's presentation after it.
void Mp4Cut::update_edts(Track& t) {
  if (t.prefix == 0) return;
  set32(t.edts, sizeof t.edts + sizeof t.elst);
  set_name(t.edts, "edts");
  t.out[kEdts] = {t.edts, t.edts + sizeof t.edts};
  char* e = t.elst;
  set32(e, sizeof t.elst);
  set_name(e, "elst");
  e[8] = 1;  // version 1: 64-bit fields
  e[9] = e[10] = e[11] = 0;
  set32(e + 12, 1);
  set64(e + 16, t.movie_duration);
  set64(e + 24, t.prefix);
  e[32] = 0;
  e[33] = 1;  // media rate 1
  e[34] = e[35] = 0;
  t.out[kElst] = {t.elst, t.elst + sizeof t.elst};
  t.size += sizeof t.edts + sizeof t.elst;
}

size_t Mp4Cut::update_mdat(off_t start, off_t end) {
  auto data_size = static_cast<uint64_t>(end - start);
  data_start_ = start;
  data_end_ = end;
  char* h = mdat_header_;
  if (data_size > uint64_t{0xffffffff} - kHeader) {
    set32(h, 1);
    set64(h + kHeader, kHeader64 + data_size);
    mdat_header_size_ = kHeader64;
  } else {
    set32(h, kHeader + data_size);
    mdat_header_size_ = kHeader;
  }
  set_name(h, "mdat");
  content_length_ += static_cast<off_t>(mdat_header_size_ + data_size);
  return mdat_header_size_;
}

Mp4Outcome Mp4Cut::run() {
  static constexpr AtomHandler kFileAtoms[] = {
      {"ftyp", &Mp4Cut::read_ftyp},
      {"moov", &Mp4Cut::read_moov},
      {"mdat", &Mp4Cut::read_mdat},
  };
  if (Step s = read_atoms(kFileAtoms, static_cast<uint64_t>(end_)); s != Step::Ok) {
    return s == Step::Declined ? Mp4Outcome::Whole : Mp4Outcome::Failed;
  }
  if (tracks_.empty()) {
    error("no mp4 trak atoms were found in \"%s\"", name_.data());
    return Mp4Outcome::Failed;
  }
  if (!mdat_read_) {
    error("no mp4 mdat atom was found in \"%s\"", name_.data());
    return Mp4Outcome::Failed;
  }
  if (ftyp_.set()) pieces_.emplace_back(ftyp_.pos, ftyp_.size());
  pieces_.emplace_back(moov_header_, sizeof moov_header_);
  if (mvhd_.set()) {
    moov_size_ += mvhd_.size();
    pieces_.emplace_back(mvhd_.pos, mvhd_.size());
  }
  off_t start_offset = end_, end_offset = 0;
  for (Track& t : tracks_) {
    bool wide = t.out[kCo64Data].set();
    if (!update_stts(t)) return Mp4Outcome::Failed;
    update_stss(t);
    update_ctts(t);
    if (!update_stsc(t) || !update_stsz(t) || !update_chunk_offsets(t, wide)) {
      return Mp4Outcome::Failed;
    }
    // The containers' sizes, from the inside out.
    t.size += kHeader;
    set32(t.out[kStbl].pos, t.size);
    t.size += kHeader + t.vmhd_size + t.smhd_size + t.dinf_size;
    set32(t.out[kMinf].pos, t.size);
    if (char* mdhd = t.out[kMdhd].pos; mdhd != nullptr) {
      set_duration(mdhd + (mdhd[8] != 0 ? 32 : 24), mdhd[8] != 0, t.duration);
      t.size += t.mdhd_size;
    }
    t.size += t.hdlr_size;
    t.size += kHeader;
    set32(t.out[kMdia].pos, t.size);
    t.size += t.tkhd_size;
    update_edts(t);
    t.size += kHeader;
    set32(t.out[kTrak].pos, t.size);
    moov_size_ += t.size;
    start_offset = std::min(start_offset, t.start_offset);
    end_offset = std::max(end_offset, t.end_offset);
    for (const Span& s : t.out) {
      if (s.set()) pieces_.emplace_back(s.pos, s.size());
    }
  }
  end_offset = std::max(end_offset, start_offset);
  moov_size_ += kHeader;
  set32(moov_header_, moov_size_);
  set_name(moov_header_, "moov");
  content_length_ += static_cast<off_t>(moov_size_);
  if (start_offset > data_end_) {
    error("start time is out mp4 mdat atom in \"%s\"", name_.data());
    return Mp4Outcome::Failed;
  }
  int64_t adjustment = static_cast<int64_t>(ftyp_size_ + moov_size_) +
                       static_cast<int64_t>(update_mdat(start_offset, end_offset)) - start_offset;
  for (Track& t : tracks_) adjust_chunk_offsets(t, t.out[kCo64Data].set(), adjustment);
  pieces_.emplace_back(mdat_header_, mdat_header_size_);
  return Mp4Outcome::Cut;
}

}  // namespace weir::http
