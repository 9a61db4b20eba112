// mppx's client with its tempo method pays for one GET in push mode (it
// sends the transfer itself and presents the hash) on a local anvil
// --network tempo, and prints one JSON line: status, body, the decoded
// Payment-Receipt, and the Authorization headers it sent.
//
//   URL=http://… PAYER_KEY=0x… CHAIN_ID=1337 RPC=http://… node pay-tempo.mjs

import { Mppx, tempo } from "mppx/client";
import { Receipt } from "mppx";
import { createClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { tempo as tempoChain } from "viem/tempo/chains";

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

const account = privateKeyToAccount(need("PAYER_KEY"));
const chain = { ...tempoChain, id: Number(need("CHAIN_ID")), rpcUrls: { default: { http: [need("RPC")] } } };
const sent = [];
const recording = async (input, init) => {
  const auth = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get("authorization");
  if (auth) sent.push(auth);
  return fetch(input, init);
};
const mppx = Mppx.create({
  polyfill: false,
  fetch: recording,
  methods: [
    tempo.charge({
      account,
      mode: "push",
      getClient: () => createClient({ account, chain, transport: http(need("RPC")) }),
    }),
  ],
});
const res = await mppx.fetch(need("URL"), { signal: AbortSignal.timeout(60_000) });
const body = await res.text();
const header = res.headers.get("payment-receipt");
console.log(JSON.stringify({ status: res.status, body, receipt: header ? Receipt.deserialize(header) : null, sent }));
