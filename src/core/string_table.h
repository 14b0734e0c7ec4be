// A table of string keys made once (at load) and looked up per request without building a string:
// open addressing over a power-of-two array of slots that hold each key's hash and its entry, the
// keys and values in one vector in the order added. For the tables configuration fills (map's exact
// keys); not for tables an attacker fills with chosen keys (the hash is not keyed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/str.h"

namespace weir {

template <class T>
class StringTable {
 public:
  // False when the key is there already (the first value stays).
  bool add(std::string key, T value) {
    if (find(key) != nullptr) return false;
    lengths_ |= length_bit(key.size());
    entries_.emplace_back(std::move(key), std::move(value));
    if (entries_.size() * 2 > slots_.size()) {
      rehash(slots_.empty() ? 16 : slots_.size() * 2);
    } else {
      place(entries_.size() - 1);
    }
    return true;
  }

  // False when no key has this length: a miss known before the key is hashed (or lower-cased).
  bool may_hold(size_t len) const { return (lengths_ & length_bit(len)) != 0; }

  const T* find(std::string_view key) const {
    if (!may_hold(key.size())) return nullptr;
    return probe(hash_bytes(key), [&](const std::string& k) {
      return k.size() == key.size() && same_bytes(k.data(), key.data(), key.size());
    });
  }

  T* find(std::string_view key) { return const_cast<T*>(std::as_const(*this).find(key)); }

  // The key in any case, in a table whose keys are lower case (types, map's exact keys): no
  // lower-case copy is made.
  const T* find_caseless(std::string_view key) const {
    if (!may_hold(key.size())) return nullptr;
    return probe(hash_bytes_caseless(key),
                 [&](const std::string& k) { return equals_lower(k, key); });
  }

  size_t size() const { return entries_.size(); }

 private:
  struct Slot {
    uint32_t hash = 0;
    uint32_t entry = 0;  // index in entries_ + 1; 0: empty
  };

  // The entry of hash h that `same` accepts: slots stay at most half full, so a probe always ends.
  template <class Same>
  const T* probe(uint64_t h, Same same) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.entry == 0) return nullptr;
      if (s.hash != static_cast<uint32_t>(h)) continue;
      const auto& [k, v] = entries_[s.entry - 1];
      if (same(k)) return &v;
    }
  }

  // Lengths from 63 up share the last bit.
  static uint64_t length_bit(size_t len) { return uint64_t{1} << (len < 63 ? len : 63); }

  // Slots stay at most half full, so a probe always ends at an empty one.
  void rehash(size_t n) {
    slots_.assign(n, Slot{});
    for (size_t i = 0; i < entries_.size(); i++) place(i);
  }
  void place(size_t index) {
    uint64_t h = hash_bytes(entries_[index].first);
    size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i].entry != 0) i = (i + 1) & mask;
    slots_[i] = Slot{static_cast<uint32_t>(h), static_cast<uint32_t>(index + 1)};
  }

  uint64_t lengths_ = 0;  // bit n: some key is n bytes long
  std::vector<Slot> slots_;
  std::vector<std::pair<std::string, T>> entries_;
};

}  // namespace weir
