// What the browser scenario runs against: a tiny SMTP sink that keeps every
// message, and the real gateway binary on free loopback ports with a
// temporary SQLite database. Everything stops when the test ends.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** An SMTP server that accepts every message and keeps it (decoded from
 *  quoted-printable soft breaks, enough to read links). */
export async function startSmtpSink() {
  const messages = [];
  const server = net.createServer((sock) => {
    sock.setEncoding('utf8');
    let buf = '';
    let inData = false;
    let data = [];
    sock.write('220 sink ESMTP\r\n');
    sock.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            messages.push(data.join('\n').replace(/=\n/g, '').replace(/=3D/g, '='));
            data = [];
            sock.write('250 queued\r\n');
          } else {
            data.push(line.startsWith('.') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') sock.write('250 sink\r\n');
        else if (verb === 'DATA') { inData = true; sock.write('354 go ahead\r\n'); }
        else if (verb === 'QUIT') { sock.end('221 bye\r\n'); }
        else sock.write('250 ok\r\n');
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `smtp://127.0.0.1:${server.address().port}`,
    messages,
    /** Waits up to 10 s for a message matching `pred`. */
    async waitFor(pred) {
      for (let i = 0; i < 200; i++) {
        const m = messages.find(pred);
        if (m) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no matching mail; got ${messages.length} message(s)`);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

function run(bin, args, env, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args[0]} exited ${code}: ${out}`))));
    p.stdin.end(input ?? '');
  });
}

/** Starts `iam-gateway serve` on free ports with workspace `slug` whose
 *  owner signs in with `email` / `password` (made by `bootstrap`). */
export async function startGateway({ smtpUrl, slug, email, password }) {
  const bin = process.env.IAMGW_BIN || path.join(REPO, 'target', 'debug', 'iam-gateway');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'iamgw-browser-'));
  const port = await freePort();
  const issuerPort = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || dir,
    RUST_LOG: process.env.RUST_LOG || 'warn',
    IAMGW_LISTEN: `127.0.0.1:${port}`,
    IAMGW_PUBLIC_URL: base,
    IAMGW_DATABASE_URL: `sqlite://${path.join(dir, 'gw.db')}`,
    IAMGW_SECRET_KEY_FILE: path.join(dir, 'secret.key'),
    IAMGW_SESSION__STORE: 'database',
    IAMGW_TWILIO__MODE: 'embedded',
    IAMGW_TWILIO_ISSUER__LISTEN: `127.0.0.1:${issuerPort}`,
    IAMGW_TWILIO_ISSUER__PUBLIC_URL: `http://127.0.0.1:${issuerPort}`,
    IAMGW_MAIL__SMTP_URL: smtpUrl,
  };
  await run(bin, ['bootstrap', '--workspace', slug, '--owner-email', email, '--password-stdin'], env, `${password}\n`);
  const proc = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  let ready = false;
  for (let i = 0; i < 200 && proc.exitCode === null; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) { ready = true; break; }
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!ready) {
    await stop();
    throw new Error(`the gateway did not become ready:\n${log}`);
  }
  const issuer = `http://127.0.0.1:${issuerPort}`;
  /** An account at the embedded Twilio issuer (`twilio-issuer add-account`). */
  const addTwilioAccount = (email, name, pw) =>
    run(bin, ['twilio-issuer', 'add-account', '--email', email, '--name', name, '--password-stdin'], env, `${pw}\n`);
  /** A new workspace whose owner has no password yet: the one-time
   *  set-password link `bootstrap` prints. */
  const bootstrapLink = async (newSlug, ownerEmail) => {
    const out = await run(bin, ['bootstrap', '--workspace', newSlug, '--owner-email', ownerEmail], env);
    const m = out.match(/(http:\/\/\S+\/set-password\/\S+)/);
    if (!m) throw new Error(`no set-password link in: ${out}`);
    return m[1];
  };
  return { base, issuer, addTwilioAccount, bootstrapLink, stop, log: () => log };
}

/** The rules axe runs: WCAG 2.0, 2.1 and 2.2 levels A and AA, and axe's best
 *  practices (landmarks, one main heading, ...). */
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'];

const AXE_SOURCE = (() => {
  const require = createRequire(import.meta.url);
  try {
    return readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  } catch {
    throw new Error('axe-core is missing from tests/browser/node_modules: run npm ci in tests/browser');
  }
})();

/** Runs axe-core (WCAG 2.x A/AA and best-practice rules) on the page as it
 *  is now and fails, naming the page, on any violation of impact serious or
 *  critical, listing each rule and the elements it found. Returns axe's
 *  result for further checks. `AXE_VERBOSE=1` prints every violation of any
 *  impact and what axe could not decide. */
export async function assertAccessible(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    // Not page.addScriptTag: the gateway's CSP (default-src 'self') refuses
    // the inline <script> it adds. Evaluating the source through the
    // DevTools protocol is not governed by the page's CSP.
    await page.evaluate(AXE_SOURCE);
  }
  const result = await page.evaluate((tags) => window.axe.run(document, {
    runOnly: { type: 'tag', values: tags },
    resultTypes: ['violations', 'incomplete'],
  }), AXE_TAGS);
  if (process.env.AXE_VERBOSE) {
    const list = (vs) => vs.map((v) => `${v.impact} ${v.id} [${v.nodes.map((n) => n.target.join(' ')).join(', ')}]`).join('; ') || 'none';
    console.error(`axe ${name}: violations: ${list(result.violations)}; undecided: ${list(result.incomplete)}`);
  }
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = bad
    .map((v) => `  ${v.impact} ${v.id}: ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\n/g, ' ')}`).join('\n')}`)
    .join('\n');
  assert.equal(bad.length, 0, `axe found serious or critical violations on ${name} (${page.url()}):\n${report}`);
  return result;
}
