# weir: `make` builds build/weir; `make run` and `make test` are the whole set-up on a fresh Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 60

PREFIX     ?= /usr/local/weir
DESTDIR    ?=

.PHONY: all weir deps run test test-fast unit integration asan fuzz bench format clean install package

all: weir

$(BUILD)/build.ninja:
	@scripts/deps.sh --check-build
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

weir: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/deps.sh

# Builds with PREFIX as the compiled-in prefix and installs under DESTDIR$(PREFIX), as nginx's
# `./configure --prefix=... && make install`: sbin/weir, conf/, html/, logs/, the man page.
install:
	@scripts/deps.sh --check-build
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIR_PREFIX=$(PREFIX)/ $(CMAKE_ARGS)
	ninja -C $(BUILD) weir
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX) --component Unspecified

# A .deb in Debian's nginx layout (build-deb/weir_VERSION_ARCH.deb): the paths nginx's Debian
# package is configured with, under /etc/weir, /var/log/weir, /var/lib/weir, /run/weir.pid.
DEB_BUILD ?= build-deb
package:
	@scripts/deps.sh --check-build
	cmake -S . -B $(DEB_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DWEIR_TESTS=OFF -DWEIR_DEB_LAYOUT=ON \
	  -DWEIR_PREFIX=/usr/share/weir/ -DWEIR_CONF_PATH=/etc/weir/weir.conf -DWEIR_PID_PATH=/run/weir.pid \
	  -DWEIR_LOCK_PATH=/var/lock/weir.lock -DWEIR_ERROR_LOG_PATH=/var/log/weir/error.log \
	  -DWEIR_HTTP_LOG_PATH=/var/log/weir/access.log -DWEIR_CLIENT_BODY_TEMP_PATH=/var/lib/weir/body \
	  -DWEIR_PROXY_TEMP_PATH=/var/lib/weir/proxy -DWEIR_FASTCGI_TEMP_PATH=/var/lib/weir/fastcgi \
	  -DWEIR_UWSGI_TEMP_PATH=/var/lib/weir/uwsgi -DWEIR_SCGI_TEMP_PATH=/var/lib/weir/scgi \
	  $(CMAKE_ARGS)
	ninja -C $(DEB_BUILD) weir
	cd $(DEB_BUILD) && cpack -G DEB

# Serves html/ on 127.0.0.1:8080 in the foreground (Ctrl-C stops it).
run: deps weir
	@mkdir -p logs
	./$(BUILD)/weir -p $(CURDIR)/ -c conf/weir.conf -g 'daemon off;'

# Unit tests, the clang-format and clang-tidy checks, integration tests on the release and the
# ASan/UBSan builds (in parallel), 60 s of fuzzing;
# the last line is "N passed, M failed".
test: deps
	@scripts/test.sh all

# Unit and integration tests on the release build only.
test-fast: deps
	@scripts/test.sh fast

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD) weir

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEIR_SANITIZE=ON -DWEIR_TESTS=OFF $(CMAKE_ARGS)

fuzz: deps
	@scripts/test.sh fuzz

bench: deps weir
	@bench/run.sh

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
