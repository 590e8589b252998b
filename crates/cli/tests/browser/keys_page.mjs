// End-to-end test of the dashboard keys page in headless Chromium (Debian's),
// driven by playwright-core. Run by crates/cli/tests/cli/browser.rs with:
//   FAL_URL, ADMIN_ID, ADMIN_SECRET, PLAYWRIGHT_DIR, and optionally SHOTS
//   (a directory to write a screenshot of each page into).
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
    body: JSON.stringify({ prompt: "from the browser test" }),
  });

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  // launch() gives every run a fresh, empty profile of its own.
});
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();

  // Not signed in: the keys page sends us to sign in.
  await page.goto(`${URL_}/dashboard/keys`);
  assert.match(page.url(), /\/dashboard\/login$/);
  await shot(page, "dashboard-sign-in");

  // Sign in with the ADMIN key.
  await page.getByLabel("Key ID").fill(process.env.ADMIN_ID);
  await page.getByLabel("Key secret").fill(process.env.ADMIN_SECRET);
  const [keysResp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/dashboard/keys") && r.request().method() === "GET"),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
  const headers = keysResp.headers();
  assert.equal(headers["x-frame-options"], "DENY");
  assert.match(headers["content-security-policy"], /default-src 'none'/);
  assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
  assert.equal(await page.isChecked("input[name=scope][value=API]"), true, "API is preselected");
  await shot(page, "dashboard-keys");

  // Generate an API key and read the secret from the page.
  await page.getByLabel("Alias").fill("browser test");
  await page.getByPlaceholder("e.g. 100/s, 100/min, 100/h").fill("100/min");
  const [createdResp] = await Promise.all([
    page.waitForResponse((r) => r.url().includes("/dashboard/keys/created/")),
    page.getByRole("button", { name: "Generate key" }).click(),
  ]);
  assert.equal(createdResp.headers()["cache-control"], "no-store");
  const keyId = await page.inputValue("#fal_key_id");
  const secret = await page.inputValue("#fal_key_secret");
  assert.match(secret, /^fal_sk_[0-9a-f]{72}$/);
  assert.match(await page.textContent("body"), /This is the only time the secret will be visible\./);
  assert.match(await page.textContent("#exports"), new RegExp(`export FAL_KEY_SECRET="${secret}"`));
  assert.ok(!page.url().includes(secret), "no secret in a URL");
  await shot(page, "dashboard-key-generated");

  // The key calls a model through the gateway.
  let r = await callModel(keyId, secret);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).fal_key_id, keyId);

  // Reloading (or going back) never shows the secret again.
  await page.reload();
  assert.ok(!(await page.content()).includes(secret), "secret shown again after reload");
  assert.match(await page.textContent("h1"), /no longer available/);
  await page.goBack();
  assert.ok(!(await page.content()).includes(secret), "secret shown again after going back");

  // The table shows its rate limit; the row's form changes it, refuses a
  // bad one with the message, and lifts it when left empty.
  await page.goto(`${URL_}/dashboard/keys`);
  const row = page.locator(`tr[data-key-id="${keyId}"]`);
  assert.equal(await row.locator(".rate-now").textContent(), "100/min");
  const limitField = row.getByLabel(`New rate limit for key ${keyId}`);
  assert.equal(await limitField.isVisible(), false, "the form opens on demand");
  await row.getByText("Change").click();
  await limitField.fill("5/s");
  await row.getByRole("button", { name: `Set rate limit of key ${keyId}` }).click();
  assert.match(await page.textContent("[role=status]"), /is now limited to 5\/s/);
  assert.equal(await row.locator(".rate-now").textContent(), "5/s");
  await shot(page, "dashboard-keys-rate-limit");
  await row.getByText("Change").click();
  await limitField.fill("5/day");
  await row.getByRole("button", { name: `Set rate limit of key ${keyId}` }).click();
  assert.match(await page.textContent("[role=alert]"), /use s, min or h/);
  assert.equal(await row.locator(".rate-now").textContent(), "5/s");
  await row.getByText("Change").click();
  await limitField.fill("");
  await row.getByRole("button", { name: `Set rate limit of key ${keyId}` }).click();
  assert.match(await page.textContent("[role=status]"), /has no rate limit now/);
  assert.equal(await row.locator(".rate-now").textContent(), "none");

  // Revoke it, with a confirmation step; the row goes away; the key is refused.
  await page.goto(`${URL_}/dashboard/keys`);
  await page.locator(`tr[data-key-id="${keyId}"] a`, { hasText: "Revoke" }).click();
  assert.match(await page.textContent("h1"), /Revoke key\?/);
  await shot(page, "dashboard-revoke-confirm");
  await page.getByRole("button", { name: "Revoke key" }).click();
  assert.equal(await page.locator(`tr[data-key-id="${keyId}"]`).count(), 0);
  r = await callModel(keyId, secret);
  assert.equal(r.status, 401);
  assert.equal((await r.json()).detail, "This key was revoked: use another key, or generate a new one");

  // A POST without the CSRF token changes nothing (same cookies as the page).
  const before = await page.locator("tbody tr[data-key-id]").count();
  const forged = await context.request.post(`${URL_}/dashboard/keys`, {
    form: { scope: "ADMIN", alias: "forged" }, maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  const forgedRevoke = await context.request.post(`${URL_}/dashboard/keys/${process.env.ADMIN_ID}/revoke`, {
    form: {}, maxRedirects: 0,
  });
  assert.equal(forgedRevoke.status(), 403);
  await page.reload();
  assert.equal(await page.locator("tbody tr[data-key-id]").count(), before);

  // An API-scope key cannot sign in to the dashboard.
  const api = await (await fetch(`${URL_}/keys`, {
    method: "POST",
    headers: { authorization: `Key ${process.env.ADMIN_ID}:${process.env.ADMIN_SECRET}`, "content-type": "application/json" },
    body: JSON.stringify({ scope: "API" }),
  })).json();
  const other = await (await browser.newContext()).newPage();
  await other.goto(`${URL_}/dashboard/login`);
  await other.getByLabel("Key ID").fill(api.key_id);
  await other.getByLabel("Key secret").fill(api.key_secret);
  await other.getByRole("button", { name: "Sign in" }).click();
  assert.match(await other.textContent("[role=alert]"), /API-scope key/);
  assert.match(other.url(), /\/dashboard\/login$/);

  // Sign out: back to sign-in, and the old session no longer opens the page.
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.match(page.url(), /\/dashboard\/login$/);
  await page.goto(`${URL_}/dashboard/keys`);
  assert.match(page.url(), /\/dashboard\/login$/);
  console.log("browser test passed");
} finally {
  await browser.close();
}
