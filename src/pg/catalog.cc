// Checked catalog lookups of the extension's objects. See catalog.h.
#include "pg/catalog.h"

#include "pg/postgres_headers.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
}

namespace segment_pg {

bool events_have_signature_column(Oid schema) {
    const Oid relid = OidIsValid(schema) ? get_relname_relid("segment_events", schema) : InvalidOid;
    if (!OidIsValid(relid)) {
        return false;
    }
    const AttrNumber column = get_attnum(relid, "signature_verified");  // a dropped column is not found
    return column != InvalidAttrNumber && get_atttype(relid, column) == BOOLOID;
}

bool events_are_partitioned(Oid schema) {
    const Oid relid = OidIsValid(schema) ? get_relname_relid("segment_events", schema) : InvalidOid;
    return OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE;
}

const char *quoted_schema_name(Oid schema) {
    const char *name = OidIsValid(schema) ? get_namespace_name(schema) : nullptr;
    if (name == nullptr) {
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_SCHEMA_NAME),
                 errmsg("the schema of extension segment_webhook (OID %u) does not exist", schema),
                 errhint("It was dropped or the extension was removed; CREATE EXTENSION segment_webhook "
                         "again.")));
    }
    return quote_identifier(name);
}

Oid find_extension(char **version) {
    if (version != nullptr) {
        *version = nullptr;
    }
    Relation catalog = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("segment_webhook"));
    SysScanDesc scan = systable_beginscan(catalog, ExtensionNameIndexId, true, nullptr, 1, &key);
    Oid schema = InvalidOid;
    HeapTuple tuple = systable_getnext(scan);
    if (HeapTupleIsValid(tuple)) {
        const Form_pg_extension form = reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple));
        schema = form->extnamespace;
        if (version != nullptr) {
            bool is_null;
            Datum value =
                heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(catalog), &is_null);
            *version = is_null ? nullptr : TextDatumGetCString(value);
        }
    }
    systable_endscan(scan);
    table_close(catalog, AccessShareLock);
    // A schema dropped in a transaction that is still running leaves pg_extension pointing at it for a
    // moment.
    if (OidIsValid(schema) && get_namespace_name(schema) == nullptr) {
        return InvalidOid;
    }
    return schema;
}

Oid find_ingest_role() {
    return get_role_oid(kIngestRoleName, true);
}

const char *storage_error_code(int sqlerrcode) {
    switch (ERRCODE_TO_CATEGORY(sqlerrcode)) {
        case ERRCODE_INVALID_SCHEMA_NAME:
        case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
        case ERRCODE_FEATURE_NOT_SUPPORTED:
            return "storage_misconfigured";
        default:
            return "database_unavailable";
    }
}

}  // namespace segment_pg
