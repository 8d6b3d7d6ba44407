// The local target needs no address the host owns: service containers publish nothing and
// Registrator registers each container's own address (-internal); several nodes keep the node
// address and a published port. Docker Desktop cannot publish on the bridge's gateway address.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { ConfigError, dockerfileExposes, parseSettings, RawConfig } from "../../components/config";
import { registersContainerAddresses } from "../../components/nodes";
import { Declared } from "../support/mocks";
import { devWith, evaluate, isSecret, Program, secretValue, stackConfig } from "../support/program";

function command(c: Declared): string[] {
    return (isSecret(c.inputs.command) ? secretValue(c.inputs.command) : c.inputs.command) as string[];
}

const serviceContainers = (p: Program): Declared[] => p.containers().filter((c) => /-hello-v[0-9]+-[0-9]+-[0-9a-f]{8}$/.test(String(c.inputs.name)));
const registrators = (p: Program): Declared[] => p.containers().filter((c) => String(c.inputs.name).endsWith("-registrator"));

function raw(overrides: Record<string, unknown>): RawConfig {
    const out: RawConfig = {};
    for (const [key, value] of Object.entries(stackConfig("dev"))) out[key.slice("service-discovery:".length)] = value;
    for (const [key, value] of Object.entries(overrides)) out[key] = JSON.stringify(value);
    return out;
}

describe("local target: no host-owned address", () => {
    let local: Program;
    let multi: Program;
    before(async () => {
        [local, multi] = await Promise.all([evaluate(devWith({})), evaluate(devWith({ target: "virtualbox", nodeCount: 2 }))]);
        assert.equal(local.error, null);
        assert.equal(multi.error, null);
    });

    it("registers container addresses only on local", () => {
        assert.deepEqual(
            ["local", "virtualbox", "hosts", "aws"].map((t) => registersContainerAddresses(t as never)),
            [true, false, false, false],
        );
    });

    it("local: no service container publishes a port, and Registrator runs with -internal, without -ip", () => {
        const services = serviceContainers(local);
        assert.equal(services.length, 3);
        for (const c of services) assert.equal(c.inputs.ports, undefined, `${c.inputs.name} publishes nothing`);
        const [r] = registrators(local);
        const args = command(r);
        assert.ok(args.includes("-internal"), args.join(" "));
        assert.equal(args.filter((a) => a.startsWith("-ip")).length, 0, `no -ip: ${args.join(" ")}`);
        assert.ok(args.indexOf("-internal") < args.length - 1, "flags come before the registry URI");
    });

    it("several nodes: each replica publishes its port on the node address, Registrator registers that address", () => {
        const services = serviceContainers(multi);
        assert.equal(services.length, 3);
        for (const c of services) {
            const ports = c.inputs.ports as { internal: number; ip: string; protocol: string; external?: number }[];
            assert.equal(ports.length, 1, `${c.inputs.name}`);
            assert.equal(ports[0].internal, 8080);
            assert.equal(ports[0].external, undefined, "Docker picks the host port");
            assert.match(ports[0].ip, /^192\.168\.99\.10[12]$/, "bound to the node address");
        }
        for (const r of registrators(multi)) {
            const args = command(r);
            assert.match(args[0], /^-ip=192\.168\.99\.10[12]$/);
            assert.ok(!args.includes("-internal"), args.join(" "));
        }
    });

    // Upgrading a dev stack whose replicas still publish ports replaces them (ports are fixed at
    // creation): a new generation, so a new name, created before the old container is removed.
    it("replicas are replaced create-first: the ports are part of their generation", () => {
        const all = [...serviceContainers(local), ...serviceContainers(multi)];
        assert.equal(all.length, 6);
        for (const c of all) assert.equal(c.deleteBeforeReplace, false, `${c.inputs.name}`);
        for (const l of serviceContainers(local)) {
            const m = multi.containers().find((c) => c.inputs.hostname === l.inputs.hostname)!;
            assert.notEqual(m.inputs.name, l.inputs.name, `${l.inputs.hostname}: published ports, another generation`);
        }
    });
});

describe("local target: the gateway reaches the port the image exposes", () => {
    it("reads EXPOSE instructions", () => {
        assert.equal(dockerfileExposes("FROM x\nEXPOSE 8080\n", 8080), true);
        assert.equal(dockerfileExposes("FROM x\n  expose 9000/tcp 8080/tcp\n", 8080), true);
        assert.equal(dockerfileExposes("FROM x\nEXPOSE 8080/udp\n", 8080), false, "udp is not the routed port");
        assert.equal(dockerfileExposes("FROM x\nEXPOSE 80\n", 8080), false);
        assert.equal(dockerfileExposes("FROM x\n# EXPOSE 8080\n", 8080), false, "a comment exposes nothing");
        assert.equal(dockerfileExposes("FROM x\n", 8080), false);
        assert.equal(dockerfileExposes("FROM x\nARG P=8080\nEXPOSE ${P}\n", 8080), undefined, "a variable is resolved only by a build");
    });

    it("refuses a built service whose Dockerfile does not expose containerPort on local, not on other targets", () => {
        const service = { name: "hello", version: "v1", build: "components/images/hello", containerPort: 9090 };
        assert.throws(
            () => parseSettings(raw({ services: [service] }), "dev"),
            (e: unknown) => {
                assert.ok(e instanceof ConfigError);
                assert.equal(
                    e.message,
                    "service-discovery:services[0].containerPort: 9090 is not allowed; expected a port components/images/hello/Dockerfile exposes (add EXPOSE 9090): on target local the gateway reaches the container's exposed port, nothing is published",
                );
                return true;
            },
        );
        assert.equal(parseSettings(raw({ services: [{ ...service, containerPort: 8080 }] }), "dev").services[0].containerPort, 8080);
        const vbox = parseSettings(raw({ target: "virtualbox", nodeCount: 2, services: [service] }), "dev");
        assert.equal(vbox.services[0].containerPort, 9090, "published explicitly there");
    });
});
