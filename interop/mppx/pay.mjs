// mppx's client with its evm method pays for one GET through the Payment
// scheme and prints one JSON line: the status, the body, the decoded
// Payment-Receipt, and every Authorization header it sent.
//
// With HOLD=1 the credential is recorded but not sent: the request that
// would carry it gets a 503 of the script's own.
//
//   URL=http://… PAYER_KEY=0x… CHAIN_ID=31337 TOKEN=0x… TOKEN_NAME=… TOKEN_VERSION=… MAX_AMOUNT=1000 node pay.mjs

import { Mppx } from "mppx/client";
import { charge } from "mppx/evm/client";
import { Receipt } from "mppx";
import { privateKeyToAccount } from "viem/accounts";

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

const sent = [];
const recording = async (input, init) => {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  const auth = headers.get("authorization");
  if (auth) sent.push(auth);
  if (headers.get("payment-signature")) sent.push("x402 " + headers.get("payment-signature"));
  if ((auth || headers.get("payment-signature")) && process.env.HOLD === "1") return new Response("held", { status: 503 });
  return fetch(input, init);
};

const mppx = Mppx.create({
  polyfill: false,
  fetch: recording,
  methods: [
    charge({
      account: privateKeyToAccount(need("PAYER_KEY")),
      authorization: { name: need("TOKEN_NAME"), version: need("TOKEN_VERSION") },
      networks: [Number(need("CHAIN_ID"))],
      maxAtomicAmount: need("MAX_AMOUNT"),
    }),
  ],
});
const res = await mppx.fetch(need("URL"), { signal: AbortSignal.timeout(60_000) });
const body = await res.text();
const header = res.headers.get("payment-receipt");
const receipt = header ? Receipt.deserialize(header) : null;
console.log(JSON.stringify({ status: res.status, body, receipt, sent }));
