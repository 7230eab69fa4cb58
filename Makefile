# cask -- build everything into build/ (or $(BUILD)).
#
#   make              optimised build in build/ (what the daemon and benchmarks use)
#   make check        sanitizer build (ASan + UBSan) in build/asan, ThreadSanitizer build in
#                     build/tsan, then every test (the concurrency-heavy ones under TSan too)
#   make MODE=tsan    the ThreadSanitizer build alone (build/tsan, -fsanitize=thread -O1 -g)
#   make install      into PREFIX (default /usr/local), DESTDIR for staging
#   make run          the main job: caskd serving default/vol0 over NBD (scripts/run.sh)
#   make bench        optimised build, then the engine and NBD benchmarks
#   make sync-bench, snap-bench, pipe-bench, send-bench, api-bench, tls-bench, iscsi-bench, repl-bench   one benchmark each (see bench/)
#   make stress       cask-stress for CASK_STRESS_SECONDS (default 60)
#   make crash-soak   random crash states, CRASH_STATES of them (default 100000)
#   make power-loss-soak  every caskd killed -9 in a rebuild, POWER_LOSS_RUNS times (default 10)
#   make hostile-soak hostile NBD clients beside verified IO, HOSTILE_SOAK_SECONDS (default 600)
#   make clean
#
# Dependencies (Debian packages): liblz4-dev libzstd-dev liburing-dev libxxhash-dev libssl-dev libjson-c-dev libblkid-dev libyaml-dev
# libmicrohttpd-dev; tests and benchmarks also use libiscsi-bin, qemu-block-extra (qemu's iscsi:// driver), tgt
# and prometheus;
# scripts/install-deps.sh installs them.

CC ?= cc
MODE ?= release
ifeq ($(MODE),asan)
BUILD ?= build/asan
OPT = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(MODE),tsan)
# ThreadSanitizer: checks the lock order and every shared access of the
# concurrency-heavy tests (tests/run.sh runs them from here).
BUILD ?= build/tsan
OPT = -O1 -g -fsanitize=thread -fno-omit-frame-pointer
else
BUILD ?= build
OPT = -O2 -g -DNDEBUG
endif

CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-pthread -Iinclude -Ilib/common -Ilib/engine -MMD -MP $(OPT) $(CFLAGS)
LDLIBS_ALL = -llz4 -lzstd -luring -lcrypto -ljson-c -lblkid -lpthread -lm $(LDLIBS)
LDFLAGS_ALL = -pthread $(OPT) $(LDFLAGS)

COMMON_SRC = $(wildcard lib/common/*.c)
ENGINE_SRC = $(wildcard lib/engine/*.c)
LIB_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC) $(ENGINE_SRC))
ENGINE_LIB = $(BUILD)/libcask-engine.a

TOOLS = $(BUILD)/cask-debug $(BUILD)/cask-stress
DAEMON_SRC = $(wildcard daemon/*.c daemon/ctl/*.c daemon/repl/*.c)
DAEMON_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(DAEMON_SRC))
CASKD = $(BUILD)/caskd
CLIENT_SRC = $(wildcard lib/client/*.c) lib/common/sockio.c
CLIENT_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(CLIENT_SRC))
CLIENT_LIB = $(BUILD)/libcask.a
# libcask.so.1: the stable client API, its exports fixed by lib/client/libcask.map
# cask_apply (lib/client/apply.c, manifest.c) checks property values with the engine's own parser
# (prop.c) and the common helpers; the static libcask.a leaves those to libcask-engine.a, which
# everything linking libcask.a links too. Manifests are YAML: libyaml (libyaml-dev).
CLIENT_SO_EXTRA = lib/common/util.c lib/engine/prop.c
CLIENT_PIC = $(patsubst %.c,$(BUILD)/pic/%.o,$(CLIENT_SRC) $(CLIENT_SO_EXTRA))
CLIENT_SO = $(BUILD)/libcask.so.1.0.0
CLI_SRC = $(wildcard cli/*.c)
CLI_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(CLI_SRC))
CASK = $(BUILD)/cask
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
ITEST_SRC = $(wildcard tests/integration/*.c)
ITEST_BIN = $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(ITEST_SRC))
BENCH_BIN = $(BUILD)/bench/engine_bench $(BUILD)/bench/snap_bench $(BUILD)/bench/api_bench $(BUILD)/bench/pipe_bench
CRASH_BIN = $(BUILD)/tests/crash_enum

# The Python binding (cffi, API mode) is built with the release libcask only: an
# ASan-instrumented library cannot be loaded into an uninstrumented python3.
PYMOD = $(BUILD)/python/cask/.built
ifneq ($(filter asan tsan,$(MODE)),)
PYMOD_ALL =
else
PYMOD_ALL = $(PYMOD)
endif

all: $(ENGINE_LIB) $(CLIENT_LIB) $(CLIENT_SO) $(PYMOD_ALL) $(TOOLS) $(CASKD) $(CASK) $(UNIT_BIN) $(ITEST_BIN) $(BENCH_BIN) $(CRASH_BIN)

$(CRASH_BIN): $(BUILD)/obj/tests/crash/crash_enum.o $(BUILD)/obj/tests/crash/crashsim.o $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(CLIENT_LIB): $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -c $< -o $@

$(PYMOD): $(CLIENT_SO) include/cask/client.h $(wildcard python/cask/*.py)
	/usr/bin/python3 python/cask/_build.py $(BUILD)

$(CLIENT_SO): $(CLIENT_PIC) lib/client/libcask.map
	$(CC) $(LDFLAGS_ALL) -shared -Wl,-soname,libcask.so.1 -Wl,--version-script=lib/client/libcask.map \
	    -Wl,-z,defs $(CLIENT_PIC) -o $@ -ljson-c -lyaml -lpthread
	ln -sf libcask.so.1.0.0 $(BUILD)/libcask.so.1
	ln -sf libcask.so.1 $(BUILD)/libcask.so

# The CLI links libcask (the client) and only the common helpers of the engine library;
# libcask's cask_apply reads YAML manifests with libyaml (libyaml-dev).
$(CASK): $(CLI_OBJ) $(CLIENT_LIB) $(ENGINE_LIB)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) -lyaml

# caskd --metrics serves HTTP with libmicrohttpd (libmicrohttpd-dev).
$(CASKD): $(DAEMON_OBJ) $(ENGINE_LIB)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) -lssl -lmicrohttpd

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(ENGINE_LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/cask-%: $(BUILD)/obj/tools/cask-%.o $(ENGINE_LIB)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# the replica protocol codec is the daemon's; its unit test links it alone
$(BUILD)/tests/test_repl_proto: $(BUILD)/obj/tests/unit/test_repl_proto.o $(BUILD)/obj/daemon/repl/proto.o $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(CLIENT_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) -lyaml

$(BUILD)/bench/api_bench: $(BUILD)/obj/bench/api_bench.o $(CLIENT_LIB) $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) -lyaml

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(ENGINE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

deps:
	./scripts/install-deps.sh

check: deps
	$(MAKE) MODE=asan all
	$(MAKE) all
	$(MAKE) MODE=tsan all
	./tests/run.sh build/asan build build/tsan

bench: deps all
	./bench/engine_bench.sh $(BUILD)
	/usr/bin/python3 bench/nbd_bench.py --build $(BUILD) --json bench/results/nbd-$$(date +%Y%m%d-%H%M%S).json
	/usr/bin/python3 bench/sync_bench.py --build $(BUILD) --json bench/results/sync-$$(date +%Y%m%d-%H%M%S).json
	/usr/bin/python3 bench/tls_bench.py --build $(BUILD) --json bench/results/tls-$$(date +%Y%m%d-%H%M%S).json

# every caskd of a replicated volume killed -9 during a rebuild, POWER_LOSS_RUNS times (default 10);
# not in make check (tests/soak/rebuild_power_loss.sh; the reconciliation bug it found is fixed,
# and its state made deterministic is tests/integration/repl_reconcile_power_loss.sh, in make check)
power-loss-soak: deps all
	@n=$${POWER_LOSS_RUNS:-10}; f=0; asan=; [ -x build/asan/caskd ] && asan=$(CURDIR)/build/asan; \
	for i in $$(seq 1 $$n); do \
	  if CASK_BUILD=$(CURDIR)/build CASK_ASAN_BUILD=$$asan bash tests/soak/rebuild_power_loss.sh >/tmp/power-loss-$$i.log 2>&1; \
	  then echo "run $$i passed"; else f=$$((f+1)); echo "run $$i FAILED (log /tmp/power-loss-$$i.log)"; fi; done; \
	  echo "$$((n-f)) passed, $$f failed"; [ $$f -eq 0 ]

# issue 17's hostile clients beside verified normal IO (not in make check): HOSTILE_SOAK_SECONDS (default 600)
hostile-soak: deps all
	/usr/bin/python3 tests/soak/hostile_soak.py --build $(BUILD) --seconds $${HOSTILE_SOAK_SECONDS:-600}

tls-bench: deps all
	/usr/bin/python3 bench/tls_bench.py --build $(BUILD)

repl-bench: deps all
	bash bench/repl_bench.sh $(abspath $(BUILD))
	bash bench/rebuild_bench.sh $(abspath $(BUILD))

sync-bench: deps all
	/usr/bin/python3 bench/sync_bench.py --build $(BUILD)

snap-bench: deps all
	$(BUILD)/bench/snap_bench --dir $${CASK_BENCH_DIR:-/var/tmp}

pipe-bench: deps all
	$(BUILD)/bench/pipe_bench --dir $${CASK_BENCH_DIR:-/var/tmp}

send-bench: deps all
	/usr/bin/python3 bench/send_bench.py --build $(BUILD) --dir $${CASK_BENCH_DIR:-/var/tmp}

api-bench: deps all
	/usr/bin/python3 bench/api_bench.py --build $(BUILD) --dir $${CASK_BENCH_DIR:-/var/tmp}

# caskd's iSCSI target against tgt (Debian tgt) and caskd's NBD, qemu-img bench as the client
iscsi-bench: deps all
	/usr/bin/python3 bench/iscsi_bench.py --build $(BUILD)

crash-soak: all
	./build/tests/crash_enum --soak $${CRASH_STATES:-100000}

stress: all
	./build/cask-stress --seconds $${CASK_STRESS_SECONDS:-60} --threads 4 $${CASK_STATE:-state}/stress

run: deps all
	./scripts/run.sh $(BUILD)

# make install [PREFIX=/usr/local] [DESTDIR=]: caskd, cask, cask-debug, libcask
# (libcask.so.1 and the -dev symlink, the header, a pkg-config file), the
# Python package, and the docs (man pages in markdown).
PREFIX ?= /usr/local
PYDIR ?= $(PREFIX)/lib/python3/dist-packages
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include/cask $(DESTDIR)$(PYDIR)/cask $(DESTDIR)$(PREFIX)/share/doc/cask/man
	install -m 755 $(CASKD) $(DESTDIR)$(PREFIX)/sbin/caskd
	install -m 755 $(CASK) $(BUILD)/cask-debug $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(CLIENT_SO) $(DESTDIR)$(PREFIX)/lib/libcask.so.1.0.0
	ln -sf libcask.so.1.0.0 $(DESTDIR)$(PREFIX)/lib/libcask.so.1
	ln -sf libcask.so.1 $(DESTDIR)$(PREFIX)/lib/libcask.so
	install -m 644 include/cask/client.h $(DESTDIR)$(PREFIX)/include/cask/client.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' lib/client/cask.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cask.pc
	/usr/bin/python3 python/cask/_build.py $(BUILD) $(DESTDIR)$(PYDIR)/cask $(PREFIX)/lib
	install -m 644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/cask/
	install -m 644 docs/man/*.md $(DESTDIR)$(PREFIX)/share/doc/cask/man/

clean:
	rm -rf build

.PHONY: all install deps check bench tls-bench hostile-soak power-loss-soak sync-bench snap-bench pipe-bench send-bench api-bench iscsi-bench run stress crash-soak clean
.SECONDARY:
-include $(shell find $(BUILD)/obj $(BUILD)/pic -name '*.d' 2>/dev/null)
