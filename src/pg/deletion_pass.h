// Work the warehouse worker does besides the warehouse relations, each step in a transaction of its own, as
// the extension's owner, with its own error boundary (a failure is logged once while it lasts, its
// transaction aborted, and the step tried again later):
// - the deletion notifications the ingest workers recorded as 'pending' in segment_deletions (their role may
//   not delete): segment_run_deletions(), on every turn (about once a second), warehouse on or off;
// - maintenance: segment_run_maintenance() (day partitions ahead, retention, old deduplication keys), when
// the
//   worker starts and about once an hour, sooner while it says a next call has work.
#pragma once

namespace segment_pg {

// Does nothing before the extension exists at 0.4 or later. Never raises.
void run_pending_deletions();

// Does nothing before the extension exists at 0.5 or later, or before it is due. Never raises.
void run_maintenance_when_due();

}  // namespace segment_pg
