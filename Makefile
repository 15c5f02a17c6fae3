# segment_webhook: PGXS build. `make && sudo make install`, then `make installcheck` (pg_regress on a temporary
# instance with the library preloaded) and `make unittest` (GoogleTest for src/core). See README.md.

EXTENSION = segment_webhook
MODULE_big = segment_webhook
DATA = sql/segment_webhook--0.1.sql

CORE_SRCS = $(wildcard src/core/*.cc)
PG_SRCS = $(wildcard src/pg/*.cc)
OBJS = $(CORE_SRCS:.cc=.o) $(PG_SRCS:.cc=.o)

REGRESS = verify parse sources ingest views privileges
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=test/regress.conf

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register
SHLIB_LINK = -lstdc++ -lcrypto

EXTRA_CLEAN = tmp_check_regress test/unit/run_unit_tests $(OBJS:.o=.bc) src/core/*.d src/pg/*.d

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS compiles LLVM bitcode for JIT inlining with clang, from its own flags only, and knows no .cc rule:
# give clang the same C++ standard and warnings as g++.
%.bc: %.cc
	$(COMPILE.cxx.bc) $(PG_CXXFLAGS) -o $@ $<

%.o: %.cc
	$(CXX) $(CXXFLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

-include $(OBJS:.o=.d)

# GoogleTest unit tests of the pure C++ core (no Postgres involved).
UNIT_TEST_SRCS = $(wildcard test/unit/*.cc)
UNIT_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -O1 -g -I$(srcdir)/src $(UNIT_SANITIZE)

test/unit/run_unit_tests: $(UNIT_TEST_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ $(UNIT_TEST_SRCS) $(CORE_SRCS) -lgtest -lgtest_main -pthread -lcrypto

.PHONY: unittest unittest-sanitize format-check
unittest: test/unit/run_unit_tests
	test/unit/run_unit_tests

# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer, in a separate binary.
unittest-sanitize:
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O1 -g -I$(srcdir)/src -fsanitize=address,undefined \
		-fno-sanitize-recover=all -o test/unit/run_unit_tests_sanitized $(UNIT_TEST_SRCS) $(CORE_SRCS) \
		-lgtest -lgtest_main -pthread -lcrypto
	test/unit/run_unit_tests_sanitized

format-check:
	clang-format --dry-run --Werror $(wildcard src/core/*.cc src/core/*.h src/pg/*.cc src/pg/*.h test/unit/*.cc test/fuzz/*.cc)
