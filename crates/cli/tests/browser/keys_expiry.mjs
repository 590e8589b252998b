// End-to-end test of a key's expiry and roll on the dashboard keys page, in
// headless Chromium (Debian's), driven by playwright-core. Run by
// crates/cli/tests/cli/browser.rs with FAL_URL, ADMIN_ID, ADMIN_SECRET,
// PLAYWRIGHT_DIR, and optionally SHOTS (a directory for screenshots).
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
const callModel = (id, secret) =>
  fetch(`${URL_}/run/fal-ai/echo`, {
    method: "POST",
    headers: { authorization: `Key ${id}:${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ prompt: "from the expiry browser test" }),
  });
const DAY_MS = 24 * 3600 * 1000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1300, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${URL_}/dashboard/login`);
  await page.getByLabel("Key ID").fill(process.env.ADMIN_ID);
  await page.getByLabel("Key secret").fill(process.env.ADMIN_SECRET);
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(page.url(), /\/dashboard\/keys$/);

  // Generate an API key that expires in 30 days.
  await page.getByLabel("Alias").fill("thirty days");
  const expiry = page.getByLabel("Expires", { exact: true });
  assert.equal(await expiry.inputValue(), "never", "never is preselected");
  await expiry.selectOption({ label: "In 30 days" });
  const before = Date.now();
  await Promise.all([
    page.waitForResponse((r) => r.url().includes("/dashboard/keys/created/")),
    page.getByRole("button", { name: "Generate key" }).click(),
  ]);
  const keyId = await page.inputValue("#fal_key_id");
  const secret = await page.inputValue("#fal_key_secret");
  assert.equal((await callModel(keyId, secret)).status, 200);

  // The table shows the date, 30 days from now.
  await page.goto(`${URL_}/dashboard/keys`);
  const row = page.locator(`tr[data-key-id="${keyId}"]`);
  const shown = (await row.locator(".expires").textContent()).trim();
  const at = Date.parse(shown);
  assert.ok(!Number.isNaN(at), `a date in the table: ${shown}`);
  assert.ok(at >= before + 30 * DAY_MS - 60_000 && at <= Date.now() + 30 * DAY_MS + 60_000,
            `30 days from now: ${shown}`);
  await shot(page, "dashboard-keys-expiry");

  // Roll it with an hour's grace: the new pair is shown once, in the same
  // words as a generated key; both pairs work during the grace.
  await row.getByLabel(`Grace for the old pair of key ${keyId}`).selectOption("1h");
  await Promise.all([
    page.waitForResponse((r) => r.url().includes("/dashboard/keys/created/")),
    row.getByRole("button", { name: `Roll key ${keyId}` }).click(),
  ]);
  assert.match(await page.textContent("body"), /This is the only time the secret will be visible\./);
  const newId = await page.inputValue("#fal_key_id");
  const newSecret = await page.inputValue("#fal_key_secret");
  assert.notEqual(newId, keyId);
  assert.match(newSecret, /^fal_sk_[0-9a-f]{72}$/);
  await shot(page, "dashboard-key-rolled");
  assert.equal((await callModel(newId, newSecret)).status, 200);
  assert.equal((await callModel(keyId, secret)).status, 200, "the old pair works in its grace");

  // The table: the new key with the alias and a fresh 30 days; the old one
  // ending within the hour, naming its replacement.
  await page.goto(`${URL_}/dashboard/keys`);
  const newRow = page.locator(`tr[data-key-id="${newId}"]`);
  assert.match(await newRow.textContent(), /thirty days/);
  const newAt = Date.parse((await newRow.locator(".expires").textContent()).trim());
  assert.ok(newAt >= at, "a fresh lifetime from the roll");
  const oldCell = (await row.locator(".expires").textContent()).trim();
  assert.match(oldCell, new RegExp(`rolled to ${newId}`));
  assert.ok(Date.parse(oldCell.split(" ")[0]) <= Date.now() + 3600_000 + 60_000, oldCell);

  // Rolling the old key again is refused, saying what to do.
  await row.getByRole("button", { name: `Roll key ${keyId}` }).click();
  assert.match(await page.textContent("[role=alert]"), /roll that key instead/);
  await shot(page, "dashboard-roll-refused");
  console.log("expiry browser test passed");
} finally {
  await browser.close();
}
