// Drives Debian's Chromium (playwright-core, no browser download) through
// coinop's HTML 402 page, as a person with a wallet would, for coinop's Go
// test examples/browser_pay_test.go. The wallet is the script's own: an
// EIP-6963 provider injected into the page, whose requests the script
// answers, signing with the key in PAYER_KEY_FILE (viem) and passing chain
// reads to the chain at RPC.
//
// Environment: URL (a priced URL), RPC, PAYER_KEY_FILE, CHROMIUM (the
// browser binary), OUT (a directory for screenshots), SCENARIO:
//   pay          the wallet pays; the page shows the paid content
//   reject       the user rejects the signature request (EIP-1193 4001)
//   wrong-chain  the wallet is on chain 1 and the user refuses to switch
//   poor         the wallet's account holds nothing
//   no-wallet    no wallet at all
//   forged       the wallet signs with another key than its account's: the
//                seller refuses the payment, and the page gives its reason
//   no-js        JavaScript disabled, at a phone's width
// It prints one JSON line: what the page showed and what the wallet was asked.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { need } from "./lib.mjs";
import { launch, watch } from "./page.mjs";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

const url = need("URL");
const rpc = need("RPC");
const out = need("OUT");
const scenario = need("SCENARIO");
const payer = privateKeyToAccount(readFileSync(need("PAYER_KEY_FILE"), "utf8").trim());
const account = scenario === "poor" ? privateKeyToAccount(generatePrivateKey()) : payer;

// The provider in the page hands every request to window.__coinopWallet
// (the script, below) and throws its errors as EIP-1193 errors, with their
// code: Playwright would carry only an exception's message.
const provider = `(() => {
  const provider = {
    isCoinopTest: true,
    request: async ({ method, params }) => {
      const r = await window.__coinopWallet(method, params || []);
      if (r.error) {
        const e = new Error(r.error.message);
        e.code = r.error.code;
        throw e;
      }
      return r.result;
    },
    on() {}, removeListener() {},
  };
  const info = Object.freeze({ uuid: "7f6b1b6e-3c1e-4d3a-9d35-0c0c0c0c0c0c", name: "Test Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E", rdns: "org.coinop.test" });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();`;

const asked = [];
let signed = 0;

async function chainRPC(method, params) {
  const resp = await fetch(rpc, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await resp.json();
  return body.error ? { error: body.error } : { result: body.result };
}

const rejectedByUser = { error: { code: 4001, message: "User rejected the request." } };

// answer is the wallet: what a person's wallet would answer in scenario.
async function answer(method, params) {
  asked.push(method);
  switch (method) {
    case "eth_requestAccounts":
    case "eth_accounts":
      return { result: [account.address] };
    case "eth_chainId":
      return scenario === "wrong-chain" ? { result: "0x1" } : chainRPC(method, params);
    case "wallet_switchEthereumChain":
      return scenario === "wrong-chain" ? rejectedByUser : { result: null };
    case "eth_signTypedData_v4": {
      if (scenario === "reject") return rejectedByUser;
      if (String(params[0]).toLowerCase() !== account.address.toLowerCase()) {
        return { error: { code: 4100, message: "not this wallet's account" } };
      }
      const data = JSON.parse(params[1]);
      delete data.types.EIP712Domain;
      signed++;
      const signer = scenario === "forged" ? privateKeyToAccount(generatePrivateKey()) : account;
      return { result: await signer.signTypedData(data) };
    }
    default:
      return chainRPC(method, params);
  }
}

const browser = await launch(need("CHROMIUM"));
const result = { scenario, signed: 0, asked, foreign: [], errors: [] };
try {
  const phone = scenario === "no-js" || scenario === "no-wallet";
  const context = await browser.newContext({
    javaScriptEnabled: scenario !== "no-js",
    viewport: phone ? { width: 390, height: 844 } : { width: 1000, height: 900 },
  });
  context.setDefaultTimeout(60_000);
  if (scenario !== "no-wallet" && scenario !== "no-js") {
    await context.exposeFunction("__coinopWallet", answer);
    await context.addInitScript(provider);
  }
  const page = await context.newPage();
  watch(page, url, result);

  const resp = await page.goto(url, { waitUntil: "load" });
  result.pageStatus = resp.status();
  result.csp = resp.headers()["content-security-policy"] || "";
  result.price = await page.textContent("#price");
  result.commands = await page.textContent("#commands");
  result.offers = await page.locator("section.offer h2").allTextContents();
  result.payVisible = await page.locator("#pay-button").isVisible();
  result.overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: join(out, scenario === "pay" ? "page-before.png" : `${scenario}.png`), fullPage: true });

  if (scenario !== "no-js") {
    if (scenario === "reject") {
      // By keyboard: Tab to the button, Enter.
      for (let i = 0; i < 10; i++) {
        await page.keyboard.press("Tab");
        if (await page.evaluate(() => document.activeElement && document.activeElement.id === "pay-button")) break;
      }
      result.focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      await page.keyboard.press("Enter");
    } else {
      await page.getByRole("button", { name: /^Pay / }).click();
    }
    await page.waitForSelector("#status[data-state=done], #status[data-state=error]");
    result.state = await page.getAttribute("#status", "data-state");
    result.status = await page.textContent("#status");
    if (result.state === "done") {
      result.paid = await page.textContent("#content pre");
      result.receipt = await page.textContent("#receipt");
      result.tx = await page.textContent("#tx");
    }
    await page.screenshot({ path: join(out, scenario === "pay" ? "page-after.png" : `${scenario}-after.png`), fullPage: true });
  }
  result.signed = signed;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
