// Drives Debian's Chromium (playwright-core) through the Lightning section
// of coinop's HTML 402 page, for coinop's Go test
// examples/browser_lightning_test.go: reads the QR code off a screenshot
// (jsQR), then pays the L402 invoice as a person would, through the
// development node's lnd REST API (the node side of this script is the
// buyer's Lightning wallet).
//
// Environment: URL (a priced URL with an L402 offer), NODE_FILE (the dev
// node's node.json: url, macaroon_file, tls_cert_file), CHROMIUM, OUT (a
// directory for screenshots), SCENARIO:
//   webln          a WebLN wallet (window.webln) pays when asked
//   webln-refused  the WebLN wallet's user refuses the payment
//   webln-locked   the WebLN wallet refuses to connect (enable)
//   paste          the invoice is paid elsewhere; its preimage is pasted,
//                  at a phone's width
//   wrong-preimage something that is not a preimage, then a preimage of
//                  another payment, are pasted: the page says so, sends nothing
//   replayed       the invoice is paid and its token used elsewhere first;
//                  the pasted preimage is refused by the seller, with its reason
//   expired        the invoice's time runs out (the browser's clock is moved)
//                  before the WebLN wallet is used
//   no-js          JavaScript disabled, at a phone's width
// It prints one JSON line: what the page showed and what the wallets did.

import { readFileSync } from "node:fs";
import { request } from "node:https";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { need } from "./lib.mjs";
import { launch, watch } from "./page.mjs";
import jsQR from "jsqr";

const url = need("URL");
const out = need("OUT");
const scenario = need("SCENARIO");
const node = JSON.parse(readFileSync(need("NODE_FILE"), "utf8"));
const macaroon = readFileSync(node.macaroon_file).toString("hex");
const ca = readFileSync(node.tls_cert_file);

// lnd calls the dev node's REST API, as a buyer's wallet would.
function lnd(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, node.url), {
      method, ca, headers: { "Grpc-Metadata-macaroon": macaroon, "Content-Type": "application/json" }, timeout: 30_000,
    }, (resp) => {
      let data = "";
      resp.setEncoding("utf8");
      resp.on("data", (c) => (data += c));
      resp.on("end", () => {
        try {
          resolve(JSON.parse(data));
        } catch (e) {
          reject(new Error(`${path}: ${resp.statusCode} ${data}`));
        }
      });
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`${path}: timed out`)));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

const paid = [];
// payInvoice pays invoice from the node's buyer and returns the preimage.
async function payInvoice(invoice) {
  const r = await lnd("POST", "/v2/router/send", { payment_request: invoice, timeout_seconds: 30 });
  if (!r.result || r.result.status !== "SUCCEEDED") throw new Error(`payment failed: ${JSON.stringify(r)}`);
  paid.push(r.result.payment_hash);
  return r.result.payment_preimage;
}

const asked = [];
// webln answers the page's window.webln: what a person's wallet would, in
// scenario.
async function webln(method, invoice) {
  asked.push(method);
  try {
    switch (method) {
      case "enable":
        return scenario === "webln-locked" ? { error: "The wallet is locked" } : { result: null };
      case "sendPayment":
        if (scenario === "webln-refused") return { error: "User rejected the payment" };
        return { result: { preimage: await payInvoice(invoice) } };
      default:
        return { error: `no method ${method}` };
    }
  } catch (e) {
    return { error: String(e.message || e) };
  }
}

// The WebLN provider in the page hands every call to window.__coinopWebln.
const provider = `(() => {
  const call = async (method, arg) => {
    const r = await window.__coinopWebln(method, arg);
    if (r.error) throw new Error(r.error);
    return r.result;
  };
  window.webln = {
    enable: () => call("enable"),
    sendPayment: (invoice) => call("sendPayment", invoice),
  };
})();`;

const browser = await launch(need("CHROMIUM"));
const result = { scenario, asked, paid, foreign: [], errors: [], authorized: 0, statuses: [] };

// decodeQR reads the QR code in a PNG screenshot with jsQR: the PNG is
// turned into pixels by the browser, in a blank page of its own.
async function decodeQR(png) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const pixels = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, canvas.width, canvas.height);
      return { width: d.width, height: d.height, data: Array.from(d.data) };
    }, png.toString("base64"));
    const code = jsQR(Uint8ClampedArray.from(pixels.data), pixels.width, pixels.height);
    return code ? code.data : "";
  } finally {
    await context.close();
  }
}

try {
  const phone = scenario === "no-js" || scenario === "paste";
  const context = await browser.newContext({
    javaScriptEnabled: scenario !== "no-js",
    viewport: phone ? { width: 390, height: 844 } : { width: 1000, height: 900 },
  });
  context.setDefaultTimeout(60_000);
  if (scenario.startsWith("webln") || scenario === "expired") {
    await context.exposeFunction("__coinopWebln", webln);
    await context.addInitScript(provider);
  }
  const page = await context.newPage();
  if (scenario === "expired") await page.clock.install();
  watch(page, url, result);
  page.on("request", (req) => {
    if (req.headers()["authorization"]) result.authorized++;
  });

  const resp = await page.goto(url, { waitUntil: "load" });
  result.pageStatus = resp.status();
  result.price = await page.textContent("#price");
  result.commands = await page.textContent("#commands");
  result.title = await page.textContent("#ln-title");
  result.invoice = await page.textContent("#ln-invoice");
  result.link = await page.getAttribute("#ln-link", "href");
  result.expires = await page.getAttribute("#ln-expires", "datetime");
  result.qrVisible = await page.locator("#ln-qr svg").isVisible();
  result.weblnVisible = await page.locator("#ln-webln").isVisible();
  result.pasteVisible = await page.locator("#ln-paste").isVisible();
  result.copyVisible = await page.locator("#ln-copy").isVisible();
  result.overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  result.qr = await decodeQR(await page.locator("#ln-qr").screenshot());
  await page.screenshot({ path: join(out, `lightning-${scenario}.png`), fullPage: true });
  // The page down to the end of its Lightning section, for the docs.
  const upTo = async (selector, name) => {
    const box = await page.locator(selector).boundingBox();
    const width = page.viewportSize().width;
    await page.screenshot({ path: join(out, name), fullPage: true, clip: { x: 0, y: 0, width, height: Math.ceil(box.y + box.height + 24) } });
  };
  await upTo("#lightning", `lightning-${scenario}-section.png`);

  // clear empties the status region, so that settle reads the next state.
  const clear = () => page.evaluate(() => {
    const s = document.getElementById("ln-status");
    s.removeAttribute("data-state");
    s.textContent = "";
  });
  const settle = async () => {
    await page.waitForSelector("#ln-status[data-state=done], #ln-status[data-state=error]");
    result.state = await page.getAttribute("#ln-status", "data-state");
    result.status = await page.textContent("#ln-status");
    result.statuses.push(result.status);
  };
  const paste = async (text) => {
    await clear();
    await page.fill("#ln-preimage", text);
    await page.getByRole("button", { name: "Send the preimage" }).click();
    await settle();
  };
  switch (scenario) {
    case "webln":
    case "webln-refused":
    case "webln-locked":
      await clear();
      await page.getByRole("button", { name: "Pay with a Lightning wallet" }).click();
      await settle();
      break;
    case "paste":
      // Copy first, as a person taking the invoice to another wallet.
      await clear();
      await page.getByRole("button", { name: "Copy the invoice" }).click();
      await page.waitForSelector("#ln-status[data-state=info]");
      result.copied = await page.textContent("#ln-status");
      result.selected = await page.evaluate(() => String(getSelection()));
      await paste(await payInvoice(result.invoice));
      break;
    case "wrong-preimage":
      await paste("not a preimage");
      await paste(randomBytes(32).toString("hex"));
      break;
    case "replayed": {
      const preimage = await payInvoice(result.invoice);
      const token = JSON.parse(await page.textContent("#coinop-pay")).lightning.token;
      const first = await fetch(url, { headers: { Authorization: `L402 ${token}:${preimage}` } });
      result.elsewhere = first.status;
      await first.arrayBuffer();
      await paste(preimage);
      break;
    }
    case "expired":
      await page.clock.fastForward("11:00");
      await page.waitForSelector("#ln-status[data-state=error]");
      result.weblnDisabled = await page.locator("#ln-webln").isDisabled();
      await settle();
      break;
  }
  if (scenario !== "no-js") {
    if (result.state === "done") {
      result.paidContent = await page.textContent("#content pre");
      result.receipt = await page.textContent("#receipt");
      result.paidFocused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      result.weblnVisibleAfter = await page.locator("#ln-webln").isVisible();
      result.pasteVisibleAfter = await page.locator("#ln-paste").isVisible();
    }
    await page.screenshot({ path: join(out, `lightning-${scenario}-after.png`), fullPage: true });
    if (result.state === "done") await upTo("#paid", `lightning-${scenario}-paid.png`);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
