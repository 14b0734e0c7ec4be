// mp4's cut of a file: for ?start= and ?end=, the moov atom is read into memory and its sample
// tables cropped to the samples of that time span, so that the answer is a playable file: ftyp,
// the new moov, and an mdat header before the file's bytes the kept samples span. Atoms nginx does
// not know are left out; a track that ends before the start is dropped. Every check and its message
// is nginx's (the cut answers 500 when one fails). nginx: src/http/modules/ngx_http_mp4_module.c
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <span>
#include <string_view>
#include <vector>

#include "core/log.h"
#include "core/pool.h"

namespace weir::http {

struct Mp4Settings {
  size_t buffer_size = 512 * 1024;            // mp4_buffer_size: reads before the moov atom
  size_t max_buffer_size = 10 * 1024 * 1024;  // mp4_max_buffer_size: the largest moov atom
  bool start_key_frame = false;               // mp4_start_key_frame
};

enum class Mp4Outcome : uint8_t {
  Cut,     // pieces() and data_start/data_end say what to send
  Whole,   // the file as it is (moov before mdat, and neither start nor end)
  Failed,  // logged; the answer is 500
};

class Mp4Cut {
 public:
  // start and length in milliseconds (length 0: to the end). The file is read from fd, or from
  // cached when the open-file cache holds its bytes.
  Mp4Cut(Pool& pool, const Log& log, int fd, std::string_view cached, std::string_view name,
         off_t file_size, uint64_t start, uint64_t length, const Mp4Settings& settings);

  Mp4Outcome run();

  // After Cut: the new file's head (ftyp, moov and the mdat header) in pieces of memory that live
  // as long as the pool, then the file's bytes [data_start, data_end).
  std::span<const std::string_view> pieces() const { return pieces_; }
  off_t data_start() const { return data_start_; }
  off_t data_end() const { return data_end_; }
  off_t content_length() const { return content_length_; }

 private:
  // The sample tables and the atoms around them, in the order they are sent (nginx's trak parts).
  enum Part : uint8_t {
    kTrak,
    kTkhd,
    kEdts,
    kElst,
    kMdia,
    kMdhd,
    kHdlr,
    kMinf,
    kVmhd,
    kSmhd,
    kDinf,
    kStbl,
    kStsd,
    kStts,
    kSttsData,
    kStss,
    kStssData,
    kCtts,
    kCttsData,
    kStsc,
    kStscStart,
    kStscData,
    kStscEnd,
    kStsz,
    kStszData,
    kStco,
    kStcoData,
    kCo64,
    kCo64Data,
    kPartCount
  };

  struct Span {
    char* pos = nullptr;
    char* last = nullptr;
    bool set() const { return pos != nullptr; }
    size_t size() const { return static_cast<size_t>(last - pos); }
  };

  struct Track {
    uint32_t timescale = 0;
    uint32_t time_to_sample_entries = 0;
    uint32_t sample_to_chunk_entries = 0;
    uint32_t sync_samples_entries = 0;
    uint32_t composition_offset_entries = 0;
    uint32_t sample_sizes_entries = 0;
    uint32_t chunks = 0;
    uint64_t start_sample = 0, end_sample = 0;
    uint64_t start_chunk = 0, end_chunk = 0;
    uint64_t start_chunk_samples = 0, end_chunk_samples = 0;
    uint64_t start_chunk_samples_size = 0, end_chunk_samples_size = 0;
    uint64_t duration = 0;        // mdhd's, cut
    uint64_t prefix = 0;          // media time before the start kept for a key frame (edts)
    uint64_t movie_duration = 0;  // tkhd's, cut
    off_t start_offset = 0, end_offset = 0;
    size_t tkhd_size = 0, mdhd_size = 0, hdlr_size = 0;
    size_t vmhd_size = 0, smhd_size = 0, dinf_size = 0;
    size_t size = 0;  // the new trak atom's, summed from inside out
    std::array<Span, kPartCount> out{};
    // Atoms made here rather than cut: the edit list for a key-frame prefix, and the stsc entries
    // for a chunk split by the start or the end.
    char edts[8] = {};
    char elst[36] = {};
    char stsc_start[12] = {};
    char stsc_end[12] = {};
  };

  enum class Step : uint8_t { Ok, Declined, Error };
  using Handler = Step (Mp4Cut::*)(uint64_t data_size);
  struct AtomHandler {
    std::string_view name;
    Handler handler;
  };

  Step read_atoms(std::span<const AtomHandler> atoms, uint64_t data_size);
  Step read(size_t size);
  void next(uint64_t n);
  char* atom_header() const { return buffer_pos_ - 8; }
  Track& last_track() { return tracks_.back(); }
  bool duplicate(const Span& s, const char* what);
  bool too_small(uint64_t need, uint64_t data_size, const char* atom);

  uint64_t kept(uint64_t duration, uint64_t start_time, uint32_t timescale) const;
  Step read_ftyp(uint64_t data_size);
  Step read_moov(uint64_t data_size);
  Step read_mdat(uint64_t data_size);
  Step read_mvhd(uint64_t data_size);
  Step read_trak(uint64_t data_size);
  Step read_cmov(uint64_t data_size);
  Step read_tkhd(uint64_t data_size);
  Step read_container(uint64_t data_size);  // mdia, minf, stbl: their children follow
  Step read_mdhd(uint64_t data_size);
  Step read_whole(uint64_t data_size);  // hdlr, vmhd, smhd, dinf: kept as they are
  Step read_stsd(uint64_t data_size);
  Step read_table(uint64_t data_size);  // stts, stss, ctts, stsc, stco, co64
  Step read_stsz(uint64_t data_size);

  void set_table_header(Track& t, Part part, size_t data_size, uint64_t entries);
  bool update_stts(Track& t);
  bool crop_stts(Track& t, bool start);
  uint32_t seek_key_frame(Track& t, uint32_t start_sample);
  void update_stss(Track& t);
  void crop_stss(Track& t, bool start);
  void update_ctts(Track& t);
  void crop_ctts(Track& t, bool start);
  bool update_stsc(Track& t);
  bool crop_stsc(Track& t, bool start);
  bool update_stsz(Track& t);
  bool update_chunk_offsets(Track& t, bool wide);
  void adjust_chunk_offsets(Track& t, bool wide, int64_t adjustment);
  void update_edts(Track& t);
  size_t update_mdat(off_t start, off_t end);
  [[gnu::format(printf, 2, 3)]] void error(const char* fmt, ...) const;

  Pool& pool_;
  const Log& log_;
  int fd_;
  std::string_view cached_;
  std::string_view name_;  // NUL-terminated (the request's path)
  off_t end_;
  uint64_t start_;
  uint64_t length_;
  const Mp4Settings& settings_;

  char* buffer_ = nullptr;
  char* buffer_start_ = nullptr;
  char* buffer_pos_ = nullptr;
  char* buffer_end_ = nullptr;
  size_t buffer_size_;
  off_t offset_ = 0;
  uint32_t timescale_ = 0;    // mvhd's
  std::string_view current_;  // the name of the atom whose reader runs

  std::pmr::vector<Track> tracks_;
  bool moov_read_ = false;
  bool mdat_read_ = false;
  Span ftyp_;
  Span mvhd_;
  char moov_header_[8] = {};
  char mdat_header_[16] = {};
  size_t mdat_header_size_ = 0;
  size_t ftyp_size_ = 0;
  size_t moov_size_ = 0;
  off_t content_length_ = 0;
  off_t data_start_ = 0;
  off_t data_end_ = 0;  // the mdat data's end in the file, then the cut's
  std::pmr::vector<std::string_view> pieces_;
};

}  // namespace weir::http
