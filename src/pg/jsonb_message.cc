// jsonb → segment::MessageFields. Never converts the whole message to text; never throws.
#include "core/message.h"
#include "pg/jsonb_message.h"

#include "pg/postgres_headers.h"

namespace segment_pg {

bool jsonb_is_object(Jsonb *jsonb) {
    return JB_ROOT_IS_OBJECT(jsonb) && !JB_ROOT_IS_SCALAR(jsonb);
}

static void read_field(JsonbContainer *object, std::string_view key, segment::Field &field) {
    JsonbValue value;
    field = segment::Field{};
    if (getKeyJsonValueFromContainer(object, key.data(), static_cast<int>(key.size()), &value) == nullptr) {
        return;
    }
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
}

void read_message_fields(JsonbContainer *object, segment::MessageFields &fields) {
    for (const segment::FieldKey &key : segment::kMessageFieldKeys) {
        read_field(object, key.key, fields.*key.member);
    }
}

Jsonb *jsonb_member(JsonbContainer *object, const char *key) {
    JsonbValue value;
    if (getKeyJsonValueFromContainer(object, key, static_cast<int>(strlen(key)), &value) == nullptr) {
        return nullptr;
    }
    return JsonbValueToJsonb(&value);
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
