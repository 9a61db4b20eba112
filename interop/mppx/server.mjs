// An mppx resource server: GET /weather costs AMOUNT (in whole tokens) through
// the Payment scheme's evm method, settled by the x402 facilitator at
// FACILITATOR (coinop facilitator in the tests). mppx's evm method also
// answers with x402's PAYMENT-REQUIRED. Prints "ready <url>"; exits when its
// standard input closes.
//
//   FACILITATOR=http://… CHAIN_ID=31337 TOKEN=0x… TOKEN_NAME=… TOKEN_VERSION=… PAY_TO=0x… AMOUNT=0.001 node server.mjs

import http from "node:http";
import { Mppx, Request as MppxRequest, evm } from "mppx/server";

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

const mppx = Mppx.create({
  secretKey: "an mppx test secret of at least thirty-two bytes",
  realm: "mppx.test",
  methods: [
    evm.charge({
      chainId: Number(need("CHAIN_ID")),
      currency: need("TOKEN"),
      decimals: 6,
      recipient: need("PAY_TO"),
      authorization: { name: need("TOKEN_NAME"), version: need("TOKEN_VERSION") },
      x402: { facilitator: need("FACILITATOR") },
    }),
  ],
});

const charge = mppx["evm/charge"]({ amount: need("AMOUNT") });
const server = http.createServer(
  MppxRequest.toNodeListener(async (request) => {
    if (new URL(request.url).pathname !== "/weather") return new Response("not found", { status: 404 });
    const result = await charge(request);
    if (result.status === 402) return result.challenge;
    return result.withReceipt(Response.json({ city: "Lisbon", sky: "clear" }));
  }),
);
server.listen(0, "127.0.0.1", () => {
  console.log(`ready http://127.0.0.1:${server.address().port}`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
