// A workspace owner runs the product from the browser (Debian's headless
// Chromium driven by playwright-core): signs in, invites a member (mail
// caught by the SMTP sink), the member accepts in a second browser context,
// the owner creates a group with Source Admin on one label, creates and
// revokes a token, downloads the members CSV and reads it, removes the
// member, and the member's next request is refused; the audit log page
// tells it in plain words. The owner invites and creates a group with the
// keyboard alone; a person whose account is linked to Twilio comes from the
// Twilio Console, finds the product switcher back to it, and an account
// page managed by Twilio. axe-core checks every page (no serious or critical
// violation); screenshots of each page go to target/ui/; no page may request
// anything outside the gateway and its Twilio issuer.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO, assertAccessible, startGateway, startSmtpSink } from './harness.mjs';

const SLUG = 'acme';
const OWNER = 'owner@acme.test';
const MEMBER = 'mia@acme.test';
const PASSWORD = 'violet harbor quantum 57 lantern';
const MEMBER_PASSWORD = 'copper meadow falcon 93 ribbon';
const TWILIO_USER = 'tina@twilio.test';
const TWILIO_PASSWORD = 'amber canyon pixel 41 orchard';
const SHOTS = path.join(REPO, 'target', 'ui');

let sink;
let gw;
let browser;
const requested = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sink = await startSmtpSink();
  gw = await startGateway({ smtpUrl: sink.url, slug: SLUG, email: OWNER, password: PASSWORD });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  await sink?.close();
});

/** A fresh browser context whose every request URL is recorded. */
async function context(opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true, ...opts });
  ctx.setDefaultTimeout(10_000);
  ctx.on('request', (r) => requested.push(r.url()));
  const page = await ctx.newPage();
  page.on('dialog', (d) => d.accept());
  return { ctx, page };
}

/** Every page the scenario takes a picture of is checked by axe first. */
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

/** The current RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret. */
function totp(secret) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** Presses Tab (at most 80 times) until the focused element matches
 *  `selector`; every element focused on the way must show where the focus
 *  is (an outline or a box shadow). */
async function tabTo(page, selector) {
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate((sel) => {
      const el = document.activeElement;
      if (!el || el === document.body) return { body: true };
      const st = getComputedStyle(el);
      return {
        match: el.matches(sel),
        visible: (st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) > 0) || st.boxShadow !== 'none',
        what: `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} ${(el.textContent || el.getAttribute('name') || '').trim().slice(0, 40)}`,
      };
    }, selector);
    if (at.body) continue;
    assert.ok(at.visible, `keyboard focus is not visible on ${at.what}`);
    if (at.match) return;
  }
  throw new Error(`Tab never reached ${selector}`);
}

async function noticeText(page) {
  return (await page.locator('p.notice').textContent()).trim();
}

async function apiStatus(token) {
  const r = await fetch(`${gw.base}/api/v1/workspaces/${SLUG}/members`, { headers: { authorization: `Bearer ${token}` } });
  return r.status;
}

test('an owner runs the workspace from the browser', async (t) => {
  const { page } = await context();
  let member;

  await t.test('sign-in pages', async () => {
    await page.goto(`${gw.base}/login`);
    assert.ok(await page.locator('a:has-text("Continue with Twilio")').isVisible());
    await shot(page, '01-sign-in-email');
    // Passes the browser's own check, not the gateway's.
    await page.fill('#email', 'owner@localhost');
    await page.click('button:has-text("Continue")');
    assert.match(await page.locator('#email-error').textContent(), /valid email/);
    assert.equal(await page.getAttribute('#email', 'aria-describedby'), 'email-error');
    await page.fill('#email', OWNER);
    await page.click('button:has-text("Continue")');
    await page.fill('#password', 'wrong password entirely');
    await page.click('button:has-text("Sign in")');
    assert.match(await page.locator('#password-error').textContent(), /Incorrect email or password/);
    await shot(page, '02-sign-in-password-error');
    await page.fill('#password', PASSWORD);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(`${gw.base}/workspaces`);
    assert.match(await page.locator('main').textContent(), /Workspace Owner/);
    await shot(page, '03-workspaces');
  });

  await t.test('invite a member; the invitation is mailed', async () => {
    await page.click(`main a[href="/w/${SLUG}/access"]`);
    await page.waitForURL(`${gw.base}/w/${SLUG}/access`);
    // Bad input: the error sits next to the field and nothing is sent.
    await page.fill('#invite-email', 'mia at acme');
    await page.click('button:has-text("Send invitation")');
    assert.match(await page.locator('#invite-email-error').textContent(), /email address/);
    assert.equal(await page.getAttribute('#invite-email', 'aria-describedby'), 'invite-email-error');
    assert.equal(sink.messages.length, 0);
    await assertAccessible(page, 'users tab with a refused invitation');
    await page.fill('#invite-email', MEMBER);
    await page.selectOption('#invite-role', 'workspace_member');
    await page.click('button:has-text("Send invitation")');
    assert.equal(await noticeText(page), 'Invitation sent.');
    assert.ok(await page.locator(`tr[data-email="${MEMBER}"] .pill:has-text("Invited")`).isVisible());
  });

  await t.test('the member accepts in a second browser', async () => {
    const mail = await sink.waitFor((m) => m.includes(MEMBER));
    const link = mail.match(/http:\/\/127\.0\.0\.1:\d+\/invitations\/[A-Za-z0-9_-]+/)?.[0];
    assert.ok(link, `an invitation link in:\n${mail}`);
    member = await context();
    await member.page.goto(link);
    await shot(member.page, '04-invitation');
    await member.page.fill('#name', 'Mia Member');
    await member.page.fill('#password', MEMBER_PASSWORD);
    await member.page.click('button:has-text("Create account and join")');
    await member.page.waitForURL(`${gw.base}/workspaces`);
    assert.match(await member.page.locator('main').textContent(), /Workspace Member/);
    // A member without owner rights sees the pages read-only, and why.
    await member.page.goto(`${gw.base}/w/${SLUG}/access`);
    assert.match(await member.page.locator('#read-only').textContent(), /only a Workspace Owner can manage access/);
    assert.equal(await member.page.locator('#invite-email').count(), 0);
    await shot(member.page, '05-member-read-only');
  });

  await t.test('create a group with Source Admin on one label', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=groups`);
    await page.fill('#group-name', 'Prod source admins');
    await page.selectOption('#group-role', 'source_admin');
    await page.check('#new-group ~ form input[name=scope][value=labels]');
    await page.fill('#group-scope-values', 'env:prod');
    await page.click('button:has-text("Create group")');
    await page.waitForURL(/\/access\/groups\/[^/?]+\?done=created$/);
    assert.match(await page.locator('#group-roles').textContent(), /Source Admin on labels env:prod/);
    await page.fill('#group-member-email', MEMBER);
    await page.click('button:has-text("Add to group")');
    assert.match(await page.locator('#group-members').textContent(), new RegExp(MEMBER));
    await shot(page, '06-group');
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=groups`);
    assert.match(await page.locator('tr[data-group="Prod source admins"]').textContent(), /Source Admin on labels env:prod/);
    await shot(page, '07-tab-user-groups');
  });

  await t.test("the member's page shows direct, group and effective access", async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=users`);
    await page.click(`tr[data-email="${MEMBER}"] a.person`);
    await page.waitForURL(/\/access\/users\//);
    const effective = await page.locator('#effective-access').textContent();
    assert.match(effective, /Workspace Member/);
    assert.match(effective, /Source Admin on labels env:prod/);
    await shot(page, '08-member-page');
  });

  await t.test('create a token, see its secret once, use it, revoke it', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=tokens`);
    await page.fill('#token-description', 'CI deploys');
    await page.check('input[name=access][value=workspace_member]');
    await page.click('button:has-text("Create token")');
    const secret = await page.inputValue('#token-secret');
    assert.match(secret, /^iamgw_/);
    assert.ok(await page.locator('button[data-copy="token-secret"]').isVisible(), 'copy button shown with JavaScript');
    await page.click('button[data-copy="token-secret"]');
    assert.match(await page.locator('tr[data-token="CI deploys"]').textContent(), new RegExp(OWNER));
    await shot(page, '09-tab-tokens');
    assert.equal(await apiStatus(secret), 200, 'the new token works');
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=tokens`);
    assert.equal(await page.locator('#token-secret').count(), 0, 'the secret is shown only once');
    await page.click('tr[data-token="CI deploys"] button:has-text("Revoke")');
    assert.match(await noticeText(page), /Token revoked/);
    assert.equal(await page.locator('tr[data-token="CI deploys"]').count(), 0);
    assert.equal(await apiStatus(secret), 401, 'a revoked token is refused');
  });

  await t.test('the OpenID Provider’s own pages: a broken sign-in link, the sign-out question', async () => {
    await page.goto(`${gw.base}/oauth2/authorize?client_id=no-such-app&response_type=code`);
    assert.match(await page.locator('h1').textContent(), /cannot sign you in/);
    await shot(page, '28-oauth2-unknown-app');
    await page.goto(`${gw.base}/oauth2/logout`);
    assert.match(await page.locator('h1').textContent(), /Sign out\?/);
    await shot(page, '29-oauth2-logout-question');
    await page.click('a:has-text("Stay signed in")');
    await page.waitForURL(/\/workspaces/);
  });

  await t.test('a new owner sets a password from the bootstrap link', async () => {
    const link = await gw.bootstrapLink('beta', 'founder@beta.test');
    const other = await browser.newContext();
    const p = await other.newPage();
    await p.goto(link);
    await assertAccessible(p, 'set-password link');
    await p.screenshot({ path: path.join(SHOTS, '30-set-password.png'), fullPage: true });
    await p.fill('#password', 'a long enough passphrase for beta');
    await p.click('button:has-text("Set password")');
    await p.waitForSelector('text=Your password is set');
    await assertAccessible(p, 'password set, sign in');
    await other.close();
  });

  await t.test('register an OpenID Connect app, see its secret once, delete it', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/apps`);
    await page.fill('#app-name', 'Grafana');
    await page.fill('#app-redirects', 'https://grafana.example.com/login/generic_oauth');
    await page.fill('#app-backchannel', 'https://grafana.example.com/logout/backchannel');
    await page.selectOption('#app-role', 'workspace_member');
    await page.click('button:has-text("Register app")');
    const secret = await page.inputValue('#new-client-secret');
    assert.match(secret, /^iamgw_cs_/);
    const clientId = await page.inputValue('#new-client-id');
    assert.match(await page.locator('#apps').textContent(), new RegExp(clientId));
    await shot(page, '27-apps');
    await page.goto(`${gw.base}/w/${SLUG}/apps`);
    assert.equal(await page.locator('#new-client-secret').count(), 0, 'the secret is shown only once');
    await page.click('button[aria-label="Delete Grafana"]');
    assert.match(await noticeText(page), /App deleted/);
    assert.equal(await page.locator('#apps').count(), 0);
  });

  await t.test('download the members CSV and read it', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=users`);
    await shot(page, '10-tab-users');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a:has-text("Download CSV")')]);
    assert.equal(download.suggestedFilename(), `${SLUG}-members.csv`);
    const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
    assert.equal(csv[0], 'user_id,email,name,status,roles,groups,auth_method,twilio_linked,mfa_enabled,created_at,last_login_at');
    const row = csv.find((l) => l.includes(MEMBER));
    assert.ok(row, csv.join('\n'));
    assert.match(row, /,active,/);
    assert.match(row, /source_admin:labels=env:prod/);
    assert.match(row, /Prod source admins/);
  });

  await t.test("remove the member; the member's next request is refused", async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=users`);
    await page.click(`tr[data-email="${MEMBER}"] button:has-text("Remove")`);
    assert.match(await noticeText(page), /Member removed/);
    assert.equal(await page.locator(`tr[data-email="${MEMBER}"]`).count(), 0);
    const resp = await member.page.goto(`${gw.base}/w/${SLUG}/access`);
    assert.equal(resp.status(), 404);
    await shot(member.page, '18-workspace-not-found');
    const verify = await member.ctx.request.get(`${gw.base}/auth/verify?workspace=${SLUG}`);
    assert.equal(verify.status(), 403);
  });

  await t.test('SSO settings and account pages', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/settings/sso`);
    // Pasted metadata that is not metadata: the error sits by the field.
    await page.click('#add-connection summary');
    await page.fill('#conn-name', 'Corp SAML');
    await page.fill('#conn-metadata-xml', '<not-metadata/>');
    await page.click('button:has-text("Add connection")');
    assert.ok(await page.locator('#conn-metadata-xml-error').isVisible());
    await assertAccessible(page, 'SSO settings with a refused connection');
    // OIDC by issuer: listed with the redirect URI to give the provider.
    await page.check('input[name=kind][value=oidc]');
    await page.fill('#conn-name', 'Okta');
    await page.fill('#conn-issuer', 'https://idp.example.com');
    await page.fill('#conn-client-id', 'gateway');
    await page.fill('#conn-client-secret', 'a client secret');
    await page.click('button:has-text("Add connection")');
    assert.match(await noticeText(page), /Connection saved/);
    assert.match(await page.locator('article[data-connection="Okta"]').textContent(), /idp\.example\.com/);
    assert.match(await page.inputValue('article[data-connection="Okta"] input[id^=redirect-]'), /\/sso\/oidc\/[^/]+\/callback$/);
    await page.fill('#domain', 'corp.test');
    await page.click('button:has-text("Add domain")');
    assert.match(await page.locator('#domain-list').textContent(), /iamgw-verification=/);
    await page.fill('#scim-description', 'Okta provisioning');
    await page.click('button:has-text("Create SCIM token")');
    assert.match(await page.inputValue('#scim-secret'), /^iamgw_scim_|^iamgw/);
    await shot(page, '11-sso-settings');
    await page.goto(`${gw.base}/account`);
    assert.ok(await page.locator('#session-list').isVisible());
    assert.ok(await page.locator('button:has-text("Link Twilio account")').isVisible());
    await shot(page, '12-account');
  });

  await t.test('the audit log in plain words, filtered, and its CSV', async () => {
    await page.goto(`${gw.base}/w/${SLUG}/access`);
    await page.click('nav.ws-nav a:has-text("Audit log")');
    await page.waitForURL(`${gw.base}/w/${SLUG}/audit`);
    const text = await page.locator('#audit-events').textContent();
    assert.ok(text.includes(`${OWNER} removed ${MEMBER} from the workspace`), text);
    assert.ok(text.includes(`${OWNER} revoked the API token “CI deploys”`), text);
    assert.ok(text.includes(`${OWNER} added the OIDC connection “Okta”`), text);
    await shot(page, '16-audit-log');
    // With the keyboard: pick an action, Enter in a field submits.
    await page.selectOption('#audit-action', 'member.removed');
    await page.focus('#audit-target');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/audit\?.*action=member\.removed/);
    assert.equal(await page.locator('#audit-events tbody tr').count(), 1);
    await shot(page, '17-audit-log-filtered');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#audit-csv')]);
    assert.equal(download.suggestedFilename(), `${SLUG}-audit.csv`);
    const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
    assert.equal(csv.length, 2, csv.join('\n'));
    assert.match(csv[1], /member\.removed/);
  });

  await t.test('with the keyboard alone: invite a member into a group, create a group, switch workspace', async () => {
    // No clicks from here: Tab, typing, Space and Enter only.
    await page.goto(`${gw.base}/w/${SLUG}/access?tab=users`);
    await tabTo(page, '#invite-email');
    await page.keyboard.type(TWILIO_USER);
    await tabTo(page, '#invite-role');
    await page.keyboard.type('Workspace Member');
    assert.equal(await page.inputValue('#invite-role'), 'workspace_member');
    await tabTo(page, 'input[name=group_ids]');
    await page.keyboard.press('Space');
    await tabTo(page, 'form[action$="/access/invitations"] button[type=submit]');
    await page.keyboard.press('Enter');
    await page.waitForURL(/done=invited/);
    assert.equal(await noticeText(page), 'Invitation sent.');
    const roles = await page.locator(`tr[data-email="${TWILIO_USER}"] ul.roles`).textContent();
    assert.match(roles, /Workspace Member\s+direct/);
    assert.match(roles, /Source Admin on labels env:prod\s+via group “Prod source admins”/);
    await shot(page, '19-keyboard-invited');

    await page.goto(`${gw.base}/w/${SLUG}/access?tab=groups`);
    await tabTo(page, '#group-name');
    await page.keyboard.type('Support');
    await tabTo(page, '#group-role');
    await page.keyboard.type('Workspace Member');
    assert.equal(await page.inputValue('#group-role'), 'workspace_member');
    await tabTo(page, 'form[action$="/access/groups"] button[type=submit]');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/access\/groups\/[^/?]+\?done=created$/);
    assert.match(await page.locator('#group-roles').textContent(), /Workspace Member/);

    // The header's workspace switcher opens with Enter.
    await page.goto(`${gw.base}/w/${SLUG}/access`);
    await tabTo(page, 'details.switcher > summary');
    await page.keyboard.press('Enter');
    assert.ok(await page.locator('details.switcher[open]').isVisible());
    await tabTo(page, 'details.switcher li.all a');
    await shot(page, '20-workspace-switcher-open');
    await page.keyboard.press('Enter');
    await page.waitForURL(`${gw.base}/workspaces`);
  });

  await t.test('a Twilio-linked person: from the Twilio Console and back, account managed by Twilio', async () => {
    await gw.addTwilioAccount(TWILIO_USER, 'Tina Twilio', TWILIO_PASSWORD);
    const tw = await context();
    await tw.page.goto(`${gw.issuer}/login?return_to=%2Fconsole`);
    await assertAccessible(tw.page, 'Twilio sign-in');
    await tw.page.fill('#email', TWILIO_USER);
    await tw.page.fill('#password', TWILIO_PASSWORD);
    await tw.page.click('button:has-text("Log in")');
    await tw.page.waitForURL(`${gw.issuer}/console`);
    await shot(tw.page, '21-twilio-console');
    await tw.page.click('a[data-product="Segment"]');
    await tw.page.waitForURL(`${gw.base}/workspaces`);
    // The invitation the owner sent with the keyboard.
    const mail = await sink.waitFor((m) => m.includes(TWILIO_USER));
    const link = mail.match(/http:\/\/127\.0\.0\.1:\d+\/invitations\/[A-Za-z0-9_-]+/)?.[0];
    await tw.page.goto(link);
    await shot(tw.page, '22-invitation-accept');
    await tw.page.click('button:has-text("Accept invitation")');
    await tw.page.waitForURL(`${gw.base}/workspaces`);
    const roles = await tw.page.locator(`tr[data-workspace="${SLUG}"] ul.roles`).textContent();
    assert.match(roles, /Workspace Member\s+direct/);
    assert.match(roles, /Source Admin on labels env:prod\s+via group “Prod source admins”/);
    // The product switcher: Segment, and back to the Twilio Console.
    await tw.page.click('#product-switcher summary');
    const back = tw.page.locator('#twilio-console');
    assert.ok(await back.isVisible());
    assert.equal(await back.getAttribute('href'), `${gw.issuer}/console`);
    await shot(tw.page, '23-twilio-product-switcher');
    await tw.page.goto(`${gw.base}/w/${SLUG}/access`);
    assert.ok(await tw.page.locator('#product-switcher').isVisible());
    await tw.page.goto(`${gw.base}/account`);
    assert.match(await tw.page.locator('#managed-by-twilio').textContent(), /managed by Twilio/);
    assert.match(await tw.page.locator('#profile-facts').textContent(), /Tina Twilio[\s\S]*tina@twilio\.test/);
    assert.match(await tw.page.locator('#two-factor-twilio').textContent(), /Managed by Twilio/);
    assert.equal(await tw.page.locator('#name, form[action="/account/mfa/setup"], form[action="/account/password"]').count(), 0);
    await shot(tw.page, '24-account-managed-by-twilio');
    await tw.page.click('#product-switcher summary');
    await tw.page.click('#twilio-console');
    await tw.page.waitForURL(`${gw.issuer}/console`);
    // A person without a Twilio link is not offered the way to Twilio.
    await page.goto(`${gw.base}/workspaces`);
    assert.equal(await page.locator('#product-switcher').count(), 0);
    await tw.ctx.close();
  });

  await t.test('the other pages pass axe too: forgot password, dead links, refusals', async () => {
    const anon = await context();
    await anon.page.goto(`${gw.base}/login/forgot`);
    await shot(anon.page, '25-forgot-password');
    const dead = await anon.page.goto(`${gw.base}/invitations/not-a-real-token`);
    assert.ok(dead.status() >= 400);
    await shot(anon.page, '26-invitation-dead-link');
    await anon.ctx.close();
    const missing = await page.goto(`${gw.base}/w/nowhere/access`);
    assert.equal(missing.status(), 404);
    await assertAccessible(page, 'workspace not found (owner)');
  });

  await t.test('forms work without JavaScript', async () => {
    const nojs = await context({ javaScriptEnabled: false });
    await signIn(nojs.page, OWNER, PASSWORD);
    await nojs.page.goto(`${gw.base}/w/${SLUG}/access?tab=groups`);
    await nojs.page.fill('#group-name', '');
    await nojs.page.click('button:has-text("Create group")');
    assert.match(await nojs.page.locator('#group-name-error').textContent(), /name/);
    await nojs.page.fill('#group-name', 'Billing');
    await nojs.page.selectOption('#group-role', 'billing_admin');
    await nojs.page.click('button:has-text("Create group")');
    await nojs.page.waitForURL(/\/access\/groups\/[^/?]+\?done=created$/);
    assert.match(await nojs.page.locator('#group-roles').textContent(), /Billing Admin/);
    await nojs.ctx.close();
  });

  await t.test('two-factor enrolment, recovery codes and the MFA sign-in step', async () => {
    await page.goto(`${gw.base}/account`);
    await page.click('button:has-text("Set up two-factor authentication")');
    const secret = (await page.locator('#totp-secret').textContent()).trim();
    await shot(page, '13-mfa-setup');
    await page.fill('#code', totp(secret));
    await page.click('button:has-text("Turn on")');
    const codes = await page.locator('#recovery-codes code').allTextContents();
    assert.equal(codes.length, 10);
    await shot(page, '14-recovery-codes');
    const again = await context();
    await again.page.goto(`${gw.base}/login`);
    await again.page.fill('#email', OWNER);
    await again.page.click('button:has-text("Continue")');
    await again.page.fill('#password', PASSWORD);
    await again.page.click('button:has-text("Sign in")');
    await again.page.waitForURL(`${gw.base}/login/mfa`);
    await again.page.fill('#code', '000000');
    await again.page.click('button:has-text("Verify")');
    assert.ok(await again.page.locator('#code-error').isVisible());
    await shot(again.page, '15-sign-in-mfa-error');
    await again.page.fill('#code', codes[0]);
    await again.page.click('button:has-text("Verify")');
    await again.page.waitForURL(`${gw.base}/workspaces`);
    await again.ctx.close();
  });

  await t.test('no page requested anything outside the gateway', async () => {
    assert.ok(requested.length > 20, `recorded ${requested.length} requests`);
    const outside = requested.filter((u) => !u.startsWith(`${gw.base}/`) && !u.startsWith(`${gw.issuer}/`) && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(outside, []);
  });
});
