# taskhost — the two commands a new user needs:
#   make run    installs missing Debian packages, builds, prints a dev API key, starts config/dev.yaml in the foreground
#   make test   installs missing Debian packages, builds, runs every test
# Others: make build | make bench | make asan | make tsan | make clean | make deps
BUILD     ?= build
JOBS      ?= $(shell nproc)
CONFIG    ?= config/dev.yaml
CMAKE_ARGS ?=

export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: all deps configure build run test bench asan tsan clean

all: build

deps:
	@bash cmake/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The API key config/dev.yaml names (auth.keys_file): made once, readable by its owner only.
DEV_KEY := .taskhost/dev.key

run: build
	@mkdir -p $(dir $(DEV_KEY))
	@test -s $(DEV_KEY) || (umask 077 && $(BUILD)/bin/taskhost keys generate > $(DEV_KEY))
	@printf 'dev key: %s (export TASKHOST_API_KEY=$$(cat %s))\n' "$$(cat $(DEV_KEY))" "$(DEV_KEY)"
	$(BUILD)/bin/taskhost run --config $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

# Benchmarks (tests/bench): a Release build, results appended to bench/results/*.jsonl.
bench: configure
	cmake --build $(BUILD) -j $(JOBS) --target taskhost_bench
	$(BUILD)/bin/taskhost_bench

# Sanitizer builds, each in its own folder; every test runs under them.
asan:
	$(MAKE) test BUILD=build-asan CMAKE_ARGS="-DTASKHOST_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug"

# ThreadSanitizer needs CAF itself instrumented (its lock-free mailbox is otherwise invisible to
# TSan and every message looks like a race): build libcaf_core from Debian's source package once,
# and run the tests against it.
TSAN_CAF := $(CURDIR)/build-tsan/caf-src
tsan:
	bash cmake/build-caf-tsan.sh $(TSAN_CAF)
	LD_LIBRARY_PATH=$(TSAN_CAF)/install/lib $(MAKE) test BUILD=build-tsan CMAKE_ARGS="-DTASKHOST_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug"

clean:
	rm -rf $(BUILD) build-asan build-tsan .taskhost
