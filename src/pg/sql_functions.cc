// The SQL-callable functions. Each is a thin extern "C" entry point: it reads its arguments, calls the
// noexcept core, and builds the result. No C++ object with a destructor lives in these frames, so an
// ereport(ERROR) longjmp out of them skips nothing.
#include "core/message.h"
#include "core/signature.h"
#include "core/write_key.h"
#include "pg/ingest.h"
#include "pg/ingest_policy.h"
#include "pg/jsonb_message.h"

#include "pg/postgres_headers.h"

using segment_pg::timestamptz_from_unix;

namespace {

std::string_view bytes_of(const struct varlena *value) {
    return std::string_view(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
}

text *hex_signature(std::string_view body, std::string_view secret) {
    segment::Sha1Digest digest;
    if (!segment::hmac_sha1(secret, body, digest)) {
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not compute HMAC-SHA1")));
    }
    char hex[41];
    segment::digest_to_hex(digest, hex);
    return cstring_to_text_with_len(hex, 40);
}

Datum optional_text(const std::optional<std::string_view> &value, bool *is_null) {
    *is_null = !value.has_value();
    return value ? PointerGetDatum(cstring_to_text_with_len(value->data(), value->size())) : Datum(0);
}

Datum optional_timestamp(const std::optional<segment::UnixMicros> &value, bool *is_null) {
    *is_null = !value.has_value();
    return value ? TimestampTzGetDatum(timestamptz_from_unix(*value)) : Datum(0);
}

Datum optional_object(const segment_pg::MessageMembers &members, int which, bool *is_null) {
    *is_null = !members.has_object[which];
    return members.has_object[which]
               ? JsonbPGetDatum(JsonbValueToJsonb(const_cast<JsonbValue *>(&members.objects[which])))
               : Datum(0);
}

// The blessed descriptor of segment_event, looked up once per call site and kept in fn_extra.
TupleDesc segment_event_descriptor(FunctionCallInfo fcinfo) {
    if (fcinfo->flinfo->fn_extra == nullptr) {
        TupleDesc descriptor;
        if (get_call_result_type(fcinfo, nullptr, &descriptor) != TYPEFUNC_COMPOSITE) {
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("segment_parse must be called in a context that accepts a record")));
        }
        if (descriptor->natts != 17) {
            elog(ERROR, "segment_event has %d attributes, expected 17", descriptor->natts);
        }
        MemoryContext caller = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
        fcinfo->flinfo->fn_extra = BlessTupleDesc(CreateTupleDescCopy(descriptor));
        MemoryContextSwitchTo(caller);
    }
    return static_cast<TupleDesc>(fcinfo->flinfo->fn_extra);
}

}  // namespace

extern "C" {

PG_FUNCTION_INFO_V1(segment_verify);
PG_FUNCTION_INFO_V1(segment_sign);
PG_FUNCTION_INFO_V1(segment_parse);
PG_FUNCTION_INFO_V1(segment_new_write_key);
PG_FUNCTION_INFO_V1(segment_ingest);

// segment_verify(body bytea|text, signature text, secret text) returns boolean
Datum segment_verify(PG_FUNCTION_ARGS) {
    const struct varlena *body = PG_GETARG_VARLENA_PP(0);
    const text *signature = PG_GETARG_TEXT_PP(1);
    const text *secret = PG_GETARG_TEXT_PP(2);
    PG_RETURN_BOOL(segment::verify_signature(bytes_of(body), bytes_of(signature), bytes_of(secret)));
}

// segment_sign(body bytea|text, secret text) returns text
Datum segment_sign(PG_FUNCTION_ARGS) {
    const struct varlena *body = PG_GETARG_VARLENA_PP(0);
    const text *secret = PG_GETARG_TEXT_PP(1);
    PG_RETURN_TEXT_P(hex_signature(bytes_of(body), bytes_of(secret)));
}

// segment_parse(message jsonb) returns segment_event
Datum segment_parse(PG_FUNCTION_ARGS) {
    Jsonb *message = PG_GETARG_JSONB_P(0);
    if (!segment_pg::jsonb_is_object(message)) {
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("segment_parse expects a JSON object, got a JSON %s",
                        JB_ROOT_IS_SCALAR(message) ? "scalar" : "array"),
                 errhint("A Segment message is an object such as {\"type\":\"track\",\"event\":\"...\"}.")));
    }
    TupleDesc descriptor = segment_event_descriptor(fcinfo);
    segment_pg::MessageMembers members;
    segment_pg::read_message_members(&message->root, members);
    const segment::ParsedMessage parsed = segment::parse_message(members.fields);

    Datum values[17];
    bool nulls[17];
    const std::optional<std::string_view> texts[9] = {
        parsed.message_id, parsed.type,         parsed.event,    parsed.name,       parsed.category,
        parsed.user_id,    parsed.anonymous_id, parsed.group_id, parsed.previous_id};
    for (int i = 0; i < 9; ++i) {
        values[i] = optional_text(texts[i], &nulls[i]);
    }
    values[9] = optional_timestamp(parsed.timestamp, &nulls[9]);
    values[10] = optional_timestamp(parsed.original_timestamp, &nulls[10]);
    values[11] = optional_timestamp(parsed.sent_at, &nulls[11]);
    values[12] = optional_timestamp(parsed.received_at, &nulls[12]);
    values[13] = optional_object(members, segment_pg::kContext, &nulls[13]);
    values[14] = optional_object(members, segment_pg::kProperties, &nulls[14]);
    values[15] = optional_object(members, segment_pg::kTraits, &nulls[15]);
    values[16] = optional_object(members, segment_pg::kIntegrations, &nulls[16]);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(descriptor, values, nulls)));
}

// segment_new_write_key() returns text: 192 random bits, URL-safe. Used by segment_create_source().
Datum segment_new_write_key(PG_FUNCTION_ARGS) {
    char key[segment::kWriteKeyLength + 1];
    if (!segment::generate_write_key(key)) {
        ereport(ERROR,
                (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random bytes for a write key")));
    }
    PG_RETURN_TEXT_P(cstring_to_text(key));
}

// segment_ingest(source text, payload jsonb) returns bigint: the SQL door to the same path the worker uses.
Datum segment_ingest(PG_FUNCTION_ARGS) {
    char *source_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
    Jsonb *payload = PG_GETARG_JSONB_P(1);
    // The extension's objects live in the schema of this function.
    Oid schema = get_func_namespace(fcinfo->flinfo->fn_oid);
    MemoryContext caller = CurrentMemoryContext;

    SPI_connect();
    int32 source_id = segment_pg::lookup_source_by_name(schema, source_name);
    segment_pg::IngestBatch batch;
    segment_pg::ingest_batch_init(&batch, schema, caller);
    batch.flush_every = 1000;
    batch.policy = segment_pg::load_ingest_policy(schema, caller);
    segment_pg::ingest_queue_body(&batch, source_id, 0, GetCurrentTransactionStartTimestamp(), payload,
                                  nullptr);
    segment_pg::ingest_batch_flush(&batch);
    int64 stored = batch.stored;
    MemoryContextDelete(batch.context);
    SPI_finish();
    PG_RETURN_INT64(stored);
}

}  // extern "C"
