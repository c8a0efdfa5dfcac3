// A test SAML identity provider for the browser tests: its own RSA key and
// certificate (made with the openssl CLI), metadata naming its
// HTTP-Redirect sign-in URL, and a sign-in page that answers the gateway's
// AuthnRequest with a Response signed by xmlsec1 (Debian package xmlsec1),
// posted back by a "Continue" button. What the next answer says (who, which
// groups, a wrong audience...) is set by the test through `next`.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { freePort } from './harness.mjs';

const ENTITY = 'https://idp.browser.test/saml';
const EMAIL_FMT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const iso = (unix) => new Date(unix * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A self-signed RSA certificate valid for `days` days; returns
 *  { key, cert } file paths and the certificate's PEM. */
export function makeCertificate(dir, name, days) {
  const key = path.join(dir, `${name}-key.pem`);
  const cert = path.join(dir, `${name}-cert.pem`);
  execFileSync('openssl', ['req', '-x509', '-nodes', '-days', String(days), '-subj', `/CN=${name}`,
    '-newkey', 'rsa:2048', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key, cert, pem: readFileSync(cert, 'utf8') };
}

function signatureTemplate(id) {
  return '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    + `<ds:CanonicalizationMethod Algorithm="${EXC_C14N}"/>`
    + '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
    + `<ds:Reference URI="#${id}"><ds:Transforms>`
    + '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    + `<ds:Transform Algorithm="${EXC_C14N}"/></ds:Transforms>`
    + '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>'
    + '</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>';
}

/** Starts the IdP on a free 127.0.0.1 port. */
export async function startSamlIdp() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'iamgw-idp-'));
  const keys = makeCertificate(dir, 'idp.browser.test', 3650);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const certB64 = keys.pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  let n = 0;

  const idp = {
    base,
    dir,
    /** What the next answer carries; `audience` overrides the SP entity ID. */
    next: { email: 'carol@corp.test', name: 'Carol Example', groups: ['engineering', 'admins'], audience: null },
    metadata() {
      return '<?xml version="1.0" encoding="UTF-8"?>\n'
        + `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="${ENTITY}">`
        + '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        + `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>${certB64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`
        + `<md:NameIDFormat>${EMAIL_FMT}</md:NameIDFormat>`
        + `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="${base}/sso"/>`
        + '</md:IDPSSODescriptor></md:EntityDescriptor>\n';
    },
    /** A signed Response to the AuthnRequest `req` ({ id, acs, issuer }). */
    response(req) {
      const now = Math.floor(Date.now() / 1000);
      const who = idp.next;
      n += 1;
      const rid = `_r${n}${Date.now()}`;
      const aid = `_a${n}${Date.now()}`;
      const attrs = [['displayName', [who.name]], ['groups', who.groups]]
        .map(([k, vs]) => `<saml:Attribute Name="${k}">${vs.map((v) => `<saml:AttributeValue>${esc(v)}</saml:AttributeValue>`).join('')}</saml:Attribute>`)
        .join('');
      const assertion = `<saml:Assertion ID="${aid}" Version="2.0" IssueInstant="${iso(now)}">`
        + `<saml:Issuer>${ENTITY}</saml:Issuer>${signatureTemplate(aid)}`
        + `<saml:Subject><saml:NameID Format="${EMAIL_FMT}">${esc(who.email)}</saml:NameID>`
        + '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        + `<saml:SubjectConfirmationData InResponseTo="${req.id}" NotOnOrAfter="${iso(now + 300)}" Recipient="${esc(req.acs)}"/>`
        + '</saml:SubjectConfirmation></saml:Subject>'
        + `<saml:Conditions NotBefore="${iso(now - 30)}" NotOnOrAfter="${iso(now + 600)}">`
        + `<saml:AudienceRestriction><saml:Audience>${esc(who.audience ?? req.issuer)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>`
        + `<saml:AuthnStatement AuthnInstant="${iso(now)}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`
        + `<saml:AttributeStatement>${attrs}</saml:AttributeStatement></saml:Assertion>`;
      const xml = '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        + `ID="${rid}" Version="2.0" IssueInstant="${iso(now)}" Destination="${esc(req.acs)}" InResponseTo="${req.id}">`
        + `<saml:Issuer>${ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>`
        + `${assertion}</samlp:Response>`;
      const input = path.join(dir, `${rid}-in.xml`);
      const output = path.join(dir, `${rid}-out.xml`);
      writeFileSync(input, xml);
      execFileSync('xmlsec1', ['--sign', '--privkey-pem', `${keys.key},${keys.cert}`,
        '--id-attr:ID', 'urn:oasis:names:tc:SAML:2.0:assertion:Assertion', '--output', output, input], { stdio: 'ignore' });
      return readFileSync(output, 'utf8');
    },
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, base);
    if (url.pathname !== '/sso') {
      res.writeHead(404).end('not found');
      return;
    }
    try {
      const request = inflateRawSync(Buffer.from(url.searchParams.get('SAMLRequest') ?? '', 'base64')).toString('utf8');
      const parsed = {
        id: /\sID="([^"]+)"/.exec(request)[1],
        acs: /AssertionConsumerServiceURL="([^"]+)"/.exec(request)[1].replace(/&amp;/g, '&'),
        issuer: /<saml:Issuer>([^<]+)<\/saml:Issuer>/.exec(request)[1].replace(/&amp;/g, '&'),
      };
      const signed = Buffer.from(idp.response(parsed)).toString('base64');
      const relay = url.searchParams.get('RelayState');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html lang="en"><head><title>Test IdP</title></head><body><main>'
        + `<h1>Test IdP</h1><p>Signing in as ${esc(idp.next.email)}.</p>`
        + `<form method="post" action="${esc(parsed.acs)}">`
        + `<input type="hidden" name="SAMLResponse" value="${signed}">`
        + (relay ? `<input type="hidden" name="RelayState" value="${esc(relay)}">` : '')
        + '<button type="submit">Continue</button></form></main></body></html>');
    } catch (e) {
      res.writeHead(400).end(`bad request: ${e}`);
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  idp.stop = async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  };
  return idp;
}
