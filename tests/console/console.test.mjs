// The web console in headless Chromium, driven by Playwright
// (playwright-core, pointed at the system's Chromium). Run by
// tests/suite/console.rs against a daemon it started; every value comes
// from the environment:
//
//   CUSTOS_URL          the daemon's base URL
//   CUSTOS_PLAYWRIGHT   the playwright-core package directory
//   CUSTOS_CHROMIUM     the Chromium binary
//   CUSTOS_SHOTS        where screenshots go
//   CUSTOS_DATA         the backed-up directory (absolute, as in the snapshots)
//   TOKEN_OPERATOR, TOKEN_PARTNER, TOKEN_AUDITOR
//
// Exits 0 when every check holds; otherwise prints what failed and exits 1.

import assert from 'node:assert/strict';
import path from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('CUSTOS_URL');
const SHOTS = env('CUSTOS_SHOTS');
const DATA = env('CUSTOS_DATA');
const { chromium } = await import(path.join(env('CUSTOS_PLAYWRIGHT'), 'index.mjs'));

const browser = await chromium.launch({
  executablePath: env('CUSTOS_CHROMIUM'),
  // Root in a container: Chromium's own sandbox needs user namespaces.
  args: ['--no-sandbox'],
});

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

// Every visible form control has a label (or an aria-label), and the page
// is no wider than its window.
async function pageChecks(page, what) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button')]
      .filter((e) => e.type !== 'hidden')
      .filter((e) => {
        if (e.tagName === 'BUTTON') return !e.textContent.trim() && !e.getAttribute('aria-label');
        return (!e.labels || e.labels.length === 0) && !e.getAttribute('aria-label');
      })
      .map((e) => e.outerHTML));
  assert.deepEqual(unlabelled, [], `${what}: controls without a label`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(wide <= 1, `${what}: the page is ${wide}px wider than the window`);
}

async function signIn(context, token, next = '/') {
  const page = await context.newPage();
  const resp = await page.goto(BASE + next);
  assert.ok(resp.ok());
  // Unauthenticated: the sign-in page, where the token field has the focus;
  // typing and Enter sign in (keyboard only).
  assert.match(page.url(), /\/login\?next=/);
  await pageChecks(page, 'sign-in');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => !u.pathname.startsWith('/login'));
  return page;
}

const rows = (page) => page.locator('main table tbody tr');
const serviceNames = async (page) =>
  (await page.locator('main table tbody tr td:first-child a').allTextContents()).sort();

// --- A partner ---------------------------------------------------------
{
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await signIn(context, env('TOKEN_PARTNER'));
  assert.match(await page.locator('header .who').textContent(), /acme-portal \(partner, acme\)/);
  // Its own tenant only.
  assert.deepEqual(await serviceNames(page), ['acme/k8s-shop']);
  assert.equal(await page.locator('#f-tenant').count(), 0, 'no tenant filter for a partner');
  await pageChecks(page, 'partner overview');
  await shot(page, 'partner-overview.png');
  // Another tenant's service does not exist for it.
  let resp = await page.goto(BASE + '/services/globex/share');
  assert.equal(resp.status(), 404);
  resp = await page.goto(BASE + '/audit?tenant=globex');
  assert.equal(resp.status(), 200);
  assert.equal(await page.getByText('globex').count(), 0, 'no globex record in a partner\'s audit page');

  // The service: two snapshots, the old one pinned, each with its retention decision.
  await page.goto(BASE + '/services/acme/k8s-shop');
  await pageChecks(page, 'partner service');
  assert.equal(await rows(page).count(), 2);
  const oldRow = rows(page).filter({ hasText: '2025-01-10' });
  assert.match(await oldRow.textContent(), /pinned/);
  assert.match(await oldRow.textContent(), /legal hold SD-77/);
  assert.match(await oldRow.textContent(), /kept/);
  const newRow = rows(page).filter({ hasText: 'post-change' });
  assert.match(await newRow.textContent(), /kept.*within 90d/);
  // CaaS: the backup form offers the change tags.
  assert.deepEqual(await page.locator('#tag option').allTextContents(), ['none', 'pre-change', 'post-change']);

  // The newest snapshot's tree, down to the data, two entries chosen.
  await newRow.locator('a').first().click();
  await page.waitForURL(/\/snapshots\//);
  const url = new URL(page.url());
  url.searchParams.set('path', path.join(DATA, 'sub'));
  await page.goto(url.toString());
  await pageChecks(page, 'partner tree');
  await page.getByLabel(`choose ${path.join(DATA, 'sub', 'b.bin')}`).check();
  await page.getByLabel(`choose ${path.join(DATA, 'sub', '[odd]*name.txt')}`).check();
  await shot(page, 'partner-tree.png');
  await page.getByRole('button', { name: 'Restore what is chosen' }).click();
  await page.waitForURL(/\/restore\?/);
  await pageChecks(page, 'partner restore form');
  const chosen = (await page.locator('#paths').inputValue()).split('\n').sort();
  assert.deepEqual(chosen, [path.join(DATA, 'sub', '[odd]*name.txt'), path.join(DATA, 'sub', 'b.bin')]);
  await page.getByLabel('Ticket').fill('SD-4242');
  await page.getByRole('button', { name: 'Ask for the restore' }).click();
  await page.waitForURL(/\/restores\/\d+$/);
  // Live: the page reloads itself until the restore is done.
  await page.locator('#state', { hasText: 'done' }).waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#files').textContent(), /^2 of 2$/);
  // No host path for a partner.
  assert.doesNotMatch(await page.locator('main').textContent(), /\/restores\/acme/);
  assert.match(await page.locator('main').textContent(), /<host path>/);
  await shot(page, 'partner-restore-done.png');

  // The old snapshot is outside the 90-day window: refused with the sentence.
  await page.goto(BASE + '/services/acme/k8s-shop/restore');
  const oldOption = page.locator('#snapshot option', { hasText: '2025-01-10' });
  await page.locator('#snapshot').selectOption(await oldOption.getAttribute('value'));
  await page.getByLabel('Ticket').fill('SD-4243');
  resp = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Ask for the restore' }).click(),
  ]).then(([r]) => r);
  assert.equal(resp.status(), 422);
  const refusal = await page.locator('#refusal').textContent();
  assert.match(refusal, /restore window/i);
  assert.match(refusal, /90d/);
  await shot(page, 'partner-restore-refused.png');

  // Signing out ends the session: the cookie no longer opens a page.
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'custos_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session cookie');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/login/);
  const other = await browser.newContext();
  await other.addCookies([{ ...session }]);
  const p2 = await other.newPage();
  await p2.goto(BASE + '/');
  assert.match(p2.url(), /\/login/, 'a signed-out session opens nothing');
  await other.close();
  await context.close();
}

// --- An auditor ----------------------------------------------------------
{
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await signIn(context, env('TOKEN_AUDITOR'));
  assert.deepEqual(await serviceNames(page), ['acme/k8s-shop', 'globex/share']);
  await shot(page, 'auditor-overview.png');
  // No action anywhere.
  await page.goto(BASE + '/services/acme/k8s-shop');
  assert.equal(await page.getByRole('button', { name: 'Back up now' }).count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Ask for a restore' }).count(), 0);
  let resp = await page.goto(BASE + '/services/acme/k8s-shop/restore');
  assert.equal(resp.status(), 403);
  // A forged POST (no CSRF token) is refused, and so is one with the
  // session's own token: an auditor acts on nothing.
  const csrf = await page.goto(BASE + '/').then(() => page.locator('header input[name=csrf]').inputValue());
  resp = await page.request.post(BASE + '/services/acme/k8s-shop/backup', { form: { tag: 'pre-change' } });
  assert.equal(resp.status(), 403);
  assert.match(await resp.text(), /did not come from this console/);
  resp = await page.request.post(BASE + '/services/acme/k8s-shop/backup', { form: { tag: 'pre-change', csrf } });
  assert.equal(resp.status(), 403);
  assert.match(await resp.text(), /read-only/);
  // A request from another site is refused whatever it carries.
  resp = await page.request.post(BASE + '/services/acme/k8s-shop/backup', {
    form: { csrf }, headers: { Origin: 'https://evil.example' },
  });
  assert.equal(resp.status(), 403);
  assert.match(await resp.text(), /another site/);
  // The audit trail with its chain, and who can reach acme's data.
  await page.goto(BASE + '/audit?tenant=acme');
  await pageChecks(page, 'auditor audit');
  assert.match(await page.locator('main').textContent(), /chain verifies/);
  const access = page.locator('main table').first();
  assert.match(await access.textContent(), /desk.*operator/s);
  assert.match(await access.textContent(), /acme-portal.*partner/s);
  assert.match(await page.locator('main').textContent(), /Key slots of its repositories/);
  assert.match(await page.locator('main').textContent(), /console\.signed_in/);
  await shot(page, 'auditor-audit.png');
  await context.close();
}

// --- The operator ----------------------------------------------------------
{
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await signIn(context, env('TOKEN_OPERATOR'));
  assert.deepEqual(await serviceNames(page), ['acme/k8s-shop', 'globex/share']);
  // Filters.
  await page.locator('#f-tenant').selectOption('globex');
  await page.getByRole('button', { name: 'Filter' }).click();
  assert.deepEqual(await serviceNames(page), ['globex/share']);
  await page.goto(BASE + '/');
  await pageChecks(page, 'operator overview');
  await shot(page, 'operator-overview.png');
  // An on-demand backup from the service page.
  await page.goto(BASE + '/services/globex/share');
  await pageChecks(page, 'operator service');
  await shot(page, 'operator-service.png');
  await page.getByRole('button', { name: 'Back up now' }).click();
  assert.match(await page.locator('main').textContent(), /Backup queued/);
  // DR drills: measured against the 5 s objective, with a chart.
  await page.goto(BASE + '/drills');
  await pageChecks(page, 'operator drills');
  assert.equal(await page.locator('svg.chart').count(), 1);
  assert.match(await page.locator('svg.chart desc').textContent(), /objective 5 s/);
  assert.match(await page.locator('main table').first().textContent(), /RTO met/);
  await shot(page, 'operator-drills.png');
  // Erasures: globex's notice, its countdown.
  await page.goto(BASE + '/erasures');
  await pageChecks(page, 'operator erasures');
  const row = rows(page).filter({ hasText: 'globex' });
  assert.match(await row.textContent(), /notice given/);
  assert.match(await row.textContent(), /in 2\d d/);
  await shot(page, 'operator-erasures.png');
  await page.goto(BASE + '/audit?tenant=globex&kind=erasure');
  assert.match(await page.locator('main').textContent(), /erasure\.notice/);
  await shot(page, 'operator-audit.png');
  // A phone: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(BASE + '/');
  await pageChecks(page, 'phone overview');
  await shot(page, 'phone-overview.png');
  await context.close();
}

await browser.close();
console.log('console: every check passed');
