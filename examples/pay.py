#!/usr/bin/env python3
"""pay.py URL: ask for URL; on 402 Payment Required, print what it costs and
how to pay.

The terms come from the PAYMENT-REQUIRED header (x402 v2: base64 JSON), or,
from servers that only speak x402 v1, from the JSON body's "accepts". The
price for people ("0.001 USDC") comes from the body when the server states
it, as coinop does. Python 3 standard library only.

    python3 examples/pay.py http://127.0.0.1:8402/weather

Exit status: 0 for a 402 whose terms were read and for any success, 1 for
any other answer.
"""

import base64
import json
import sys
import urllib.error
import urllib.request


def b64json(value):
    """Decodes standard base64 JSON, with or without padding."""
    value = value.strip()
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4)))


def terms(headers, body):
    """The first offer and the header that carries the payment."""
    required = headers.get("PAYMENT-REQUIRED")
    if required:
        offer = b64json(required)["accepts"][0]
        return offer, offer["amount"], "PAYMENT-SIGNATURE"
    if body.get("accepts"):
        offer = body["accepts"][0]
        return offer, offer["maxAmountRequired"], "X-PAYMENT"
    raise ValueError("the 402 states no x402 terms")


def main(argv):
    if len(argv) != 2:
        print("usage: pay.py URL", file=sys.stderr)
        return 2
    url = argv[1]
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(f"status: {response.status} (nothing to pay)")
            print(response.read().decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as answer:
        status, headers, raw = answer.code, answer.headers, answer.read()
    if status != 402:
        print(f"status: {status} (nothing to pay)")
        print(raw.decode("utf-8", "replace"))
        return 1

    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    offer, amount, header = terms(headers, body)
    print(f"402 Payment Required: {body.get('detail', '')}")
    print(f"price: {body.get('price') or amount + ' atomic units of ' + offer['asset']}")
    print(f"scheme: {offer['scheme']}")
    print(f"network: {offer['network']}")
    print(f"asset: {offer['asset']}")
    print(f"payTo: {offer['payTo']}")
    print(f"amount: {amount}")
    print(f"header: {header}")
    print(f'to pay: curl -H "{header}: $(coinop sign {url})" {url}')
    print(f"    or: coinop curl {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
