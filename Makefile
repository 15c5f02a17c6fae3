# segment_webhook: PGXS build. `make && sudo make install`, then `make installcheck` (pg_regress on a temporary
# instance with the library preloaded) and `make unittest` (GoogleTest for src/core). See README.md.

EXTENSION = segment_webhook
MODULE_big = segment_webhook
DATA = sql/segment_webhook--0.1.sql sql/segment_webhook--0.2.sql sql/segment_webhook--0.3.sql sql/segment_webhook--0.4.sql sql/segment_webhook--0.5.sql sql/segment_webhook--0.6.sql \
	sql/segment_webhook--0.1--0.2.sql sql/segment_webhook--0.2--0.3.sql sql/segment_webhook--0.3--0.4.sql sql/segment_webhook--0.4--0.5.sql sql/segment_webhook--0.5--0.6.sql

# Out-of-tree (VPATH) builds, as pg_buildext does for the Debian package (`make -f <tree>/Makefile VPATH=<tree>`
# in build-15/): sources are found under $(srcdir) (`.` in-tree; PGXS sets it), objects and bitcode go to the
# same subdirectories of the build directory (see the %.o and %.bc rules).
CORE_SRCS = $(wildcard $(srcdir)/src/core/*.cc)
PG_SRCS = $(wildcard $(srcdir)/src/pg/*.cc)
OBJS = $(patsubst $(srcdir)/%.cc,%.o,$(CORE_SRCS) $(PG_SRCS))

REGRESS = verify parse sources ingest views privileges replay settings warehouse deletion rotation signature_scope debugger partitions reorder
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf

# TAP tests (PostgreSQL::Test::Cluster): `make installcheck` runs them after pg_regress.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register
SHLIB_LINK = -lstdc++ -lssl -lcrypto -lz

EXTRA_CLEAN = tmp_check_regress test/unit/run_unit_tests $(OBJS:.o=.bc) src/core/*.d src/pg/*.d

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS compiles LLVM bitcode for JIT inlining with clang, from its own flags only, and knows no .cc rule:
# give clang the same C++ standard and warnings as g++.
# (mkdir: in a VPATH build, src/core and src/pg do not exist yet in the build directory.)
%.bc: %.cc
	@mkdir -p $(@D)
	$(COMPILE.cxx.bc) $(PG_CXXFLAGS) -o $@ $<

%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

-include $(OBJS:.o=.d)

# GoogleTest unit tests of the pure C++ core (no Postgres involved).
UNIT_TEST_SRCS = $(wildcard test/unit/*.cc)
UNIT_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O1 -g -I$(srcdir)/src $(UNIT_SANITIZE)

test/unit/run_unit_tests: $(UNIT_TEST_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ $(UNIT_TEST_SRCS) $(CORE_SRCS) -lgtest -lgtest_main -pthread -lssl -lcrypto -lz

.PHONY: unittest unittest-sanitize format-check
unittest: test/unit/run_unit_tests
	test/unit/run_unit_tests

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer, in a separate binary.
unittest-sanitize:
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O1 -g -I$(srcdir)/src -fsanitize=address,undefined \
		-fno-sanitize-recover=all -o test/unit/run_unit_tests_sanitized $(UNIT_TEST_SRCS) $(CORE_SRCS) \
		-lgtest -lgtest_main -pthread -lssl -lcrypto -lz
	test/unit/run_unit_tests_sanitized

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# libFuzzer targets for every parser in src/core (clang). `make fuzz FUZZ_SECONDS=60` runs each for a while.
FUZZ_TARGETS = $(patsubst test/fuzz/%.cc,test/fuzz/bin/%,$(wildcard test/fuzz/fuzz_*.cc))
FUZZ_SECONDS ?= 30
FUZZ_CXX ?= clang++

test/fuzz/bin/%: test/fuzz/%.cc $(CORE_SRCS) $(wildcard src/core/*.h)
	@mkdir -p test/fuzz/bin
	$(FUZZ_CXX) -std=c++17 -Wall -Wextra -Werror -O1 -g -I$(srcdir)/src -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -fsanitize-ignorelist=test/fuzz/ubsan.ignorelist -o $@ $< $(CORE_SRCS) -lssl -lcrypto -lz

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		mkdir -p test/fuzz/bin/corpus-$$(basename $$target); \
		$$target -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=test/fuzz/bin/ \
			test/fuzz/bin/corpus-$$(basename $$target) test/fuzz/corpus/$$(basename $$target) \
			> test/fuzz/bin/$$(basename $$target).log 2>&1 || { tail -30 test/fuzz/bin/$$(basename $$target).log; exit 1; }; \
		tail -1 test/fuzz/bin/$$(basename $$target).log; \
	done

FORMAT_FILES = $(wildcard src/core/*.cc src/core/*.h src/pg/*.cc src/pg/*.h test/unit/*.cc test/fuzz/*.cc)
.PHONY: format
format:
	clang-format -i $(FORMAT_FILES)

# The admin listener's event debugger page: plain files, installed as they are (no build step).
ADMIN_PAGE_FILES = admin/index.html admin/admin.css admin/admin.js
ADMIN_PAGE_DIR = $(DESTDIR)$(datadir)/extension/segment_webhook_admin
.PHONY: install-admin-page uninstall-admin-page
install: install-admin-page
install-admin-page:
	$(MKDIR_P) '$(ADMIN_PAGE_DIR)'
	$(INSTALL_DATA) $(addprefix $(srcdir)/,$(ADMIN_PAGE_FILES)) '$(ADMIN_PAGE_DIR)/'
uninstall: uninstall-admin-page
uninstall-admin-page:
	rm -f $(addprefix '$(ADMIN_PAGE_DIR)'/,$(notdir $(ADMIN_PAGE_FILES)))
