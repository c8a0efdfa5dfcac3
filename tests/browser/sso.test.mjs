// An owner sets up and runs a SAML connection from the browser (Debian's
// headless Chromium driven by playwright-core), against a test IdP
// (saml-idp.mjs): adds the connection by its metadata, changes its
// settings, maps an IdP group to a user group picked from a list, replaces
// the certificate with one about to expire (and sees the warning), runs a
// test sign-in that reports what the IdP sent, reads why a sign-in was
// refused and what to fix at the IdP, and exempts a member picked by
// email. Screenshots go to target/ui/sso-*.png; no page requests anything
// outside the gateway and the test IdP.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO, assertAccessible, startGateway, startSmtpSink } from './harness.mjs';
import { makeCertificate, startSamlIdp } from './saml-idp.mjs';

const SLUG = 'acme';
const OWNER = 'owner@acme.test';
const PASSWORD = 'violet harbor quantum 57 lantern';
const SHOTS = path.join(REPO, 'target', 'ui');

let sink;
let gw;
let idp;
let browser;
const requested = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sink = await startSmtpSink();
  gw = await startGateway({ smtpUrl: sink.url, slug: SLUG, email: OWNER, password: PASSWORD });
  idp = await startSamlIdp();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  await idp?.stop();
  await gw?.stop();
  await sink?.close();
});

async function context() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(10_000);
  ctx.on('request', (r) => requested.push(r.url()));
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  return { ctx, page };
}

/** Every SSO page pictured is checked by axe first. */
async function shot(page, name) {
  await assertAccessible(page, name);
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, email, password) {
  await page.goto(`${gw.base}/login`);
  await page.fill('#email', email);
  await page.click('button:has-text("Continue")');
  await page.fill('#password', password);
  await page.click('button:has-text("Sign in")');
  await page.waitForURL(`${gw.base}/workspaces`);
}

async function notice(page) {
  return (await page.locator('p.notice').textContent()).trim();
}

test('an owner configures and troubleshoots SSO from the browser', async (t) => {
  const { page } = await context();
  const ssoPage = `${gw.base}/w/${SLUG}/settings/sso`;
  let connPage;

  await t.test('add a SAML connection by its metadata', async () => {
    await signIn(page, OWNER, PASSWORD);
    await page.goto(ssoPage);
    await page.click('#add-connection summary');
    await page.fill('#conn-name', 'Corp IdP');
    await page.fill('#conn-metadata-xml', idp.metadata());
    await page.click('button:has-text("Add connection")');
    await page.waitForURL(`${ssoPage}?done=connection`);
    assert.equal(await notice(page), 'Connection saved.');
    await shot(page, 'sso-01-connections');
    await page.click('a:has-text("Settings and recent sign-ins")');
    await page.waitForURL(/\/settings\/sso\/connections\/[0-9a-f]+$/);
    connPage = page.url();
    assert.match(await page.locator('h1').textContent(), /Corp IdP/);
    assert.match(await page.inputValue('#entity-id'), /\/sso\/saml\/[0-9a-f]+\/metadata$/);
    assert.match(await page.locator('#certificate-list').textContent(), /idp\.browser\.test/);
    assert.match(await page.locator('#no-attempts').textContent(), /No sign-in attempts/);
    await shot(page, 'sso-02-connection');
  });

  await t.test('settings: IdP-initiated sign-in and attribute names', async () => {
    await page.check('#idp-initiated');
    await page.fill('#group-attribute', 'groups');
    await page.fill('#name-attribute', 'displayName');
    await page.click('button:has-text("Save settings")');
    await page.waitForURL(`${connPage}?done=settings`);
    assert.equal(await notice(page), 'Settings saved.');
    assert.ok(await page.isChecked('#idp-initiated'));
    assert.equal(await page.inputValue('#group-attribute'), 'groups');
    // A name that is too long comes back next to its field; nothing saved.
    await page.fill('#conn-name', 'x'.repeat(101));
    await page.evaluate(() => document.querySelector('#conn-name').removeAttribute('maxlength'));
    await page.fill('#conn-name', 'x'.repeat(101));
    await page.click('button:has-text("Save settings")');
    assert.match(await page.locator('#conn-name-error').textContent(), /1 to 100 characters/);
    assert.equal(await page.getAttribute('#conn-name', 'aria-describedby'), 'conn-name-error');
    await page.goto(connPage);
    assert.match(await page.locator('h1').textContent(), /Corp IdP/);
  });

  await t.test('map an IdP group to a user group picked from a list', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=groups`);
    await page.fill('#group-name', 'Engineers');
    await page.click('button:has-text("Create group")');
    await page.goto(connPage);
    await page.fill('#idp-value', 'engineering');
    // Keyboard only: focus the list and pick the group.
    await page.focus('#group-id');
    await page.selectOption('#group-id', { label: 'Engineers' });
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${connPage}?done=mapping`);
    const row = page.locator('#mapping-list tbody tr');
    assert.equal(await row.count(), 1);
    assert.match(await row.textContent(), /engineering\s*Engineers/);
    await shot(page, 'sso-03-group-mapping');
  });

  await t.test('a certificate about to expire is warned about', async () => {
    const soon = makeCertificate(idp.dir, 'rotating.idp.test', 12);
    await page.click('#replace-idp summary');
    await page.fill('#certificate', soon.pem);
    await page.click('button:has-text("Replace")');
    await page.waitForURL(`${connPage}?done=idp`);
    const warning = page.locator('#cert-warning-1');
    assert.ok(await warning.isVisible());
    assert.match(await warning.textContent(), /rotating\.idp\.test expires on \d{4}-\d\d-\d\d/);
    assert.match(await page.locator('#certificate-list').textContent(), /Expires in 1[12] days/);
    await shot(page, 'sso-04-certificate-warning');
    // Back to the IdP's real certificate through its metadata.
    await page.click('#replace-idp summary');
    await page.fill('#metadata-xml', idp.metadata());
    await page.click('button:has-text("Replace")');
    await page.waitForURL(`${connPage}?done=idp`);
    assert.equal(await page.locator('#cert-warning-1').count(), 0);
  });

  await t.test('test sign-in reports what the IdP sent and keeps the session', async () => {
    idp.next = { email: 'tess@corp.test', name: 'Tess Tester', groups: ['engineering', 'admins'], audience: null };
    await page.click('button:has-text("Test sign-in")');
    await page.waitForURL(`${idp.base}/sso?**`);
    await page.click('button:has-text("Continue")');
    await page.waitForSelector('#test-result');
    const body = await page.locator('main').textContent();
    assert.match(body, /Test sign-in succeeded/);
    assert.match(body, /tess@corp\.test/);
    assert.match(body, /Tess Tester/);
    assert.match(await page.locator('#test-groups').textContent(), /engineering\s*Engineers[\s\S]*admins\s*not mapped/);
    await shot(page, 'sso-05-test-sign-in');
    await page.click('a:has-text("Back to the connection")');
    await page.waitForURL(connPage);
    // Still the owner, signed in with a password: the header says so.
    assert.match(await page.locator('header').textContent(), new RegExp(OWNER.replace('.', '\\.')));
    assert.match(await page.locator('#attempt-list').textContent(), /Test passed/);
  });

  await t.test('a refused sign-in is explained with what to fix', async () => {
    idp.next = { email: 'dave@corp.test', name: 'Dave', groups: [], audience: 'https://wrong-sp.test/metadata' };
    const other = await context();
    const id = connPage.split('/').pop();
    await other.page.goto(`${gw.base}/sso/${id}/start`);
    await other.page.waitForURL(`${idp.base}/sso?**`);
    await other.page.click('button:has-text("Continue")');
    await other.page.waitForSelector('h1:has-text("Single sign-on refused")');
    assert.match(await other.page.locator('main').textContent(), /meant for another service/);
    await shot(other.page, 'sso-06-sign-in-refused');
    await other.ctx.close();
    await page.goto(connPage);
    const refused = page.locator('#attempt-list tr[data-code="audience"]');
    assert.equal(await refused.count(), 1);
    const text = await refused.textContent();
    assert.match(text, /Refused/);
    assert.match(text, /What to fix: Set the Audience/);
    assert.ok(text.includes(await page.inputValue('#entity-id')));
    await page.locator('#attempts').scrollIntoViewIfNeeded();
    await shot(page, 'sso-07-recent-sign-ins');
  });

  await t.test('exempt a member from Require SSO, picked by email', async () => {
    await page.goto(ssoPage);
    await page.fill('#exempt-email', 'stranger@else.test');
    await page.click('button:has-text("Exempt")');
    assert.match(await page.locator('#exempt-email-error').textContent(), /No member of this workspace has the email stranger@else\.test/);
    assert.equal(await page.locator('#no-exemptions').count(), 1);
    const suggestions = await page.locator('#member-emails option').evaluateAll((os) => os.map((o) => o.value));
    assert.ok(suggestions.includes(OWNER), `suggestions: ${suggestions}`);
    await page.fill('#exempt-email', OWNER);
    await page.click('button:has-text("Exempt")');
    await page.waitForURL(`${ssoPage}?done=exempted#exemptions`);
    assert.match(await page.locator('#exemption-list').textContent(), new RegExp(OWNER.replace('.', '\\.')));
    await shot(page, 'sso-08-exemptions');
    await page.click(`button[aria-label="Remove the exemption of ${OWNER}"]`);
    await page.waitForURL(`${ssoPage}?done=unexempted#exemptions`);
    assert.equal(await page.locator('#no-exemptions').count(), 1);
  });

  await t.test('no page requested anything outside the gateway and the test IdP', () => {
    const outside = requested.filter((u) => !u.startsWith(gw.base) && !u.startsWith(idp.base) && !u.startsWith('data:'));
    assert.deepEqual(outside, []);
  });
});
