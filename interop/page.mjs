// Helpers shared by the scripts that drive Debian's Chromium
// (playwright-core, no browser download) through coinop's HTML 402 page:
// browser.mjs (the browser wallet) and browser-lightning.mjs (Lightning).

import { chromium } from "playwright-core";

// launch starts the Chromium at executablePath, headless.
export function launch(executablePath) {
  return chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    timeout: 60_000,
  });
}

// watch records in result what page must not do: request anything from
// another origin than url's (result.foreign), or log an error or throw
// (result.errors).
export function watch(page, url, result) {
  const origin = new URL(url).origin;
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith(origin + "/") && !u.startsWith("blob:") && !u.startsWith("data:") && u !== "about:srcdoc") {
      result.foreign.push(u);
    }
  });
  page.on("console", (msg) => {
    // The page itself is a 402, and so are refused payments: Chromium logs
    // both as failed loads.
    const expected = msg.location().url === url && / status of 402 /.test(msg.text());
    if (msg.type() === "error" && !expected) result.errors.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => result.errors.push(String(err)));
}
