// The keys page's usage chart in headless Chromium: for a key that made
// calls, its row holds an inline SVG chart (drawn by the server) whose bars
// and totals match the calls, and the page's CSP blocked nothing. Run by
// crates/cli/tests/cli/browser.rs with FAL_URL, ADMIN_ID, ADMIN_SECRET,
// KEY_ID (the key that made ACCEPTED accepted and REFUSED refused calls),
// PLAYWRIGHT_DIR, and optionally SHOTS.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.PLAYWRIGHT_DIR, "package.json"));
const { chromium } = require("playwright-core");

const URL_ = process.env.FAL_URL;
const KEY_ID = process.env.KEY_ID;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1300, height: 800 } })).newPage();
  const blocked = [];
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
  });
  await page.goto(`${URL_}/dashboard/login`);
  await page.getByLabel("Key ID").fill(process.env.ADMIN_ID);
  await page.getByLabel("Key secret").fill(process.env.ADMIN_SECRET);
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(page.url(), /\/dashboard\/keys$/);

  const chart = page.locator(`tr[data-key-id="${KEY_ID}"] svg.usage-chart`);
  assert.equal(await chart.count(), 1, "the key's row has one chart");
  assert.equal(await chart.getAttribute("data-accepted"), process.env.ACCEPTED);
  assert.equal(await chart.getAttribute("data-refused"), process.env.REFUSED);
  // Thirty days, one group each; today's bars are drawn, and the chart
  // takes room on the page.
  assert.equal(await chart.locator("g").count(), 30);
  assert.ok(await chart.locator("rect.accepted").count() >= 1, "accepted bars drawn");
  assert.ok(await chart.locator("rect.refused").count() >= 1, "refused bars drawn");
  const box = await chart.boundingBox();
  assert.ok(box && box.width > 100 && box.height > 20, `chart drawn: ${JSON.stringify(box)}`);
  // The accepted bars are coloured by the page's own stylesheet.
  const fill = await chart.locator("rect.accepted").first().evaluate((e) => getComputedStyle(e).fill);
  assert.equal(fill, "rgb(47, 133, 90)");
  assert.match(await chart.getAttribute("aria-label"), /accepted, .* refused/);
  assert.deepEqual(blocked, [], "the CSP blocked nothing");
  if (process.env.SHOTS) {
    await page.screenshot({ path: join(process.env.SHOTS, "dashboard-usage-chart.png"), fullPage: true });
  }
  console.log("usage chart test passed");
} finally {
  await browser.close();
}
