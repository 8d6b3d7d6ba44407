// Gives one Consul agent its ACL token: PUT /v1/agent/token/agent on the agent's HTTPS API, the
// way HashiCorp's own installers do it for servers (a server's token can only be created once
// the server runs). Run by Pulumi (command.local.Command in components/consul-acl.ts) on the
// machine running `pulumi up`; the agent persists the token in its data dir
// (acl.enable_token_persistence), so a restart keeps it.
// Everything comes from the environment, so no secret is ever on a command line:
//   CONSUL_HTTP_ADDR    https://host:port of the agent
//   CONSUL_CACERT_PEM   the CA its certificate is signed by (PEM)
//   CONSUL_HTTP_TOKEN   a token allowed to set agent tokens (acl write)
//   CONSUL_AGENT_TOKEN  the token to set
//   CONSUL_NODE         the agent's node name (messages only)
//   TIMEOUT_SECONDS     how long to keep trying while the agent or its servers start (180)
import https from "node:https";

const env = process.env;
for (const key of ["CONSUL_HTTP_ADDR", "CONSUL_CACERT_PEM", "CONSUL_HTTP_TOKEN", "CONSUL_AGENT_TOKEN"]) {
    if (!env[key]) {
        console.error(`consul-agent-token: ${key} is not set`);
        process.exit(2);
    }
}
const node = env.CONSUL_NODE || "the agent";
const deadline = Date.now() + Number(env.TIMEOUT_SECONDS || 180) * 1000;
const url = new URL("/v1/agent/token/agent", env.CONSUL_HTTP_ADDR);

function put() {
    return new Promise((resolve) => {
        const body = JSON.stringify({ Token: env.CONSUL_AGENT_TOKEN });
        const req = https.request(
            url,
            {
                method: "PUT",
                ca: env.CONSUL_CACERT_PEM,
                headers: { "X-Consul-Token": env.CONSUL_HTTP_TOKEN, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) },
                timeout: 10_000,
            },
            (res) => {
                let text = "";
                res.on("data", (d) => (text += d));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, text: text.trim() }));
            },
        );
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", (e) => resolve({ status: 0, text: e.message }));
        req.end(body);
    });
}

let last = "";
for (;;) {
    const { status, text } = await put();
    if (status === 200) {
        console.log(`consul-agent-token: agent token of ${node} set`);
        process.exit(0);
    }
    last = status === 0 ? text : `HTTP ${status}: ${text}`;
    // A TLS failure will not fix itself: the CA or the address is wrong.
    if (/certificate|self.signed|altnames|SSL|TLS/i.test(text) && status === 0) break;
    // 403 "ACL not found"/"Permission denied" also while the servers still elect a leader.
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
}
console.error(`consul-agent-token: cannot set the agent token of ${node} at ${url.origin}: ${last}`);
process.exit(1);
