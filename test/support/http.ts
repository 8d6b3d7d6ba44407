// The tests' HTTP client: one request, a new connection each time unless told otherwise, the
// whole body as text. Over TCP, TLS (with a given CA) or a UNIX socket.
import * as http from "node:http";
import * as https from "node:https";

export interface HttpResult {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

export interface HttpOptions {
    method?: string;
    body?: string | Buffer;
    headers?: http.OutgoingHttpHeaders;
    /** Idle time before the request is given up; default 5 s. */
    timeoutMs?: number;
    /** Default: a new connection per request (false), so each request sees the current server process. */
    agent?: http.Agent | false;
    /** https:// URLs: the CA to verify the server with (PEM). */
    ca?: string;
    /** Send the request over this UNIX socket (the URL's host is then only the Host header). */
    socketPath?: string;
}

export function httpRequest(url: string, opts: HttpOptions = {}): Promise<HttpResult> {
    return new Promise((resolve, reject) => {
        const request = url.startsWith("https:") ? https.request : http.request;
        const timeoutMs = opts.timeoutMs ?? 5000;
        const req = request(
            url,
            {
                method: opts.method ?? "GET",
                headers: opts.headers,
                agent: opts.agent ?? false,
                ...(opts.ca ? { ca: opts.ca } : {}),
                ...(opts.socketPath ? { socketPath: opts.socketPath } : {}),
            },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
                res.on("error", reject);
            },
        );
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)));
        req.on("error", reject);
        if (opts.body !== undefined) req.write(opts.body);
        req.end();
    });
}
