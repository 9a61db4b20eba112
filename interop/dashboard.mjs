// Drives Debian's Chromium (playwright-core, no browser download) through
// coinop's admin dashboard, as a seller would, for coinop's Go test
// examples/dashboard_test.go, and reports what the page shows.
//
// Environment: URL (the dashboard), CHROMIUM (the browser binary), OUT (a
// directory for screenshots), NAME (their file name prefix), TOKEN (the
// admin token the page must ask for; empty when the listener has none),
// WRONG_TOKEN (tried first, when set: the page must refuse it).
// It prints one JSON line.

import { join } from "node:path";
import { chromium } from "playwright-core";
import { need } from "./lib.mjs";

const url = need("URL");
const out = need("OUT");
const name = need("NAME");
const token = process.env.TOKEN || "";
const wrong = process.env.WRONG_TOKEN || "";
const origin = new URL(url).origin;

const browser = await chromium.launch({
  executablePath: need("CHROMIUM"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  timeout: 60_000,
});
const result = { foreign: [], errors: [], requests: [], tokenInURL: false, unauthorized: 0 };
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  page.on("request", (req) => {
    const u = req.url();
    if (!u.startsWith(origin + "/") && !u.startsWith("data:")) result.foreign.push(u);
    if (token && u.includes(token)) result.tokenInURL = true;
    if (u.startsWith(origin + "/") && req.resourceType() === "fetch") {
      result.requests.push({ path: u.slice(origin.length), auth: req.headers()["authorization"] || "" });
    }
  });
  page.on("response", (resp) => {
    if (resp.status() === 401) result.unauthorized++;
  });
  page.on("console", (msg) => {
    // A refused token is a 401, which Chromium logs as a failed load.
    const expected = / status of 401 /.test(msg.text());
    if (msg.type() === "error" && !expected) result.errors.push(`${msg.text()} (${msg.location().url})`);
  });
  page.on("pageerror", (err) => result.errors.push(String(err)));

  const resp = await page.goto(url, { waitUntil: "load" });
  result.status = resp.status();
  result.csp = resp.headers()["content-security-policy"] || "";
  await page.waitForSelector("body[data-loaded]");
  result.first = await page.getAttribute("body", "data-loaded");
  if (result.first === "locked") {
    // By keyboard: the token field has the focus; type, Enter.
    result.loginFocused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    result.loginLabel = await page.evaluate(() => {
      const input = document.getElementById("token");
      return input.labels && input.labels.length ? input.labels[0].textContent : "";
    });
    if (wrong) {
      await page.keyboard.type(wrong);
      await page.keyboard.press("Enter");
      await page.waitForFunction(() => document.getElementById("login-error").textContent !== "");
      result.wrongTokenSays = await page.textContent("#login-error");
      await page.focus("#token");
    }
    await page.evaluate(() => document.body.removeAttribute("data-loaded"));
    await page.keyboard.type(token);
    await page.keyboard.press("Enter");
    await page.waitForSelector("body[data-loaded]");
  }
  result.loaded = await page.getAttribute("body", "data-loaded");
  result.stored = await page.evaluate(() => sessionStorage.getItem("coinop-admin-token") || "");
  result.pageURL = page.url();

  const read = () =>
    page.evaluate(() => {
      const data = (e) => Object.assign({}, e.dataset);
      const rows = (sel) =>
        [...document.querySelectorAll(sel)].map((tr) => {
          const a = tr.querySelector("a.tx");
          return Object.assign(data(tr), {
            cells: [...tr.children].map((c) => c.textContent),
            href: a ? a.getAttribute("href") : "",
            rel: a ? a.getAttribute("rel") : "",
          });
        });
      return {
        health: document.getElementById("health").textContent,
        healthState: document.getElementById("health").dataset.state,
        cards: [...document.querySelectorAll("#totals li")].map((li) =>
          Object.assign(data(li), { value: li.querySelector(".value").textContent, label: li.querySelector(".label").textContent })),
        routes: rows("#routes tbody tr[data-route]"),
        charts: [...document.querySelectorAll("figure.chart")].map((f) => Object.assign(data(f), {
          label: f.querySelector("svg").getAttribute("aria-label"),
          width: f.querySelector("svg").viewBox.baseVal.width,
          bars: [...f.querySelectorAll("rect.bar")].map((r) => ({ day: r.dataset.day, amount: r.dataset.amount, height: Number(r.getAttribute("height")) })),
        })),
        pending: rows("#pending tbody tr[data-id]"),
        failed: rows("#failed tbody tr[data-id]"),
        payments: rows("#payments tbody tr[data-id]"),
        checks: rows("#checks tbody tr"),
        headers: [...document.querySelectorAll("th[scope=col]")].length,
        older: !document.getElementById("older").disabled,
        pageLabel: document.getElementById("page-label").textContent,
        overflow: document.documentElement.scrollWidth > window.innerWidth,
        contrast: (() => {
          // WCAG 2 contrast of every element's own text with the background
          // behind it: the least margin over what its size needs (4.5:1, or
          // 3:1 for large text). Disabled controls are exempt.
          const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
          const lum = ([r, g, b]) => {
            const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          };
          const background = (e) => {
            for (; e; e = e.parentElement) {
              const c = rgb(getComputedStyle(e).backgroundColor);
              if (c.length === 3 || c[3] > 0) return c.slice(0, 3);
            }
            return [255, 255, 255];
          };
          let worst = { margin: Infinity };
          for (const e of document.querySelectorAll("body *")) {
            if (e.disabled || !e.getClientRects().length || e.closest("[hidden], svg, noscript, script, style")) continue;
            if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
            const st = getComputedStyle(e);
            const a = lum(rgb(st.color)), b = lum(background(e));
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
            const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
            if (ratio / need < worst.margin) worst = { margin: ratio / need, ratio, need, text: e.textContent.trim().slice(0, 40) };
          }
          return worst;
        })(),
        // Markup in the journal's text would show up as elements, or run.
        elements: document.querySelectorAll("img, iframe, object, embed, main script, [onerror], [onload]").length,
        ran: Boolean(window.__coinopRan),
      };
    });
  result.board = await read();
  await page.screenshot({ path: join(out, name + ".png"), fullPage: true });

  // The next page of payments, and back.
  if (result.board.older) {
    await page.click("#older");
    await page.waitForFunction(() => document.getElementById("page-label").textContent === "Page 2");
    result.page2 = (await read()).payments;
    await page.click("#newer");
    await page.waitForFunction(() => document.getElementById("page-label").textContent === "Page 1");
  }

  // Every control by keyboard: Tab from the top reaches them.
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  result.tabOrder = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const id = await page.evaluate(() => {
      const e = document.activeElement;
      return e ? e.id || e.tagName.toLowerCase() : "";
    });
    result.tabOrder.push(id);
    if (id === "refresh") break;
  }
  // Refresh by keyboard reads the API again.
  const before = result.requests.length;
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => !document.getElementById("refresh").disabled);
  result.refreshRequests = result.requests.length - before;

  // The token stays with the tab: a reload asks for it no more.
  await page.evaluate(() => document.body.removeAttribute("data-loaded"));
  await page.reload({ waitUntil: "load" });
  await page.waitForSelector("body[data-loaded]");
  result.afterReload = await page.getAttribute("body", "data-loaded");

  // A phone's width: the charts are drawn again at it.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => [...document.querySelectorAll("figure.chart svg")].every((s) => s.viewBox.baseVal.width <= 390));
  result.phone = await read();
  await page.screenshot({ path: join(out, name + "-phone.png"), fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
