// Certificates from an ACME CA (Let's Encrypt by default), ordered and renewed by the gateways
// themselves and shared by all of them through Consul KV (docs/security.md, "TLS at the edge"):
// - every gateway looks at the certificate in KV (tls/certificates/acme/) at start and every
//   GATEWAY_ACME_CHECK_SECONDS; when it is missing, does not cover the hosts, or expires within
//   the renewal window, the gateway tries to take the lock tls/acme/lock with a Consul session.
//   One gateway at a time orders; the others keep serving and look again later;
// - the holder answers the CA's HTTP-01 challenges through KV (tls/acme/challenges/<token>): every
//   gateway serves them from a map HAProxy changes at run time, so the CA may reach any replica;
// - the certificate and its key (sealed) are written in one transaction that only passes while
//   the session still holds the lock: a holder that stalled and lost it writes nothing. If the
//   holder dies, its session lapses (TTL) and the lock passes to another gateway;
// - a failure keeps the certificate in use, counts in /metrics/controller, is logged, and the
//   order is tried again with back-off.
// The ACME protocol is acme-client's (RFC 8555: accounts, orders, JWS, nonces, retries): a
// well-kept library used widely, pure JavaScript, bundled into the controller.
import * as acme from "acme-client";
import { generateKeyPairSync } from "node:crypto";
import * as fs from "node:fs";
import * as https from "node:https";
import * as tls from "node:tls";
import { parseCertificate } from "./certificates";
import { ConsulApi } from "./consul-api";
import type { AcmeSettings } from "./env";
import type { ControllerMetrics } from "./metrics";
import { KV_PREFIX, TLS_KV } from "./rules";
import { seal, unseal } from "./sealed";
import type { ConsulConnection } from "./watch";

/** The lock's session lapses this long after the holder stops renewing it (Consul: up to twice that). */
export const SESSION_TTL_SECONDS = 10;
/** After the holder's own gateway serves a challenge, the other replicas get this long to follow KV. */
const PROPAGATION_MS = 1500;
/** The first retry after a failure; doubled each time, at most the check interval. */
const RETRY_MIN_SECONDS = 30;

export interface AcmeOptions {
    readonly settings: AcmeSettings;
    readonly sealingKey: Buffer;
    readonly consul: ConsulConnection;
    /** This gateway among its replicas (the lock's holder, in logs). */
    readonly name: string;
    readonly metrics: ControllerMetrics;
    readonly log: (line: string) => void;
    /** The ACME tokens this gateway's HAProxy answers now (the running model's challenges). */
    readonly served: () => ReadonlySet<string>;
}

const full = (rel: string): string => `${KV_PREFIX}/${rel}`;

/** What to do about the certificate in KV: nothing until `renewAt`, or order now (and why). */
export function certificateDue(
    chain: string | undefined,
    keyPem: string | undefined,
    hosts: readonly string[],
    renewBeforeSeconds: number,
    nowMs: number,
): { due: false; renewAtMs: number; serial: string } | { due: true; why: string } {
    if (chain === undefined || keyPem === undefined) return { due: true, why: "no certificate yet" };
    const p = parseCertificate(chain, keyPem, nowMs);
    if (!p.ok) return { due: true, why: `the certificate in KV ${p.why}` };
    const missing = hosts.filter((h) => !p.cert.hosts.includes(h));
    if (missing.length > 0) return { due: true, why: `the certificate does not cover ${missing.join(", ")}` };
    const renewAtMs = p.cert.notAfterMs - renewBeforeSeconds * 1000;
    if (renewAtMs <= nowMs) return { due: true, why: `the certificate expires on ${new Date(p.cert.notAfterMs).toISOString()}: renewal due` };
    return { due: false, renewAtMs, serial: p.cert.serial };
}

export class AcmeManager {
    private readonly api: ConsulApi;
    private timer: NodeJS.Timeout | undefined;
    private running = false;
    private stopped = false;
    private failures = 0;
    private waitingLogged = false;

    constructor(private readonly o: AcmeOptions) {
        this.api = new ConsulApi(o.consul);
        // acme-client retries a request that got no answer 5 times, 5 s apart and more (75 s):
        // a CA that is down would be seen only minutes later. Fewer, shorter retries here; the
        // order itself is tried again with back-off (check()), and a CA's Retry-After still wins.
        const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
        if (settings) Object.assign(settings, { retryMaxAttempts: 3, retryDefaultDelay: 2 });
        if (o.settings.caFile) {
            // The directory's HTTPS certificate may chain to this CA too (a private ACME CA).
            const ca = [...tls.rootCertificates, fs.readFileSync(o.settings.caFile, "utf8")];
            acme.axios.defaults.httpsAgent = new https.Agent({ ca, keepAlive: true });
        }
    }

    /** The first look in `delayMs`, then on its own schedule. */
    start(delayMs = 0): void {
        this.schedule(delayMs);
    }

    async stop(): Promise<void> {
        this.stopped = true;
        if (this.timer) clearTimeout(this.timer);
        await this.api.close().catch(() => undefined);
    }

    private schedule(ms: number): void {
        if (this.stopped) return;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.check(), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    }

    /** Looks at the certificate in KV; orders when it is due and this gateway gets the lock. */
    private async check(): Promise<void> {
        if (this.running || this.stopped) return;
        this.running = true;
        const s = this.o.settings;
        let next = s.checkSeconds * 1000;
        try {
            const state = await this.current();
            if (!state.due) {
                this.failures = 0;
                this.waitingLogged = false;
                next = Math.min(next, state.renewAtMs - Date.now());
            } else {
                const outcome = await this.orderUnderLock(state.why);
                if (outcome === "held") next = Math.min(next, RETRY_MIN_SECONDS * 1000);
                else this.failures = 0;
            }
        } catch (err) {
            this.failures++;
            this.o.metrics.acme.orders++;
            this.o.metrics.acme.failures++;
            this.o.metrics.acme.lastFailureMs = Date.now();
            next = Math.min(next, RETRY_MIN_SECONDS * 1000 * 2 ** (this.failures - 1));
            this.o.log(
                `gateway: ACME: ordering a certificate for ${s.hosts.join(", ")} from ${s.directoryUrl} failed (${oneLine(err)}); the certificate in use is kept; next attempt in ${Math.round(next / 1000)} s`,
            );
        } finally {
            this.running = false;
        }
        this.schedule(next);
    }

    /** The certificate in KV (consistent reads: another replica may have just written it). */
    private async current(): Promise<ReturnType<typeof certificateDue>> {
        const name = TLS_KV.acmeCertificate;
        const [chain, sealed] = await Promise.all([this.api.get(full(TLS_KV.chain(name))), this.api.get(full(TLS_KV.key(name)))]);
        let keyPem: string | undefined;
        if (sealed !== undefined) {
            try {
                keyPem = unseal(this.o.sealingKey, full(TLS_KV.key(name)), sealed);
            } catch (err) {
                return { due: true, why: `its key in KV cannot be unsealed (${oneLine(err)})` };
            }
        }
        const s = this.o.settings;
        return certificateDue(chain, keyPem, s.hosts, s.renewBeforeSeconds, Date.now());
    }

    /** "held": another gateway holds the lock; "done": the certificate is in KV (ordered here, or by another meanwhile). */
    private async orderUnderLock(why: string): Promise<"held" | "done"> {
        const session = await this.api.createSession(`gateway ACME lock: ${this.o.name}`, SESSION_TTL_SECONDS);
        let renewing: NodeJS.Timeout | undefined;
        let lost = false;
        try {
            if (!(await this.api.acquire(full(TLS_KV.acmeLock), session, this.o.name))) {
                if (!this.waitingLogged)
                    this.o.log(
                        `gateway: ACME: ${why}; another gateway holds the lock (${KV_PREFIX}/${TLS_KV.acmeLock}) and orders: waiting for its certificate`,
                    );
                this.waitingLogged = true;
                return "held";
            }
            renewing = setInterval(
                () =>
                    void this.api.renewSession(session).then(
                        (ok) => (lost ||= !ok),
                        () => undefined,
                    ),
                (SESSION_TTL_SECONDS * 1000) / 3,
            );
            // Another replica may have finished while this one waited for the lock.
            const again = await this.current();
            if (!again.due) return "done";
            this.o.log(`gateway: ACME: ${why}; this gateway (${this.o.name}) holds the lock and orders from ${this.o.settings.directoryUrl}`);
            await this.order(session, () => lost);
            return "done";
        } finally {
            if (renewing) clearInterval(renewing);
            await this.api.release(full(TLS_KV.acmeLock), session).catch(() => undefined);
            await this.api.destroySession(session).catch(() => undefined);
        }
    }

    /** One order, from the account to the certificate in KV. */
    private async order(session: string, lost: () => boolean): Promise<void> {
        const s = this.o.settings;
        const started = Date.now();
        const assertHeld = (): void => {
            if (lost()) throw new Error(`the lock's session lapsed during the order: another gateway may order now`);
        };
        // Challenges of orders whose holder died: nobody serves them any more.
        for (const k of await this.api.keys(full(TLS_KV.acmeChallenges))) await this.api.delete(k);

        const client = new acme.Client({
            directoryUrl: s.directoryUrl,
            accountKey: await this.accountKey(),
            ...(s.eabKid ? { externalAccountBinding: { kid: s.eabKid, hmacKey: await this.eabHmacKey() } } : {}),
        });
        await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${s.email}`] });
        const order = await client.createOrder({ identifiers: s.hosts.map((value) => ({ type: "dns", value })) });
        const authorizations = await client.getAuthorizations(order);
        const written: string[] = [];
        try {
            const pending: { authz: acme.Authorization; challenge: acme.Authorization["challenges"][number] }[] = [];
            for (const authz of authorizations) {
                if (authz.status === "valid") continue;
                const challenge = authz.challenges.find((c) => c.type === "http-01");
                if (!challenge) throw new Error(`the CA offers no http-01 challenge for ${authz.identifier.value}`);
                const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
                const key = full(TLS_KV.acmeChallenge(challenge.token));
                await this.api.put(key, keyAuthorization);
                written.push(key);
                pending.push({ authz, challenge });
            }
            // Served here first (proof that KV reached HAProxy), then a moment for the other replicas.
            const tokens = pending.map((p) => p.challenge.token);
            const deadline = Date.now() + 30_000;
            while (!tokens.every((t) => this.o.served().has(t))) {
                if (Date.now() > deadline) throw new Error("this gateway's HAProxy did not serve the challenges within 30 s");
                await sleep(100);
            }
            if (pending.length > 0) await sleep(PROPAGATION_MS);
            assertHeld();
            for (const p of pending) await client.completeChallenge(p.challenge);
            for (const p of pending) await client.waitForValidStatus(p.authz);

            const certKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
            const [, csr] = await acme.crypto.createCsr({ commonName: s.hosts[0]!, altNames: [...s.hosts] }, certKey);
            await client.finalizeOrder(order, csr);
            const chain = await client.getCertificate(order);
            const parsed = parseCertificate(chain, certKey, Date.now());
            if (!parsed.ok) throw new Error(`the CA's certificate ${parsed.why}`);
            assertHeld();
            const name = TLS_KV.acmeCertificate;
            // Fenced: written only while this session still holds the lock, both or neither.
            await this.api.txn([
                { verb: "check-session", key: full(TLS_KV.acmeLock), session },
                { verb: "set", key: full(TLS_KV.chain(name)), value: chain },
                { verb: "set", key: full(TLS_KV.key(name)), value: seal(this.o.sealingKey, full(TLS_KV.key(name)), certKey) },
            ]);
            this.o.metrics.acme.orders++;
            this.o.metrics.acme.lastSuccessMs = Date.now();
            this.o.log(
                `gateway: ACME: certificate for ${s.hosts.join(", ")} obtained in ${((Date.now() - started) / 1000).toFixed(1)} s (serial ${parsed.cert.serial}, expires ${new Date(parsed.cert.notAfterMs).toISOString()}); written to ${KV_PREFIX}/${TLS_KV.certificates}${name}/ for every gateway`,
            );
        } finally {
            for (const key of written) await this.api.delete(key).catch(() => undefined);
        }
    }

    /** The account's key, sealed in KV: made once, by the first gateway that orders. */
    private async accountKey(): Promise<string> {
        const key = full(TLS_KV.acmeAccountKey);
        const sealed = await this.api.get(key);
        if (sealed !== undefined && sealed !== "") return unseal(this.o.sealingKey, key, sealed);
        const pem = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
        await this.api.put(key, seal(this.o.sealingKey, key, pem));
        this.o.log(`gateway: ACME: new account key, sealed in ${key}`);
        return pem;
    }

    private async eabHmacKey(): Promise<string> {
        const key = full(TLS_KV.acmeEabHmacKey);
        const sealed = await this.api.get(key);
        if (sealed === undefined || sealed === "") throw new Error(`GATEWAY_ACME_EAB_KID is set but ${key} holds no EAB HMAC key (gatewayAcmeEabHmacKey)`);
        return unseal(this.o.sealingKey, key, sealed).trim();
    }
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** An error in one line; the CA's problem documents (RFC 7807: an invalid authorization, its challenges' errors) by their details. */
function oneLine(err: unknown): string {
    let text = String((err as { message?: string })?.message ?? err);
    try {
        const j = JSON.parse(text) as { detail?: string; status?: string; identifier?: { value?: string }; challenges?: { error?: { detail?: string } }[] };
        const details = [j.detail, ...(j.challenges ?? []).map((c) => c.error?.detail)].filter((d): d is string => typeof d === "string");
        if (details.length > 0) text = `${j.identifier?.value ? `${j.identifier.value}: ` : ""}${j.status ? `${j.status}: ` : ""}${details.join("; ")}`;
    } catch {
        /* not JSON: as it is */
    }
    return text.replace(/\s+/g, " ").slice(0, 400);
}
