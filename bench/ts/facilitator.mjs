// The official x402 facilitator (@x402/core x402Facilitator with
// @x402/evm's exact scheme) behind a minimal express app exposing /verify,
// /settle and /supported, settling on the chain at BENCH_RPC.
//
// Environment: BENCH_RPC, BENCH_CHAIN_ID, BENCH_FACILITATOR_KEY (0x hex),
// BENCH_POLL_MS (optional).
// Prints "listening on 127.0.0.1:PORT" when ready.
//
// The account uses viem's nonce manager, without which concurrent
// settlements collide on the transaction nonce. BENCH_POLL_MS, if set,
// replaces viem's 4 s receipt polling interval: the bench polls every 25 ms
// (as coinop does) for sequential payments, where a missed first look at the
// receipt would otherwise cost 4 s, and keeps the default under
// concurrency, where frequent polling costs the stack more CPU than it saves.
import express from "express";
import { createWalletClient, defineChain, http, nonceManager, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { x402Facilitator } from "@x402/core/facilitator";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";

const rpc = process.env.BENCH_RPC;
const pollingInterval = process.env.BENCH_POLL_MS ? Number(process.env.BENCH_POLL_MS) : undefined;
const chainId = Number(process.env.BENCH_CHAIN_ID);
const chain = defineChain({
  id: chainId,
  name: "bench",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [rpc] } },
});
const account = privateKeyToAccount(process.env.BENCH_FACILITATOR_KEY, { nonceManager });
const client = createWalletClient({ account, chain, transport: http(rpc), pollingInterval }).extend(publicActions);

const signer = toFacilitatorEvmSigner({
  address: account.address,
  readContract: (a) => client.readContract(a),
  verifyTypedData: (a) => client.verifyTypedData(a),
  writeContract: (a) => client.writeContract(a),
  sendTransaction: (a) => client.sendTransaction(a),
  waitForTransactionReceipt: (a) => client.waitForTransactionReceipt({ ...a, pollingInterval }),
  getCode: (a) => client.getCode(a),
});
const facilitator = new x402Facilitator();
registerExactEvmScheme(facilitator, { signer, networks: `eip155:${chainId}` });

const app = express();
app.use(express.json({ limit: "1mb" }));
const handle = (fn) => async (req, res) => {
  try {
    res.json(await fn(req.body.paymentPayload, req.body.paymentRequirements));
  } catch (err) {
    res.status(500).json({ error: String(err?.message ?? err) });
  }
};
app.post("/verify", handle((p, r) => facilitator.verify(p, r)));
app.post("/settle", handle((p, r) => facilitator.settle(p, r)));
app.get("/supported", (req, res) => res.json(facilitator.getSupported()));

const srv = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${srv.address().port}`);
});
srv.keepAliveTimeout = 120_000;
