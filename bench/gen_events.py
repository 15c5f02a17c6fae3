#!/usr/bin/env python3
"""Generate realistic Segment spec messages as JSON Lines, for the benchmarks.

Each output line is one message (or, with --array-batch, one JSON array of messages, the body an Actions
webhook sends in batch mode), in compact JSON with no whitespace, as JSON.stringify emits it, so a line's bytes
are exactly a request body that Segment would sign. The output depends only on the options and --seed: the same
command always prints the same bytes. Standard library only; never reads the network or the clock.
"""

import argparse
import datetime
import json
import random
import sys
import uuid

CALL_TYPES = ("track", "page", "identify", "screen", "group", "alias")
# Real traffic is dominated by track and page calls; identify, screen, group and alias are the minority.
DEFAULT_TYPE_WEIGHTS = {"track": 52, "page": 27, "identify": 8, "screen": 7, "group": 3, "alias": 3}

MIN_MESSAGE_BYTES = 512
MAX_MESSAGE_BYTES = 2048

# Which SDKs make which calls: pages only come from browsers, screens only from apps.
LIBRARY_WEIGHTS_BY_TYPE = {
    "track": {"web": 60, "server": 25, "ios": 15},
    "page": {"web": 100},
    "identify": {"web": 55, "server": 30, "ios": 15},
    "screen": {"ios": 100},
    "group": {"web": 50, "server": 50},
    "alias": {"web": 50, "server": 30, "ios": 20},
}

LIBRARY_VERSIONS = {
    "web": ("analytics.js", ["next-1.53.0", "next-1.61.0", "next-1.64.0", "next-1.66.0", "4.1.0"]),
    "server": ("analytics-node", ["6.2.0", "1.1.4", "2.0.0", "2.1.2"]),
    "ios": ("analytics-ios", ["4.1.5", "4.1.7", "4.1.8"]),
}

USER_AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36", "Windows", False, "Chromium", "124"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 "
     "Safari/537.36", "macOS", False, "Chromium", "123"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 "
     "Safari/605.1.15", None, False, None, None),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", None, False, None, None),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4.1 Mobile/15E148 Safari/604.1", None, True, None, None),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
     "Mobile Safari/537.36", "Android", True, "Chromium", "124"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36 Edg/124.0.0.0", "Windows", False, "Microsoft Edge", "124"),
]

# (IANA zone, fixed UTC offset in minutes, locale). Offsets ignore daylight saving; only the shape matters here.
ZONES = [
    ("America/New_York", -240, "en-US"), ("America/Los_Angeles", -420, "en-US"), ("America/Chicago", -300, "en-US"),
    ("Europe/London", 60, "en-GB"), ("Europe/Berlin", 120, "de-DE"), ("Europe/Paris", 120, "fr-FR"),
    ("Europe/Warsaw", 120, "pl-PL"), ("Asia/Kolkata", 330, "en-IN"), ("Asia/Tokyo", 540, "ja-JP"),
    ("America/Sao_Paulo", -180, "pt-BR"), ("Australia/Sydney", 600, "en-AU"), ("Europe/Madrid", 120, "es-ES"),
]

IOS_DEVICES = [("iPhone15,2", "iPhone 14 Pro", 393, 852), ("iPhone14,5", "iPhone 13", 390, 844),
               ("iPhone16,1", "iPhone 15 Pro", 393, 852), ("iPad13,4", "iPad Pro", 834, 1194)]
IOS_VERSIONS = ["16.7.8", "17.3.1", "17.4.1", "17.5"]
CARRIERS = ["Verizon", "T-Mobile", "AT&T", "Vodafone", "Orange", "NTT DOCOMO", ""]

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Zoë", "José", "Łukasz",
               "Søren", "Amélie", "Hiroshi", "Priya", "Chidi", "Fatima", "Mateo", "Olivia", "Noah"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Müller",
              "García", "Nowak", "Kierkegaard", "Dubois", "Tanaka", "Sharma", "Okafor", "O'Brien", "Silva"]
COMPANIES = [("Initech", "Software"), ("Globex", "Manufacturing"), ("Hooli", "Technology"),
             ("Umbrella Health", "Healthcare"), ("Stark Logistics", "Transportation"), ("Acme \"Rockets\" Ltd", "Aerospace")]
PLANS = ["free", "starter", "pro", "business", "enterprise"]

PRODUCTS = [
    ("507f1f77bcf86cd799439011", "TRS-X2-BLU-42", "Trail Running Shoe X2", "Footwear", "Northpeak", 129.99),
    ("507f191e810c19729de860ea", "WND-JKT-M", "Packable Wind Jacket", "Outerwear", "Northpeak", 89.0),
    ("5f2b8c9e1a2d4c3b9e8f7a61", "BTL-750-STL", "Insulated Bottle 750 ml", "Accessories", "Hydrova", 34.5),
    ("5f2b8c9e1a2d4c3b9e8f7a62", "SCK-MER-3PK", "Merino Socks (3-pack)", "Accessories", "Woolcraft", 24.99),
    ("5f2b8c9e1a2d4c3b9e8f7a63", "HDL-LMP-400", "Headlamp 400 lm", "Gear", "Lumen & Co", 49.95),
    ("5f2b8c9e1a2d4c3b9e8f7a64", "TNT-2P-ULT", "Ultralight Tent 2P", "Gear", "Northpeak", 389.0),
]

PAGES = [
    ("/", "Northpeak — Outdoor gear", None, None),
    ("/products/trail-running-shoe-x2", "Trail Running Shoe X2 | Northpeak", "Product", "Footwear"),
    ("/products/packable-wind-jacket", "Packable Wind Jacket | Northpeak", "Product", "Outerwear"),
    ("/collections/gear", "Gear | Northpeak", "Collection", "Gear"),
    ("/search", "Search results | Northpeak", "Search", None),
    ("/cart", "Your cart | Northpeak", "Checkout", None),
    ("/checkout/shipping", "Checkout – Shipping | Northpeak", "Checkout", None),
    ("/blog/how-to-pick-a-tent", "How to pick a tent: a \"no-nonsense\" guide", "Blog", "Guides"),
    ("/account/orders", "Your orders | Northpeak", "Account", None),
    ("/pricing", "Pricing | Northpeak", "Marketing", None),
]
SITE = "https://shop.northpeak.example"
REFERRERS = ["", "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", "https://t.co/",
             "https://news.ycombinator.com/", "https://www.reddit.com/r/ultralight/", SITE + "/"]
SEARCH_TERMS = ["tent", "wind jacket", "merino socks", "headlamp 400", "shoe size 42", "gift card", "o'neill",
                "sac à dos"]
CAMPAIGNS = [
    {"name": "spring_sale", "source": "newsletter", "medium": "email", "content": "hero_banner"},
    {"name": "brand_search", "source": "google", "medium": "cpc", "term": "northpeak tent"},
    {"name": "retargeting_q2", "source": "facebook", "medium": "paid_social", "content": "carousel_3"},
    {"name": "launch_x2", "source": "twitter", "medium": "social"},
]
SCREENS = [("Home", None), ("Product Detail", "Catalog"), ("Cart", "Checkout"), ("Settings", "Account"),
           ("Order History", "Account"), ("Search", "Catalog"), ("Onboarding Step 2", "Onboarding")]
INTEGRATION_SETTINGS = [
    {},
    {},
    {},
    {"All": True, "Mixpanel": False},
    {"Amplitude": {"session_id": None}},
    {"Google Analytics": {"clientId": None}},
    {"All": False, "Webhooks": True, "Segment.io": True},
]


def iso_timestamp(moment, offset_minutes=0):
    """Format like JavaScript's toISOString (milliseconds, Z), or with an explicit +hh:mm offset when non-zero."""
    local = moment + datetime.timedelta(minutes=offset_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (local.microsecond // 1000)
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    return text + "%s%02d:%02d" % (sign, abs(offset_minutes) // 60, abs(offset_minutes) % 60)


def money(value):
    # JSON.stringify prints 89 for 89.0; keep whole amounts integers so the output matches it byte for byte.
    value = round(value, 2)
    return int(value) if value == int(value) else value


class MessageGenerator:
    def __init__(self, rng, start, span_seconds, user_count, type_weights, order_completed_share=None):
        self.rng = rng
        self.order_completed_share = order_completed_share
        self.start = start
        self.span_seconds = span_seconds
        self.types = [t for t in CALL_TYPES if type_weights.get(t, 0) > 0]
        self.type_weights = [type_weights[t] for t in self.types]
        self.users = [self._new_user(i) for i in range(user_count)]
        self.serial = 0

    def uuid4(self, upper=False):
        text = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return text.upper() if upper else text

    def _ip(self):
        rng = self.rng
        if rng.random() < 0.1:
            return "2001:db8:%x:%x::%x" % (rng.randrange(65536), rng.randrange(65536), rng.randrange(1, 65536))
        prefix = rng.choice(["192.0.2", "198.51.100", "203.0.113"])
        return "%s.%d" % (prefix, rng.randrange(1, 255))

    def _new_user(self, index):
        rng = self.rng
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        zone = rng.choice(ZONES)
        identified = rng.random() < 0.6
        user_id = None
        if identified:
            user_id = rng.choice(["usr_%08d" % (100000 + index * 7),
                                  str(4000000 + index * 13),
                                  "%s.%s.%d" % (first.lower(), last.lower().replace("'", ""), index)])
        company = rng.choice(COMPANIES)
        return {
            "first": first, "last": last, "zone": zone, "user_id": user_id,
            "anonymous_id": self.uuid4(), "ios_anonymous_id": self.uuid4(upper=True),
            "email": "%s.%s%d@example.%s" % (first.lower(), last.lower().replace("'", ""), index,
                                              rng.choice(["com", "org", "net"])),
            "user_agent": rng.choice(USER_AGENTS), "ip": self._ip(),
            "device": rng.choice(IOS_DEVICES), "ios_version": rng.choice(IOS_VERSIONS),
            "device_id": self.uuid4(upper=True), "carrier": rng.choice(CARRIERS),
            "company": company, "group_id": "grp_%04d" % (COMPANIES.index(company) * 97 + 11),
            "plan": rng.choice(PLANS), "created_at": self.start - datetime.timedelta(days=rng.randrange(1, 900)),
            "clock_skew_ms": self._clock_skew_ms(),
        }

    def _clock_skew_ms(self):
        # Most clients keep good time; some drift by seconds, a few are hours off (the case Segment corrects).
        roll = self.rng.random()
        if roll < 0.7:
            return self.rng.randint(-800, 800)
        if roll < 0.95:
            return self.rng.randint(-120000, 120000)
        return self.rng.choice([-1, 1]) * self.rng.randint(3600000, 30 * 3600000)

    def _pick_user(self):
        # A few users make most of the traffic.
        count = len(self.users)
        return self.users[min(count - 1, int(count * (self.rng.random() ** 2.2)))]

    def _library(self, call_type):
        weights = LIBRARY_WEIGHTS_BY_TYPE[call_type]
        kinds = list(weights)
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        name, versions = LIBRARY_VERSIONS[kind]
        return kind, {"name": name, "version": self.rng.choice(versions)}

    def _message_id(self, kind, sent_ms):
        rng = self.rng
        if kind == "web":
            if rng.random() < 0.7:
                return "ajs-next-%d-%s" % (sent_ms, self.uuid4())
            return "ajs-%032x" % rng.getrandbits(128)
        if kind == "server":
            if rng.random() < 0.5:
                return "node-next-%d-%s" % (sent_ms, self.uuid4())
            return self.uuid4()
        return self.uuid4(upper=True)

    def _page_context(self, with_search):
        rng = self.rng
        path, title, _, _ = rng.choice(PAGES)
        search = ""
        if path == "/search" or with_search:
            search = "?q=" + rng.choice(SEARCH_TERMS).replace(" ", "+")
        return {"path": path, "referrer": rng.choice(REFERRERS), "search": search, "title": title,
                "url": SITE + path + search}

    def _context(self, kind, library, user):
        rng = self.rng
        zone_name, _, locale = user["zone"]
        context = {"library": library}
        if kind == "web":
            agent, platform, mobile, brand, brand_version = user["user_agent"]
            context["ip"] = user["ip"]
            context["locale"] = locale
            context["page"] = self._page_context(rng.random() < 0.1)
            context["userAgent"] = agent
            if brand is not None and rng.random() < 0.6:
                context["userAgentData"] = {
                    "brands": [{"brand": brand, "version": brand_version},
                               {"brand": "Not-A.Brand", "version": "99"}],
                    "mobile": mobile, "platform": platform}
            context["timezone"] = zone_name
            if rng.random() < 0.25:
                context["campaign"] = dict(rng.choice(CAMPAIGNS))
        elif kind == "ios":
            model, model_name, width, height = user["device"]
            context["app"] = {"build": str(rng.choice([412, 418, 421])), "name": "Northpeak",
                              "namespace": "com.northpeak.shop", "version": rng.choice(["3.8.0", "3.9.1", "3.10.0"])}
            context["device"] = {"adTrackingEnabled": rng.random() < 0.3, "id": user["device_id"],
                                 "manufacturer": "Apple", "model": model, "name": model_name, "type": "ios"}
            context["ip"] = user["ip"]
            context["locale"] = locale
            context["network"] = {"bluetooth": False, "carrier": user["carrier"],
                                  "cellular": rng.random() < 0.4, "wifi": rng.random() < 0.7}
            context["os"] = {"name": "iOS", "version": user["ios_version"]}
            context["screen"] = {"density": 3, "height": height, "width": width}
            context["timezone"] = zone_name
            context["traits"] = {"anonymousId": user["ios_anonymous_id"]}
        else:
            if rng.random() < 0.4:
                context["ip"] = user["ip"]
            if rng.random() < 0.3:
                context["userAgent"] = "analytics-node-next/latest"
        return context

    def _product(self, with_position):
        rng = self.rng
        product_id, sku, name, category, brand, price = rng.choice(PRODUCTS)
        product = {"brand": brand, "category": category, "name": name, "price": money(price), "product_id": product_id,
                   "quantity": rng.randint(1, 3), "sku": sku,
                   "url": SITE + "/products/" + name.lower().replace(" ", "-")}
        if with_position:
            product["position"] = rng.randint(1, 24)
        return product

    def _order(self):
        rng = self.rng
        products = [self._product(False) for _ in range(rng.randint(1, 4))]
        subtotal = sum(p["price"] * p["quantity"] for p in products)
        shipping = rng.choice([0, 4.95, 9.9])
        tax = round(subtotal * 0.08, 2)
        return {"affiliation": "Online Store", "checkout_id": self.uuid4(), "coupon": rng.choice(["", "SPRING10"]),
                "currency": "USD", "discount": 0, "order_id": "ord_%09d" % rng.randrange(10 ** 9),
                "products": products, "revenue": money(subtotal), "shipping": money(shipping),
                "subtotal": money(subtotal), "tax": money(tax), "total": money(subtotal + shipping + tax)}

    def _track(self, user):
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            product = self._product(True)
            product["currency"] = "USD"
            product["value"] = product["price"]
            return rng.choice(["Product Viewed", "Product Clicked", "Product Added"]), product
        if roll < 0.42:
            properties = self._order()
            if self.order_completed_share is not None:
                # With --order-completed-share, "Order Completed" comes only from the forced share.
                return "Checkout Started", properties
            return rng.choice(["Order Completed", "Checkout Started"]), properties
        if roll < 0.55:
            return "Search Performed", {"query": rng.choice(SEARCH_TERMS), "results": rng.randint(0, 140),
                                        "filters": {"in_stock": True, "sort": rng.choice(["relevance", "price_asc"])}}
        if roll < 0.67:
            return "Button Clicked", {"button_id": rng.choice(["cta-hero", "add-to-cart", "newsletter-submit"]),
                                      "label": rng.choice(["Shop now", "Add to cart", "Subscribe"]),
                                      "location": rng.choice(["header", "product_page", "footer"])}
        if roll < 0.77:
            return "Signed Up", {"method": rng.choice(["email", "google", "apple"]), "plan": user["plan"],
                                 "referral_code": rng.choice([None, "FRIEND-7Q2", "PODCAST24"]),
                                 "trial_days": rng.choice([0, 14, 30])}
        if roll < 0.87:
            return "Video Playback Started", {"content_asset_id": "vid_%05d" % rng.randrange(100000),
                                              "livestream": False, "position": 0, "quality": rng.choice(["720p", "1080p"]),
                                              "session_id": self.uuid4(), "sound": rng.randint(0, 100),
                                              "total_length": rng.randint(30, 1800), "video_player": "html5"}
        if roll < 0.94:
            return "Form Submitted", {"form_id": rng.choice(["contact", "newsletter", "b2b-quote"]),
                                      "fields": rng.randint(2, 9), "message": "Hi, I'd like a quote for 20 tents.\nThanks!"}
        return "Subscription Renewed", {"amount": money(rng.choice([9.99, 29, 99])), "currency": "EUR",
                                        "interval": rng.choice(["month", "year"]), "plan": user["plan"],
                                        "subscription_id": "sub_%s" % self.uuid4()[:18]}

    def _identify_traits(self, user):
        rng = self.rng
        company_name, industry = user["company"]
        traits = {"createdAt": iso_timestamp(user["created_at"]), "email": user["email"],
                  "firstName": user["first"], "lastName": user["last"],
                  "name": "%s %s" % (user["first"], user["last"]), "plan": user["plan"]}
        if rng.random() < 0.6:
            traits["company"] = {"employee_count": rng.choice([12, 80, 450, 5200]), "id": user["group_id"],
                                 "industry": industry, "name": company_name}
        if rng.random() < 0.5:
            traits["address"] = {"city": rng.choice(["Berlin", "Kraków", "São Paulo", "Austin", "Osaka"]),
                                 "country": rng.choice(["DE", "PL", "BR", "US", "JP"]),
                                 "postalCode": "%05d" % rng.randrange(100000), "street": "%d Main St" % rng.randint(1, 999)}
        if rng.random() < 0.4:
            traits["logins"] = rng.randint(1, 400)
            traits["phone"] = "+1-555-%04d" % rng.randrange(10000)
        return traits

    def _timestamps(self, message, user, kind, true_moment):
        """Set originalTimestamp, sentAt, receivedAt and timestamp the way a message delivered by Segment has them.

        Most carry all four; some lack timestamp (so readers must apply Segment's skew correction themselves);
        a few carry only originalTimestamp, or originalTimestamp and receivedAt (no sentAt).
        """
        rng = self.rng
        skew = datetime.timedelta(milliseconds=user["clock_skew_ms"])
        original = true_moment + skew
        if kind == "ios" and rng.random() < 0.2:
            queued = datetime.timedelta(seconds=rng.randint(60, 6 * 3600))  # sent after the app came back online
        else:
            queued = datetime.timedelta(milliseconds=rng.randint(5, 10000))
        sent = original + queued
        received = sent - skew + datetime.timedelta(milliseconds=rng.randint(40, 900))
        corrected = received - (sent - original)
        # Browsers and phones sometimes report their local offset instead of Z.
        offset = user["zone"][1] if kind != "server" and rng.random() < 0.2 else 0
        shape = rng.random()
        message["originalTimestamp"] = iso_timestamp(original, offset)
        if shape < 0.95:
            message["receivedAt"] = iso_timestamp(received)
        if shape < 0.92:
            message["sentAt"] = iso_timestamp(sent)
        if shape < 0.75:
            message["timestamp"] = iso_timestamp(corrected, offset)

    def _fit_size(self, message):
        """Keep a message between MIN_MESSAGE_BYTES and MAX_MESSAGE_BYTES by adding or dropping optional parts."""
        rng = self.rng
        target_min = MIN_MESSAGE_BYTES + rng.randint(0, 200)
        size = encoded_size(message)
        extra = 0
        while size < target_min:
            holder = message.get("properties") or message.get("traits")
            if holder is None:
                holder = message.setdefault("context", {}).setdefault("traits", {})
            key, value = rng.choice([
                ("experiment_%d" % extra, {"id": "exp_%04d" % rng.randrange(10000), "variant": rng.choice("ABC")}),
                ("session_id_%d" % extra, rng.randint(1700000000000, 1800000000000)),
                ("feature_flags_%d" % extra, ["new-checkout", "dark-mode", "recs-v3"][: rng.randint(1, 3)]),
                ("note_%d" % extra, "visited from %s" % rng.choice(REFERRERS[1:])),
            ])
            holder[key] = value
            extra += 1
            size = encoded_size(message)
        context = message.get("context", {})
        for optional in ("userAgentData", "campaign", "network", "screen", "app"):
            if size <= MAX_MESSAGE_BYTES:
                break
            if context.pop(optional, None) is not None:
                size = encoded_size(message)
        products = message.get("properties", {}).get("products")
        while size > MAX_MESSAGE_BYTES and products and len(products) > 1:
            products.pop()
            size = encoded_size(message)
        if size > MAX_MESSAGE_BYTES:
            raise RuntimeError("message over %d bytes after trimming: %d" % (MAX_MESSAGE_BYTES, size))

    def message(self, index, count):
        rng = self.rng
        self.serial += 1
        # --order-completed-share: that share of all messages are "Order Completed" track calls (no extra draw
        # without the option, so the default output stays the same).
        forced_order = self.order_completed_share is not None and rng.random() < self.order_completed_share
        call_type = "track" if forced_order else rng.choices(self.types, self.type_weights)[0]
        kind, library = self._library(call_type)
        user = self._pick_user()
        # Events spread over the span in order, with jitter, as a live stream would be.
        fraction = (index + rng.random()) / max(count, 1)
        true_moment = self.start + datetime.timedelta(seconds=fraction * self.span_seconds)
        message = {}
        if kind == "server":
            if rng.random() < 0.3:
                message["anonymousId"] = user["anonymous_id"]
        elif kind == "ios":
            message["anonymousId"] = user["ios_anonymous_id"]
        else:
            message["anonymousId"] = user["anonymous_id"]
        message["channel"] = "server" if kind == "server" else "client"
        message["context"] = self._context(kind, library, user)
        integrations = dict(rng.choice(INTEGRATION_SETTINGS))
        for name, value in list(integrations.items()):
            if isinstance(value, dict):
                integrations[name] = {key: rng.randint(10 ** 9, 2 * 10 ** 9) for key in value}
        message["integrations"] = integrations

        if call_type == "track":
            if forced_order:
                message["event"], message["properties"] = "Order Completed", self._order()
            else:
                message["event"], message["properties"] = self._track(user)
        elif call_type == "page":
            page = message["context"]["page"]
            matching = [p for p in PAGES if p[0] == page["path"]][0]
            if matching[2] is not None:
                message["name"] = matching[2]
            if matching[3] is not None:
                message["category"] = matching[3]
            message["properties"] = dict(page)
        elif call_type == "screen":
            name, category = rng.choice(SCREENS)
            message["name"] = name
            message["properties"] = {"name": name, "variation": rng.choice(["control", "compact"])}
            if category is not None:
                message["properties"]["category"] = category
        elif call_type == "identify":
            message["traits"] = self._identify_traits(user)
        elif call_type == "group":
            company_name, industry = user["company"]
            message["groupId"] = user["group_id"]
            message["traits"] = {"createdAt": iso_timestamp(user["created_at"]), "employees": rng.randint(5, 9000),
                                 "industry": industry, "name": company_name, "plan": user["plan"],
                                 "website": "https://%s.example" % company_name.split()[0].lower()}
        elif call_type == "alias":
            message["previousId"] = user["anonymous_id"] if rng.random() < 0.7 else "guest-%06d" % rng.randrange(10 ** 6)

        # Every call needs userId or anonymousId; alias needs userId; server libraries always identify.
        user_id = user["user_id"]
        if user_id is None and (call_type == "alias" or kind == "server" or call_type == "group"):
            user_id = "usr_%08d" % rng.randrange(10 ** 8)
        if user_id is not None and (call_type in ("alias", "identify", "group") or kind == "server" or rng.random() < 0.8):
            message["userId"] = user_id
        message["type"] = call_type
        if rng.random() < 0.8:
            message["version"] = 2

        self._timestamps(message, user, kind, true_moment)
        sent_ms = int(true_moment.timestamp() * 1000)
        message["messageId"] = self._message_id(kind, sent_ms)
        self._fit_size(message)
        return message


def encode(value):
    """Compact JSON with sorted keys, non-ASCII kept as UTF-8: the bytes JSON.stringify would send."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def encoded_size(value):
    return len(encode(value).encode("utf-8"))


def parse_type_weights(text):
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in CALL_TYPES:
            raise argparse.ArgumentTypeError("unknown call type %r (expected one of %s)" % (name, ", ".join(CALL_TYPES)))
        weights[name] = float(value)
    if sum(weights.values()) <= 0:
        raise argparse.ArgumentTypeError("type weights must not all be zero")
    return weights


def parse_start(text):
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def build_stream(options):
    """Return the list of messages in output order, retries included."""
    rng = random.Random(options.seed)
    retries = int(round(options.count * options.retry_share))
    distinct = options.count - retries
    user_count = options.users or max(1, distinct // 8)
    generator = MessageGenerator(rng, options.start, options.span_seconds, user_count, options.type_weights,
                                 options.order_completed_share)
    keyed = [((index, 0, 0), generator.message(index, distinct)) for index in range(distinct)]
    # A retry resends the very same message (same messageId, same bytes) a little later in the stream.
    for retry in range(retries):
        source = rng.randrange(distinct)
        gap = rng.randint(1, 64)
        keyed.append(((source + gap, 1, retry), keyed[source][1]))
    keyed.sort(key=lambda item: item[0])
    return [message for _, message in keyed]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="messages to emit, retries included (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same output (default 1)")
    parser.add_argument("--out", help="write to this file instead of stdout")
    parser.add_argument("--retry-share", type=float, default=0.0, metavar="F",
                        help="share of emitted messages that repeat an earlier one with the same messageId (0..1)")
    parser.add_argument("--array-batch", type=int, default=0, metavar="K",
                        help="emit JSON arrays of K messages per line, as a batching Actions webhook sends them")
    parser.add_argument("--start", type=parse_start, default=parse_start("2024-05-06T08:00:00Z"),
                        help="ISO-8601 time of the first event (default 2024-05-06T08:00:00Z)")
    parser.add_argument("--span-seconds", type=float, default=86400.0,
                        help="events are spread over this many seconds after --start (default 86400)")
    parser.add_argument("--users", type=int, default=0, help="distinct users (default: one per 8 messages)")
    parser.add_argument("--type-weights", type=parse_type_weights, default=dict(DEFAULT_TYPE_WEIGHTS),
                        help="relative call type weights, e.g. track=52,page=27,identify=8,screen=7,group=3,alias=3")
    parser.add_argument("--order-completed-share", type=float, default=None, metavar="F",
                        help="make this share of all messages \"Order Completed\" track calls, and no others "
                             "(other orders become \"Checkout Started\"); default: the natural mix, about 3%%")
    options = parser.parse_args(argv)
    if options.count < 0:
        parser.error("--count must not be negative")
    if not 0.0 <= options.retry_share < 1.0:
        parser.error("--retry-share must be in [0, 1)")
    if options.order_completed_share is not None and not 0.0 <= options.order_completed_share <= 1.0:
        parser.error("--order-completed-share must be in [0, 1]")
    if options.array_batch < 0:
        parser.error("--array-batch must not be negative")

    messages = build_stream(options)
    # Always UTF-8 and "\n", whatever the locale: the bytes are what gets signed.
    output = open(options.out, "wb") if options.out else sys.stdout.buffer
    try:
        if options.array_batch > 0:
            for first in range(0, len(messages), options.array_batch):
                output.write((encode(messages[first:first + options.array_batch]) + "\n").encode("utf-8"))
        else:
            for message in messages:
                output.write((encode(message) + "\n").encode("utf-8"))
        output.flush()
    finally:
        if options.out:
            output.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
