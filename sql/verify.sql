-- segment_verify / segment_sign. Every expected signature is computed by the openssl command-line tool
-- (an independent HMAC implementation), never by our own code.
CREATE EXTENSION segment_webhook;

\set body '{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1"}'
\set secret 'shhh-its-a-secret'
\set expected `printf '%s' '{"type":"track","event":"Order Completed","userId":"u1","messageId":"m-1"}' | openssl dgst -sha1 -hmac 'shhh-its-a-secret' | sed 's/^.*= //'`

-- segment_sign agrees with openssl, for text and bytea bodies
SELECT segment_sign(:'body'::text, :'secret') = :'expected' AS sign_text_matches_openssl;
SELECT segment_sign(convert_to(:'body', 'UTF8'), :'secret') = :'expected' AS sign_bytea_matches_openssl;
SELECT length(segment_sign('x'::text, 'k')) AS hex_length, segment_sign('x'::text, 'k') ~ '^[0-9a-f]{40}$' AS lowercase_hex;

-- a good signature, in either letter case, for text and bytea
SELECT segment_verify(:'body'::text, :'expected', :'secret') AS good_text;
SELECT segment_verify(convert_to(:'body', 'UTF8'), :'expected', :'secret') AS good_bytea;
SELECT segment_verify(:'body'::text, upper(:'expected'), :'secret') AS good_uppercase;

-- bad signatures are simply false, never an error
SELECT segment_verify(:'body'::text, :'expected', 'wrong-secret') AS wrong_secret;
SELECT segment_verify(:'body' || ' ', :'expected', :'secret') AS body_changed;
SELECT segment_verify(:'body'::text,
                      left(:'expected', 39) || CASE WHEN right(:'expected', 1) = '0' THEN '1' ELSE '0' END,
                      :'secret') AS last_digit_off;
SELECT segment_verify(:'body'::text, left(:'expected', 39), :'secret') AS too_short;
SELECT segment_verify(:'body'::text, :'expected' || '0', :'secret') AS too_long;
SELECT segment_verify(:'body'::text, 'sha1=' || :'expected', :'secret') AS prefixed;
SELECT segment_verify(:'body'::text, overlay(:'expected' placing 'zz' from 1 for 2), :'secret') AS non_hex;
SELECT segment_verify(:'body'::text, '', :'secret') AS empty_signature;
SELECT segment_verify(:'body'::text, NULL, :'secret') IS NULL AS strict_null;

-- an empty secret and an empty body are legal HMAC inputs
\set empty_key `printf '%s' 'payload' | openssl dgst -sha1 -hmac '' | sed 's/^.*= //'`
SELECT segment_verify('payload'::text, :'empty_key', '') AS empty_secret;
\set empty_body `printf '' | openssl dgst -sha1 -hmac 'k' | sed 's/^.*= //'`
SELECT segment_verify(''::text, :'empty_body', 'k') AS empty_body;

-- a secret longer than SHA-1's block (64 bytes) is hashed first by HMAC
\set long_secret 'a-very-long-shared-secret-that-is-longer-than-the-sixty-four-byte-block-of-sha1'
\set long_expected `printf '%s' 'payload' | openssl dgst -sha1 -hmac 'a-very-long-shared-secret-that-is-longer-than-the-sixty-four-byte-block-of-sha1' | sed 's/^.*= //'`
SELECT segment_verify('payload'::text, :'long_expected', :'long_secret') AS long_secret;

-- Actions batches: Segment signs only the first element, exactly as JSON.stringify wrote it
\set first '{"type":"track","event":"A","userId":"u1","messageId":"a"}'
\set batch '[{"type":"track","event":"A","userId":"u1","messageId":"a"},{"type":"track","event":"B","userId":"u2","messageId":"b"}]'
\set first_signature `printf '%s' '{"type":"track","event":"A","userId":"u1","messageId":"a"}' | openssl dgst -sha1 -hmac 'shhh-its-a-secret' | sed 's/^.*= //'`
\set batch_signature `printf '%s' '[{"type":"track","event":"A","userId":"u1","messageId":"a"},{"type":"track","event":"B","userId":"u2","messageId":"b"}]' | openssl dgst -sha1 -hmac 'shhh-its-a-secret' | sed 's/^.*= //'`
SELECT segment_verify(:'batch'::text, :'first_signature', :'secret') AS batch_signed_on_first_element;
SELECT segment_verify(:'batch'::text, :'batch_signature', :'secret') AS batch_signed_whole;
SELECT segment_verify(convert_to(:'batch', 'UTF8'), :'first_signature', :'secret') AS batch_bytea_first_element;
-- whitespace around the first element does not change the signed bytes
SELECT segment_verify(E'[ \n' || :'first' || E' ,\n {"x":1}]', :'first_signature', :'secret') AS first_element_with_spaces;
-- the second element's signature does not verify the batch
\set second_signature `printf '%s' '{"type":"track","event":"B","userId":"u2","messageId":"b"}' | openssl dgst -sha1 -hmac 'shhh-its-a-secret' | sed 's/^.*= //'`
SELECT segment_verify(:'batch'::text, :'second_signature', :'secret') AS second_element_rejected;
-- the first-element rule applies only to arrays: an object containing the element is not signed by it
SELECT segment_verify('{"batch":' || :'batch' || '}', :'first_signature', :'secret') AS object_not_first_element;
-- a truncated first element is not an element
SELECT segment_verify('[{"type":"track"', :'first_signature', :'secret') AS truncated_array;

-- properties the catalog promises
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS arguments, p.provolatile, p.proisstrict, p.proparallel
FROM pg_proc p JOIN pg_extension x ON x.extnamespace = p.pronamespace AND x.extname = 'segment_webhook'
WHERE p.proname IN ('segment_verify', 'segment_sign', 'segment_parse')
ORDER BY 1, 2;
