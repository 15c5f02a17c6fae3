// Request bodies → jsonb without Postgres' text parser: RapidJSON parses the body once (in place,
// iteratively) into a JsonbValue tree whose objects are already sorted and deduplicated the way jsonb wants
// them, and Postgres serialises that tree. This replaces jsonb_in on the ingest hot path; the result is the
// same jsonb.
#pragma once

#include <cstddef>

#include "pg/postgres_headers.h"

namespace segment_pg {

// The body as jsonb, allocated in the current memory context. On failure returns nullptr and sets *error to a
// palloc'd sentence (invalid JSON, a number Postgres cannot store, nesting too deep, out of memory). Never
// raises a Postgres error.
Jsonb *json_to_jsonb(const char *text, size_t length, char **error);

}  // namespace segment_pg
