// A set of objects found by the string each holds (KeyOf(obj)), for tables that change at run time
// (the open file cache): open addressing over a power-of-two array of slots that hold each key's
// hash and the object, at most half full. Erasing shifts the rest of the probe run back into the
// hole, so no tombstones build up. The objects are the caller's; the index only points to them.
// Like StringTable, not for keys an attacker chooses in numbers (the hash is not keyed): callers
// bound the count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/str.h"

namespace weir {

template <class T, std::string_view (*KeyOf)(const T&)>
class StringIndex {
 public:
  T* find(std::string_view key) const {
    if (count_ == 0) return nullptr;
    uint64_t h = hash_bytes(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.obj == nullptr) return nullptr;
      if (s.hash != static_cast<uint32_t>(h)) continue;
      std::string_view k = KeyOf(*s.obj);
      if (k.size() == key.size() && same_bytes(k.data(), key.data(), k.size())) return s.obj;
    }
  }

  // obj's key is not in the index yet.
  void insert(T* obj) {
    if ((count_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    place(Slot{static_cast<uint32_t>(hash_bytes(KeyOf(*obj))), obj});
    count_++;
  }

  // False when obj is not in the index.
  bool erase(const T* obj) {
    if (count_ == 0) return false;
    size_t mask = slots_.size() - 1;
    size_t hole = hash_bytes(KeyOf(*obj)) & mask;
    while (slots_[hole].obj != obj) {
      if (slots_[hole].obj == nullptr) return false;
      hole = (hole + 1) & mask;
    }
    // Each later member of the run moves into the hole unless its home slot lies after the hole
    // (then a lookup for it starts past the hole and must not find it moved before).
    for (size_t j = (hole + 1) & mask; slots_[j].obj != nullptr; j = (j + 1) & mask) {
      size_t home = slots_[j].hash & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole] = Slot{};
    count_--;
    return true;
  }

  size_t size() const { return count_; }

  // f(T*) for each object, in no order; f must not change the index.
  template <class F>
  void for_each(F f) const {
    for (const Slot& s : slots_) {
      if (s.obj != nullptr) f(s.obj);
    }
  }

 private:
  struct Slot {
    uint32_t hash = 0;  // the low half of hash_bytes: the home slot while there are < 2^32 slots
    T* obj = nullptr;
  };

  void rehash(size_t n) {
    std::vector<Slot> old(n);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.obj != nullptr) place(s);
    }
  }
  void place(Slot s) {
    size_t mask = slots_.size() - 1;
    size_t i = s.hash & mask;
    while (slots_[i].obj != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }

  std::vector<Slot> slots_;
  size_t count_ = 0;
};

}  // namespace weir
