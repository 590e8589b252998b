// End-to-end test of the dashboard's Activity page (the audit log) in
// headless Chromium (Debian's), driven by playwright-core. Run by
// crates/cli/tests/cli/browser.rs with:
//   FAL_URL, ADMIN_ID, ADMIN_SECRET, PLAYWRIGHT_DIR, and optionally SHOTS.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.PLAYWRIGHT_DIR, "package.json"));
const { chromium } = require("playwright-core");

const URL_ = process.env.FAL_URL;
const SHOTS = process.env.SHOTS;
const shot = async (page, name) => {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
};
// A user agent with markup in it: the page must show it as text.
const AGENT = 'ActivityProbe/1.0 <b id="injected">bold</b>';

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, userAgent: AGENT });
  const page = await context.newPage();
  // Console errors, but not the browser's own 404 for /favicon.ico.
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !(m.location().url || "").endsWith("/favicon.ico")) errors.push(m.text());
  });

  // Not signed in: the Activity page sends us to sign in.
  await page.goto(`${URL_}/dashboard/activity`);
  assert.match(page.url(), /\/dashboard\/login$/);
  await page.getByLabel("Key ID").fill(process.env.ADMIN_ID);
  await page.getByLabel("Key secret").fill(process.env.ADMIN_SECRET);
  await page.getByRole("button", { name: "Sign in" }).click();

  // Generate a key on the keys page.
  await page.getByLabel("Alias").fill("activity test");
  await page.getByRole("button", { name: "Generate key" }).click();
  const keyId = await page.inputValue("#fal_key_id");
  const secret = await page.inputValue("#fal_key_secret");

  // The nav's Activity link opens the page; it shows the key.generated
  // event for that key, done in this session, from this browser.
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/dashboard/activity")),
    page.getByRole("link", { name: "Activity" }).click(),
  ]);
  const headers = resp.headers();
  assert.match(headers["content-security-policy"], /default-src 'none'/);
  assert.equal(headers["cache-control"], "no-store");
  assert.match(await page.textContent("h1"), /Activity/);
  const generated = page.locator('tr.event[data-kind="key.generated"]', { hasText: keyId });
  assert.equal(await generated.count(), 1, "the key.generated event of the new key");
  const cells = await generated.locator("td").allTextContents();
  assert.equal(cells[1], "key.generated");
  assert.match(cells[2], /^session /);
  assert.equal(cells[3], `key ${keyId}`);
  assert.match(cells[4], /^(127\.0\.0\.1|::1)$/);
  // Escaped: the markup is text, not an element.
  assert.equal(cells[5], AGENT);
  assert.equal(await page.locator("#injected").count(), 0, "the user agent was not escaped");
  const signedIn = page.locator('tr.event[data-kind="session.signed_in"]');
  assert.equal(await signedIn.count(), 1);
  assert.ok(!(await page.content()).includes(secret), "a secret on the Activity page");
  await shot(page, "dashboard-activity");

  // The filter shows one kind.
  await page.getByLabel("Show").selectOption("session.signed_in");
  await page.getByRole("button", { name: "Filter" }).click();
  assert.match(page.url(), /kind=session\.signed_in/);
  assert.equal(await page.locator("tr.event").count(), 1);
  assert.equal(await page.locator('tr.event[data-kind="key.generated"]').count(), 0);
  assert.deepEqual(errors, [], "no console errors (CSP violations among them)");
  console.log("activity browser test passed");
} finally {
  await browser.close();
}
