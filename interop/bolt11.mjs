// Decodes BOLT11 invoices with the bolt11 package and prints, as one JSON
// line, what it read of each: network, amount, payment hash, description,
// expiry, payee key, and whether it found the signature complete.
//
//   INVOICES=lnbcrt…,lnbcrt… node bolt11.mjs

import bolt11 from "bolt11";
import { need } from "./lib.mjs";

const out = need("INVOICES").split(",").map((s) => {
  const d = bolt11.decode(s);
  const tag = (name) => (d.tags.find((t) => t.tagName === name) || {}).data;
  return {
    network: d.network && d.network.bech32,
    millisatoshis: d.millisatoshis,
    paymentHash: tag("payment_hash"),
    paymentSecret: tag("payment_secret"),
    description: tag("description"),
    expiry: d.timeExpireDate - d.timestamp,
    minFinalCltv: tag("min_final_cltv_expiry"),
    payee: d.payeeNodeKey,
    complete: d.complete,
  };
});
console.log(JSON.stringify(out));
