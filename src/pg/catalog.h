// Catalog lookups of the extension's own objects, in one place. The worker lives longer than these objects:
// the schema, the extension or a table can be dropped, renamed or altered under it at any moment, so every
// lookup here may come back empty. Each helper checks that and raises a Postgres error with an SQLSTATE a
// caller can classify (see storage_error_code); none ever hands on an unchecked InvalidOid or NULL name.
#pragma once

#include "pg/postgres_headers.h"

namespace segment_pg {

// The quoted name of the extension's schema, for building SQL. ERROR (3F000 invalid_schema_name) when the
// schema no longer exists.
const char *quoted_schema_name(Oid schema);

// The extension's schema and version as installed in the current database; InvalidOid when it is not
// installed. *version (palloc'd) may be null when the caller does not need it. Needs a transaction.
Oid find_extension(char **version);

// The role that runs the ingest SQL when segment_webhook.role is not set (created by CREATE EXTENSION);
// InvalidOid while it does not exist (an extension installed at version 0.1 and not yet updated).
constexpr const char *kIngestRoleName = "segment_webhook_ingest";
Oid find_ingest_role();

// Whether segment_events in `schema` has the column signature_verified (boolean, added in 0.4). The ingest
// path writes it only then, so that this library also writes into the table of an extension not yet updated
// (or one whose column a user dropped). False when the table does not exist. Needs a transaction.
bool events_have_signature_column(Oid schema);

// Whether segment_events in `schema` is partitioned (version 0.5 on): its messages are then deduplicated
// through segment_event_keys rather than a unique index of its own. False when it does not exist.
bool events_are_partitioned(Oid schema);

// What a worker's 503 says when writing failed: "storage_misconfigured" for errors about the extension's own
// objects (a table, column, schema or privilege missing or changed: 3F, 42 and 0A classes), else
// "database_unavailable" (lock timeout, read-only, disk full, shutdown, ...).
const char *storage_error_code(int sqlerrcode);

}  // namespace segment_pg
