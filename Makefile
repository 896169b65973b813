# smime-milter — plain GNU make, C11.
#
#   make              build milter/smime-milter and milter/smimectl
#   make check        install missing Debian packages, build, run every test
#   make check-asan   the same tests on an ASan+UBSan build (build-asan/)
#   make run          run the daemon in the foreground with conf/smime-milter.conf
#   make demo         the whole job end to end through a private Postfix
#   make install      PREFIX=/usr/local DESTDIR=
#   make install-user the system user, keys_dir and state directory (root)
#   make uninstall    what make install put there, but the configuration,
#                     keys and the cache
#   make deb          build/deb/smime-milter_VERSION_ARCH.deb (debhelper)

VERSION   := 0.1.0
PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
STATEDIR  ?= /var/lib/smime-milter
DOCDIR    ?= $(PREFIX)/share/doc/smime-milter
# The daemon's system user (make install-user).
DAEMON_USER ?= smime-milter

# O: object directory; BINDIR: where the two programs land.
O         ?= build
BINDIR    ?= milter
SAN       ?=

PKGS      := libcrypto libconfig sqlite3 libidn2 libcurl ldap libunbound libpq
CC        ?= cc
CFLAGS    ?= -O2 -g
# pkg-config runs when a recipe first needs its answer, never while this file
# is parsed: `make demo` on a fresh machine installs the -dev packages (deps)
# before anything compiles, and a value computed at parse time would be the
# empty answer from before. Each is computed once, then kept.
# Cflags are asked one package at a time: `pkg-config --cflags libunbound`
# fails when libevent-dev (named in its Requires.private) is absent, and a
# combined call would then lose every flag, libpq's -I among them.
# (--modversion, not --exists, tells whether a package is there: --exists
# fails on libunbound for the same reason.)
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call pkg_cflags,$(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(call pkg_libs,$(PKGS)))$(PKG_LIBS)
CHECK_LIBS = $(eval CHECK_LIBS := $(call pkg_libs,check))$(CHECK_LIBS)
pkg_cflags = $(foreach p,$1,$(if $(shell pkg-config --modversion $p 2>/dev/null),$(shell pkg-config --cflags $p 2>/dev/null),$(error pkg-config knows no $p: run `make deps` (as root) first)))
pkg_libs   = $(or $(shell pkg-config --libs $1 2>/dev/null),$(error pkg-config knows no $1: run `make deps` (as root) first))
XCFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
             -DSMIME_VERSION='"$(VERSION)"' $(PKG_CFLAGS)
XCPPFLAGS := -Ilib
LIBS       = $(PKG_LIBS) -lpthread

ifneq ($(SAN),)
XCFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
CFLAGS   := -O1 -g
endif
# FUZZ=1 (with CC=clang): the library instrumented for libFuzzer; see `make fuzz`.
ifneq ($(FUZZ),)
XCFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
CFLAGS   := -O1 -g
endif

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(O)/%.o)
LIB_A     := $(O)/libsmime.a
MILTER_OBJS := $(O)/milter/smime-milter.o $(O)/milter/callbacks.o $(O)/milter/observe.o
CTL_OBJS  := $(O)/milter/smimectl.o $(O)/milter/smimectl_util.o $(O)/milter/smimectl_cert.o $(O)/milter/smimectl_key.o $(O)/milter/smimectl_inspect.o $(O)/milter/smimectl_check.o $(O)/milter/smimectl_observe.o $(O)/milter/smimectl_revocation.o $(O)/milter/smimectl_cacheinit.o \
             $(O)/milter/smimectl_cache.o
UNIT_SRCS := $(sort $(wildcard tests/unit/check_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(O)/tests/%)
TESTUTIL  := $(O)/tests/unit/testutil.o

PROGS     := $(BINDIR)/smime-milter $(BINDIR)/smimectl

.PHONY: all deps check check-run check-unit check-e2e check-asan check-valgrind \
        check-valgrind-run check-fresh run run-run demo demo-run install install-user \
        uninstall deb clean bench bench-run fuzz fuzz-build
all: $(PROGS)

# Keep object files of the test programs (they are intermediate otherwise).
.SECONDARY:

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(XCPPFLAGS) $(CPPFLAGS) $(XCFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BINDIR)/smime-milter: $(MILTER_OBJS) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $(MILTER_OBJS) $(LIB_A) -lmilter $(LIBS)

$(BINDIR)/smimectl: $(CTL_OBJS) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $(CTL_OBJS) $(LIB_A) $(LIBS)

$(O)/tests/check_%: $(O)/tests/unit/check_%.o $(TESTUTIL) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDSAN) $(LDFLAGS) -pthread -o $@ $< $(TESTUTIL) $(LIB_A) $(CHECK_LIBS) $(LIBS)

# libFuzzer targets (tests/fuzz/fuzz_*.c), built by clang into build-fuzz/.
# make fuzz: each target for FUZZ_SECONDS (default 60); make check replays
# their corpora and past findings (tests/fuzz/replay.test).
FUZZ_O       := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_NAMES   := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))

$(O)/fuzz/fuzz_%: $(O)/tests/fuzz/fuzz_%.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -pthread -o $@ $< $(LIB_A) $(LIBS)

fuzz-build:
	@command -v clang >/dev/null || { echo "fuzz: clang is missing (make deps installs it)" >&2; exit 1; }
	@$(MAKE) --no-print-directory O=$(FUZZ_O) CC=clang FUZZ=1 \
	  $(FUZZ_NAMES:%=$(FUZZ_O)/fuzz/%)

fuzz: deps fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh fuzz

deps:
	@scripts/deps

# Environment handed to every test script: where the programs are.
TEST_ENV := SMIME_BINDIR=$(abspath $(BINDIR)) SMIME_TESTBIN=$(abspath $(O)/tests) \
            SMIME_TOP=$(CURDIR) SMIME_TESTLOG=$(abspath $(O))/testlog

check: deps
	@$(MAKE) --no-print-directory check-run

check-run: all $(UNIT_BINS)
	@$(TEST_ENV) tests/run-all

check-unit: all $(UNIT_BINS)
	@$(TEST_ENV) tests/run-all unit

check-e2e: all $(UNIT_BINS)
	@$(TEST_ENV) tests/run-all e2e

check-asan: deps
	@$(MAKE) --no-print-directory O=build-asan BINDIR=build-asan/bin SAN=1 check-run

check-valgrind: deps
	@$(MAKE) --no-print-directory check-valgrind-run

check-valgrind-run: all $(UNIT_BINS)
	@$(TEST_ENV) SMIME_VALGRIND=1 tests/run-all unit

# make run: the sample configuration with its state paths moved under var/.
RUNDIR := $(CURDIR)/var
# Targets that install packages first (deps) build in a second make: one that
# starts after deps has finished, so nothing compiles against missing headers.
run: deps
	@$(MAKE) --no-print-directory run-run

run-run: all
	@mkdir -p $(RUNDIR)/keys && chmod 700 $(RUNDIR)/keys
	@sed -e 's|"/var/lib/smime-milter/cache.db"|"$(RUNDIR)/cache.db"|' \
	     -e 's|"/var/lib/smime-milter/spool"|"$(RUNDIR)/spool"|' \
	     -e 's|"/run/smime-milter/smime-milter.pid"|"$(RUNDIR)/smime-milter.pid"|' \
	     -e 's|"/etc/smime-milter/keys"|"$(RUNDIR)/keys"|' \
	     conf/smime-milter.conf > $(RUNDIR)/smime-milter.conf
	@echo "make run: $(RUNDIR)/smime-milter.conf (conf/smime-milter.conf with state under var/); Ctrl-C stops"
	$(BINDIR)/smime-milter -f -c $(RUNDIR)/smime-milter.conf -p inet:8894@127.0.0.1

demo: deps
	@$(MAKE) --no-print-directory demo-run

demo-run: all
	@contrib/demo/demo.sh

bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: all
	@contrib/bench/bench.sh $(BENCH_ARGS)

# A throwaway copy-on-write root without the project's -dev packages: a fresh
# clone of this repository (its committed HEAD) must pass `make demo` and
# `make check` first try there. Root only; nothing on the host changes.
check-fresh:
	@tests/fresh/fresh-root.sh

install: all
	@# Declarative list: what goes where, with which mode. DESTDIR and PREFIX
	@# are honoured; an existing configuration is never overwritten.
	@# SYSTEMDUNITDIR=/lib/systemd/system also installs the unit there;
	@# DOCDIR defaults to PREFIX/share/doc/smime-milter, and the installed
	@# man pages name it.
	install -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	@# The man pages name the documentation directory: this installation's.
	for m in man/smime-milter.conf.5 man/smime-milter.8 man/smimectl.8; do \
	  sec=$${m##*.}; \
	  sed -e 's|/usr/share/doc/smime\\-milter|$(subst -,\\-,$(DOCDIR))|g' $$m \
	    > $(DESTDIR)$(MANDIR)/man$$sec/$${m#man/} && \
	  chmod 0644 $(DESTDIR)$(MANDIR)/man$$sec/$${m#man/} || exit 1; \
	done
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/smime-milter
	install -d -m 0700 $(DESTDIR)$(SYSCONFDIR)/smime-milter/keys
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/smime-milter/smime-milter.conf ]; then \
	  echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/smime-milter/smime-milter.conf"; \
	else \
	  echo "install -m 0644 conf/smime-milter.conf $(DESTDIR)$(SYSCONFDIR)/smime-milter/"; \
	  install -m 0644 conf/smime-milter.conf $(DESTDIR)$(SYSCONFDIR)/smime-milter/; \
	fi
	install -d -m 0750 $(DESTDIR)$(STATEDIR)
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/postfix \
	  $(DESTDIR)$(DOCDIR)/sendmail \
	  $(DESTDIR)$(DOCDIR)/systemd \
	  $(DESTDIR)$(DOCDIR)/prometheus
	install -m 0644 contrib/prometheus/prometheus.yml contrib/prometheus/smime-milter-alerts.yml \
	  contrib/prometheus/what-to-graph.md \
	  $(DESTDIR)$(DOCDIR)/prometheus/
	install -m 0644 README.md contrib/syslog.md conf/smime-milter.conf \
	  $(DESTDIR)$(DOCDIR)/
	install -m 0644 contrib/postfix/main.cf contrib/postfix/master.cf \
	  $(DESTDIR)$(DOCDIR)/postfix/
	install -m 0644 contrib/sendmail/smime-milter.mc \
	  $(DESTDIR)$(DOCDIR)/sendmail/
	@# The unit names /usr/sbin and /etc: point it at this installation.
	sed -e 's|/usr/sbin/smime-milter|$(SBINDIR)/smime-milter|g' \
	    -e 's|/etc/smime-milter/smime-milter.conf|$(SYSCONFDIR)/smime-milter/smime-milter.conf|g' \
	  contrib/systemd/smime-milter.service \
	  > $(DESTDIR)$(DOCDIR)/systemd/smime-milter.service
	chmod 0644 $(DESTDIR)$(DOCDIR)/systemd/smime-milter.service
	@if [ -n "$(SYSTEMDUNITDIR)" ]; then \
	  echo "install -m 0644 smime-milter.service $(DESTDIR)$(SYSTEMDUNITDIR)/"; \
	  install -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR) && \
	  install -m 0644 $(DESTDIR)$(DOCDIR)/systemd/smime-milter.service \
	    $(DESTDIR)$(SYSTEMDUNITDIR)/; \
	fi

# The daemon's user and the directories it owns; Postfix joins its group so
# that it can reach a unix socket of mode 0660. Idempotent. (The systemd
# unit runs the daemon as this user; elsewhere set user = "smime-milter".)
install-user:
	@[ "$$(id -u)" = 0 ] || { echo "make install-user: run as root"; exit 1; }
	@getent group $(DAEMON_USER) >/dev/null || \
	  { echo "addgroup --system $(DAEMON_USER)"; addgroup --quiet --system $(DAEMON_USER); }
	@id -u $(DAEMON_USER) >/dev/null 2>&1 || \
	  { echo "adduser --system --ingroup $(DAEMON_USER) --home $(STATEDIR) --no-create-home $(DAEMON_USER)"; \
	    adduser --quiet --system --ingroup $(DAEMON_USER) --home $(STATEDIR) \
	      --no-create-home --shell /usr/sbin/nologin $(DAEMON_USER); }
	install -d -o root -g root -m 0755 $(DESTDIR)$(SYSCONFDIR)/smime-milter
	install -d -o $(DAEMON_USER) -g $(DAEMON_USER) -m 0700 $(DESTDIR)$(SYSCONFDIR)/smime-milter/keys
	install -d -o $(DAEMON_USER) -g $(DAEMON_USER) -m 0750 $(DESTDIR)$(STATEDIR)
	@if id -u postfix >/dev/null 2>&1 && ! id -nG postfix | grep -qw $(DAEMON_USER); then \
	  echo "adduser postfix $(DAEMON_USER)"; adduser --quiet postfix $(DAEMON_USER); \
	fi

# A Debian package, built with debhelper from a copy of the committed tree
# (dpkg-buildpackage writes next to the source directory: build/deb/).
DEB_DIR := build/deb
deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
	  { echo "make deb: needs dpkg-dev and debhelper (apt-get install dpkg-dev debhelper)"; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/smime-milter-$(VERSION)
	git archive HEAD | tar -x -C $(DEB_DIR)/smime-milter-$(VERSION)
	cd $(DEB_DIR)/smime-milter-$(VERSION) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_DIR)/*.deb

# Everything make install wrote, except what the operator made or the
# daemon keeps: the configuration, keys_dir and the state (cache).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/smime-milter $(DESTDIR)$(SBINDIR)/smimectl \
	  $(DESTDIR)$(MANDIR)/man5/smime-milter.conf.5 \
	  $(DESTDIR)$(MANDIR)/man8/smime-milter.8 $(DESTDIR)$(MANDIR)/man8/smimectl.8
	rm -rf $(DESTDIR)$(DOCDIR)
	@if [ -n "$(SYSTEMDUNITDIR)" ]; then \
	  echo "rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/smime-milter.service"; \
	  rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/smime-milter.service; \
	fi
	@echo "kept: $(DESTDIR)$(SYSCONFDIR)/smime-milter (configuration, keys) and $(DESTDIR)$(STATEDIR) (cache)"

clean:
	rm -rf build build-asan build-fuzz milter/smime-milter milter/smimectl var

-include $(LIB_OBJS:.o=.d) $(MILTER_OBJS:.o=.d) $(CTL_OBJS:.o=.d) \
  $(UNIT_SRCS:%.c=$(O)/%.d) $(TESTUTIL:.o=.d) $(FUZZ_NAMES:%=$(O)/tests/fuzz/%.d)
