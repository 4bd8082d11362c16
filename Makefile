# hakmem - a drop-in allocator for programs that churn large blocks.
#   make            build/libhakmem.so, build/libhakmem.a, build/hakmem-stat
#   make test       install missing packages, build, run unit + integration tests (T=filter)
#   make demo       install missing packages, build, run the demo workload
#   make install PREFIX=/usr/local   (DESTDIR honoured; make uninstall with the same values)
#   V=1 shows every command; O=dir puts the build elsewhere; EXTRA_CFLAGS adds flags.

# `make` alone builds everything: rules above `all` (the flags stamp below,
# the fragments) must not become the default goal.
.DEFAULT_GOAL := all

O        ?= build
PREFIX   ?= /usr/local
# Where `make install` puts things (GNU names; each may be set on its own).
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR   ?= $(PREFIX)/share/man
CC       ?= cc
SAN      ?=
V        ?= 0

ifeq ($(V),1)
  Q =
  msg =
else
  Q = @
  msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

HAVE_SDT := $(shell $(CC) -E -include sys/sdt.h -x c /dev/null >/dev/null 2>&1 && echo 1)

WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=gnu11 -O2 -g -pthread $(WARN) -Iinclude -Isrc $(EXTRA_CFLAGS)
ifneq ($(SAN),)
  BASE_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -O1
  SAN_LDFLAGS := -fsanitize=$(SAN)
endif
# Header dependencies: every rule that compiles C adds $(DEPFLAGS), which writes
# the headers its target was built from into <target>.d next to it (-MP: a
# header that goes away does not break the build); the .d files are included
# at the end of this file.  A rule compiling several sources in one command
# writes its .d with -MM instead (one -MF file holds one source's headers).
DEPFLAGS = -MMD -MP -MF $(basename $@).d -MT $@
# Calls inside libhakmem.so to its own exported functions (malloc -> hak_alloc,
# hak_set_ring_cap -> hak_knob_set...) are direct calls, not hops through the
# PLT: -fno-semantic-interposition lets the compiler bind them within a file,
# -Bsymbolic-functions (the .so link below) makes the linker bind them across
# files (override.c -> alloc.c).  A program that defines its own hak_alloc
# still gets its own for its own calls; the library's calls stay the library's.
LIB_CFLAGS := $(BASE_CFLAGS) -fPIC -fdata-sections -fvisibility=hidden -fno-semantic-interposition -ftls-model=initial-exec \
              -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
              $(if $(HAVE_SDT),-DHAK_HAVE_SDT)

# The library, one module per responsibility (see src/README.md).
LIB_CORE := parse options log arena os thp registry bigcache tcache batch footprint knobs stats shm init libc alloc free realloc \
            shm_read showstats
CORE_OBJS := $(addprefix $(O)/obj/,$(addsuffix .o,$(LIB_CORE)))
# The segment reader, compiled once (with the library's flags) and linked into
# the library, the tools and the test programs.  Hidden visibility keeps it out
# of libhakmem.so's exported symbols; linked into an executable it changes
# nothing (an executable exports nothing unless linked -rdynamic), and -fPIC
# code links into PIE executables.
READER_OBJ := $(O)/obj/shm_read.o
# The tools' shared command-line base (tools/cli.c, rule below).
CLI_OBJ    := $(O)/obj/tools/cli.o
HEADERS  := include/hakmem.h include/hakmem/shm.h src/hak_internal.h

TOOLS    := $(O)/hakmem-stat
TEST_DEPS :=
TUNER_LIB_OBJS :=

# ---- parts with their own make fragments (each may add to TOOLS and TEST_DEPS) ----
-include bpf/bpf.mk
-include tuner/tuner.mk
-include bench/bench.mk
-include tests/fuzz/fuzz.mk

# Fragments may add objects to the library (e.g. the tuner policy and history).
CORE_OBJS += $(TUNER_LIB_OBJS)
LIB_OBJS := $(CORE_OBJS) $(O)/obj/override.o
# -fdata-sections (above) and --sort-section=alignment: every global is a section
# of its own, placed by alignment, so the page-aligned big arrays (HAK_PAGE_ALIGNED,
# src/hak_base.h) come first and the small globals of every module end up together.
LIB_LDFLAGS := -shared -pthread -Wl,-soname,libhakmem.so -Wl,-z,now -Wl,-Bsymbolic-functions -Wl,--sort-section=alignment

# The library's objects depend on the flags they are built with, not only on
# their headers: $(O)/lib.flags holds the flags and is rewritten (so it is
# newer than every object) only when they change, e.g. by EXTRA_CFLAGS=...
LIB_FLAGS := $(CC) $(LIB_CFLAGS) $(LIB_LDFLAGS) $(SAN_LDFLAGS)
ifeq ($(filter clean help,$(MAKECMDGOALS)),)
ifneq ($(file <$(O)/lib.flags),$(LIB_FLAGS))
$(shell mkdir -p $(O))
$(file >$(O)/lib.flags,$(LIB_FLAGS))
endif
endif
$(LIB_OBJS) $(O)/libhakmem.so: $(O)/lib.flags


.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all lib tools deps test unit integration demo install uninstall clean help bench env-doc

all: lib tools

help:
	@sed -n '2,7p' Makefile | sed 's/^# \{0,1\}//'

lib: $(O)/libhakmem.so $(O)/libhakmem.a $(O)/hakmem.pc $(O)/hakmem-static.pc

$(O)/obj:
	$(Q)mkdir -p $@

$(O)/obj/%.o: src/%.c $(HEADERS) | $(O)/obj
	$(call msg,CC,$@)
	$(Q)$(CC) $(LIB_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(O)/libhakmem.so: $(LIB_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LIB_LDFLAGS) -o $@ $(filter %.o,$^) -ldl $(SAN_LDFLAGS)

$(O)/libhakmem.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Core without the malloc overrides: for unit tests and sanitizer builds.
$(O)/libhakmem_core.a: $(CORE_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# pkg-config files, for the install prefix: hakmem.pc links the shared library
# (-lhakmem), hakmem-static.pc the archive (by path, whole: every malloc
# replacement and the constructor come along) with the libraries it needs.
# They are rewritten when PREFIX/LIBDIR/INCLUDEDIR change ($(O)/pc.vars holds
# the values, like lib.flags), so `make install PREFIX=/x` after a plain
# `make` installs files that name /x.
PC_VARS := $(PREFIX) $(LIBDIR) $(INCLUDEDIR)
ifeq ($(filter clean help,$(MAKECMDGOALS)),)
ifneq ($(file <$(O)/pc.vars),$(PC_VARS))
$(shell mkdir -p $(O))
$(file >$(O)/pc.vars,$(PC_VARS))
endif
endif
# ${prefix}-relative when under PREFIX, as pkg-config --define-prefix expects.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_HEAD = prefix=$(PREFIX)\nlibdir=$(call pc_dir,$(LIBDIR))\nincludedir=$(call pc_dir,$(INCLUDEDIR))\n\n
PC_LIBS_PRIVATE := -pthread -ldl

$(O)/hakmem.pc: Makefile $(O)/pc.vars include/hakmem.h | $(O)/obj
	$(call msg,GEN,$@)
	$(Q)printf '%b' '$(PC_HEAD)Name: hakmem\nDescription: drop-in large-block allocator (BigCache + Batch)\nVersion: $(HAK_VERSION)\nLibs: -L$${libdir} -lhakmem\nLibs.private: $(PC_LIBS_PRIVATE)\nCflags: -I$${includedir}\n' > $@

$(O)/hakmem-static.pc: Makefile $(O)/pc.vars include/hakmem.h | $(O)/obj
	$(call msg,GEN,$@)
	$(Q)printf '%b' '$(PC_HEAD)Name: hakmem-static\nDescription: drop-in large-block allocator, linked from libhakmem.a\nVersion: $(HAK_VERSION)\nLibs: -Wl,--whole-archive $${libdir}/libhakmem.a -Wl,--no-whole-archive $(PC_LIBS_PRIVATE)\nCflags: -I$${includedir}\n' > $@

tools: $(TOOLS)

# The Prometheus writer (tools/metrics.c) is shared with hakmem-tuner --listen.
$(O)/obj/tools/metrics.o: tools/metrics.c tools/metrics.h include/hakmem/shm.h | $(O)/obj
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -c $< -o $@

# The command-line base of every tool (tools/cli.c: exit-status table, pid /
# interval / count / seconds parsers, version and usage messages, clock, stop
# signals, JSON strings and numbers), compiled once and linked into each
# (CLI_OBJ is set at the top, before the fragments that use it).
$(CLI_OBJ): tools/cli.c tools/cli.h include/hakmem.h include/hakmem/shm.h | $(O)/obj
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -c $< -o $@

# hakmem-stat --set parses sizes with the library's own parser (obj/parse.o).
$(O)/hakmem-stat: tools/hakmem-stat.c $(READER_OBJ) $(CLI_OBJ) $(O)/obj/tools/metrics.o $(O)/obj/parse.o tools/metrics.h tools/cli.h include/hakmem/shm.h
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(READER_OBJ) $(CLI_OBJ) $(O)/obj/tools/metrics.o $(O)/obj/parse.o -lm $(SAN_LDFLAGS)

$(O)/env-doc: tools/env-doc.c $(O)/obj/options.o $(O)/obj/log.o $(O)/obj/parse.o $(HEADERS)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(BASE_CFLAGS) $(DEPFLAGS) -o $@ $< $(O)/obj/options.o $(O)/obj/log.o $(O)/obj/parse.o

# Rewrite the HAKMEM_* table in README.md and the ENVIRONMENT entries of
# man/hakmem.3 (between the lines .\" ENV-TABLE:BEGIN / END) from the option table.
env-doc: $(O)/env-doc
	$(Q)python3 scripts/replace_block.py README.md ENV-TABLE $(O)/env-doc
	$(Q)$(O)/env-doc --man > $(O)/env-doc.man
	$(Q)awk -v gen=$(O)/env-doc.man '/^\.\\" ENV-TABLE:END/ { while ((getline l < gen) > 0) print l; skip = 0 } \
	  !skip { print } /^\.\\" ENV-TABLE:BEGIN/ { skip = 1 }' man/hakmem.3 > $(O)/hakmem.3.tmp
	$(Q)cmp -s $(O)/hakmem.3.tmp man/hakmem.3 || cp $(O)/hakmem.3.tmp man/hakmem.3
	$(Q)rm -f $(O)/hakmem.3.tmp

# ---- setup: every Debian package the project needs, installed when missing ----
deps:
	$(Q)bash scripts/deps.sh

# ---- tests ----
include tests/tests.mk

test: deps
	$(Q)$(MAKE) --no-print-directory all test-build
	$(Q)bash tests/run.sh $(O) $(T)

# ---- demo ----
demo: deps
	$(Q)$(MAKE) --no-print-directory all test-build
	$(Q)bash scripts/demo.sh $(O)

# ---- install ----
# Everything `make install` puts in place (paths below $(DESTDIR)); uninstall
# removes exactly this list.  The tools are the hakmem-* programs $(TOOLS)
# holds (hakmem-probe only when it could be built; it is a root tool, so it
# goes to sbin, beside its page in section 8).
INSTALL_BIN_TOOLS  := $(filter-out $(O)/hakmem-probe,$(filter $(O)/hakmem-%,$(TOOLS)))
INSTALL_SBIN_TOOLS := $(filter $(O)/hakmem-probe,$(TOOLS))
MAN_PAGES := $(wildcard man/*.[1-8])
INSTALLED := $(addprefix $(BINDIR)/,$(notdir $(INSTALL_BIN_TOOLS))) \
             $(addprefix $(SBINDIR)/,$(notdir $(INSTALL_SBIN_TOOLS))) \
             $(LIBDIR)/libhakmem.so $(LIBDIR)/libhakmem.a \
             $(INCLUDEDIR)/hakmem.h $(INCLUDEDIR)/hakmem/shm.h \
             $(PKGCONFIGDIR)/hakmem.pc $(PKGCONFIGDIR)/hakmem-static.pc \
             $(foreach m,$(MAN_PAGES),$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
HAK_VERSION := $(shell sed -n 's/^\#define HAKMEM_VERSION "\(.*\)"/\1/p' include/hakmem.h)

install: lib $(INSTALL_BIN_TOOLS) $(INSTALL_SBIN_TOOLS)
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/hakmem $(DESTDIR)$(PKGCONFIGDIR)
	$(Q)install -m 0755 $(O)/libhakmem.so $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 0644 $(O)/libhakmem.a $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 0644 include/hakmem.h $(DESTDIR)$(INCLUDEDIR)/
	$(Q)install -m 0644 include/hakmem/shm.h $(DESTDIR)$(INCLUDEDIR)/hakmem/
	$(Q)install -m 0644 $(O)/hakmem.pc $(O)/hakmem-static.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(if $(INSTALL_BIN_TOOLS),$(Q)install -d $(DESTDIR)$(BINDIR) && install -m 0755 $(INSTALL_BIN_TOOLS) $(DESTDIR)$(BINDIR)/)
	$(if $(INSTALL_SBIN_TOOLS),$(Q)install -d $(DESTDIR)$(SBINDIR) && install -m 0755 $(INSTALL_SBIN_TOOLS) $(DESTDIR)$(SBINDIR)/)
	$(Q)for m in $(MAN_PAGES); do d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
	  install -d $$d && install -m 0644 $$m $$d/ || exit 1; done
	$(if $(INSTALL_SBIN_TOOLS),,@printf '  %-8s %s\n' "NOTE" "hakmem-probe was not built (see $(O)/bpf/SKIPPED): not installed")

uninstall:
	$(call msg,UNINSTALL,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(addprefix $(DESTDIR),$(INSTALLED) $(SBINDIR)/hakmem-probe $(MANDIR)/man8/hakmem-probe.8)
	$(Q)rmdir $(DESTDIR)$(INCLUDEDIR)/hakmem 2>/dev/null || true

clean:
	$(call msg,CLEAN,$(O))
	$(Q)rm -rf $(O)

# Header dependencies written by $(DEPFLAGS) (see there).  The fuzz build's own
# objects ($(O)/fuzz/obj, a sub-make with O=$(O)/fuzz) are that make's business.
DEPFILES := $(filter-out $(O)/fuzz/obj/%,$(wildcard $(O)/*.d $(O)/*/*.d $(O)/*/*/*.d))
$(DEPFILES): ;
-include $(DEPFILES)
