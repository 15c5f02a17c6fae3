// See events_notify.h.
#include "pg/events_notify.h"
#include "pg/cpp_guard.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "pg/postgres_headers.h"

extern "C" {
#include "commands/async.h"
#include "utils/fmgrprotos.h"
}

namespace segment_pg {
namespace {

// The notice of `source_id` in notices[0, *count), added when absent. A batch holds few sources, and the
// events of one request (one source) are queued together, so the last one found is checked first.
SourceNotice *notice_of(SourceNotice *notices, int *count, int32 source_id, int *last) {
    if (*last >= 0 && notices[*last].source_id == source_id) {
        return &notices[*last];
    }
    for (int i = 0; i < *count; ++i) {
        if (notices[i].source_id == source_id) {
            *last = i;
            return &notices[i];
        }
    }
    SourceNotice &added = notices[(*count)++];
    added.source_id = source_id;
    added.counts = segment::SourceBatchCounts();
    *last = *count - 1;
    return &added;
}

int compare_notices(const void *a, const void *b) {
    const int32 left = static_cast<const SourceNotice *>(a)->source_id;
    const int32 right = static_cast<const SourceNotice *>(b)->source_id;
    return left < right ? -1 : (left > right ? 1 : 0);
}

}  // namespace

int count_batch_by_source(const IngestBatch *batch, SourceNotice **notices) {
    const int most = batch->event_count + batch->rejection_count + batch->deletion_count;
    SourceNotice *found = static_cast<SourceNotice *>(palloc(sizeof(SourceNotice) * (most > 0 ? most : 1)));
    int count = 0, last = -1;
    for (int i = 0; i < batch->event_count; ++i) {
        const PendingEvent &event = batch->events[i];
        if (event.outcome != EventOutcome::Stored && event.outcome != EventOutcome::Duplicate) {
            continue;  // a message the database refused is one of the rejections below
        }
        segment::SourceBatchCounts &counts = notice_of(found, &count, event.source_id, &last)->counts;
        if (event.outcome == EventOutcome::Stored) {
            ++counts.accepted;
            counts.last_id = Max(counts.last_id, event.id);
        } else {
            ++counts.duplicates;
        }
    }
    for (int i = 0; i < batch->rejection_count; ++i) {
        ++notice_of(found, &count, batch->rejections[i].source_id, &last)->counts.rejected;
    }
    // A deletion notification recorded in segment_deletions is answered as accepted: counted so here too.
    for (int i = 0; i < batch->deletion_count; ++i) {
        ++notice_of(found, &count, batch->deletions[i].source_id, &last)->counts.accepted;
    }
    qsort(found, count, sizeof(SourceNotice), compare_notices);
    *notices = found;
    return count;
}

bool notifications_welcome() {
    static bool withheld = false;  // per backend: log each change once
    constexpr double kHighestUsage = 0.5;
    LOCAL_FCINFO(call, 0);  // (there is no DirectFunctionCall0)
    InitFunctionCallInfoData(*call, nullptr, 0, InvalidOid, nullptr, nullptr);
    const double usage = DatumGetFloat8(pg_notification_queue_usage(call));
    if (usage >= kHighestUsage && !withheld) {
        ereport(
            WARNING,
            (errmsg("segment_webhook: the NOTIFY queue is %.0f%% full: batches are stored without their "
                    "segment_events notifications until it drains",
                    usage * 100),
             errhint("A session that ran LISTEN and stays in a transaction keeps the queue from draining; "
                     "end it (see pg_stat_activity)."),
             errhidestmt(true)));
    } else if (usage < kHighestUsage && withheld) {
        ereport(LOG,
                (errmsg("segment_webhook: the NOTIFY queue drained: segment_events notifications resume")));
    }
    withheld = usage >= kHighestUsage;
    return !withheld;
}

void notify_source(const char *source_name, const segment::SourceBatchCounts &counts) {
    char payload[segment::kNotificationLimit];
    run_cpp("describing a batch for NOTIFY", [&] {
        const std::string_view name = source_name ? std::string_view(source_name) : std::string_view();
        const std::string text = segment::events_notification(source_name ? &name : nullptr, counts);
        // Always shorter than the buffer (the name is cut); the copy only guards the bound.
        const size_t length = std::min(text.size(), sizeof payload - 1);
        memcpy(payload, text.data(), length);
        payload[length] = '\0';
    });
    Async_Notify(segment::kEventsChannel, payload);
}

}  // namespace segment_pg
