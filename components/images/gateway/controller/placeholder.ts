// HAProxy does not start a TLS listener without a certificate: until the first one arrives from
// Consul (or when none is valid), the HTTPS listener serves a placeholder, self-signed and made
// here at start (ECDSA P-256, one day, CN and SAN "gateway.invalid"). Clients refuse it; the
// listener still answers, and `/-/health` works over HTTPS. No dependency: the certificate is a
// few DER structures signed with Node's crypto.
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";

/** The name the placeholder carries: .invalid is reserved (RFC 2606), no client trusts it for anything. */
export const PLACEHOLDER_NAME = "gateway.invalid";

const der = (tag: number, body: Buffer): Buffer => {
    const n = body.length;
    const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
    return Buffer.concat([Buffer.from([tag]), len, body]);
};
const seq = (...parts: Buffer[]): Buffer => der(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]): Buffer => der(0x31, Buffer.concat(parts));
const oid = (dotted: string): Buffer => {
    const [a, b, ...rest] = dotted.split(".").map(Number) as [number, number, ...number[]];
    const bytes = [a * 40 + b];
    for (const v of rest) {
        const groups: number[] = [];
        let x = v;
        do {
            groups.unshift(x & 0x7f);
            x = Math.floor(x / 128);
        } while (x > 0);
        for (let i = 0; i < groups.length - 1; i++) groups[i]! |= 0x80;
        bytes.push(...groups);
    }
    return der(0x06, Buffer.from(bytes));
};
const utf8 = (s: string): Buffer => der(0x0c, Buffer.from(s, "utf8"));
/** UTCTime YYMMDDHHMMSSZ (years 1950-2049). */
const utcTime = (d: Date): Buffer => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z", "ascii"));
const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

/**
 * A positive serial from random bytes, its DER encoding minimal: the first byte from 0x40 to 0x7f.
 * (With a first byte of 0 and a second below 0x80, the INTEGER would carry a leading zero that
 * strict DER parsers refuse, OpenSSL with "illegal padding": one certificate in 256.)
 */
export function certificateSerial(random: Buffer): Buffer {
    const serial = Buffer.from(random);
    serial[0] = (serial[0]! & 0x3f) | 0x40;
    return serial;
}

/** A self-signed certificate and its key, PEM, valid from an hour ago for `days`. */
export function selfSignedCertificate(o: { name: string; days: number; key?: KeyObject }): { certPem: string; keyPem: string } {
    const privateKey = o.key ?? generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const spki = createPublicKey(privateKey).export({ type: "spki", format: "der" });
    const now = Date.now();
    const name = seq(set(seq(oid("2.5.4.3"), utf8(o.name))));
    const serial = certificateSerial(randomBytes(16));
    const san = seq(oid("2.5.29.17"), der(0x04, seq(der(0x82, Buffer.from(o.name, "ascii")))));
    const keyId = seq(oid("2.5.29.14"), der(0x04, der(0x04, createHash("sha1").update(spki).digest())));
    const tbs = seq(
        der(0xa0, der(0x02, Buffer.from([2]))), // version 3
        der(0x02, serial),
        ECDSA_SHA256,
        name,
        seq(utcTime(new Date(now - 3600_000)), utcTime(new Date(now + o.days * 86400_000))),
        name,
        spki,
        der(0xa3, seq(san, keyId)),
    );
    const signature = sign("sha256", tbs, privateKey);
    const cert = seq(tbs, ECDSA_SHA256, der(0x03, Buffer.concat([Buffer.from([0]), signature])));
    const certPem = `-----BEGIN CERTIFICATE-----\n${cert
        .toString("base64")
        .match(/.{1,64}/g)!
        .join("\n")}\n-----END CERTIFICATE-----\n`;
    return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}
