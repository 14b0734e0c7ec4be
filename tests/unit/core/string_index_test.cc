// StringIndex: through random inserts and erases (runs that wrap round the end of the slot array,
// erases from the middle of probe runs, growth), the index answers exactly as a std::map kept
// beside it, for the keys it holds and for keys it does not.
#include "core/string_index.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace weir {
namespace {

struct Item {
  std::string name;
};

std::string_view name_of(const Item& i) {
  return i.name;
}

using Index = StringIndex<Item, &name_of>;

void expect_same(const Index& index, const std::map<std::string, Item*>& model, int keys) {
  ASSERT_EQ(index.size(), model.size());
  for (int k = 0; k < keys; k++) {
    std::string key = "/srv/www/" + std::to_string(k) + ".html";
    auto it = model.find(key);
    ASSERT_EQ(index.find(key), it == model.end() ? nullptr : it->second) << key;
  }
  size_t seen = 0;
  index.for_each([&](Item* i) {
    seen++;
    ASSERT_EQ(model.at(i->name), i);
  });
  ASSERT_EQ(seen, model.size());
}

// A few keys in a small table (dense runs that wrap round) and many keys (growth).
void check_against_map(int keys) {
  std::vector<std::unique_ptr<Item>> items;
  for (int k = 0; k < keys; k++) {
    items.push_back(std::make_unique<Item>(Item{"/srv/www/" + std::to_string(k) + ".html"}));
  }
  Index index;
  std::map<std::string, Item*> model;
  EXPECT_EQ(index.find("/srv/www/0.html"), nullptr);
  EXPECT_FALSE(index.erase(items[0].get()));
  std::mt19937 rng(7);
  for (int step = 0; step < 20000; step++) {
    Item* item = items[rng() % keys].get();
    if (model.count(item->name) != 0) {
      ASSERT_TRUE(index.erase(item));
      model.erase(item->name);
      ASSERT_FALSE(index.erase(item));
    } else {
      index.insert(item);
      model[item->name] = item;
    }
    if (step % 97 == 0) expect_same(index, model, keys);
  }
  expect_same(index, model, keys);
  // Emptied one by one: every erase finds its object wherever earlier erases shifted it.
  for (auto& item : items) {
    if (model.erase(item->name) != 0) {
      ASSERT_TRUE(index.erase(item.get()));
    }
  }
  expect_same(index, model, keys);
  EXPECT_EQ(index.size(), 0u);
}

TEST(StringIndex, AnswersAsAMapThroughInsertsAndErases) {
  check_against_map(12);
  check_against_map(300);
}

}  // namespace
}  // namespace weir
