// Secrets kept in Consul's KV store sealed (a certificate's private key, an ACME account key):
// AES-256-GCM with a key that only the gateways and Pulumi hold (a stack secret, given to each
// gateway as a file), bound to the KV path it is stored at, so a sealed value copied to another
// key does not open there. The IV is derived from the key, the path and the value (a synthetic
// IV): sealing the same value twice gives the same text, so `pulumi preview` shows no change
// for a certificate that did not change. Imported by the program too (components/), so: no I/O.
import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";

const VERSION = "sealed-v1";

/** The sealing key: 32 bytes, written as 64 hex digits (the file gateways read, the stack secret). */
export function parseSealingKey(text: string): Buffer {
    const hex = text.trim();
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error("the sealing key is not 64 hex digits (32 bytes)");
    return Buffer.from(hex, "hex");
}

/** `sealed-v1:<iv>:<tag>:<ciphertext>`, each base64. */
export function seal(key: Buffer, path: string, plaintext: string): string {
    if (key.length !== 32) throw new Error("the sealing key is not 32 bytes");
    const iv = createHmac("sha256", key).update(path).update("\0").update(plaintext).digest().subarray(0, 12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(path));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [VERSION, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
}

/** The value sealed at `path`; throws when it was sealed with another key, for another path, or altered. */
export function unseal(key: Buffer, path: string, sealed: string): string {
    const parts = sealed.trim().split(":");
    if (parts.length !== 4 || parts[0] !== VERSION) throw new Error(`not a ${VERSION} value`);
    const [iv, tag, body] = parts.slice(1).map((p) => Buffer.from(p, "base64")) as [Buffer, Buffer, Buffer];
    if (iv.length !== 12 || tag.length !== 16) throw new Error(`not a ${VERSION} value`);
    const decipher = createDecipheriv("aes-256-gcm", key, iv);
    decipher.setAAD(Buffer.from(path));
    decipher.setAuthTag(tag);
    try {
        return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
    } catch {
        throw new Error("does not open with this gateway's sealing key for this path (another key or path, or altered)");
    }
}
