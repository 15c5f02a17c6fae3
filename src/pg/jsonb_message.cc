// jsonb → the members of a Segment message. Never converts the message to text; never throws.
//
// A jsonb object stores its keys sorted (shorter first, then bytewise), followed by the values in the same
// order. Looking up 17 keys one by one costs 17 binary searches; walking the keys once beside our own sorted
// list of wanted keys costs one comparison per key. The walk reads the on-disk layout through jsonb.h's
// macros (the same format pg_upgrade keeps stable), mirroring what jsonb_util.c does for one key.
#include "core/message.h"
#include "pg/jsonb_message.h"

#include <algorithm>
#include <array>

#include "pg/postgres_headers.h"

namespace segment_pg {
namespace {

constexpr int kWantedCount = 17;
constexpr int kObjectSlot = 13;  // slots 13..16 are the four objects, 0..12 the scalar fields

struct WantedKey {
    std::string_view key;
    int slot;
};

// jsonb's key order: by length, then bytewise. Keys are short: an inline loop beats a call to memcmp.
inline int compare_keys(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return a.size() < b.size() ? -1 : 1;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != b[i]) {
            return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]) ? -1 : 1;
        }
    }
    return 0;
}

// Built on first use (not at load time, so it cannot run before kMessageFieldKeys exists).
const std::array<WantedKey, kWantedCount> &wanted_keys() {
    static const std::array<WantedKey, kWantedCount> keys = [] {
        std::array<WantedKey, kWantedCount> keys{};
        for (size_t i = 0; i < segment::kMessageFieldKeys.size(); ++i) {
            keys[i] = {segment::kMessageFieldKeys[i].key, static_cast<int>(i)};
        }
        keys[kObjectSlot + kContext] = {"context", kObjectSlot + kContext};
        keys[kObjectSlot + kProperties] = {"properties", kObjectSlot + kProperties};
        keys[kObjectSlot + kTraits] = {"traits", kObjectSlot + kTraits};
        keys[kObjectSlot + kIntegrations] = {"integrations", kObjectSlot + kIntegrations};
        std::sort(keys.begin(), keys.end(),
                  [](const WantedKey &a, const WantedKey &b) { return compare_keys(a.key, b.key) < 0; });
        return keys;
    }();
    return keys;
}

// Objects with more keys than this are read with one lookup per wanted key instead (no Segment message has
// that many top-level keys; this only bounds the stack arrays below).
constexpr uint32 kMaxWalkedKeys = 128;

// The value of entry `index`, whose data starts `offset` bytes into the container's data area.
void fill_value(JsonbContainer *container, int index, const char *base, uint32 offset, uint32 length,
                JsonbValue &value) {
    const JEntry entry = container->children[index];
    if (JBE_ISNULL(entry)) {
        value.type = jbvNull;
    } else if (JBE_ISSTRING(entry)) {
        value.type = jbvString;
        value.val.string.val = const_cast<char *>(base + offset);
        value.val.string.len = static_cast<int>(length);
    } else if (JBE_ISNUMERIC(entry)) {
        value.type = jbvNumeric;
        value.val.numeric = reinterpret_cast<Numeric>(const_cast<char *>(base + INTALIGN(offset)));
    } else if (JBE_ISBOOL_TRUE(entry) || JBE_ISBOOL_FALSE(entry)) {
        value.type = jbvBool;
        value.val.boolean = JBE_ISBOOL_TRUE(entry);
    } else {
        value.type = jbvBinary;
        value.val.binary.data =
            reinterpret_cast<JsonbContainer *>(const_cast<char *>(base + INTALIGN(offset)));
        value.val.binary.len = static_cast<int>(length - (INTALIGN(offset) - offset));
    }
}

// Finds the wanted keys of an object: found[slot] and values[slot] for each.
void find_wanted(JsonbContainer *object, JsonbValue values[kWantedCount], bool found[kWantedCount]) {
    const std::array<WantedKey, kWantedCount> &wanted = wanted_keys();
    std::fill(found, found + kWantedCount, false);
    const uint32 count = JsonContainerSize(object);
    if (count > kMaxWalkedKeys) {
        for (const WantedKey &key : wanted) {
            found[key.slot] =
                getKeyJsonValueFromContainer(object, key.key.data(), static_cast<int>(key.key.size()),
                                             &values[key.slot]) != nullptr;
        }
        return;
    }
    uint32 offsets[2 * kMaxWalkedKeys + 1];
    uint32 offset = 0;
    for (uint32 i = 0; i < 2 * count; ++i) {
        offsets[i] = offset;
        JBE_ADVANCE_OFFSET(offset, object->children[i]);
    }
    offsets[2 * count] = offset;
    const char *base = reinterpret_cast<const char *>(&object->children[2 * count]);

    int next = 0;
    for (uint32 i = 0; i < count && next < kWantedCount; ++i) {
        const std::string_view key(base + offsets[i], offsets[i + 1] - offsets[i]);
        int order = -1;
        while (next < kWantedCount && (order = compare_keys(wanted[next].key, key)) < 0) {
            ++next;
        }
        if (next < kWantedCount && order == 0) {
            const uint32 value_index = count + i;
            const int slot = wanted[next].slot;
            fill_value(object, static_cast<int>(value_index), base, offsets[value_index],
                       offsets[value_index + 1] - offsets[value_index], values[slot]);
            found[slot] = true;
            ++next;
        }
    }
}

segment::Field field_from_value(const JsonbValue &value) {
    segment::Field field;
    switch (value.type) {
        case jbvNull:
            field.kind = segment::FieldKind::Null;
            break;
        case jbvString:
            field.kind = segment::FieldKind::String;
            field.text = std::string_view(value.val.string.val, value.val.string.len);
            break;
        case jbvNumeric: {
            char *digits =
                DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value.val.numeric)));
            field.kind = segment::FieldKind::Number;
            field.text = std::string_view(digits);
            break;
        }
        case jbvBool:
            field.kind = segment::FieldKind::Bool;
            break;
        case jbvBinary:
            field.kind = JsonContainerIsObject(value.val.binary.data) ? segment::FieldKind::Object
                                                                      : segment::FieldKind::Array;
            break;
        default:
            field.kind = segment::FieldKind::Null;
            break;
    }
    return field;
}

}  // namespace

bool jsonb_is_object(Jsonb *jsonb) {
    return JB_ROOT_IS_OBJECT(jsonb) && !JB_ROOT_IS_SCALAR(jsonb);
}

void read_message_members(JsonbContainer *object, MessageMembers &members) {
    JsonbValue values[kWantedCount];
    bool found[kWantedCount];
    find_wanted(object, values, found);
    for (size_t i = 0; i < segment::kMessageFieldKeys.size(); ++i) {
        members.fields.*segment::kMessageFieldKeys[i].member =
            found[i] ? field_from_value(values[i]) : segment::Field{};
    }
    for (int i = 0; i < 4; ++i) {
        members.has_object[i] = found[kObjectSlot + i];
        if (members.has_object[i]) {
            members.objects[i] = values[kObjectSlot + i];
        }
    }
}

char *derived_message_id(JsonbContainer *object) {
    // Keys come out of a jsonb object sorted, so this text is canonical for equal messages.
    StringInfoData content;
    initStringInfo(&content);
    JsonbIterator *iterator = JsonbIteratorInit(object);
    JsonbValue value;
    JsonbIteratorToken token;
    bool skip_value = false;
    while ((token = JsonbIteratorNext(&iterator, &value, true)) != WJB_DONE) {
        if (token == WJB_KEY) {
            std::string_view key(value.val.string.val, value.val.string.len);
            skip_value = key == "sentAt" || key == "receivedAt";
            if (!skip_value) {
                appendBinaryStringInfo(&content, value.val.string.val, value.val.string.len);
                appendStringInfoChar(&content, '\0');
            }
        } else if (token == WJB_VALUE && !skip_value) {
            Jsonb *member = JsonbValueToJsonb(&value);
            JsonbToCString(&content, &member->root, VARSIZE(member));
            appendStringInfoChar(&content, '\0');
        }
    }
    char *id = static_cast<char *>(palloc(36));
    if (!segment::derive_message_id(std::string_view(content.data, content.len), id)) {
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("could not hash a message to derive its messageId")));
    }
    pfree(content.data);
    return id;
}

}  // namespace segment_pg
