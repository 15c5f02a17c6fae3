// JSON text → JsonbValue tree → jsonb. See jsonb_builder.h.
//
// Two phases keep the C++/Postgres boundary clean. Phase 1 is C++: RapidJSON's SAX reader drives a handler
// that builds the tree in palloc'd memory obtained with MCXT_ALLOC_NO_OOM, so nothing in it can raise a
// Postgres error (it fails by returning false), and any C++ exception is caught before it leaves. Phase 2 is
// C-style: converting number texts with numeric_in and serialising with JsonbValueToJsonb may raise errors,
// so it runs under PG_TRY in a frame that holds no C++ object.
#include "core/json_poison.h"
#include "pg/jsonb_builder.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "pg/postgres_headers.h"

extern "C" {
#include "mb/pg_wchar.h"
}

namespace segment_pg {
namespace {

void *allocate(size_t size) {
    return MemoryContextAllocExtended(CurrentMemoryContext, size, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
}

// jsonb's key order: shorter first, then bytewise (lengthCompareJsonbStringValue).
bool key_less(const JsonbPair &a, const JsonbPair &b) {
    const int la = a.key.val.string.len, lb = b.key.val.string.len;
    if (la != lb) {
        return la < lb;
    }
    return std::memcmp(a.key.val.string.val, b.key.val.string.val, static_cast<size_t>(la)) < 0;
}

bool key_equal(const JsonbPair &a, const JsonbPair &b) {
    return a.key.val.string.len == b.key.val.string.len &&
           std::memcmp(a.key.val.string.val, b.key.val.string.val,
                       static_cast<size_t>(a.key.val.string.len)) == 0;
}

// Builds the tree. Containers under construction live in std::vectors; a finished container is copied into
// one palloc'd array and becomes a value of its parent.
class TreeBuilder : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TreeBuilder> {
  public:
    bool Null() {
        JsonbValue value;
        value.type = jbvNull;
        return add(value);
    }
    bool Bool(bool flag) {
        JsonbValue value;
        value.type = jbvBool;
        value.val.boolean = flag;
        return add(value);
    }
    // Numbers arrive as text (kParseNumbersAsStringsFlag) and become Numeric in phase 2; until then the text
    // is kept in the string member of a jbvNumeric value.
    bool RawNumber(const char *text, rapidjson::SizeType length, bool) {
        char *copy = static_cast<char *>(allocate(length + 1));
        if (copy == nullptr) {
            return out_of_memory();
        }
        std::memcpy(copy, text, length);
        copy[length] = '\0';
        JsonbValue value;
        value.type = jbvNumeric;
        value.val.string.val = copy;
        value.val.string.len = static_cast<int>(length);
        ++numbers;
        return add(value);
    }
    bool String(const char *text, rapidjson::SizeType length, bool) {
        if (std::memchr(text, '\0', length) != nullptr) {
            error = "the body contains \\u0000, which Postgres cannot store in text or jsonb";
            return false;
        }
        // RapidJSON encodes a lone low-surrogate escape (\udc00) as it is instead of refusing it; stored, it
        // would be invalid UTF-8 inside jsonb.
        if (segment::decoded_string_has_surrogate(text, length)) {
            error = "the body contains a lone UTF-16 surrogate escape, which is not Unicode text";
            return false;
        }
        JsonbValue value;
        value.type = jbvString;
        value.val.string.val = const_cast<char *>(text);  // decoded in place, in our own copy of the body
        value.val.string.len = static_cast<int>(length);
        return add(value);
    }
    bool Key(const char *text, rapidjson::SizeType length, bool copy) { return String(text, length, copy); }
    bool StartObject() {
        frames.emplace_back();
        frames.back().object = true;
        return true;
    }
    bool EndObject(rapidjson::SizeType) {
        Frame &frame = frames.back();
        std::vector<JsonbPair> &pairs = frame.pairs;
        // Sort by key; among equal keys the last one wins, as in jsonb_in.
        for (size_t i = 0; i < pairs.size(); ++i) {
            pairs[i].order = static_cast<uint32>(i);
        }
        std::stable_sort(pairs.begin(), pairs.end(), key_less);
        size_t kept = 0;
        for (size_t i = 0; i < pairs.size(); ++i) {
            if (i + 1 < pairs.size() && key_equal(pairs[i], pairs[i + 1])) {
                continue;  // a later pair has the same key
            }
            pairs[kept++] = pairs[i];
        }
        JsonbValue value;
        value.type = jbvObject;
        value.val.object.nPairs = static_cast<int>(kept);
        value.val.object.pairs =
            static_cast<JsonbPair *>(allocate(sizeof(JsonbPair) * (kept > 0 ? kept : 1)));
        if (value.val.object.pairs == nullptr) {
            return out_of_memory();
        }
        std::copy(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(kept), value.val.object.pairs);
        frames.pop_back();
        return add(value);
    }
    bool StartArray() {
        frames.emplace_back();
        return true;
    }
    bool EndArray(rapidjson::SizeType) {
        Frame &frame = frames.back();
        JsonbValue value;
        value.type = jbvArray;
        value.val.array.rawScalar = false;
        value.val.array.nElems = static_cast<int>(frame.elements.size());
        value.val.array.elems = static_cast<JsonbValue *>(
            allocate(sizeof(JsonbValue) * (frame.elements.empty() ? 1 : frame.elements.size())));
        if (value.val.array.elems == nullptr) {
            return out_of_memory();
        }
        std::copy(frame.elements.begin(), frame.elements.end(), value.val.array.elems);
        frames.pop_back();
        return add(value);
    }

    JsonbValue root;
    bool has_root = false;
    volatile size_t numbers = 0;
    const char *error = nullptr;

  private:
    struct Frame {
        bool object = false;
        bool has_key = false;
        JsonbValue key;
        std::vector<JsonbPair> pairs;
        std::vector<JsonbValue> elements;
    };

    bool add(const JsonbValue &value) {
        if (frames.empty()) {
            root = value;
            has_root = true;
            return true;
        }
        Frame &frame = frames.back();
        if (!frame.object) {
            frame.elements.push_back(value);
        } else if (!frame.has_key) {
            frame.key = value;  // the handler's Key() arrives through String()
            frame.has_key = true;
        } else {
            JsonbPair pair;
            pair.key = frame.key;
            pair.value = value;
            pair.order = 0;
            frame.pairs.push_back(pair);
            frame.has_key = false;
        }
        return true;
    }
    bool out_of_memory() {
        error = "out of memory while parsing the body";
        return false;
    }

    std::vector<Frame> frames;
};

// Phase 1: parse `buffer` (mutable, NUL-terminated) in place into `root`. Returns an error sentence, or null.
// *number_too_big: RapidJSON refused a number beyond a double's range (1e400, or 400 digits), which numeric
// may still hold.
const char *build_tree(char *buffer, JsonbValue &root, size_t &numbers, std::string &message,
                       bool &number_too_big) noexcept {
    try {
        TreeBuilder builder;
        rapidjson::InsituStringStream stream(buffer);
        rapidjson::Reader reader;
        const rapidjson::ParseResult result =
            reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag |
                         rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseIterativeFlag>(stream,
                                                                                                 builder);
        if (result.IsError()) {
            if (builder.error != nullptr) {
                return builder.error;
            }
            number_too_big = result.Code() == rapidjson::kParseErrorNumberTooBig;
            message = std::string("the body is not valid JSON: ") +
                      rapidjson::GetParseError_En(result.Code()) + " (at byte " +
                      std::to_string(result.Offset()) + ")";
            return message.c_str();
        }
        root = builder.root;
        numbers = builder.numbers;
        return nullptr;
    } catch (const std::bad_alloc &) {
        return "out of memory while parsing the body";
    } catch (...) {
        return "could not parse the body";
    }
}

// Phase 2 helper: replaces every number text in the tree by its Numeric. Recursive, so it checks the stack.
void convert_numbers(JsonbValue *value) {
    check_stack_depth();
    switch (value->type) {
        case jbvNumeric: {
            const char *text = value->val.string.val;
            value->val.numeric = DatumGetNumeric(DirectFunctionCall3(
                numeric_in, CStringGetDatum(text), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
            break;
        }
        case jbvArray:
            for (int i = 0; i < value->val.array.nElems; ++i) {
                convert_numbers(&value->val.array.elems[i]);
            }
            break;
        case jbvObject:
            for (int i = 0; i < value->val.object.nPairs; ++i) {
                convert_numbers(&value->val.object.pairs[i].value);
            }
            break;
        default:
            break;
    }
}

// Inside PG_CATCH: the error as a sentence for the 400 answer, in `context`, with the error state cleared
// (the failing call was a pure conversion, so no subtransaction needs rolling back).
char *take_error(MemoryContext context) {
    MemoryContextSwitchTo(context);
    ErrorData *data = CopyErrorData();
    FlushErrorState();
    char *sentence = psprintf("Postgres cannot store this JSON: %s", data->message);
    FreeErrorData(data);
    return sentence;
}

// Postgres' own parser, for what RapidJSON cannot do here (another database encoding, numbers beyond a
// double).
Jsonb *parse_with_jsonb_in(const char *text, size_t length, char **error) {
    MemoryContext context = CurrentMemoryContext;
    Jsonb *volatile result = nullptr;
    char *copy = pnstrdup(text, length);
    PG_TRY();
    { result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(copy))); }
    PG_CATCH();
    { *error = take_error(context); }
    PG_END_TRY();
    return result;
}

}  // namespace

Jsonb *json_to_jsonb(const char *text, size_t length, char **error) {
    *error = nullptr;
    if (std::memchr(text, '\0', length) != nullptr) {
        *error = pstrdup("the body contains a NUL byte, which is not valid JSON");
        return nullptr;
    }
    if (GetDatabaseEncoding() != PG_UTF8) {
        // Strings must be in the database's encoding, and RapidJSON's in-place parse stops at a NUL byte:
        // leave such bodies to Postgres' own parser, which knows both.
        return parse_with_jsonb_in(text, length, error);
    }

    char *buffer = static_cast<char *>(palloc(length + 1));
    memcpy(buffer, text, length);
    buffer[length] = '\0';
    JsonbValue root;
    volatile size_t numbers = 0;
    char message_buffer[256];
    const char *failure;
    bool number_too_big = false;
    {
        // The std::string lives only in this block, which calls nothing that can longjmp.
        std::string message;
        size_t found_numbers = 0;
        failure = build_tree(buffer, root, found_numbers, message, number_too_big);
        numbers = found_numbers;
        if (failure != nullptr) {
            snprintf(message_buffer, sizeof message_buffer, "%s", failure);
            failure = message_buffer;
        }
    }
    if (failure != nullptr && number_too_big) {
        // Rare: let Postgres parse it, once the bytes are known to be UTF-8 (its parser does not check them).
        pfree(buffer);
        if (!pg_verify_mbstr(PG_UTF8, text, static_cast<int>(length), true)) {
            *error = pstrdup("the body holds bytes that are not UTF-8");
            return nullptr;
        }
        return parse_with_jsonb_in(text, length, error);
    }
    if (failure != nullptr) {
        *error = pstrdup(failure);
        pfree(buffer);
        return nullptr;
    }
    if (root.type != jbvArray && root.type != jbvObject) {
        // A scalar document is stored as a one-element raw-scalar array.
        JsonbValue *scalar = static_cast<JsonbValue *>(palloc(sizeof(JsonbValue)));
        *scalar = root;
        root.type = jbvArray;
        root.val.array.nElems = 1;
        root.val.array.elems = scalar;
        root.val.array.rawScalar = true;
    }

    MemoryContext context = CurrentMemoryContext;
    Jsonb *volatile result = nullptr;
    PG_TRY();
    {
        if (numbers > 0) {
            convert_numbers(&root);
        }
        result = JsonbValueToJsonb(&root);
    }
    PG_CATCH();
    { *error = take_error(context); }
    PG_END_TRY();
    // The tree's strings point into `buffer`; the jsonb is a copy, so both can go (the tree's arrays are
    // freed with the caller's memory context).
    pfree(buffer);
    return result;
}

}  // namespace segment_pg
