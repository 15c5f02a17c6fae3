// The queueing half of the ingest path: split a body into messages, validate each with the core rules, and
// queue events and dead letters for ingest_write.cc. See ingest.h for the contract.
#include "core/message.h"
#include "pg/ingest.h"
#include "pg/catalog.h"
#include "pg/ingest_internal.h"
#include "pg/ingest_policy.h"
#include "pg/jsonb_message.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

void add_rejection(IngestBatch *batch, const PendingRejection &rejection) {
    if (batch->rejection_count == batch->rejection_capacity) {
        batch->rejection_capacity *= 2;
        batch->rejections = static_cast<PendingRejection *>(
            repalloc(batch->rejections, sizeof(PendingRejection) * batch->rejection_capacity));
    }
    batch->rejections[batch->rejection_count++] = rejection;
}

namespace {

void add_deletion(IngestBatch *batch, const PendingDeletion &deletion) {
    if (batch->deletion_count == batch->deletion_capacity) {
        batch->deletion_capacity *= 2;
        batch->deletions = static_cast<PendingDeletion *>(
            repalloc(batch->deletions, sizeof(PendingDeletion) * batch->deletion_capacity));
    }
    batch->deletions[batch->deletion_count++] = deletion;
}

Datum text_datum(std::string_view text) {
    return PointerGetDatum(cstring_to_text_with_len(text.data(), text.size()));
}

char *copy_text(std::string_view text) {
    return pnstrdup(text.data(), text.size());
}

struct Envelope {
    // Top-level values of a {"batch":[…]} body that apply to items lacking them.
    JsonbValue context, integrations, sent_at;
    bool has_context, has_integrations, has_sent_at;
};

// The item with the envelope's context / integrations / sentAt added where it has none.
Jsonb *apply_envelope(Jsonb *item, const Envelope *envelope) {
    if (envelope == nullptr) {
        return item;
    }
    struct Inherited {
        const char *key;
        const JsonbValue *value;
        bool present;
    } inherited[] = {{"context", &envelope->context, envelope->has_context},
                     {"integrations", &envelope->integrations, envelope->has_integrations},
                     {"sentAt", &envelope->sent_at, envelope->has_sent_at}};
    JsonbParseState *state = nullptr;
    bool any = false;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (const Inherited &field : inherited) {
        JsonbValue existing;
        if (!field.present || getKeyJsonValueFromContainer(&item->root, field.key,
                                                           static_cast<int>(strlen(field.key)), &existing)) {
            continue;
        }
        JsonbValue key;
        key.type = jbvString;
        key.val.string.val = const_cast<char *>(field.key);
        key.val.string.len = static_cast<int>(strlen(field.key));
        pushJsonbValue(&state, WJB_KEY, &key);
        pushJsonbValue(&state, WJB_VALUE, const_cast<JsonbValue *>(field.value));
        any = true;
    }
    JsonbValue *extras = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    if (!any) {
        return item;
    }
    return DatumGetJsonbP(
        DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(item), JsonbPGetDatum(JsonbValueToJsonb(extras))));
}

// Where a body came from, handed down to each of its messages.
struct Arrival {
    int32 source_id;
    int32 request;
    TimestampTz received_at;
    const segment::MessageType *implied_type;  // the endpoint's type, or null
    const char *client_ip;                     // for context.ip, or null
    segment::SignatureCoverage signature;      // what a verified X-Signature covered of the body
};

Jsonb *jsonb_with_key(Jsonb *object, const char *key, JsonbValue *value) {
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    JsonbValue name;
    name.type = jbvString;
    name.val.string.val = const_cast<char *>(key);
    name.val.string.len = static_cast<int>(strlen(key));
    pushJsonbValue(&state, WJB_KEY, &name);
    pushJsonbValue(&state, WJB_VALUE, value);
    JsonbValue *added = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    return DatumGetJsonbP(
        DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(object), JsonbPGetDatum(JsonbValueToJsonb(added))));
}

// The message with context.ip set to the client's address where it has none (Segment's tracking API does the
// same). A context that is not an object is left alone.
Jsonb *with_client_ip(Jsonb *payload, const char *client_ip) {
    JsonbValue ip;
    ip.type = jbvString;
    ip.val.string.val = const_cast<char *>(client_ip);
    ip.val.string.len = static_cast<int>(strlen(client_ip));
    JsonbValue context;
    if (getKeyJsonValueFromContainer(&payload->root, "context", 7, &context) == nullptr) {
        Jsonb *empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
        JsonbValue new_context;
        new_context.type = jbvBinary;
        Jsonb *filled = jsonb_with_key(empty, "ip", &ip);
        new_context.val.binary.data = &filled->root;
        new_context.val.binary.len = VARSIZE(filled) - VARHDRSZ;
        return jsonb_with_key(payload, "context", &new_context);
    }
    if (context.type != jbvBinary || !JsonContainerIsObject(context.val.binary.data)) {
        return payload;
    }
    JsonbValue existing;
    if (getKeyJsonValueFromContainer(context.val.binary.data, "ip", 2, &existing) != nullptr) {
        return payload;
    }
    Jsonb *filled = jsonb_with_key(JsonbValueToJsonb(&context), "ip", &ip);
    JsonbValue new_context;
    new_context.type = jbvBinary;
    new_context.val.binary.data = &filled->root;
    new_context.val.binary.len = VARSIZE(filled) - VARHDRSZ;
    return jsonb_with_key(payload, "context", &new_context);
}

void queue_message_in_context(IngestBatch *batch, const Arrival &arrival, Jsonb *item,
                              const Envelope *envelope, bool signature_verified) {
    const int32 source_id = arrival.source_id;
    const int32 request = arrival.request;
    const TimestampTz received_at = arrival.received_at;
    PendingRejection rejection{source_id, request, received_at, nullptr, nullptr, nullptr, item, nullptr};
    if (!jsonb_is_object(item)) {
        rejection.reason = "not_an_object";
        rejection.detail = pstrdup("a message must be a JSON object");
        add_rejection(batch, rejection);
        return;
    }
    // A write key is a credential, not part of the message (analytics.js puts it in every body): not stored.
    JsonbValue write_key;
    if (getKeyJsonValueFromContainer(&item->root, "writeKey", 8, &write_key) != nullptr) {
        item = DatumGetJsonbP(
            DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(item), CStringGetTextDatum("writeKey")));
    }
    Jsonb *payload = apply_envelope(item, envelope);
    if (arrival.client_ip != nullptr) {
        payload = with_client_ip(payload, arrival.client_ip);
    }
    MessageMembers members;
    read_message_members(&payload->root, members);
    std::optional<segment::MessageType> implied;
    if (arrival.implied_type != nullptr) {
        implied = *arrival.implied_type;
    }
    const segment::ValidatedMessage message =
        segment::validate_message(members.fields, unix_from_timestamptz(received_at), implied);
    if (message.reason == segment::RejectReason::DeletionRequest && message.parsed.user_id &&
        !message.parsed.user_id->empty() && policy_honors_deletions(batch->policy, source_id)) {
        // Recorded now, carried out by the warehouse worker as the extension's owner: this transaction's
        // role may not delete.
        add_deletion(batch, PendingDeletion{source_id, request, copy_text(*message.parsed.user_id)});
        return;
    }
    if (message.reason == segment::RejectReason::None &&
        policy_suppresses(batch->policy, source_id, message.parsed)) {
        rejection.payload = payload;
        rejection.reason = "suppressed";
        rejection.detail = pstrdup(
            "the user's new events are suppressed (segment_forget_user with suppress); lift it with "
            "segment_unsuppress_user()");
        rejection.message_id = message.parsed.message_id ? copy_text(*message.parsed.message_id) : nullptr;
        add_rejection(batch, rejection);
        return;
    }
    if (message.reason != segment::RejectReason::None) {
        rejection.payload = payload;
        rejection.reason = segment::reject_reason_code(message.reason).data();
        rejection.detail = copy_text(message.detail);
        rejection.message_id = message.parsed.message_id ? copy_text(*message.parsed.message_id) : nullptr;
        add_rejection(batch, rejection);
        return;
    }

    if (batch->event_count == batch->event_capacity) {
        batch->event_capacity *= 2;
        batch->events = static_cast<PendingEvent *>(
            repalloc(batch->events, sizeof(PendingEvent) * batch->event_capacity));
    }
    PendingEvent &event = batch->events[batch->event_count++];
    event.source_id = source_id;
    event.request = request;
    event.outcome = EventOutcome::Pending;
    event.id = 0;
    const segment::ParsedMessage &parsed = message.parsed;
    const std::optional<std::string_view> texts[9] = {
        parsed.message_id, parsed.type,         parsed.event,    parsed.name,       parsed.category,
        parsed.user_id,    parsed.anonymous_id, parsed.group_id, parsed.previous_id};
    for (int t = 0; t < 9; ++t) {
        event.text_nulls[t] = !texts[t].has_value();
        event.text_columns[t] = texts[t] ? text_datum(*texts[t]) : Datum(0);
    }
    if (!parsed.message_id) {
        // Derived from the item as sent, before the envelope's fields were added.
        event.text_columns[0] = CStringGetTextDatum(derived_message_id(&item->root));
        event.text_nulls[0] = false;
    }
    event.timestamp = timestamptz_from_unix(message.timestamp);
    event.received_at = received_at;
    event.original_timestamp_null = !parsed.original_timestamp;
    event.original_timestamp =
        parsed.original_timestamp ? timestamptz_from_unix(*parsed.original_timestamp) : 0;
    event.sent_at_null = !parsed.sent_at;
    event.sent_at = parsed.sent_at ? timestamptz_from_unix(*parsed.sent_at) : 0;
    event.payload = payload;
    event.signature_verified = signature_verified;
}

// Queues one message; everything it allocates lives in the batch's memory context. `signature_verified`: its
// own bytes were covered by a verified signature.
void queue_message(IngestBatch *batch, const Arrival &arrival, Jsonb *item, const Envelope *envelope,
                   bool signature_verified) {
    MemoryContext caller = MemoryContextSwitchTo(batch->context);
    queue_message_in_context(batch, arrival, item, envelope, signature_verified);
    MemoryContextSwitchTo(caller);
}

// The items of an array. A whole-body signature covers every item; one over the first element of a top-level
// array (never an envelope's: its signature would be over a JSON object) covers item 0 only.
void queue_items(IngestBatch *batch, const Arrival &arrival, JsonbContainer *array,
                 const Envelope *envelope) {
    JsonbIterator *iterator = JsonbIteratorInit(array);
    JsonbValue value;
    JsonbIteratorToken token;
    bool first = true;
    while ((token = JsonbIteratorNext(&iterator, &value, true)) != WJB_DONE) {
        if (token == WJB_ELEM) {
            const bool verified = arrival.signature == segment::SignatureCoverage::WholeBody ||
                                  (first && envelope == nullptr &&
                                   arrival.signature == segment::SignatureCoverage::FirstElement);
            first = false;
            queue_message(batch, arrival, JsonbValueToJsonb(&value), envelope, verified);
            if (batch->flush_every > 0 && batch->event_count + batch->rejection_count >= batch->flush_every) {
                // A long array from SQL: write what is queued so memory stays bounded (the iterator and the
                // body live outside the batch's context, so they survive the reset).
                ingest_batch_flush(batch);
                ingest_batch_reset(batch);
            }
        }
    }
}

}  // namespace

void ingest_batch_init(IngestBatch *batch, Oid schema, MemoryContext parent) {
    batch->schema = schema;
    batch->context = AllocSetContextCreate(parent, "segment_webhook ingest batch", ALLOCSET_DEFAULT_SIZES);
    batch->event_capacity = 256;
    batch->rejection_capacity = 16;
    batch->deletion_capacity = 4;
    batch->policy = nullptr;
    batch->stored = batch->duplicates = batch->rejected = 0;
    batch->last_id = 0;
    batch->flush_every = 0;
    ingest_batch_reset(batch);
}

void ingest_batch_reset(IngestBatch *batch) {
    MemoryContextReset(batch->context);
    batch->events = static_cast<PendingEvent *>(
        MemoryContextAlloc(batch->context, sizeof(PendingEvent) * batch->event_capacity));
    batch->rejections = static_cast<PendingRejection *>(
        MemoryContextAlloc(batch->context, sizeof(PendingRejection) * batch->rejection_capacity));
    batch->deletions = static_cast<PendingDeletion *>(
        MemoryContextAlloc(batch->context, sizeof(PendingDeletion) * batch->deletion_capacity));
    batch->event_count = 0;
    batch->rejection_count = 0;
    batch->deletion_count = 0;
}

void ingest_queue_body(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                       Jsonb *body, const segment::MessageType *implied_type, const char *client_ip,
                       segment::SignatureCoverage signature) {
    // Iterators stay in the caller's memory context; queued messages go to the batch's.
    const Arrival arrival{source_id, request, received_at, implied_type, client_ip, signature};
    if (JB_ROOT_IS_SCALAR(body)) {
        PendingRejection rejection{
            source_id,
            request,
            received_at,
            "not_an_object",
            MemoryContextStrdup(batch->context,
                                "the body must be a message, an array of messages or {\"batch\":[...]}"),
            nullptr,
            body,
            nullptr};
        add_rejection(batch, rejection);
    } else if (JB_ROOT_IS_ARRAY(body)) {
        queue_items(batch, arrival, &body->root, nullptr);
    } else {
        JsonbValue items;
        if (getKeyJsonValueFromContainer(&body->root, "batch", 5, &items) == nullptr) {
            queue_message(batch, arrival, body, nullptr, signature == segment::SignatureCoverage::WholeBody);
        } else if (items.type != jbvBinary || !JsonContainerIsArray(items.val.binary.data)) {
            PendingRejection rejection{
                source_id,
                request,
                received_at,
                "invalid_batch",
                MemoryContextStrdup(batch->context, "\"batch\" must be an array of messages"),
                nullptr,
                body,
                nullptr};
            add_rejection(batch, rejection);
        } else {
            Envelope envelope;
            envelope.has_context = getKeyJsonValueFromContainer(&body->root, "context", 7, &envelope.context);
            envelope.has_integrations =
                getKeyJsonValueFromContainer(&body->root, "integrations", 12, &envelope.integrations);
            envelope.has_sent_at = getKeyJsonValueFromContainer(&body->root, "sentAt", 6, &envelope.sent_at);
            queue_items(batch, arrival, items.val.binary.data, &envelope);
        }
    }
}

void ingest_queue_rejection(IngestBatch *batch, int32 source_id, int32 request, TimestampTz received_at,
                            const char *reason, const char *detail, const char *raw, size_t raw_length) {
    MemoryContext caller = MemoryContextSwitchTo(batch->context);
    bytea *raw_copy = static_cast<bytea *>(palloc(VARHDRSZ + raw_length));
    SET_VARSIZE(raw_copy, VARHDRSZ + raw_length);
    memcpy(VARDATA(raw_copy), raw, raw_length);
    PendingRejection rejection{source_id,       request, received_at, reason,
                               pstrdup(detail), nullptr, nullptr,     raw_copy};
    add_rejection(batch, rejection);
    MemoryContextSwitchTo(caller);
}

int32 lookup_source_by_name(Oid schema, const char *name) {
    const char *nsp = quoted_schema_name(schema);
    char *query = psprintf("SELECT id, enabled FROM %s.segment_sources WHERE name = $1", nsp);
    Oid types[1] = {TEXTOID};
    Datum values[1] = {CStringGetTextDatum(name)};
    int rc = SPI_execute_with_args(query, 1, types, values, nullptr, true, 1);
    if (rc != SPI_OK_SELECT) {
        elog(ERROR, "could not look up source \"%s\": %s", name, SPI_result_code_string(rc));
    }
    if (SPI_processed == 0) {
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("source \"%s\" does not exist", name),
                        errhint("Create it with segment_create_source('%s').", name)));
    }
    bool id_null, enabled_null;
    int32 id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &id_null));
    bool enabled =
        DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &enabled_null));
    if (!enabled) {
        ereport(
            ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("source \"%s\" is disabled", name),
             errhint("Enable it with UPDATE segment_sources SET enabled = true WHERE name = '%s'.", name)));
    }
    return id;
}

}  // namespace segment_pg