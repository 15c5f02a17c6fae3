// Carries out the deletion notifications the ingest workers recorded as 'pending' in segment_deletions (their
// role may not delete): segment_run_deletions() in a transaction of its own, as the extension's owner. The
// warehouse worker calls it on every turn, about once a second, whether segment_webhook.warehouse is on or
// not.
#pragma once

namespace segment_pg {

// Does nothing before the extension exists at 0.4 or later. Never raises: a failure is logged (once while it
// lasts), its transaction aborted, and the requests stay pending for the next call.
void run_pending_deletions();

}  // namespace segment_pg
