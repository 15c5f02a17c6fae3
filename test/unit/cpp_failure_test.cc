// describe_current_exception: what run_cpp turns into a Postgres error (53200 for std::bad_alloc).
#include "core/cpp_failure.h"

#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

namespace {

template <typename Throwing>
segment::CppFailure failure_of(Throwing throwing) {
    try {
        throwing();
    } catch (...) {
        return segment::describe_current_exception();
    }
    return segment::CppFailure();
}

TEST(CppFailure, BadAllocIsOutOfMemory) {
    const segment::CppFailure failure = failure_of([] { throw std::bad_alloc(); });
    EXPECT_TRUE(failure.out_of_memory);
    EXPECT_STREQ(failure.message, "out of memory");
}

TEST(CppFailure, OtherExceptionsKeepTheirMessage) {
    const segment::CppFailure failure = failure_of([] { throw std::runtime_error("could not listen"); });
    EXPECT_FALSE(failure.out_of_memory);
    EXPECT_STREQ(failure.message, "could not listen");
}

TEST(CppFailure, NonStandardExceptions) {
    const segment::CppFailure failure = failure_of([] { throw 42; });
    EXPECT_FALSE(failure.out_of_memory);
    EXPECT_STREQ(failure.message, "unknown C++ exception");
}

TEST(CppFailure, LongMessagesAreCut) {
    const segment::CppFailure failure = failure_of([] { throw std::runtime_error(std::string(1000, 'x')); });
    EXPECT_EQ(std::string(failure.message).size(), sizeof failure.message - 1);
}

}  // namespace
