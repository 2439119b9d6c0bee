# braid: build, test and demo.
#   make            TUN build:   build/braid-master, build/braid-slave
#   make notun      notun build: build/notun/braid-master, build/notun/braid-slave
#   make check      install missing packages (root), build everything, run every test this machine can
#   make demo       notun demo on loopback (no root)
#   make fuzz       libFuzzer targets in build/fuzz/ (needs clang)
#   make install    programs, man pages, example configs, systemd units (PREFIX, DESTDIR)

CC      ?= cc
CLANG   ?= clang
PYTHON  ?= python3
PKGS    := libcares libconfig libsodium libsystemd libmicrohttpd libcap-ng
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lm
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# lwIP (the TCP lane's terminator, lane/stack.c): only that file is compiled with its flags;
# every program links it
LWIP_CFLAGS := $(shell pkg-config --cflags lwip 2>/dev/null)
LWIP_LIBS   := $(shell pkg-config --libs lwip 2>/dev/null)
PKG_LIBS    += $(LWIP_LIBS)

WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral -Wvla
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g $(WARN) $(PKG_CFLAGS)
CFLAGS_REL  := $(CFLAGS_COMMON) -O2 $(EXTRA_CFLAGS)
CFLAGS_ASAN := $(CFLAGS_COMMON) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
LDFLAGS_ASAN := -fsanitize=address,undefined
CFLAGS_FUZZ := $(CFLAGS_COMMON) -O1 -fno-omit-frame-pointer -DBRAID_FUZZ \
               -fsanitize=fuzzer-no-link,address,undefined
LDFLAGS_FUZZ := -fsanitize=fuzzer,address,undefined

# Library: everything except the two tundev implementations and the programs' mains (the
# master's site table is in it, for its unit tests and fuzz target).
LIB_SRC   := $(wildcard common/*.c mux/*.c links/*.c tundev/*.c daemon/*.c lane/*.c)
LIB_SRC   := $(filter-out tundev/tun_linux.c tundev/notun.c,$(LIB_SRC)) \
             $(filter-out master/main.c,$(wildcard master/*.c))
MASTER_SRC := master/main.c
SLAVE_SRC  := $(wildcard slave/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
TOOL_SRC  := $(wildcard tests/tools/*.c)
TOOL_NAMES := $(patsubst tests/tools/%.c,%,$(TOOL_SRC))
# Link emulator: tests/emu/main.c plus its timing logic (also linked into unit tests).
EMU_SRC   := $(filter-out tests/emu/main.c,$(wildcard tests/emu/*.c))

# The release number (VERSION) is compiled into the programs' --version.
BRAID_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
build/obj/rel/daemon/args.o build/obj/asan/daemon/args.o build/obj/fuzz/daemon/args.o \
build/obj/rel/daemon/report.o build/obj/asan/daemon/report.o build/obj/fuzz/daemon/report.o: VERSION
build/obj/%/daemon/args.o build/obj/%/daemon/report.o: FILE_CFLAGS = -DBRAID_VERSION='"$(BRAID_VERSION)"'
build/obj/%/lane/stack.o: FILE_CFLAGS = $(LWIP_CFLAGS)

obj = $(patsubst %.c,build/obj/$(1)/%.o,$(2))

REL_LIB   := build/obj/rel/libbraid.a
ASAN_LIB  := build/obj/asan/libbraid.a
FUZZ_LIB  := build/obj/fuzz/libbraid.a

.PHONY: all notun asan unit tools fuzz fuzz-smoke check check-run demo demo-run deps clean \
        install uninstall
.DEFAULT_GOAL := all

all: build/braid-master build/braid-slave

notun: build/notun/braid-master build/notun/braid-slave tools

asan: build/asan/braid-master build/asan/braid-slave $(addprefix build/asan/tests/,$(UNIT_NAMES))

unit: $(addprefix build/tests/,$(UNIT_NAMES))

tools: $(addprefix build/tools/,$(TOOL_NAMES)) $(if $(wildcard tests/emu/main.c),build/tools/braid-emu)

fuzz: $(addprefix build/fuzz/,$(FUZZ_NAMES))

# ---- objects ----
build/obj/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) $(FILE_CFLAGS) -MMD -MP -c $< -o $@

build/obj/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ASAN) $(FILE_CFLAGS) -MMD -MP -c $< -o $@

build/obj/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_FUZZ) $(FILE_CFLAGS) -MMD -MP -c $< -o $@

$(REL_LIB): $(call obj,rel,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(ASAN_LIB): $(call obj,asan,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_LIB): $(call obj,fuzz,$(LIB_SRC) tundev/notun.c)
	@rm -f $@
	ar rcs $@ $^

# ---- programs: TUN (build/), notun (build/notun/), notun + ASan/UBSan (build/asan/) ----
build/braid-master: $(call obj,rel,$(MASTER_SRC) tundev/tun_linux.c) $(REL_LIB)
	$(CC) $(EXTRA_LDFLAGS) -o $@ $^ $(PKG_LIBS)
build/braid-slave: $(call obj,rel,$(SLAVE_SRC) tundev/tun_linux.c) $(REL_LIB)
	$(CC) $(EXTRA_LDFLAGS) -o $@ $^ $(PKG_LIBS)
build/notun/braid-master: $(call obj,rel,$(MASTER_SRC) tundev/notun.c) $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(PKG_LIBS)
build/notun/braid-slave: $(call obj,rel,$(SLAVE_SRC) tundev/notun.c) $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(PKG_LIBS)
build/asan/braid-master: $(call obj,asan,$(MASTER_SRC) tundev/notun.c) $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(PKG_LIBS)
build/asan/braid-slave: $(call obj,asan,$(SLAVE_SRC) tundev/notun.c) $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(PKG_LIBS)

# ---- test programs (tests/tools/*.c: link emulator, frame tool helpers) ----
build/tools/braid-emu: $(call obj,rel,tests/emu/main.c $(EMU_SRC)) $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(PKG_LIBS)
build/tools/%: build/obj/rel/tests/tools/%.o $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(PKG_LIBS)

# ---- unit tests (cmocka): plain and ASan/UBSan ----
build/tests/%: build/obj/rel/tests/unit/%.o $(call obj,rel,tundev/notun.c $(EMU_SRC)) $(REL_LIB)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(CMOCKA_LIBS) $(PKG_LIBS)
build/asan/tests/%: build/obj/asan/tests/unit/%.o $(call obj,asan,tundev/notun.c $(EMU_SRC)) $(ASAN_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ASAN) -o $@ $^ $(CMOCKA_LIBS) $(PKG_LIBS)

# ---- libFuzzer targets ----
build/fuzz/%: build/obj/fuzz/tests/fuzz/%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(CLANG) $(LDFLAGS_FUZZ) -o $@ $^ $(PKG_LIBS)

FUZZ_SECONDS ?= 15
fuzz-smoke:
	@if command -v $(CLANG) >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory fuzz && sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES); \
	else echo "SKIP fuzz: clang not installed (apt-get install clang)"; fi

# ---- check and demo: install what is missing, then run ----
deps:
	@sh .ci/deps.sh build test

check:
	@sh .ci/deps.sh build test
	@$(MAKE) --no-print-directory check-run

check-run: all notun asan unit tools
	@sh tests/run.sh

demo:
	@sh .ci/deps.sh build
	@$(MAKE) --no-print-directory demo-run

demo-run: notun
	@$(PYTHON) tests/demo.py --build build/notun

# ---- install: make install [PREFIX=/usr/local] [DESTDIR=...] ----
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/braid
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
MANPAGES   := docs/man/braid-master.8 docs/man/braid-slave.8 docs/man/braid.conf.5
UNITS      := braid-master.service braid-slave.service

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 \
	           $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(UNITDIR)
	install -d -m 700 $(DESTDIR)$(SYSCONFDIR)/braid
	install -m 755 build/braid-master build/braid-slave $(DESTDIR)$(SBINDIR)/
	install -m 644 docs/man/braid-master.8 docs/man/braid-slave.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 docs/man/braid.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 conf/master.conf conf/slave.conf $(DESTDIR)$(DOCDIR)/examples/
	for u in $(UNITS); do \
	    sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	        conf/systemd/$$u.in > $(DESTDIR)$(UNITDIR)/$$u && chmod 644 $(DESTDIR)$(UNITDIR)/$$u; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/braid-master $(DESTDIR)$(SBINDIR)/braid-slave \
	      $(DESTDIR)$(MANDIR)/man8/braid-master.8 $(DESTDIR)$(MANDIR)/man8/braid-slave.8 \
	      $(DESTDIR)$(MANDIR)/man5/braid.conf.5 $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(SYSCONFDIR)/braid 2>/dev/null

clean:
	rm -rf build

-include $(shell find build/obj -name '*.d' 2>/dev/null)
.SECONDARY:
