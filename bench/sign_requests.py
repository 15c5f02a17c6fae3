#!/usr/bin/env python3
"""Turn generated Segment messages (JSON Lines from gen_events.py) into signed webhook request bodies.

Reads one message per line and writes one request per line, for bench/load_driver.cc:

    <X-Signature> TAB <messages in the body> TAB <messageIds not seen on earlier lines> TAB <body>

--batch 0 (the default) sends each message alone, as Segment's unbatched webhooks do; --batch K sends JSON
arrays of K messages, the body of a batching Actions webhook. An array body is "[" + the message lines joined by
"," + "]", byte for byte what JSON.stringify(array) gives (and what gen_events.py --array-batch K writes).

The signature is the lowercase hex HMAC-SHA1 under --secret of the raw bytes of the first array element
(--sign first, what Segment's Actions destination signs today), or of the whole body (--sign whole); a single
message is always signed whole. The third column lets the driver know how many distinct rows the requests it
sent must leave behind. Standard library only.
"""

import argparse
import hashlib
import hmac
import json
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", required=True, help="the source's shared secret")
    parser.add_argument("--batch", type=int, default=0, metavar="K", help="messages per array body (0: one message)")
    parser.add_argument("--sign", choices=("first", "whole"), default="first",
                        help="array bodies: sign the first element (default) or the whole body")
    parser.add_argument("--limit", type=int, default=0, help="read at most this many messages (0: all)")
    parser.add_argument("--in", dest="input", required=True, help="messages, one per line")
    parser.add_argument("--out", required=True, help="requests, one per line")
    options = parser.parse_args(argv)
    if options.batch < 0:
        parser.error("--batch must not be negative")

    key = options.secret.encode("utf-8")
    seen = set()
    messages = 0
    requests = 0

    def sign(data):
        return hmac.new(key, data, hashlib.sha1).hexdigest()

    with open(options.input, "rb") as source, open(options.out, "wb") as out:
        def emit(lines):
            nonlocal requests
            new = 0
            for line in lines:
                message_id = json.loads(line)["messageId"]
                if message_id not in seen:
                    seen.add(message_id)
                    new += 1
            if options.batch == 0:
                body = lines[0]
                signature = sign(body)
            else:
                body = b"[" + b",".join(lines) + b"]"
                signature = sign(lines[0] if options.sign == "first" else body)
            out.write(b"%s\t%d\t%d\t%s\n" % (signature.encode("ascii"), len(lines), new, body))
            requests += 1

        pending = []
        for line in source:
            line = line.rstrip(b"\n")
            if not line:
                continue
            if b"\t" in line:
                raise SystemExit("a message contains a raw tab: not compact JSON")
            pending.append(line)
            messages += 1
            if len(pending) >= max(options.batch, 1):
                emit(pending)
                pending = []
            if options.limit and messages >= options.limit:
                break
        if pending:
            emit(pending)
    print(json.dumps({"requests": requests, "messages": messages, "unique": len(seen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
