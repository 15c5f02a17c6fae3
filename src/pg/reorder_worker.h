// The reorder worker: a background worker the warehouse worker starts after its maintenance (when the worker
// starts, then about once an hour) that rewrites the closed day partitions of segment_events in the order of
// type, source, event and timestamp, one transaction per partition (segment_reorder_next(), as the
// extension's owner), and exits when none is left. A copy of a large day takes minutes: in a process of its
// own it does not hold up the warehouse worker's passes (a deletion request for an event of the day being
// copied still waits for the copy).
#pragma once

namespace segment_pg {

// Starts the reorder worker unless segment_webhook.reorder_partitions is off, this server is a standby, or
// one is running already. Never raises (a failure to start is logged once while it lasts).
void start_reorder_worker();

}  // namespace segment_pg
