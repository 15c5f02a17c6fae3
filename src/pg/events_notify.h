// The live tail: after each batch, one NOTIFY on channel segment_events per source of the batch, carrying
// that source's counts (see core/events_notification.h). Queued with Async_Notify inside the batch's
// transaction, so a listener hears of a batch exactly when its rows become visible, and never of one that was
// rolled back. Plain C-style code over Postgres: no C++ object with a destructor lives in these frames.
#pragma once

#include "core/events_notification.h"
#include "pg/ingest.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

struct SourceNotice {
    int32 source_id;
    segment::SourceBatchCounts counts;
};

// What the batch wrote, per source, counted as the senders are answered: its events' outcomes, its rejections
// and its deletion notifications (after ingest_batch_flush), in source id order. Returns how many sources;
// *notices is palloc'd in the current memory context.
int count_batch_by_source(const IngestBatch *batch, SourceNotice **notices);

// Whether notifications may be queued now: false while Postgres' notification queue is half full or more (a
// listener that stopped reading, such as a session idle in a transaction, holds it). A full queue would make
// every notifying COMMIT fail, and ingest matters more than the live tail: the batches are then stored
// without their notifications, and the log says so once (WARNING) and when they resume.
bool notifications_welcome();

// Queues the notification for one source in the current transaction. `source_name` null: the source is gone.
void notify_source(const char *source_name, const segment::SourceBatchCounts &counts);

}  // namespace segment_pg
