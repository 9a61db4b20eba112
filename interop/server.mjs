// An official x402 resource server: @x402/express with the exact EVM scheme
// of @x402/evm, selling GET /weather. It verifies and settles through the
// facilitator at FACILITATOR_URL (coinop's, say), or, without it, through
// the official facilitator code in-process, settling from FACILITATOR_KEY.
//
//   RPC=… CHAIN_ID=31337 TOKEN=0x… PAY_TO=0x… PRICE=1000 \
//     [FACILITATOR_URL=http://127.0.0.1:8403 | FACILITATOR_KEY=0x…] node server.mjs

import express from "express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { need, officialFacilitator, serve } from "./lib.mjs";

const chainId = Number(need("CHAIN_ID"));
const network = `eip155:${chainId}`;

let facilitatorClient;
if (process.env.FACILITATOR_URL) {
  facilitatorClient = new HTTPFacilitatorClient({ url: process.env.FACILITATOR_URL });
} else {
  const f = officialFacilitator({ rpc: need("RPC"), chainId, key: need("FACILITATOR_KEY") });
  facilitatorClient = {
    verify: (payload, requirements) => f.verify(payload, requirements),
    settle: (payload, requirements) => f.settle(payload, requirements),
    getSupported: async () => f.getSupported(),
  };
}

const server = new x402ResourceServer(facilitatorClient).register(network, new ExactEvmScheme());
const app = express();
app.use(
  paymentMiddleware(
    {
      "GET /weather": {
        accepts: {
          scheme: "exact",
          network,
          payTo: need("PAY_TO"),
          maxTimeoutSeconds: 60,
          price: {
            amount: need("PRICE"),
            asset: need("TOKEN"),
            extra: { name: process.env.TOKEN_NAME ?? "USD Coin", version: process.env.TOKEN_VERSION ?? "2" },
          },
        },
        description: "Current weather",
        mimeType: "application/json",
      },
    },
    server,
  ),
);
app.get("/weather", (req, res) => res.json({ city: "Lisbon", sky: "clear" }));
serve(app);
