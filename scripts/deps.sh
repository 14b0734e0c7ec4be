#!/usr/bin/env bash
# Installs the Debian packages weir's build, tests and benchmarks need, when they are missing.
set -euo pipefail
# What building build/weir alone needs: `make` checks these (--check-build) and says what to run.
build_pkgs=(cmake ninja-build g++ pkg-config libpcre2-dev zlib1g-dev libbrotli-dev libzstd-dev libssl-dev
            libnghttp2-dev libcrypt-dev libc-ares-dev libgeoip-dev libgd-dev libmaxminddb-dev libxslt1-dev)
if [ "${1:-}" = "--check-build" ]; then
  missing=()
  for p in "${build_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "weir: the build needs ${missing[*]}: run 'make deps' (as root, or with sudo) first" >&2
  exit 1
fi
pkgs=(cmake ninja-build g++ clang pkg-config libpcre2-dev zlib1g-dev libbrotli-dev libzstd-dev brotli zstd python3-brotli python3-zstandard libssl-dev libnghttp2-dev libgeoip-dev geoip-database libnginx-mod-http-geoip libgd-dev libnginx-mod-http-image-filter libmaxminddb-dev libnginx-mod-http-geoip2 libxslt1-dev libnginx-mod-http-xslt-filter libnginx-mod-http-headers-more-filter python3-h2 python3-grpcio libcrypt-dev whois libc-ares-dev libgtest-dev python3-pytest python3-pytest-timeout systemd php8.2-fpm fcgiwrap uwsgi-core uwsgi-plugin-python3 memcached prometheus prometheus-nginx-exporter
      python3-pytest-xdist curl nginx wrk clang-format clang-tidy dpkg-dev file nghttp2-client
      libclang-rt-14-dev iproute2)
[ "${WEIR_BENCH:-0}" = 1 ] && pkgs+=(h2o haproxy strace valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/weir-apt.log 2>&1; then
  $sudo apt-get update >/tmp/weir-apt-update.log 2>&1 || true
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/weir-apt.log 2>&1 || {
    tail -20 /tmp/weir-apt.log; exit 1; }
fi
# Debian's nginx package may start a service: it is left alone (weir's tests run their own nginx on
# free ports), as is every other service of the machine.
exit 0
