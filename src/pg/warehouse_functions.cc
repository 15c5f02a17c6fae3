// The SQL functions behind the warehouse relations: the discovery aggregate that walks stored payloads and
// reports the relations and columns they call for (the naming and merging are in core/warehouse_discovery),
// Segment's snake_case, and the conversions the views use to turn a JSON value into a column's type. A
// conversion never fails: a value of another type than the column's reads as NULL (it stays in the payload).
// Core headers before any Postgres header; frames that call Postgres hold no C++ object (see cpp_guard.h).
#include "core/snake_case.h"
#include "core/timestamp.h"
#include "core/warehouse_discovery.h"
#include "pg/cpp_guard.h"
#include "pg/jsonb_message.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "pg/postgres_headers.h"

extern "C" {
#include "access/xact.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(segment_snake_case);
PG_FUNCTION_INFO_V1(segment_warehouse_discover_transfn);
PG_FUNCTION_INFO_V1(segment_warehouse_discover_finalfn);
PG_FUNCTION_INFO_V1(segment_warehouse_missing_transfn);
PG_FUNCTION_INFO_V1(segment_warehouse_missing_finalfn);
PG_FUNCTION_INFO_V1(segment_json_bigint);
PG_FUNCTION_INFO_V1(segment_json_float8);
PG_FUNCTION_INFO_V1(segment_json_boolean);
PG_FUNCTION_INFO_V1(segment_json_timestamptz);
}

namespace {

using segment::ColumnType;
using segment::Section;

// Nesting deeper than this is kept as one text column holding the object's JSON.
constexpr int kMaxDepth = 32;

// An integer that fits a bigint, written without fraction or exponent: numeric_out gives only an optional
// minus sign and digits for those.
bool numeric_as_bigint(Numeric number, int64 *value) {
    if (numeric_is_nan(number) || numeric_is_inf(number)) {
        return false;
    }
    const char *text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(number)));
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (digits[0] == '\0' || strspn(digits, "0123456789") != strlen(digits)) {
        return false;
    }
    errno = 0;
    const long long parsed = strtoll(text, nullptr, 10);
    if (errno == ERANGE) {
        return false;
    }
    *value = parsed;
    return true;
}

// A string Segment's warehouses type as a timestamp: an ISO-8601 date and time (a date alone stays text).
bool looks_like_timestamp(const char *text, int length, segment::UnixMicros *micros) {
    if (length < 16 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't' && text[10] != ' ')) {
        return false;
    }
    const auto parsed = segment::parse_iso8601(std::string_view(text, static_cast<size_t>(length)));
    if (!parsed) {
        return false;
    }
    if (micros != nullptr) {
        *micros = *parsed;
    }
    return true;
}

ColumnType classify(const JsonbValue &value) {
    switch (value.type) {
        case jbvBool:
            return ColumnType::Boolean;
        case jbvNumeric: {
            int64 ignored;
            return numeric_as_bigint(value.val.numeric, &ignored) ? ColumnType::Bigint : ColumnType::Double;
        }
        case jbvString:
            return looks_like_timestamp(value.val.string.val, value.val.string.len, nullptr)
                       ? ColumnType::Timestamp
                       : ColumnType::Text;
        default:
            return ColumnType::Text;  // arrays (and objects nested too deep): their JSON text
    }
}

struct KeyPath {
    const char *key[kMaxDepth];
    int length[kMaxDepth];
};

void append_leaf(StringInfo out, Section section, ColumnType type, const KeyPath &path, int keys) {
    const char header[4] = {static_cast<char>(section), static_cast<char>(type),
                            static_cast<char>(keys & 0xff), static_cast<char>(keys >> 8)};
    appendBinaryStringInfo(out, header, sizeof header);
    for (int k = 0; k < keys; ++k) {
        const uint32 length = static_cast<uint32>(path.length[k]);
        const char prefix[4] = {static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
                                static_cast<char>((length >> 16) & 0xff), static_cast<char>(length >> 24)};
        appendBinaryStringInfo(out, prefix, sizeof prefix);
        appendBinaryStringInfo(out, path.key[k], path.length[k]);
    }
}

// Appends every non-null leaf of `object` (keys below the section at path[0..depth)) to `out`.
void walk_object(StringInfo out, JsonbContainer *object, Section section, KeyPath *path, int depth) {
    JsonbIterator *iterator = JsonbIteratorInit(object);
    JsonbValue value;
    JsonbIteratorToken token;
    while ((token = JsonbIteratorNext(&iterator, &value, true)) != WJB_DONE) {
        if (token == WJB_KEY) {
            path->key[depth] = value.val.string.val;
            path->length[depth] = value.val.string.len;
            continue;
        }
        if (token != WJB_VALUE || value.type == jbvNull) {
            continue;
        }
        if (value.type == jbvBinary) {
            if (JsonContainerIsObject(value.val.binary.data) && depth + 1 < kMaxDepth) {
                walk_object(out, value.val.binary.data, section, path, depth + 1);
            } else {
                append_leaf(out, section, ColumnType::Text, *path, depth + 1);
            }
            continue;
        }
        append_leaf(out, section, classify(value), *path, depth + 1);
    }
}

void walk_section(StringInfo out, Jsonb *payload, const char *key, Section section) {
    JsonbValue value;
    if (getKeyJsonValueFromContainer(&payload->root, key, static_cast<int>(strlen(key)), &value) == nullptr ||
        value.type != jbvBinary || !JsonContainerIsObject(value.val.binary.data)) {
        return;
    }
    KeyPath path;
    walk_object(out, value.val.binary.data, section, &path, 0);
}

struct DiscoverState {
    segment::WarehouseDiscovery *discovery;
    bool use_committed_shapes;
};

// Shapes whose columns a committed pass of this backend has recorded: the warehouse worker makes a pass every
// second over traffic of mostly known shapes, and skips those. Promoted from `pending_shapes` when the pass's
// transaction commits, dropped when it aborts; cleared when the catalog table is another one (the extension
// was created again) or when the set grows past kMaxCommittedShapes.
constexpr size_t kMaxCommittedShapes = 1000000;
std::unordered_set<uint64_t> *committed_shapes = nullptr;
std::vector<uint64_t> *pending_shapes = nullptr;
Oid committed_shapes_catalog = InvalidOid;
bool shape_callback_registered = false;

void promote_pending_shapes(XactEvent event, void *) {
    if (pending_shapes == nullptr || pending_shapes->empty()) {
        return;
    }
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
        try {
            if (committed_shapes->size() + pending_shapes->size() > kMaxCommittedShapes) {
                committed_shapes->clear();
            }
            committed_shapes->insert(pending_shapes->begin(), pending_shapes->end());
        } catch (...) {
            committed_shapes->clear();  // out of memory: forget, the next passes look at everything again
        }
        pending_shapes->clear();
    } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) {
        pending_shapes->clear();
    }
}

void use_committed_shapes_of(Oid catalog) {
    if (!shape_callback_registered) {
        segment_pg::run_cpp("starting warehouse discovery", [] {
            committed_shapes = new std::unordered_set<uint64_t>();
            pending_shapes = new std::vector<uint64_t>();
        });
        RegisterXactCallback(promote_pending_shapes, nullptr);
        shape_callback_registered = true;
    }
    if (catalog != committed_shapes_catalog) {
        segment_pg::run_cpp("starting warehouse discovery", [] {
            committed_shapes->clear();
            pending_shapes->clear();
        });
        committed_shapes_catalog = catalog;
    }
}

void delete_discovery(void *arg) {
    DiscoverState *state = static_cast<DiscoverState *>(arg);
    delete state->discovery;
    state->discovery = nullptr;
}

bool message_kind(const text *type, segment::MessageKind *kind) {
    const char *data = VARDATA_ANY(type);
    const size_t length = VARSIZE_ANY_EXHDR(type);
    const auto is = [&](const char *name) {
        return length == strlen(name) && memcmp(data, name, length) == 0;
    };
    if (is("track")) {
        *kind = segment::MessageKind::Track;
    } else if (is("identify")) {
        *kind = segment::MessageKind::Identify;
    } else if (is("page")) {
        *kind = segment::MessageKind::Page;
    } else if (is("screen")) {
        *kind = segment::MessageKind::Screen;
    } else if (is("group")) {
        *kind = segment::MessageKind::Group;
    } else if (is("alias")) {
        *kind = segment::MessageKind::Alias;
    } else {
        return false;
    }
    return true;
}

// The scalar a jsonb value holds, or false (NULL input is handled by STRICT).
bool scalar_of(Jsonb *value, JsonbValue *scalar) {
    return JsonbExtractScalar(&value->root, scalar);
}

}  // namespace

extern "C" {

Datum segment_snake_case(PG_FUNCTION_ARGS) {
    text *input = PG_GETARG_TEXT_PP(0);
    const size_t length = VARSIZE_ANY_EXHDR(input);
    char *buffer = static_cast<char *>(palloc(segment::snake_case_capacity(length)));
    const size_t written = segment::snake_case(std::string_view(VARDATA_ANY(input), length), buffer);
    PG_RETURN_TEXT_P(cstring_to_text_with_len(buffer, static_cast<int>(written)));
}

// segment_warehouse_discover(source_id integer, type text, event text, payload jsonb): aggregate state.
Datum segment_warehouse_discover_transfn(PG_FUNCTION_ARGS) {
    MemoryContext aggregate_context;
    if (!AggCheckCallContext(fcinfo, &aggregate_context)) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("segment_warehouse_discover can only be called as an aggregate")));
    }
    DiscoverState *state;
    if (PG_ARGISNULL(0)) {
        state =
            static_cast<DiscoverState *>(MemoryContextAllocZero(aggregate_context, sizeof(DiscoverState)));
        MemoryContextCallback *callback = static_cast<MemoryContextCallback *>(
            MemoryContextAllocZero(aggregate_context, sizeof(MemoryContextCallback)));
        callback->func = delete_discovery;
        callback->arg = state;
        MemoryContextRegisterResetCallback(aggregate_context, callback);
        state->discovery = segment_pg::run_cpp("starting warehouse discovery",
                                               [] { return new segment::WarehouseDiscovery(); });
        // The optional sixth argument: the catalog table whose committed shapes may be skipped (NULL: none).
        if (PG_NARGS() > 5 && !PG_ARGISNULL(5)) {
            use_committed_shapes_of(PG_GETARG_OID(5));
            state->use_committed_shapes = true;
        }
    } else {
        state = reinterpret_cast<DiscoverState *>(PG_GETARG_POINTER(0));
    }
    segment::MessageKind kind;
    if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4) || !message_kind(PG_GETARG_TEXT_PP(2), &kind)) {
        PG_RETURN_POINTER(state);
    }
    const int32 source_id = PG_GETARG_INT32(1);
    text *event = PG_ARGISNULL(3) ? nullptr : PG_GETARG_TEXT_PP(3);
    Jsonb *payload = PG_GETARG_JSONB_P(4);
    if (!JB_ROOT_IS_OBJECT(payload)) {
        PG_RETURN_POINTER(state);
    }
    // Leaves are collected by Postgres code in a per-row buffer, then merged by the core.
    StringInfoData leaves;
    initStringInfo(&leaves);
    walk_section(&leaves, payload, "context", Section::Context);
    if (kind == segment::MessageKind::Track || kind == segment::MessageKind::Page ||
        kind == segment::MessageKind::Screen) {
        walk_section(&leaves, payload, "properties", Section::Properties);
    }
    if (kind == segment::MessageKind::Identify || kind == segment::MessageKind::Group) {
        walk_section(&leaves, payload, "traits", Section::Traits);
    }
    const std::string_view event_name = event == nullptr
                                            ? std::string_view()
                                            : std::string_view(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event));
    const std::string_view leaf_bytes(leaves.data, static_cast<size_t>(leaves.len));
    const bool use_committed = state->use_committed_shapes;
    segment_pg::run_cpp("discovering warehouse columns", [&] {
        if (!use_committed) {
            state->discovery->add(source_id, kind, event_name, leaf_bytes);
            return;
        }
        const uint64_t shape = segment::WarehouseDiscovery::shape_of(source_id, kind, event_name, leaf_bytes);
        if (committed_shapes->count(shape) == 0 &&
            state->discovery->add(source_id, kind, event_name, leaf_bytes)) {
            pending_shapes->push_back(shape);
        }
    });
    PG_RETURN_POINTER(state);
}

Datum segment_warehouse_discover_finalfn(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) {
        PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum("[]")));
    }
    DiscoverState *state = reinterpret_cast<DiscoverState *>(PG_GETARG_POINTER(0));
    size_t length = 0;
    char *json = nullptr;
    segment_pg::run_cpp("reporting warehouse columns", [&] {
        const std::string text = state->discovery->to_json();
        length = text.size();
        json = static_cast<char *>(malloc(length + 1));
        if (json == nullptr) {
            throw std::bad_alloc();
        }
        memcpy(json, text.data(), length + 1);
    });
    char *copy = pnstrdup(json, length);
    free(json);
    PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(copy)));
}

// segment_warehouse_missing(id bigint, above bigint, up_to bigint): the ids in (above, up_to] that no input
// row had, as an int8multirange literal. A bitmap of the range: the examined ranges hold at most 100,000 ids.
struct MissingState {
    int64 above;
    int64 up_to;
    uint8 *seen;
};

Datum segment_warehouse_missing_transfn(PG_FUNCTION_ARGS) {
    MemoryContext aggregate_context;
    if (!AggCheckCallContext(fcinfo, &aggregate_context)) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("segment_warehouse_missing can only be called as an aggregate")));
    }
    MissingState *state;
    if (PG_ARGISNULL(0)) {
        if (PG_ARGISNULL(2) || PG_ARGISNULL(3)) {
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("segment_warehouse_missing needs both bounds")));
        }
        const int64 above = PG_GETARG_INT64(2);
        const int64 up_to = PG_GETARG_INT64(3);
        if (up_to < above || up_to - above > 100000000) {
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("segment_warehouse_missing: range (%lld, %lld] is empty or too large",
                                   static_cast<long long>(above), static_cast<long long>(up_to))));
        }
        state = static_cast<MissingState *>(MemoryContextAllocZero(aggregate_context, sizeof(MissingState)));
        state->above = above;
        state->up_to = up_to;
        state->seen =
            static_cast<uint8 *>(MemoryContextAllocZero(aggregate_context, (up_to - above) / 8 + 1));
    } else {
        state = reinterpret_cast<MissingState *>(PG_GETARG_POINTER(0));
    }
    if (!PG_ARGISNULL(1)) {
        const int64 id = PG_GETARG_INT64(1);
        if (id > state->above && id <= state->up_to) {
            const int64 bit = id - state->above - 1;
            state->seen[bit / 8] |= static_cast<uint8>(1u << (bit % 8));
        }
    }
    PG_RETURN_POINTER(state);
}

Datum segment_warehouse_missing_finalfn(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0)) {
        PG_RETURN_NULL();  // no row: the caller knows its range
    }
    const MissingState *state = reinterpret_cast<MissingState *>(PG_GETARG_POINTER(0));
    StringInfoData ranges;
    initStringInfo(&ranges);
    appendStringInfoChar(&ranges, '{');
    const int64 count = state->up_to - state->above;
    int64 bit = 0;
    bool first = true;
    while (bit < count) {
        if (state->seen[bit / 8] & (1u << (bit % 8))) {
            ++bit;
            continue;
        }
        const int64 start = bit;
        while (bit < count && !(state->seen[bit / 8] & (1u << (bit % 8)))) {
            ++bit;
        }
        appendStringInfo(&ranges, "%s[%lld,%lld)", first ? "" : ",",
                         static_cast<long long>(state->above + 1 + start),
                         static_cast<long long>(state->above + 1 + bit));
        first = false;
    }
    appendStringInfoChar(&ranges, '}');
    PG_RETURN_TEXT_P(cstring_to_text_with_len(ranges.data, ranges.len));
}

Datum segment_json_bigint(PG_FUNCTION_ARGS) {
    JsonbValue scalar;
    int64 value;
    if (!scalar_of(PG_GETARG_JSONB_P(0), &scalar) || scalar.type != jbvNumeric ||
        !numeric_as_bigint(scalar.val.numeric, &value)) {
        PG_RETURN_NULL();
    }
    PG_RETURN_INT64(value);
}

Datum segment_json_float8(PG_FUNCTION_ARGS) {
    JsonbValue scalar;
    if (!scalar_of(PG_GETARG_JSONB_P(0), &scalar) || scalar.type != jbvNumeric) {
        PG_RETURN_NULL();
    }
    // Beyond a double's range: infinity, not an error.
    PG_RETURN_DATUM(DirectFunctionCall1(numeric_float8_no_overflow, NumericGetDatum(scalar.val.numeric)));
}

Datum segment_json_boolean(PG_FUNCTION_ARGS) {
    JsonbValue scalar;
    if (!scalar_of(PG_GETARG_JSONB_P(0), &scalar) || scalar.type != jbvBool) {
        PG_RETURN_NULL();
    }
    PG_RETURN_BOOL(scalar.val.boolean);
}

Datum segment_json_timestamptz(PG_FUNCTION_ARGS) {
    JsonbValue scalar;
    segment::UnixMicros micros;
    if (!scalar_of(PG_GETARG_JSONB_P(0), &scalar) || scalar.type != jbvString ||
        !looks_like_timestamp(scalar.val.string.val, scalar.val.string.len, &micros)) {
        PG_RETURN_NULL();
    }
    PG_RETURN_TIMESTAMPTZ(segment_pg::timestamptz_from_unix(micros));
}

}  // extern "C"
