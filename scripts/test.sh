#!/usr/bin/env bash
# The test runner behind `make test`: builds, runs the unit tests (GoogleTest), the integration tests
# (pytest, real sockets) on the release build and on the ASan/UBSan build, and the fuzzers (request and
# config parsers); ends with one line "N passed, M failed".
#   scripts/test.sh all   - everything (CI), with the format and clang-tidy checks
#   scripts/test.sh fast  - unit + release integration
#   scripts/test.sh fuzz  - the fuzzers only
#   scripts/test.sh package - the .deb: built, installed, run and purged
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
passed=0
failed=0
jobs=$(nproc)
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

count() {  # count <name> <passed> <failed>
  passed=$((passed + $2)); failed=$((failed + $3))
  printf '%-28s %5d passed, %d failed\n' "$1" "$2" "$3"
}

build() {  # build <dir> <cmake args...>
  local dir=$1; shift
  if ! { cmake -S . -B "$dir" -G Ninja "$@" >"$results/cmake-$(basename "$dir").log" 2>&1 &&
         ninja -C "$dir" >"$results/ninja-$(basename "$dir").log" 2>&1; }; then
    cat "$results/cmake-$(basename "$dir").log" "$results/ninja-$(basename "$dir").log" | grep -E "error|warning|Error" | head -40
    return 1
  fi
}

junit_counts() {  # prints "passed failed" from a junit xml file
  /usr/bin/python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for st in suites:
    t += int(st.get("tests", 0)); f += int(st.get("failures", 0)) + int(st.get("errors", 0))
    s += int(st.get("skipped", 0))
# A skipped test is not a pass.
print(t - f - s, f + s)
PY
}

gtest_counts() {
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    print(d["tests"] - d["failures"] - d.get("disabled", 0), d["failures"] + d.get("disabled", 0))
except Exception:
    print(0, 1)
PY
}

run_unit() {
  if ! build build -DCMAKE_BUILD_TYPE=Release -DWEIR_WERROR=ON; then count "build (release)" 0 1; return; fi
  build/weir_unit_tests --gtest_output=json:"$results/unit.json" >"$results/unit.log" 2>&1
  local c; c=$(gtest_counts "$results/unit.json")
  [ "${c#* }" != 0 ] && grep -E "FAILED|Failure" -A5 "$results/unit.log" | head -60
  count "unit tests" ${c% *} ${c#* }
}

# The tree is clang-format clean (.clang-format), keeps its layering (scripts/check_layers.sh) and is
# clang-tidy clean (.clang-tidy, using the release build's compile_commands.json): each check counts as
# one test.
run_style() {
  local files; files=$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')
  if clang-format --dry-run -Werror $files >"$results/format.log" 2>&1; then
    count "format (clang-format)" 1 0
  else
    grep -E "error:" "$results/format.log" | head -20; count "format (clang-format)" 0 1
  fi
  if scripts/check_layers.sh; then count "layering" 1 0; else count "layering" 0 1; fi
  # clang has no GCC's string-operation strategy flags (CMakeLists.txt): its database goes without.
  local db="$results/tidy-db"
  mkdir -p "$db"
  sed -E 's/ -mmem(set|cpy)-strategy=[^ "]*//g' build/compile_commands.json >"$db/compile_commands.json"
  if git ls-files 'src/*.cc' | xargs -P "$jobs" -n 8 clang-tidy -p "$db" --quiet >"$results/tidy.log" 2>&1; then
    count "clang-tidy" 1 0
  else
    grep -E "(warning|error):" "$results/tidy.log" | sort -u | head -20; count "clang-tidy" 0 1
  fi
}

run_integration() {  # run_integration <label> <binary>
  # In parallel (pytest-xdist): every test has its own servers on free ports. Tests marked `serial`
  # (the capacity tests, which measure how the kernel spreads connections over the workers) run
  # afterwards on their own: beside another test on two cores one worker is starved of CPU.
  WEIR_BIN="$2" /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider -n "$jobs" --maxfail=50 --timeout=300 \
    -m "not serial" --junitxml="$results/$1.xml" >"$results/$1.log" 2>&1
  WEIR_BIN="$2" /usr/bin/python3 -m pytest tests/integration -q -p no:cacheprovider --maxfail=50 --timeout=300 \
    -m serial --junitxml="$results/$1.serial.xml" >>"$results/$1.log" 2>&1
  # (not named passed/failed: count adds to those globals, and a local would hide them)
  local a b; a=$(junit_counts "$results/$1.xml"); b=$(junit_counts "$results/$1.serial.xml")
  local ok=$((${a% *} + ${b% *})) bad=$((${a#* } + ${b#* }))
  [ "$bad" != 0 ] && grep -E "^(FAILED|ERROR)|Error|assert" "$results/$1.log" | head -60
  count "$1" $ok $bad
}

run_asan() {
  if ! build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_SANITIZE=ON -DWEIR_TESTS=OFF -DWEIR_WERROR=ON; then
    count "build (asan)" 0 1; return
  fi
  ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_integration "integration (asan+ubsan)" build-asan/weir
}

run_fuzz() {
  if ! build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_FUZZ=ON -DWEIR_WERROR=ON \
        -DCMAKE_CXX_COMPILER=clang++; then
    count "build (fuzz)" 0 1; return
  fi
  local secs=${FUZZ_SECONDS:-60} ok=0 bad=0 f name
  # $jobs at a time (one per core): each still fuzzes for its whole time, the phase takes half as long.
  for f in build-fuzz/*_fuzz; do
    name=$(basename "$f")
    mkdir -p "$results/corpus-$name"
    (
      if "$f" -max_total_time="$secs" -print_final_stats=0 "$results/corpus-$name" tests/fuzz/corpus \
           >"$results/$name.log" 2>&1; then
        echo ok >"$results/$name.status"
      else
        echo failed >"$results/$name.status"
      fi
    ) &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  done
  wait
  for f in build-fuzz/*_fuzz; do
    name=$(basename "$f")
    if [ "$(cat "$results/$name.status" 2>/dev/null)" = ok ]; then
      ok=$((ok + 1))
    else
      bad=$((bad + 1)); tail -40 "$results/$name.log"
    fi
  done
  count "fuzz (${secs}s each)" $ok $bad
}

# The .deb (make package) built, installed with dpkg, run with its unit's command lines and purged
# (tests/integration/package_check.py, which needs root or password-less sudo).
run_package() {
  if ! make package >"$results/package.log" 2>&1; then
    grep -E "error|Error" "$results/package.log" | head -20; count "package (build)" 0 1; return
  fi
  local deb; deb=$(ls build-deb/weir_*.deb | head -1)
  WEIR_DEB="$PWD/$deb" WEIR_BIN=build/weir /usr/bin/python3 -m pytest tests/integration/package_check.py -q \
    -p no:cacheprovider --timeout=600 --junitxml="$results/package.xml" >"$results/package-test.log" 2>&1
  local c; c=$(junit_counts "$results/package.xml")
  [ "${c#* }" != 0 ] && grep -E "^(FAILED|ERROR)|Error|assert" "$results/package-test.log" | head -40
  count "package (.deb)" ${c% *} ${c#* }
}

case "$mode" in
  fast) run_unit; run_integration "integration (release)" build/weir ;;
  fuzz) run_fuzz ;;
  style) run_style ;;
  package) run_package ;;
  all)  run_unit; run_style; run_integration "integration (release)" build/weir; run_asan; run_fuzz
        run_package ;;
  *) echo "usage: $0 all|fast|fuzz|style|package"; exit 2 ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
