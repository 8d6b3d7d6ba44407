// Stack config validation: each invalid value fails with one message naming the key, the value
// and what is allowed. (Valid input and the typed settings it becomes: config.test.ts.)
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSettings } from "../../components/config";
import { TEST_SSH_KEY as SSH_KEY } from "../support/program";
import { dev, rejects } from "./config-support";

const helloV1 = { name: "hello", version: "v1", build: "components/images/hello" };

describe("config: invalid values", () => {
    const cases: [string, Record<string, unknown>, string][] = [
        [
            "unknown key",
            { gatway: "{}" },
            "service-discovery:gatway: unknown config key; allowed keys: target, nodeCount, edgeNodes, hosts, virtualbox, aws, buildNetwork, network, consul, registrator, gateway, haproxy, statsUser, statsPassword, consulEncryptKey, consulManagementToken, gatewayTlsCertificate, gatewayTlsPrivateKey, gatewayAcmeEabHmacKey, services",
        ],
        ["target", { target: "gcp" }, 'service-discovery:target: "gcp" is not allowed; expected local, virtualbox, hosts or aws'],
        ["nodeCount not a number", { nodeCount: "many" }, 'service-discovery:nodeCount: "many" is not allowed; expected an integer from 1 to 100'],
        [
            "nodeCount on local",
            { nodeCount: 3 },
            "service-discovery:nodeCount: 3 is not allowed; expected 1 for target local (one Docker engine is one node; use virtualbox, hosts or aws for more)",
        ],
        ["nodeCount zero", { target: "virtualbox", nodeCount: 0 }, "service-discovery:nodeCount: 0 is not allowed; expected an integer from 1 to 100"],
        ["nodeCount too large", { target: "aws", nodeCount: 101 }, "service-discovery:nodeCount: 101 is not allowed; expected an integer from 1 to 100"],
        [
            "even server count",
            { target: "virtualbox", nodeCount: 4, consul: { servers: 2 } },
            "service-discovery:consul.servers: 2 is not allowed; expected 1, 3, 5 or 7 (an odd number keeps a quorum)",
        ],
        [
            "more servers than nodes",
            { target: "virtualbox", nodeCount: 2, consul: { servers: 3 } },
            "service-discovery:consul.servers: 3 is not allowed; expected at most nodeCount (2), and odd",
        ],
        [
            "edge node out of range",
            { target: "virtualbox", nodeCount: 2, edgeNodes: [1, 3] },
            "service-discovery:edgeNodes[1]: 3 is not allowed; expected a node number from 1 to 2",
        ],
        [
            "edge node twice",
            { target: "virtualbox", nodeCount: 2, edgeNodes: [2, 2] },
            "service-discovery:edgeNodes[1]: 2 is not allowed; expected each node number once",
        ],
        [
            "no edge nodes",
            { target: "virtualbox", nodeCount: 2, edgeNodes: [] },
            "service-discovery:edgeNodes: [] is not allowed; expected a non-empty list of node numbers (1-based)",
        ],
        [
            "admin CIDR",
            { target: "aws", aws: { adminCidr: "10.0.0.0/33", publicKey: SSH_KEY } },
            'service-discovery:aws.adminCidr: "10.0.0.0/33" is not allowed; expected an IPv4 CIDR block such as 203.0.113.0/24',
        ],
        [
            "admin CIDR open to the world",
            { target: "aws", aws: { adminCidr: "0.0.0.0/0", publicKey: SSH_KEY } },
            'service-discovery:aws.adminCidr: "0.0.0.0/0" is not allowed; expected a CIDR block narrower than /0 (only the gateway port is open to the world)',
        ],
        [
            "preview CIDR open to the world",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, previewCidr: "0.0.0.0/0" } },
            'service-discovery:aws.previewCidr: "0.0.0.0/0" is not allowed; expected a CIDR block narrower than /0, such as 198.51.100.7/32 (the preview runners\' addresses)',
        ],
        [
            "an outbound rule twice",
            {
                target: "aws",
                aws: {
                    adminCidr: "203.0.113.7/32",
                    publicKey: SSH_KEY,
                    egress: [
                        { cidr: "10.1.0.0/16", port: 5432 },
                        { cidr: "10.1.0.0/16", port: 5432, protocol: "tcp" },
                    ],
                },
            },
            'service-discovery:aws.egress[1]: {"cidr":"10.1.0.0/16","port":5432,"protocol":"tcp"} is not allowed; expected each outbound rule once (also at aws.egress[0])',
        ],
        [
            "an outbound rule the nodes have already",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, egress: [{ cidr: "0.0.0.0/0", port: 443 }] } },
            'service-discovery:aws.egress[0]: {"cidr":"0.0.0.0/0","port":443,"protocol":"tcp"} is not allowed; expected a rule the nodes do not have already (tcp 443 and 80 to anywhere are always allowed)',
        ],
        [
            "an outbound rule without a port",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, egress: [{ cidr: "10.1.0.0/16" }] } },
            "service-discovery:aws.egress[0].port: missing is not allowed; expected an integer from 1 to 65535",
        ],
        [
            "VPC CIDR",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, vpcCidr: "10.42.0.0" } },
            'service-discovery:aws.vpcCidr: "10.42.0.0" is not allowed; expected an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16 (VPCs allow /16-/28; subnets are /+4)',
        ],
        [
            "VPC CIDR too large",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, vpcCidr: "10.0.0.0/8" } },
            'service-discovery:aws.vpcCidr: "10.0.0.0/8" is not allowed; expected an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16 (VPCs allow /16-/28; subnets are /+4)',
        ],
        [
            "VPC CIDR not aligned",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, vpcCidr: "10.42.1.0/16" } },
            'service-discovery:aws.vpcCidr: "10.42.1.0/16" is not allowed; expected an aligned IPv4 block from /16 to /24 such as 10.42.0.0/16 (VPCs allow /16-/28; subnets are /+4)',
        ],
        [
            "public key",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: "my key" } },
            'service-discovery:aws.publicKey: "my key" is not allowed; expected an SSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...)',
        ],
        [
            "instance type",
            { target: "aws", aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY, instanceType: "large" } },
            'service-discovery:aws.instanceType: "large" is not allowed; expected an EC2 instance type such as t3.small',
        ],
        [
            "hosts on local",
            { hosts: [{ name: "a", host: "ssh://u@h", address: "10.0.0.5" }] },
            "service-discovery:hosts: a list is not allowed; expected no hosts for target local (hosts is for target hosts)",
        ],
        [
            "empty host list",
            { target: "hosts", hosts: [] },
            "service-discovery:hosts: [] is not allowed; expected a non-empty list of Docker hosts for target hosts",
        ],
        [
            "host count mismatch",
            { target: "hosts", nodeCount: 3, hosts: [{ name: "a", host: "ssh://u@h", address: "10.0.0.5" }] },
            "service-discovery:nodeCount: 3 is not allowed; expected 1 (the number of hosts) or no nodeCount for target hosts",
        ],
        [
            "plain tcp host",
            { target: "hosts", hosts: [{ name: "a", host: "tcp://10.0.0.5:2375", address: "10.0.0.5" }] },
            "service-discovery:hosts[0].certPath: missing is not allowed; expected the TLS certificate folder for tcp://10.0.0.5:2375 (plain TCP Docker endpoints are refused)",
        ],
        [
            "host endpoint",
            { target: "hosts", hosts: [{ name: "a", host: "http://10.0.0.5", address: "10.0.0.5" }] },
            'service-discovery:hosts[0].host: "http://10.0.0.5" is not allowed; expected a Docker endpoint tcp://host:port or ssh://user@host[:port]',
        ],
        [
            "host address",
            { target: "hosts", hosts: [{ name: "a", host: "ssh://u@h", address: "h" }] },
            'service-discovery:hosts[0].address: "h" is not allowed; expected an IPv4 address such as 127.0.0.1 or 0.0.0.0',
        ],
        [
            "replicas 0",
            { services: [{ ...helloV1, replicas: 0 }] },
            "service-discovery:services[0].replicas: 0 is not allowed; expected an integer from 1 to 50",
        ],
        [
            "replicas fraction",
            { services: [{ ...helloV1, replicas: 1.5 }] },
            "service-discovery:services[0].replicas: 1.5 is not allowed; expected an integer from 1 to 50",
        ],
        [
            "uppercase name",
            { services: [{ ...helloV1, name: "Hello" }] },
            'service-discovery:services[0].name: "Hello" is not allowed; expected a lowercase DNS label: a-z first, then a-z 0-9 -, at most 32 characters',
        ],
        [
            "slash in name (the 2015 naming)",
            { services: [{ ...helloV1, name: "hello/v1" }] },
            'service-discovery:services[0].name: "hello/v1" is not allowed; expected a lowercase DNS label: a-z first, then a-z 0-9 -, at most 32 characters',
        ],
        [
            "name with newline",
            { services: [{ ...helloV1, name: "a\nb" }] },
            'service-discovery:services[0].name: "a\\nb" is not allowed; expected a lowercase DNS label: a-z first, then a-z 0-9 -, at most 32 characters',
        ],
        [
            "name ending like a version",
            { services: [{ ...helloV1, name: "hello-v2", version: undefined }] },
            'service-discovery:services[0].name: "hello-v2" is not allowed; expected a name that does not end in -v<digits> (that suffix is how versions are named in Consul); use version instead',
        ],
        [
            "version",
            { services: [{ ...helloV1, version: "1.0" }] },
            'service-discovery:services[0].version: "1.0" is not allowed; expected v followed by 1 to 4 digits, such as v1',
        ],
        [
            "image and build",
            { services: [{ ...helloV1, image: "nginx:1.27" }] },
            'service-discovery:services[0].image: "nginx:1.27" is not allowed together with build; expected exactly one of image or build',
        ],
        [
            "neither image nor build",
            { services: [{ name: "hello" }] },
            'service-discovery:services[0]: service "hello" has neither image nor build; expected exactly one of image or build',
        ],
        [
            "floating image tag",
            { services: [{ name: "web", image: "nginx:latest" }] },
            'service-discovery:services[0].image: "nginx:latest" is not allowed; expected an image reference with a pinned tag or digest (not :latest), such as hashicorp/consul:1.16.3',
        ],
        [
            "image without tag",
            { services: [{ name: "web", image: "nginx" }] },
            'service-discovery:services[0].image: "nginx" is not allowed; expected an image reference with a pinned tag or digest (not :latest), such as hashicorp/consul:1.16.3',
        ],
        [
            "build outside the project",
            { services: [{ name: "web", build: "../elsewhere" }] },
            'service-discovery:services[0].build: "../elsewhere" is not allowed; expected a build context folder inside the project (relative, no ..), such as components/images/hello',
        ],
        [
            "unknown service key",
            { services: [{ ...helloV1, replica: 2 }] },
            "service-discovery:services[0].replica: an unknown key is not allowed; expected only the keys name, version, image, build, containerPort, replicas, healthCheckPath, protocol, hosts, listenPort, allowedCidrs, drainSeconds, weight, sticky, connectionsPerInstance, requestsPerClient, idleTimeout, maintenance, capAdd, readOnlyRootFilesystem, tmpfs, tmpfsMb, memoryMb, cpus, pidsLimit, sharedNetwork",
        ],
        [
            "protocol",
            { services: [{ ...helloV1, protocol: "udp" }] },
            'service-discovery:services[0].protocol: "udp" is not allowed; expected http (routed by URL path) or tcp (a gateway listener on listenPort)',
        ],
        [
            "health-check path",
            { services: [{ ...helloV1, healthCheckPath: "health" }] },
            'service-discovery:services[0].healthCheckPath: "health" is not allowed; expected a path starting with / (letters, digits, . _ ~ / -)',
        ],
        [
            "container port",
            { services: [{ ...helloV1, containerPort: 70000 }] },
            "service-discovery:services[0].containerPort: 70000 is not allowed; expected an integer from 1 to 65535",
        ],
        [
            "duplicate service version",
            { services: [helloV1, { ...helloV1, replicas: 3 }] },
            'service-discovery:services[1]: "hello-v1" is not allowed; expected each name and version once (also at services[0])',
        ],
        ["services not a list", { services: "hello" }, 'service-discovery:services: "hello" is not allowed; expected a list of services'],
        ["maxconn", { haproxy: { maxconn: "lots" } }, 'service-discovery:haproxy.maxconn: "lots" is not allowed; expected an integer from 1 to 1000000'],
        [
            "timeout with an injected directive",
            { haproxy: { timeouts: { client: "5s\n  stats uri /pwn" } } },
            'service-discovery:haproxy.timeouts.client: "5s\\n  stats uri /pwn" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "timeout beyond HAProxy's limit",
            { haproxy: { timeouts: { server: "30d" } } },
            'service-discovery:haproxy.timeouts.server: "30d" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "zero timeout",
            { haproxy: { timeouts: { connect: "0" } } },
            'service-discovery:haproxy.timeouts.connect: "0" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "unknown timeout",
            { haproxy: { timeouts: { tunnel: "1h" } } },
            "service-discovery:haproxy.timeouts.tunnel: an unknown key is not allowed; expected an object with connect, client, server, httpRequest, httpKeepAlive, tcpIdle",
        ],
        ["gateway port", { gateway: { httpPort: 0 } }, "service-discovery:gateway.httpPort: 0 is not allowed; expected an integer from 1 to 65535"],
        [
            "port clash",
            { gateway: { httpPort: 8501 } },
            "service-discovery:consul.httpsPort: 8501 is not allowed; expected a host port not already used by gateway.httpPort",
        ],
        [
            "bind address",
            { gateway: { bindAddress: "localhost" } },
            'service-discovery:gateway.bindAddress: "localhost" is not allowed; expected an IPv4 address such as 127.0.0.1 or 0.0.0.0',
        ],
        [
            "gateway bind address on several nodes: one address is on one node only",
            { target: "virtualbox", nodeCount: 2, gateway: { bindAddress: "192.168.99.101" } },
            `service-discovery:gateway.bindAddress: "192.168.99.101" is not allowed; expected no bindAddress (each node's own address, the default), 127.0.0.1 (the node's own clients only) or 0.0.0.0 (every address: firewall it, docs/security.md) for target virtualbox: one address cannot be on all 2 nodes`,
        ],
        [
            "Consul's API on the loopback off local: Pulumi could not reach it",
            { target: "hosts", hosts: [{ name: "a", host: "ssh://u@h", address: "10.0.0.5" }], consul: { bindAddress: "127.0.0.1" } },
            `service-discovery:consul.bindAddress: "127.0.0.1" is not allowed; expected no bindAddress (each node's own address, the default) or 0.0.0.0 (every address: firewall it, docs/security.md) for target hosts: Pulumi writes KV and ACLs through each node's address`,
        ],
        [
            "Consul bind address on several nodes",
            { target: "aws", nodeCount: 3, aws: { adminCidr: "203.0.113.7/32", publicKey: SSH_KEY }, consul: { bindAddress: "10.42.0.11" } },
            `service-discovery:consul.bindAddress: "10.42.0.11" is not allowed; expected no bindAddress (each node's own address, the default) or 0.0.0.0 (every address: firewall it, docs/security.md) for target aws: Pulumi writes KV and ACLs through each node's address, and one address cannot be on all 3 nodes`,
        ],
        [
            "Node.js source",
            { gateway: { nodeSource: "latest" } },
            'service-discovery:gateway.nodeSource: "latest" is not allowed; expected release (download the pinned Node.js release from nodejs.org, checksum verified) or context (a Linux node binary placed in the image folder as node)',
        ],
        [
            "the removed consul-template source",
            { gateway: { consulTemplateSource: "context" } },
            'service-discovery:gateway.consulTemplateSource: "context" is not allowed; expected gateway.nodeSource instead (gateway.consulTemplateSource was removed: the gateway runs no consul-template any more; for offline builds use gateway.nodeSource: context)',
        ],
        [
            "consul image",
            { consul: { image: "hashicorp/consul" } },
            'service-discovery:consul.image: "hashicorp/consul" is not allowed; expected an image reference with a pinned tag or digest (not :latest), such as hashicorp/consul:1.16.3',
        ],
        [
            "consul connection limit",
            { consul: { maxConnsPerClient: 10 } },
            "service-discovery:consul.maxConnsPerClient: 10 is not allowed; expected an integer from 200 to 100000",
        ],
        [
            "consul join",
            { consul: { join: "dns" } },
            "service-discovery:consul.join: \"dns\" is not allowed; expected static (agents join the servers' addresses) or aws-tags (Consul's cloud auto-join by EC2 tag, target aws only)",
        ],
        [
            "cloud auto-join outside AWS",
            { target: "virtualbox", nodeCount: 3, consul: { join: "aws-tags" } },
            'service-discovery:consul.join: "aws-tags" is not allowed; expected static for target virtualbox (aws-tags is Consul\'s cloud auto-join by EC2 tag, target aws only)',
        ],
        [
            "subnet",
            { network: { subnet: "10.0.0.0/8" } },
            'service-discovery:network.subnet: "10.0.0.0/8" is not allowed; expected a private IPv4 /16 to /28 subnet such as 172.28.0.0/24',
        ],
        [
            "stats user",
            { statsUser: "a b" },
            'service-discovery:statsUser: "a b" is not allowed; expected a user name: a letter, then letters, digits, _ . -, at most 32 characters',
        ],
        [
            "registrator resync",
            { registrator: { resyncSeconds: 1 } },
            "service-discovery:registrator.resyncSeconds: 1 is not allowed; expected an integer from 5 to 3600",
        ],
        [
            "docker socket",
            { registrator: { dockerSocket: "docker.sock" } },
            'service-discovery:registrator.dockerSocket: "docker.sock" is not allowed; expected an absolute path to the Docker socket on the node, such as /var/run/docker.sock',
        ],
        ["build network", { buildNetwork: "none" }, 'service-discovery:buildNetwork: "none" is not allowed; expected default or host'],
        // Trust rules: whose forwarding headers the gateway keeps, and its caps.
        [
            "trusted proxies not a list",
            { gateway: { trustedProxies: "10.0.0.0/8" } },
            'service-discovery:gateway.trustedProxies: "10.0.0.0/8" is not allowed; expected a list of IPv4 CIDR blocks of proxies in front of the gateway, such as ["10.0.0.0/8"]',
        ],
        [
            "a trusted proxy that is not a CIDR block",
            { gateway: { trustedProxies: ["10.0.0.0/8", "proxy.example"] } },
            'service-discovery:gateway.trustedProxies[1]: "proxy.example" is not allowed; expected an IPv4 CIDR block such as 203.0.113.0/24',
        ],
        [
            "a trusted proxy without a prefix",
            { gateway: { trustedProxies: ["10.0.0.1"] } },
            'service-discovery:gateway.trustedProxies[0]: "10.0.0.1" is not allowed; expected an IPv4 CIDR block such as 203.0.113.0/24',
        ],
        [
            "a trusted proxy with an injected directive",
            { gateway: { trustedProxies: ["10.0.0.0/8\n    stats uri /pwn"] } },
            'service-discovery:gateway.trustedProxies[0]: "10.0.0.0/8\\n    stats uri /pwn" is not allowed; expected an IPv4 CIDR block such as 203.0.113.0/24',
        ],
        [
            "trusting every client",
            { gateway: { trustedProxies: ["0.0.0.0/0"] } },
            'service-discovery:gateway.trustedProxies[0]: "0.0.0.0/0" is not allowed; expected a CIDR block narrower than /0 (trusting every client would keep spoofed X-Forwarded-For)',
        ],
        [
            "too many trusted proxies",
            { gateway: { trustedProxies: Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`) } },
            `service-discovery:gateway.trustedProxies: ${JSON.stringify(Array.from({ length: 65 }, (_, i) => `10.${i}.0.0/16`)).slice(0, 77)}... is not allowed; expected at most 64 CIDR blocks`,
        ],
        [
            "routing undeclared services, not a boolean",
            { gateway: { routeUndeclared: "yes" } },
            'service-discovery:gateway.routeUndeclared: "yes" is not allowed; expected true or false',
        ],
        ["no routed service", { haproxy: { maxServices: 0 } }, "service-discovery:haproxy.maxServices: 0 is not allowed; expected an integer from 1 to 100000"],
        [
            "a services cap beyond the template's",
            { haproxy: { maxServices: 100001 } },
            "service-discovery:haproxy.maxServices: 100001 is not allowed; expected an integer from 1 to 100000",
        ],
        [
            "an instances cap that is not an integer",
            { haproxy: { maxInstancesPerService: 2.5 } },
            "service-discovery:haproxy.maxInstancesPerService: 2.5 is not allowed; expected an integer from 1 to 10000",
        ],
        [
            "an instances cap beyond the template's",
            { haproxy: { maxInstancesPerService: 10001 } },
            "service-discovery:haproxy.maxInstancesPerService: 10001 is not allowed; expected an integer from 1 to 10000",
        ],
        // Budgets (docs/security.md, "Budgets").
        [
            "no connection per client",
            { haproxy: { connectionsPerClient: 0 } },
            "service-discovery:haproxy.connectionsPerClient: 0 is not allowed; expected an integer from 1 to 100000",
        ],
        [
            "connections per client as text",
            { haproxy: { connectionsPerClient: "100 " } },
            'service-discovery:haproxy.connectionsPerClient: "100 " is not allowed; expected an integer from 1 to 100000',
        ],
        [
            "a negative request rate",
            { haproxy: { requestsPerClient: -1 } },
            "service-discovery:haproxy.requestsPerClient: -1 is not allowed; expected an integer from 0 (no limit) to 1000000: requests of one client address per 10s",
        ],
        [
            "a request rate beyond the gateway's",
            { haproxy: { requestsPerClient: 1e9 } },
            "service-discovery:haproxy.requestsPerClient: 1000000000 is not allowed; expected an integer from 0 (no limit) to 1000000: requests of one client address per 10s",
        ],
        [
            "a body size of 0",
            { haproxy: { maxBodyBytes: 0 } },
            "service-discovery:haproxy.maxBodyBytes: 0 is not allowed; expected an integer from 1 to 1000000000000: bytes (10485760 is 10 MiB)",
        ],
        [
            "a body size with a unit",
            { haproxy: { maxBodyBytes: "10MB" } },
            'service-discovery:haproxy.maxBodyBytes: "10MB" is not allowed; expected an integer from 1 to 1000000000000: bytes (10485760 is 10 MiB)',
        ],
        [
            "connections per instance beyond the gateway's",
            { haproxy: { connectionsPerInstance: 100001 } },
            "service-discovery:haproxy.connectionsPerInstance: 100001 is not allowed; expected an integer from 1 to 100000",
        ],
        [
            "a zero http-request timeout",
            { haproxy: { timeouts: { httpRequest: "0s" } } },
            'service-discovery:haproxy.timeouts.httpRequest: "0s" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "a keep-alive timeout with an injected directive",
            { haproxy: { timeouts: { httpKeepAlive: "10s\n  stats uri /pwn" } } },
            'service-discovery:haproxy.timeouts.httpKeepAlive: "10s\\n  stats uri /pwn" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "a tcp idle timeout beyond HAProxy's limit",
            { haproxy: { timeouts: { tcpIdle: "30d" } } },
            'service-discovery:haproxy.timeouts.tcpIdle: "30d" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
        [
            "a service's connections per instance of 0",
            { services: [{ ...helloV1, connectionsPerInstance: 0 }] },
            "service-discovery:services[0].connectionsPerInstance: 0 is not allowed; expected an integer from 1 to 100000",
        ],
        [
            "a service's request rate that is not an integer",
            { services: [{ ...helloV1, requestsPerClient: 2.5 }] },
            "service-discovery:services[0].requestsPerClient: 2.5 is not allowed; expected an integer from 0 (no limit) to 1000000: requests of one client address per 10s",
        ],
        [
            "a request rate on a tcp service",
            { services: [{ name: "pg", image: "postgres:16", protocol: "tcp", listenPort: 5432, requestsPerClient: 10 }] },
            "service-discovery:services[0].requestsPerClient: 10 is not allowed; expected no requestsPerClient for protocol tcp (a request rate counts HTTP requests; haproxy.connectionsPerClient caps a client's connections to every listener)",
        ],
        [
            "an idle timeout on an http service",
            { services: [{ ...helloV1, idleTimeout: "5m" }] },
            'service-discovery:services[0].idleTimeout: "5m" is not allowed; expected no idleTimeout for protocol http (it is a tcp service\'s idle timeout; http services take haproxy.timeouts.client and .server)',
        ],
        [
            "a tcp service's idle timeout of 0",
            { services: [{ name: "pg", image: "postgres:16", protocol: "tcp", listenPort: 5432, idleTimeout: "0" }] },
            'service-discovery:services[0].idleTimeout: "0" is not allowed; expected a non-zero duration such as 5s, 500ms or 1m: up to 999999 us, ms or s, 9999m, 99h or 24d',
        ],
    ];
    for (const [title, overrides, message] of cases) {
        it(`rejects ${title}`, () => rejects(dev(overrides), message));
    }

    it("accepts digests and registry ports in image references", () => {
        const digest = `registry.example.com:5000/team/web@sha256:${"a".repeat(64)}`;
        const s = parseSettings(dev({ services: [{ name: "web", image: digest }] }), "dev");
        assert.equal(s.services[0].image, digest);
    });

    it("accepts a tag with its digest (name:tag@sha256:<64 hex>) for consul.image and registrator.image; refuses a short or upper-case digest", () => {
        const consul = `hashicorp/consul:1.16.3@sha256:${"b".repeat(64)}`;
        const registrator = `gliderlabs/registrator:v7@sha256:${"c".repeat(64)}`;
        const s = parseSettings(dev({ consul: { image: consul }, registrator: { image: registrator } }), "aws");
        assert.equal(s.consul.image, consul);
        assert.equal(s.registrator.image, registrator);
        for (const bad of [`hashicorp/consul:1.16.3@sha256:${"b".repeat(63)}`, `hashicorp/consul:1.16.3@sha256:${"B".repeat(64)}`]) {
            assert.throws(() => parseSettings(dev({ consul: { image: bad } }), "dev"), /service-discovery:consul\.image: .* is not allowed/);
        }
    });
});
