/** A SCRAM-SHA-256 client written from RFC 5802/7677, independent of the broker's code, over a raw socket. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import type { AuthPacket, Packet } from "../../src/codec/mod.ts";
import { RawClient } from "../helpers/broker.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The client side of one exchange: the first message, then the final one computed from the server's. */
export function scramClient(user: string, password: string) {
  const nonce = randomBytes(12).toString("base64");
  const first = `n=${user},r=${nonce}`;
  return {
    first: encoder.encode(`n,,${first}`),
    final(serverFirst: string): Uint8Array {
      const attrs = Object.fromEntries(serverFirst.split(",").map((kv) => [kv[0], kv.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s, "base64"), Number(attrs.i), 32, "sha256");
      const clientKey = createHmac("sha256", salted).update("Client Key").digest();
      const storedKey = createHash("sha256").update(clientKey).digest();
      const withoutProof = `c=biws,r=${attrs.r}`;
      const authMessage = `${first},${serverFirst},${withoutProof}`;
      const signature = createHmac("sha256", storedKey).update(authMessage).digest();
      const proof = clientKey.map((b, i) => b ^ signature[i]);
      return encoder.encode(`${withoutProof},p=${Buffer.from(proof).toString("base64")}`);
    },
  };
}

/** Parses a server-first-message into its attributes (r, s, i). */
export function serverFirstAttributes(data: Uint8Array | undefined): Record<string, string> {
  return Object.fromEntries(decoder.decode(data).split(",").map((kv) => [kv[0], kv.slice(2)]));
}

/** Runs a whole SCRAM login over MQTT 5; returns the server-first attributes and the final packet. */
export async function scramLogin(
  port: number,
  user: string,
  password: string,
  clientId = `scram-${crypto.randomUUID().slice(0, 8)}`,
): Promise<{ client: RawClient; serverFirst: Record<string, string>; last: Packet }> {
  const client = await RawClient.connect(port, 5);
  const scram = scramClient(user, password);
  await client.sendPacket({
    type: "connect",
    protocolName: "MQTT",
    protocolVersion: 5,
    cleanStart: true,
    keepAlive: 30,
    clientId,
    properties: { authenticationMethod: "SCRAM-SHA-256", authenticationData: scram.first },
  }, 5);
  const challenge = await client.readPacket() as AuthPacket;
  assert.equal(challenge.type, "auth", `expected AUTH, got ${challenge.type}`);
  const data = challenge.properties.authenticationData;
  await client.sendPacket({
    type: "auth",
    reasonCode: 0x18,
    properties: {
      authenticationMethod: "SCRAM-SHA-256",
      authenticationData: scram.final(decoder.decode(data)),
    },
  }, 5);
  return { client, serverFirst: serverFirstAttributes(data), last: await client.readPacket() };
}
