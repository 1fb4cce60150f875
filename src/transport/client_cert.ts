/**
 * Client certificate verification for mutual TLS, done here rather than by the TLS engine: Deno's
 * node:tls verifies with webpki, which refuses X.509 v1 certificates, while OpenSSL (Mosquitto) accepts a
 * v1 client certificate signed by a configured CA. The chain is checked as OpenSSL does for a client:
 * each signature up to a certificate of `ca_file`, every certificate within its validity period,
 * intermediates (sent by the client) marked as CAs, and the leaf's extended key usage, when it has one,
 * allowing client authentication.
 */
import { X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate } from "node:tls";

const MAX_DEPTH = 8;
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_USAGE = "2.5.29.37.0";

/** The PEM certificates of a CA bundle. */
export function parseCaBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

function valid(certificate: X509Certificate, now: number): boolean {
  return new Date(certificate.validFrom).getTime() <= now && now <= new Date(certificate.validTo).getTime();
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The certificates the client sent, leaf first (node's issuerCertificate links, loops cut). */
function presentedChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current: DetailedPeerCertificate | undefined = peer;
  while (current?.raw && chain.length < MAX_DEPTH) {
    const key = current.raw.toString("base64");
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}

/** Whether the client's certificate chains to one of `cas`; the reason when it does not. */
export function verifyClientCertificate(
  peer: DetailedPeerCertificate | undefined,
  cas: X509Certificate[],
  now = Date.now(),
): { ok: true } | { ok: false; reason: string } {
  if (!peer?.raw) return { ok: false, reason: "no client certificate" };
  let chain: X509Certificate[];
  try {
    chain = presentedChain(peer);
  } catch (error) {
    return {
      ok: false,
      reason: `unreadable client certificate: ${error instanceof Error ? error.message : error}`,
    };
  }
  const [leaf, ...intermediates] = chain;
  if (!valid(leaf, now)) return { ok: false, reason: "client certificate expired or not yet valid" };
  const usages = (leaf as { keyUsage?: string[] }).keyUsage;
  if (
    Array.isArray(usages) && usages.length > 0 && !usages.includes(CLIENT_AUTH) && !usages.includes(ANY_USAGE)
  ) {
    return { ok: false, reason: "client certificate not for client authentication" };
  }
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (cas.some((ca) => valid(ca, now) && issuedBy(current, ca))) return { ok: true };
    const next = intermediates.find((candidate) =>
      candidate.ca && valid(candidate, now) && issuedBy(current, candidate)
    );
    if (!next) break;
    current = next;
  }
  return { ok: false, reason: "client certificate not signed by a CA of ca_file" };
}
