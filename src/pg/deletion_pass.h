// Carries out the deletion notifications the ingest workers recorded as 'pending' in segment_deletions (their
// role may not delete): segment_run_deletions() in a transaction of its own, as the extension's owner. The
// warehouse worker calls it on every turn, about once a second, whether segment_webhook.warehouse is on or
// not.
#pragma once

namespace segment_pg {

// Does nothing before the extension exists at 0.4 or later. May raise a Postgres error (the caller's error
// boundary aborts the transaction).
void run_pending_deletions();

}  // namespace segment_pg
