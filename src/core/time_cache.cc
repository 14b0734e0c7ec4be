#include "core/time_cache.h"

#include <sys/time.h>

#include <cstdio>
#include <cstring>

#include "core/str.h"

namespace weir::clock {

clock_detail::Cache clock_detail::g;

using clock_detail::g;

namespace {

constexpr const char* kWeek[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// A day's or a month's three letters.
char* put_name(char* p, const char* name) {
  std::memcpy(p, name, 3);
  return p + 3;
}

void rebuild(time_t sec) {
  g.sec = sec;
  std::memcpy(g.date_line, "Date: ", 6);
  std::memcpy(format_http_time(g.date_line + 6, sec), "\r\n", 2);
  struct tm tm;
  localtime_r(&sec, &tm);
  long off = tm.tm_gmtoff / 60;
  char sign = off < 0 ? '-' : '+';
  uint64_t aoff = static_cast<uint64_t>(off < 0 ? -off : off);
  uint64_t year = static_cast<uint64_t>(tm.tm_year + 1900) % 10000;
  // "2026/11/21 23:28:03"
  char* p = put_uint_pad(g.err_log, year, 4);
  *p++ = '/';
  p = put_uint_pad(p, tm.tm_mon + 1, 2);
  *p++ = '/';
  p = put_uint_pad(p, tm.tm_mday, 2);
  *p++ = ' ';
  p = put_uint_pad(p, tm.tm_hour, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_min, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_sec, 2);
  // "21/Nov/2026:23:28:03 +0000"
  p = put_uint_pad(g.http_log, tm.tm_mday, 2);
  *p++ = '/';
  p = put_name(p, kMonths[tm.tm_mon]);
  *p++ = '/';
  p = put_uint_pad(p, year, 4);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_hour, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_min, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_sec, 2);
  *p++ = ' ';
  *p++ = sign;
  p = put_uint_pad(p, (aoff / 60) % 100, 2);
  p = put_uint_pad(p, aoff % 60, 2);
  // "2026-11-21T23:28:03+00:00"
  p = put_uint_pad(g.iso, year, 4);
  *p++ = '-';
  p = put_uint_pad(p, tm.tm_mon + 1, 2);
  *p++ = '-';
  p = put_uint_pad(p, tm.tm_mday, 2);
  *p++ = 'T';
  p = put_uint_pad(p, tm.tm_hour, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_min, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_sec, 2);
  *p++ = sign;
  p = put_uint_pad(p, (aoff / 60) % 100, 2);
  *p++ = ':';
  p = put_uint_pad(p, aoff % 60, 2);
}

}  // namespace

void update() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g.wall_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  g.wall_msec = static_cast<uint64_t>(g.wall_ns / 1000000);
  if (ts.tv_sec != g.sec) rebuild(ts.tv_sec);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t mono_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  g.mono = static_cast<msec_t>(mono_ns / 1000000);
  g.wall_offset_ns = g.wall_ns - mono_ns;
}

namespace {

// t's UTC calendar fields, by arithmetic alone (Howard Hinnant's civil_from_days): gmtime_r takes
// the C library's time-zone path and costs some 600 instructions for each Last-Modified.
struct tm utc(time_t t) {
  int64_t days = t / 86400;
  int64_t secs = t % 86400;
  if (secs < 0) {
    secs += 86400;
    days--;
  }
  struct tm tm {};
  tm.tm_hour = static_cast<int>(secs / 3600);
  tm.tm_min = static_cast<int>(secs / 60 % 60);
  tm.tm_sec = static_cast<int>(secs % 60);
  tm.tm_wday = static_cast<int>((days % 7 + 11) % 7);  // 1970-01-01 was a Thursday
  int64_t z = days + 719468;                           // days since 0000-03-01
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                                       // [0, 146096]
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365], from March
  int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11], from March
  int64_t month = mp < 10 ? mp + 3 : mp - 9;                            // [1, 12]
  tm.tm_mday = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  tm.tm_mon = static_cast<int>(month - 1);
  tm.tm_year = static_cast<int>(yoe + era * 400 + (month <= 2) - 1900);
  return tm;
}

}  // namespace

struct tm utc_time(time_t t) {
  return utc(t);
}

char* format_http_time(char* buf, time_t t) {
  struct tm tm = utc(t);
  char* p = buf;
  p = put_name(p, kWeek[tm.tm_wday]);
  p = put(p, ", ");
  p = put_uint_pad(p, tm.tm_mday, 2);
  *p++ = ' ';
  p = put_name(p, kMonths[tm.tm_mon]);
  *p++ = ' ';
  p = put_uint_pad(p, tm.tm_year + 1900, 4);
  *p++ = ' ';
  p = put_uint_pad(p, tm.tm_hour, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_min, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_sec, 2);
  p = put(p, " GMT");
  return p;
}

char* format_cookie_time(char* buf, time_t t) {
  // "Thu, 31-Dec-37 23:55:55 GMT"
  struct tm tm = utc(t);
  char* p = put_name(buf, kWeek[tm.tm_wday]);
  p = put(p, ", ");
  p = put_uint_pad(p, tm.tm_mday, 2);
  *p++ = '-';
  p = put_name(p, kMonths[tm.tm_mon]);
  *p++ = '-';
  p = put_uint_pad(p, tm.tm_year % 100, 2);
  *p++ = ' ';
  p = put_uint_pad(p, tm.tm_hour, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_min, 2);
  *p++ = ':';
  p = put_uint_pad(p, tm.tm_sec, 2);
  return put(p, " GMT");
}

namespace {

int month_index(std::string_view s) {
  for (int i = 0; i < 12; i++) {
    if (s.size() >= 3 && s.substr(0, 3) == kMonths[i]) return i;
  }
  return -1;
}

bool two_digits(std::string_view s, size_t at, int& v) {
  if (at + 2 > s.size() || s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9') {
    return false;
  }
  v = (s[at] - '0') * 10 + (s[at + 1] - '0');
  return true;
}

}  // namespace

std::optional<time_t> parse_http_time(std::string_view s) {
  // Skip the weekday: up to the first ',' or ' '.
  size_t i = 0;
  while (i < s.size() && s[i] != ',' && s[i] != ' ') i++;
  if (i >= s.size()) return std::nullopt;
  enum { kRfc822, kRfc850, kIsoc } fmt;
  if (s[i] == ',') {
    i++;
    if (i < s.size() && s[i] == ' ') i++;
    // "Sun, 06 Nov 1994" (822) or "Sunday, 06-Nov-94" (850)
    fmt = (i + 2 < s.size() && s[i + 2] == '-') ? kRfc850 : kRfc822;
  } else {
    i++;
    fmt = kIsoc;  // "Sun Nov  6 08:49:37 1994"
  }
  int day = 0, month, year = 0, hour, min, sec;
  if (fmt == kIsoc) {
    month = month_index(s.substr(i));
    if (month < 0) return std::nullopt;
    i += 3;
    if (i >= s.size() || s[i] != ' ') return std::nullopt;
    i++;
    if (i < s.size() && s[i] == ' ') i++;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') day = day * 10 + (s[i++] - '0');
    if (i >= s.size() || s[i] != ' ') return std::nullopt;
    i++;
  } else {
    if (!two_digits(s, i, day)) return std::nullopt;
    i += 2;
    if (i >= s.size() || (s[i] != ' ' && s[i] != '-')) return std::nullopt;
    i++;
    month = month_index(s.substr(i));
    if (month < 0) return std::nullopt;
    i += 3;
    if (i >= s.size() || (s[i] != ' ' && s[i] != '-')) return std::nullopt;
    i++;
    int hi, lo;
    if (fmt == kRfc822) {
      if (!two_digits(s, i, hi) || !two_digits(s, i + 2, lo)) return std::nullopt;
      year = hi * 100 + lo;
      i += 4;
    } else {
      if (!two_digits(s, i, lo)) return std::nullopt;
      year = lo + (lo < 70 ? 2000 : 1900);
      i += 2;
    }
    if (i >= s.size() || s[i] != ' ') return std::nullopt;
    i++;
  }
  if (!two_digits(s, i, hour) || i + 2 >= s.size() || s[i + 2] != ':' ||
      !two_digits(s, i + 3, min) || i + 5 >= s.size() || s[i + 5] != ':' ||
      !two_digits(s, i + 6, sec)) {
    return std::nullopt;
  }
  i += 8;
  if (fmt == kIsoc) {
    if (i >= s.size() || s[i] != ' ') return std::nullopt;
    i++;
    int hi, lo;
    if (!two_digits(s, i, hi) || !two_digits(s, i + 2, lo)) return std::nullopt;
    year = hi * 100 + lo;
  }
  if (hour > 23 || min > 59 || sec > 59) return std::nullopt;
  if (day < 1 || day > 31) return std::nullopt;
  if (day == 29 && month == 1 && (year % 4 != 0 || (year % 100 == 0 && year % 400 != 0))) {
    return std::nullopt;
  }
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (day > kDays[month]) return std::nullopt;
  // Gauss' formula: the year starts on March 1 (March = 1 ... February = 12), January and February
  // count in the previous year; 719527 days lie between March 1, 1 BC and March 1, 1970.
  int64_t y = year, mm = month;
  if (--mm <= 0) {
    mm += 12;
    y -= 1;
  }
  int64_t days =
      365 * y + y / 4 - y / 100 + y / 400 + 367 * mm / 12 - 30 + day - 1 - 719527 + 31 + 28;
  return static_cast<time_t>(days * 86400 + hour * 3600 + min * 60 + sec);
}

}  // namespace weir::clock
