// Computes with mppx what coinop must compute alike, for the challenge in
// the INPUT environment variable (JSON: secret, realm, method, intent,
// request object, expires, opaque): the HMAC-bound id, the serialized
// request, the evm nonce keccak256(id || realm), and the tempo attribution
// memo. Prints them as one JSON line.

import { fileURLToPath } from "node:url";
import path from "node:path";
import { Challenge, PaymentRequest } from "mppx";
import { challengeHash } from "mppx/evm";

const here = path.dirname(fileURLToPath(import.meta.url));
// Not among mppx's package exports: loaded by path.
const Attribution = await import(path.join(here, "node_modules/mppx/dist/tempo/Attribution.js"));

const input = JSON.parse(process.env.INPUT);
const challenge = Challenge.from(
  {
    realm: input.realm,
    method: input.method,
    intent: input.intent,
    request: input.request,
    expires: input.expires,
    opaque: input.opaque,
    secretKey: input.secret,
  },
);
console.log(
  JSON.stringify({
    id: challenge.id,
    request: PaymentRequest.serialize(challenge.request),
    header: Challenge.serialize(challenge),
    evmNonce: challengeHash(challenge),
    memo: Attribution.encode({ challengeId: challenge.id, serverId: challenge.realm }),
  }),
);
