// Validators of single config values. Each carries the "expected ..." text its error shows.
import { z } from "zod";
import { DURATION } from "../images/gateway/controller/rules";

/** A DNS label: the only service names Consul DNS and HAProxy both accept (the gateway's DNS_LABEL, at most 32 characters here). */
export const SERVICE_NAME_PATTERN = /^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$/;
/** Versions are `v` and a number, so `hello-v1` is always service `hello`, version `v1`. */
export const VERSION_PATTERN = /^v[0-9]{1,4}$/;
/** The HAProxy time format the gateway accepts for the timeout keys (one pattern, the gateway's:
 * controller/rules.ts): non-zero, and below HAProxy's limit of 2^31 ms, so `haproxy -c` never
 * rejects a valid setting. */
export const DURATION_PATTERN = DURATION;
const IPV4_PATTERN = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

export const intIn = (min: number, max: number, allowed = `an integer from ${min} to ${max}`) => {
    return z.number({ error: allowed }).int({ error: allowed }).min(min, { error: allowed }).max(max, { error: allowed });
};
export const port = intIn(1, 65535);
export const matching = (pattern: RegExp, allowed: string) => z.string({ error: allowed }).regex(pattern, { error: allowed });
export const duration = matching(DURATION_PATTERN, "a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d");
export const ipv4 = matching(IPV4_PATTERN, "an IPv4 address such as 127.0.0.1 or 0.0.0.0");
const SSH_HOST_KEY = "an OpenSSH public key line such as ssh-ed25519 AAAA... (ssh-keyscan or /etc/ssh/ssh_host_ed25519_key.pub on the host)";
/** Whether `line` is `<type> <base64>[ comment]` whose base64 is a key blob of that very type (its first field). */
export function isOpensshPublicKey(line: string): boolean {
    const m = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) ([A-Za-z0-9+/]{40,2000}={0,2})( [^\n]{0,100})?$/.exec(line);
    if (!m) return false;
    const blob = Buffer.from(m[2]!, "base64");
    if (blob.length < 4) return false;
    const length = blob.readUInt32BE(0);
    return length === m[1]!.length && blob.subarray(4, 4 + length).toString("latin1") === m[1];
}
/** An SSH host key (hosts[i].hostKey): one OpenSSH public key line whose key blob matches its type. */
export const sshHostKey = z.string({ error: SSH_HOST_KEY }).refine(isOpensshPublicKey, { error: SSH_HOST_KEY });
export const lowercaseName = matching(/^[a-z][a-z0-9-]{0,30}$/, "a lowercase name: a-z first, then a-z 0-9 -");

/** An IPv4 CIDR block taken apart: the address as written, as a number, and the prefix length. */
export interface Cidr {
    readonly base: string;
    readonly address: number;
    readonly prefix: number;
}

/** The one parser of CIDR blocks (`a.b.c.d/n`, n up to 32); undefined when `text` is not one. */
export function parseCidr(text: string): Cidr | undefined {
    const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
    if (!m || !IPV4_PATTERN.test(m[1]) || Number(m[2]) > 32) return undefined;
    return { base: m[1], address: m[1].split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0), prefix: Number(m[2]) };
}

/** The dotted form of a 32-bit IPv4 address. */
export function formatIpv4(address: number): string {
    return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

/** Whether the block's address is its first one (no host bits set). */
export const aligned = (block: Cidr): boolean => block.address % 2 ** (32 - block.prefix) === 0;

/** A CIDR block that also passes `ok`; `notText` is shown for a value that is not even a string. */
export const cidrBlock = (allowed: string, ok: (block: Cidr) => boolean = () => true, notText = allowed) =>
    z.string({ error: notText }).refine(
        (v) => {
            const block = parseCidr(v);
            return block !== undefined && ok(block);
        },
        { error: allowed },
    );
export const cidr = cidrBlock("an IPv4 CIDR block such as 203.0.113.0/24");

// Images: registry/repository[:tag][@digest]; a tag or a digest is required (no floating `latest`).
export const imageRef = matching(
    /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/,
    "an image reference with a pinned tag or digest, such as hashicorp/consul:1.16.3",
).refine((v) => /(:[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[a-f0-9]{64})$/.test(v.replace(/^[^/]*:[0-9]+\//, "")) && !v.endsWith(":latest"), {
    error: "an image reference with a pinned tag or digest (not :latest), such as hashicorp/consul:1.16.3",
});
export const buildPath = matching(/^[A-Za-z0-9_./-]{1,200}$/, "a build context folder relative to the project, such as components/images/hello").refine(
    (v) => !v.startsWith("/") && !v.split("/").includes(".."),
    {
        error: "a build context folder inside the project (relative, no ..), such as components/images/hello",
    },
);

/** The keys of an object schema as its errors list them: required ones, then "and optionally" the rest. */
export function keyList(shape: Readonly<Record<string, z.ZodType>>): string {
    const keys = Object.keys(shape);
    const required = keys.filter((k) => !shape[k].safeParse(undefined).success);
    const optional = keys.filter((k) => !required.includes(k));
    if (required.length === 0) return optional.join(", ");
    return optional.length === 0 ? required.join(", ") : `${required.join(", ")} and optionally ${optional.join(", ")}`;
}

/**
 * An object of the config with exactly the keys of `shape`. Its error (unknown key or not an
 * object) lists those keys; with `notAnObject`, that text is shown for a non-object instead and
 * an unknown key is answered with the bare list of keys.
 */
export function section<S extends Readonly<Record<string, z.ZodType>>>(shape: S, notAnObject?: string) {
    const listed = `an object with ${keyList(shape)}`;
    const unknownKey = notAnObject === undefined ? listed : `only the keys ${Object.keys(shape).join(", ")}`;
    return z.strictObject(shape, { error: (issue) => (issue.code === "unrecognized_keys" ? unknownKey : (notAnObject ?? listed)) });
}
