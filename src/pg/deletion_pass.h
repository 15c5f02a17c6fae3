// Work the warehouse worker does besides the warehouse relations, each step in a transaction of its own, as
// the extension's owner, with its own error boundary (a failure is logged once while it lasts, its
// transaction aborted, and the step tried again later):
// - the deletion notifications the ingest workers recorded as 'pending' in segment_deletions (their role may
//   not delete): segment_run_deletions(), on every turn (about once a second), warehouse on or off;
// - maintenance: segment_run_maintenance() (day partitions ahead, retention, old deduplication keys),
//   when the worker starts and about once an hour, sooner while it says a next call has work; then the
//   reorder worker is started (reorder_worker.h).
#pragma once

namespace segment_pg {

// Does nothing before the extension exists at 0.4 or later. Never raises.
void run_pending_deletions();

// Does nothing before the extension exists at 0.5 or later, or before it is due. Never raises. After the
// maintenance it starts the reorder worker (reorder_worker.h).
void run_maintenance_when_due();

// One step: a function of the extension's, called as its owner, in a transaction of its own. What it needs to
// see of the extension comes from `lookup`, a query of (owner, the call to make, a probe that returns a row
// when there is work; NULL to always call). Returns the call's first column as a boolean; *absent says there
// was nothing to call. Raises what the call raises.
bool call_as_owner(const char *lookup, bool *absent);

}  // namespace segment_pg
