// The sub filter's matcher: a body cut into pieces anywhere gives what the whole body gives, which
// is what the plain definition says (at each place the first string in trial order that matches;
// a string the body ends in the middle of leaves the rest as it is); nginx's trial order; once.
#include "modules/sub/sub_match.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace weir::http {
namespace {

struct Rules {
  std::vector<SubPattern> patterns;
  std::vector<std::string> texts, values;
  SubTable table;

  Rules(std::vector<std::pair<std::string, std::string>> pairs) {
    for (auto& [m, v] : pairs) {
      texts.push_back(m);
      values.push_back(v);
    }
    for (size_t i = 0; i < texts.size(); i++) patterns.push_back({texts[i], uint32_t(i)});
    build_sub_table(patterns, table);
  }
};

// The body through sub_scan in pieces cut at `cuts`, held text carried as the filter carries it.
std::string run(const Rules& r, const std::string& body, std::vector<size_t> cuts, bool once) {
  struct Out {
    const Rules& r;
    std::string s;
    size_t n;
    bool once;
    bool applied[256] = {};  // read by sub_scan as it goes, as the filter's is
    size_t count = 0;
    void text(std::string_view t, bool) { s += t; }
    bool match(size_t i) {
      s += r.values[r.table.patterns[i].pair];
      if (!once) return true;
      applied[i] = true;
      return ++count < n;
    }
  } out{r, "", r.patterns.size(), once};
  std::string held;
  bool done = false;
  cuts.push_back(body.size());
  size_t from = 0;
  for (size_t cut : cuts) {
    std::string_view chunk(body.data() + from, cut - from);
    from = cut;
    if (done) {
      out.s += chunk;
      continue;
    }
    size_t keep = sub_scan(r.table, once ? out.applied : nullptr, held, chunk, out);
    std::string all = held + std::string(chunk);
    held = all.substr(keep);
    EXPECT_LT(held.size(), r.table.max_len);
    done = once && out.count == out.n;
  }
  return out.s + held;  // the body's end: what is held goes out as it is
}

// The definition, on the whole body.
std::string plain(const Rules& r, const std::string& body, bool once) {
  std::string out;
  std::vector<bool> applied(r.patterns.size());
  size_t count = 0;
  for (size_t s = 0; s < body.size();) {
    if (once && count == applied.size()) return out + body.substr(s);
    bool taken = false;
    for (size_t i = 0; i < r.table.patterns.size() && !taken; i++) {
      if (once && applied[i]) continue;
      std::string_view p = r.table.patterns[i].text;
      size_t j = 0;
      while (j < p.size() && s + j < body.size() && ascii_lower(body[s + j]) == p[j]) j++;
      if (s + j == body.size() && j < p.size()) return out + body.substr(s);  // cut short
      if (j == p.size()) {
        out += r.values[r.table.patterns[i].pair];
        s += p.size();
        if (once) {
          applied[i] = true;
          count++;
        }
        taken = true;
      }
    }
    if (!taken) out += body[s++];
  }
  return out;
}

TEST(SubMatch, CaseBlindAndEveryCut) {
  Rules r({{"hello", "HI"}, {"world", "there"}});
  std::string body = "Hello, WORLD! hello world";
  EXPECT_EQ(plain(r, body, false), "HI, there! HI there");
  EXPECT_EQ(plain(r, body, true), "HI, there! hello world");
  for (bool once : {false, true}) {
    for (size_t a = 0; a <= body.size(); a++) {
      for (size_t b = a; b <= body.size(); b++) {
        ASSERT_EQ(run(r, body, {a, b}, once), plain(r, body, once)) << a << " " << b;
      }
    }
  }
}

TEST(SubMatch, NginxTrialOrder) {
  // Sorted by the byte at the shortest string's length (here the second), then as configured.
  Rules r({{"abz", "1"}, {"ab", "2"}, {"aa", "3"}});
  EXPECT_EQ(r.table.patterns[0].text, "aa");
  EXPECT_EQ(r.table.patterns[1].text, "abz");
  EXPECT_EQ(r.table.patterns[2].text, "ab");
  EXPECT_EQ(run(r, "abz ab aa", {}, false), "1 2 3");
  // "abz" is tried first and the body ends inside it: nothing after its start is replaced.
  EXPECT_EQ(run(r, "x ab", {}, false), "x ab");
  EXPECT_EQ(run(r, "x ab ", {3}, false), "x 2 ");
}

TEST(SubMatch, RandomBodiesAndCuts) {
  std::mt19937 rng(7);
  const std::string alphabet = "abAB<>";
  auto word = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; i++) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  for (int round = 0; round < 300; round++) {
    std::vector<std::pair<std::string, std::string>> pairs;
    size_t n = 1 + rng() % 4;
    for (size_t i = 0; i < n; i++) {
      std::string m;
      for (char c : word(1 + rng() % 4)) m += static_cast<char>(ascii_lower(c));
      std::string v(1, '[');
      v += std::to_string(i);
      v += ']';
      pairs.emplace_back(m, v);
    }
    Rules r(pairs);
    std::string body = word(rng() % 40);
    for (bool once : {false, true}) {
      std::string want = plain(r, body, once);
      for (int c = 0; c < 10; c++) {
        std::vector<size_t> cuts;
        size_t at = 0;
        while (body.size() > 0 && at < body.size() && cuts.size() < 6) {
          at += rng() % (body.size() - at + 1);
          cuts.push_back(at);
        }
        ASSERT_EQ(run(r, body, cuts, once), want) << body;
      }
    }
  }
}

}  // namespace
}  // namespace weir::http
