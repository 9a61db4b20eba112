#!/usr/bin/env bash
# pay.sh URL: ask for URL with plain curl. On 402 Payment Required, print what
# it costs and how to pay (from the PAYMENT-REQUIRED header and the JSON
# body), then pay: `coinop sign URL` signs the payment, and curl asks again
# with it in the PAYMENT-SIGNATURE header.
#
#   examples/pay.sh http://127.0.0.1:8402/weather
#   COINOP="go run ./cmd/coinop" examples/pay.sh http://127.0.0.1:8402/weather
#   PAY=0 examples/pay.sh URL        # only print the terms
#
# Environment: COINOP is the coinop command (default: coinop on PATH);
# coinop sign picks the wallet as usual (--wallet is not passed; set
# COINOP_WALLET_KEY, or COINOP_DATA for the dev payer's key).
# Needs bash, curl, base64, grep, sed and tr; no JSON tool.
set -euo pipefail

url=${1:?usage: pay.sh URL}
read -r -a coinop <<<"${COINOP:-coinop}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# header FILE NAME: the value of response header NAME (case-insensitive).
header() { sed -n "s/^$2:[[:space:]]*//Ip" "$1" | tr -d '\r' | head -n1; }
# field NAME: the first "NAME":"value" string member in the JSON on stdin.
field() { grep -o "\"$1\": *\"[^\"]*\"" | head -n1 | sed 's/^.*: *"\(.*\)"$/\1/' || true; }
# b64decode: standard base64 on stdin, with or without padding.
b64decode() {
  local s
  s=$(tr -d ' \r\n')
  while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
  printf '%s' "$s" | base64 -d
}

status=$(curl -sS --max-time 30 -H 'Accept: application/json' -D "$tmp/head" -o "$tmp/body" -w '%{http_code}' "$url")
if [ "$status" != 402 ]; then
  echo "status: $status (nothing to pay)"
  cat "$tmp/body"
  [ "$status" -lt 400 ]
  exit
fi

required=$(header "$tmp/head" PAYMENT-REQUIRED)
if [ -z "$required" ]; then
  echo "402 without a PAYMENT-REQUIRED header: not an x402 v2 server" >&2
  cat "$tmp/body" >&2
  exit 1
fi
terms=$(printf '%s' "$required" | b64decode)
body=$(cat "$tmp/body")

amount=$(field amount <<<"$terms")
asset=$(field asset <<<"$terms")
price=$(field price <<<"$body")
echo "402 Payment Required: $(field detail <<<"$body")"
echo "price: ${price:-$amount atomic units of $asset}"
echo "scheme: $(field scheme <<<"$terms")"
echo "network: $(field network <<<"$terms")"
echo "asset: $asset"
echo "payTo: $(field payTo <<<"$terms")"
echo "amount: $amount"
echo "header: PAYMENT-SIGNATURE"
echo "to pay: curl -H \"PAYMENT-SIGNATURE: \$(coinop sign $url)\" $url"
echo "    or: coinop curl $url"

if [ "${PAY:-1}" = 0 ]; then
  exit 0
fi
echo "paying with: ${coinop[*]} sign $url"
signature=$("${coinop[@]}" sign "$url")
status=$(curl -sS --max-time 90 -H "PAYMENT-SIGNATURE: $signature" -D "$tmp/head" -o "$tmp/body" -w '%{http_code}' "$url")
echo "status: $status"
receipt=$(header "$tmp/head" PAYMENT-RESPONSE)
if [ -n "$receipt" ]; then
  settlement=$(printf '%s' "$receipt" | b64decode)
  echo "settled: $(field network <<<"$settlement") transaction $(field transaction <<<"$settlement")"
fi
cat "$tmp/body"
[ "$status" -lt 400 ]
