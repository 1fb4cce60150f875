/**
 * What the broker checks before it binds anything, shared by `check-config` and start, so that a
 * configuration `check-config` calls OK starts: the files it will read exist, are readable and parse;
 * each certificate loads and matches its key; no two sockets (listeners, the HTTP endpoint) want one port;
 * the admin API has a credential. Every problem is collected, not only the first.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import {
  parseAccessKeysFile,
  parseAclFile,
  parsePasswordFile,
  parseScramFile,
  readBearerTokenFile,
} from "../auth/mod.ts";
import type { Config } from "../config/mod.ts";

/** Reads a file, naming the configuration key in the error. */
async function read(key: string, path: string, problems: string[]): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error
      ? error.message.replace(/ \(os error \d+\).*$/s, "")
      : String(error);
    problems.push(`${key} = ${path}: cannot read (${reason})`);
    return undefined;
  }
}

async function parsed(
  key: string,
  path: string | undefined,
  parse: (text: string, source: string) => unknown,
  problems: string[],
): Promise<void> {
  if (path === undefined) return;
  const text = await read(key, path, problems);
  if (text === undefined) return;
  try {
    parse(text, path);
  } catch (error) {
    problems.push(`${key}: ${error instanceof Error ? error.message : error}`);
  }
}

/** The PEM certificates in a text (a chain or a CA bundle). */
function certificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => new X509Certificate(block));
}

async function checkTls(config: Config, problems: string[]): Promise<void> {
  for (const listener of config.listeners) {
    const prefix = `listener.${listener.name}`;
    const web = listener.type === "ws" || listener.type === "wss";
    if (web && (listener.caFile || listener.requireClientCert)) {
      problems.push(`${prefix}: client certificates are supported on tls listeners only`);
    }
    if (listener.requireClientCert && !listener.caFile) {
      problems.push(`${prefix}.require_client_cert needs ${prefix}.ca_file`);
    }
    if (listener.caFile) {
      const text = await read(`${prefix}.ca_file`, listener.caFile, problems);
      if (text !== undefined) {
        try {
          if (certificates(text).length === 0) {
            problems.push(`${prefix}.ca_file: no PEM certificate in ${listener.caFile}`);
          }
        } catch (error) {
          problems.push(
            `${prefix}.ca_file: ${listener.caFile}: ${error instanceof Error ? error.message : error}`,
          );
        }
      }
    }
    if (listener.type !== "tls" && listener.type !== "wss") continue;
    const certText = await read(`${prefix}.cert_file`, listener.certFile!, problems);
    const keyText = await read(`${prefix}.key_file`, listener.keyFile!, problems);
    if (certText === undefined || keyText === undefined) continue;
    try {
      const [leaf] = certificates(certText);
      if (!leaf) throw new Error(`no PEM certificate in ${listener.certFile}`);
      const key = createPrivateKey(keyText);
      if (!leaf.checkPrivateKey(key)) {
        problems.push(
          `${prefix}: ${listener.keyFile} is not the key of the certificate in ${listener.certFile}`,
        );
      }
      if (new Date(leaf.validTo).getTime() < Date.now()) {
        problems.push(`${prefix}.cert_file: ${listener.certFile} expired on ${leaf.validTo}`);
      }
    } catch (error) {
      problems.push(
        `${prefix}: cannot load ${listener.certFile} with ${listener.keyFile}: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  }
}

const WILDCARDS = new Set(["0.0.0.0", "::", ""]);

/** Two sockets on one port collide unless both name different specific addresses. */
function collides(a: string, b: string): boolean {
  return a === b || WILDCARDS.has(a) || WILDCARDS.has(b);
}

function checkPorts(config: Config, problems: string[]): void {
  const sockets = config.listeners.map((l) => ({ name: `listener ${l.name}`, host: l.host, port: l.port }));
  if (config.http.enabled) {
    sockets.push({ name: "the HTTP endpoint (http.port)", host: config.http.host, port: config.http.port });
  }
  for (let i = 0; i < sockets.length; i++) {
    for (let j = i + 1; j < sockets.length; j++) {
      const [a, b] = [sockets[i], sockets[j]];
      if (a.port !== 0 && a.port === b.port && collides(a.host, b.host)) {
        problems.push(`${a.name} and ${b.name} both use port ${a.port}`);
      }
    }
  }
}

/** Every problem found, as lines for the operator; empty when the configuration can start. */
export async function preflight(config: Config): Promise<string[]> {
  const problems: string[] = [];
  const { auth, admin, http } = config;
  await parsed("auth.password_file", auth.passwordFile, parsePasswordFile, problems);
  await parsed("auth.access_keys_file", auth.accessKeysFile, parseAccessKeysFile, problems);
  await parsed("auth.scram_file", auth.scramFile, parseScramFile, problems);
  await parsed("auth.acl_file", auth.aclFile, parseAclFile, problems);
  await parsed("admin.password_file", admin.passwordFile, parsePasswordFile, problems);
  if (http.authTokenFile !== undefined) {
    try {
      await readBearerTokenFile(http.authTokenFile);
    } catch (error) {
      problems.push(`http.auth_token_file: ${error instanceof Error ? error.message : error}`);
    }
  }
  if (admin.enabled && !http.enabled) problems.push("admin.enabled needs http.enabled = true");
  if (admin.enabled && http.authTokenFile === undefined && admin.passwordFile === undefined) {
    problems.push("admin.enabled needs http.auth_token_file or admin.password_file (the API is never open)");
  }
  await checkTls(config, problems);
  checkPorts(config, problems);
  return problems;
}
