// ISO-8601 timestamps as Segment and its SDKs write them ("2024-05-01T12:34:56.789Z", "+02:00" offsets,
// up to microsecond fractions). Pure C++; never includes Postgres. Garbage yields "no value", never an error.
#pragma once
#include "core/no_postgres.h"

#include <cstdint>
#include <optional>
#include <string_view>

namespace segment {

// Microseconds since 1970-01-01T00:00:00Z.
using UnixMicros = int64_t;

// Accepts YYYY-MM-DD, then optionally 'T' (or 't' or one space) and hh:mm[:ss[.fraction]], then optionally
// 'Z'/'z' or an offset ±hh[:mm] / ±hhmm. No offset means UTC. Fractions beyond six digits are truncated.
// Years 0001-9999; every field range-checked (Feb 29 only in leap years; second 60 is refused).
std::optional<UnixMicros> parse_iso8601(std::string_view text) noexcept;

// Days since 1970-01-01 of a proleptic Gregorian date (no range checks).
int64_t days_from_civil(int64_t year, unsigned month, unsigned day) noexcept;

}  // namespace segment
