// The official x402 resource server (@x402/express paymentMiddleware with
// @x402/evm's exact scheme) selling GET /paid for 1000 atomic units of
// BENCH_TOKEN, with a free GET /free beside it. Both answer the same 1 KiB
// JSON document as coinop's bench upstream.
//
// Environment: BENCH_FACILITATOR_URL, BENCH_CHAIN_ID, BENCH_TOKEN,
// BENCH_PAY_TO. Prints "listening on 127.0.0.1:PORT" when ready.
import express from "express";
import { HTTPFacilitatorClient, x402ResourceServer } from "@x402/core/server";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { paymentMiddleware } from "@x402/express";

const network = `eip155:${process.env.BENCH_CHAIN_ID}`;
const head = '{"data":"';
const tail = '"}\n';
const body = head + "x".repeat(1024 - head.length - tail.length) + tail;

const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: process.env.BENCH_FACILITATOR_URL }))
  .register(network, new ExactEvmScheme());

const app = express();
app.use(paymentMiddleware({
  "GET /paid": {
    accepts: {
      scheme: "exact",
      network,
      payTo: process.env.BENCH_PAY_TO,
      price: { amount: "1000", asset: process.env.BENCH_TOKEN, extra: { name: "USD Coin", version: "2" } },
      maxTimeoutSeconds: 3600,
    },
    description: "bench document",
    mimeType: "application/json",
  },
}, server));
const send = (req, res) => res.type("application/json").send(body);
app.get("/paid", send);
app.get("/free", send);

const srv = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${srv.address().port}`);
});
srv.keepAliveTimeout = 120_000;
