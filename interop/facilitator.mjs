// The official x402 facilitator (@x402/core + @x402/evm) served over HTTP:
// POST /verify, POST /settle, GET /supported.
//
//   RPC=http://127.0.0.1:8545 CHAIN_ID=31337 FACILITATOR_KEY=0x… node facilitator.mjs

import express from "express";
import { need, officialFacilitator, serve } from "./lib.mjs";

const facilitator = officialFacilitator({
  rpc: need("RPC"),
  chainId: Number(need("CHAIN_ID")),
  key: need("FACILITATOR_KEY"),
});

const app = express();
app.use(express.json());
for (const op of ["verify", "settle"]) {
  app.post(`/${op}`, async (req, res) => {
    const { paymentPayload, paymentRequirements } = req.body ?? {};
    if (!paymentPayload || !paymentRequirements) {
      return res.status(400).json({ error: "paymentPayload and paymentRequirements are required" });
    }
    try {
      res.json(await facilitator[op](paymentPayload, paymentRequirements));
    } catch (err) {
      console.error(`${op}:`, err);
      res.status(500).json({ error: String(err?.message ?? err) });
    }
  });
}
app.get("/supported", (req, res) => res.json(facilitator.getSupported()));
serve(app);
