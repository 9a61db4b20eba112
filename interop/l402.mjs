// An L402 client built on lsat-js: it reads a coinop 402's challenge with
// Lsat.fromHeader (the WWW-Authenticate values as fetch joins them),
// decodes the invoice with bolt11, pays it through an lnd REST API
// (/v2/router/send), checks the preimage against the token's payment hash
// with lsat.setPreimage, and retries with the LSAT Authorization header.
// It prints one JSON line: the retry's status and body, and what it read.
//
//   URL=http://… LND_URL=https://127.0.0.1:… LND_MACAROON=<file> LND_CERT=<file> node l402.mjs

import { readFileSync } from "node:fs";
import https from "node:https";
import bolt11 from "bolt11";
import { Lsat } from "lsat-js";
import { need } from "./lib.mjs";

const url = need("URL");
const first = await fetch(url, { signal: AbortSignal.timeout(30_000) });
if (first.status !== 402) {
  console.log(JSON.stringify({ status: first.status, error: "no 402" }));
  process.exit(0);
}
const header = first.headers.get("www-authenticate");
const lsat = Lsat.fromHeader(header);
const invoice = bolt11.decode(lsat.invoice);
const hashTag = invoice.tags.find((t) => t.tagName === "payment_hash");
if (!hashTag || hashTag.data !== lsat.paymentHash) {
  throw new Error("the invoice's payment hash is not the token's");
}

function send(path, body) {
  const u = new URL(path, need("LND_URL"));
  return new Promise((resolve, reject) => {
    const req = https.request(u, {
      method: "POST",
      ca: readFileSync(need("LND_CERT")),
      headers: { "Grpc-Metadata-macaroon": readFileSync(need("LND_MACAROON")).toString("hex"), "Content-Type": "application/json" },
      timeout: 60_000,
    }, (res) => {
      let data = "";
      res.on("data", (c) => (data += c));
      res.on("end", () => resolve(data));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const stream = await send("/v2/router/send", { payment_request: lsat.invoice, timeout_seconds: 30, fee_limit_msat: "10000", no_inflight_updates: true });
const last = stream.trim().split("\n").map((l) => JSON.parse(l)).pop();
if (!last.result || last.result.status !== "SUCCEEDED") {
  throw new Error("payment failed: " + JSON.stringify(last));
}
lsat.setPreimage(last.result.payment_preimage); // throws unless sha256(preimage) is the token's hash

const res = await fetch(url, { headers: { Authorization: lsat.toToken() }, signal: AbortSignal.timeout(30_000) });
console.log(JSON.stringify({
  status: res.status,
  body: await res.text(),
  paymentHash: lsat.paymentHash,
  satisfied: lsat.isSatisfied(),
  invoice: {
    network: invoice.network && invoice.network.bech32,
    millisatoshis: invoice.millisatoshis,
    payee: invoice.payeeNodeKey,
    timestamp: invoice.timestamp,
    expiry: invoice.timeExpireDate - invoice.timestamp,
    description: (invoice.tags.find((t) => t.tagName === "description") || {}).data,
  },
}));
