// AWS nodes for the `aws` target: a VPC with public subnets across availability zones,
// one security group with least-privilege rules, nodeCount EC2 instances (Debian 12,
// Docker from cloud-init, IMDSv2 required, encrypted root volumes) and a network load
// balancer in front of the gateways. Each node is reached by a Docker provider over SSH.
import * as aws from "@pulumi/aws";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { EPHEMERAL_PORTS, Settings } from "./config";
import { cloudInitHostKey, PINNED_SSH_OPTS, pinnedHost } from "./host-keys";

/** Debian's own AWS account; its AMIs are the official Debian images. */
export const DEBIAN_AMI_OWNER = "136693071363";
/** Docker's ephemeral host ports: where service containers are published (`-p :PORT`). */
export { EPHEMERAL_PORTS };

/** The name part of a CIDR block's rule: stable whatever the order of the list. */
export function cidrRuleName(cidr: string): string {
    return cidr.replace(/[./]/g, "-");
}

/**
 * The readiness check of a node reached through Systems Manager (aws.access ssm): `remote` run
 * over the system's ssh to $SD_NODE (user@instance-id), with the pinned host key only, tried
 * `attempts` times `intervalSeconds` apart (the instance's SSM agent registers a little after it
 * boots: 10 minutes by default); the last attempt's error is what fails the update.
 */
export function ssmReadinessScript(remote: string, attempts = 60, intervalSeconds = 10): string {
    const ssh = ["ssh", ...PINNED_SSH_OPTS, "-o", "ConnectTimeout=60", '"$SD_NODE"'].join(" ");
    const quoted = `'${remote.replace(/'/g, `'\\''`)}'`;
    return [
        'err="$(mktemp)"',
        `for attempt in $(seq ${attempts}); do`,
        `    if ${ssh} ${quoted} 2>"$err"; then rm -f "$err"; exit 0; fi`,
        `    [ "$attempt" -eq ${attempts} ] || sleep ${intervalSeconds}`,
        "done",
        `echo "no SSH through Systems Manager to $SD_NODE after ${attempts} attempts, ${intervalSeconds} s apart; the last said:" >&2`,
        'cat "$err" >&2; rm -f "$err"; exit 1',
    ].join("\n");
}

export interface AwsNodesArgs {
    readonly settings: Settings;
    readonly nodeNames: readonly string[];
}

/** Splits a VPC block into /(prefix+4) subnets: 10.42.0.0/16 -> 10.42.0.0/20, 10.42.16.0/20, ... */
export function subnetCidr(vpcCidr: string, index: number): string {
    const [base, bits] = vpcCidr.split("/");
    const prefix = Number(bits) + 4;
    const start = base.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
    const value = start + index * 2 ** (32 - prefix);
    return `${[24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join(".")}/${prefix}`;
}

/**
 * cloud-init: Docker from Debian's packages, usable by the SSH user without sudo; with `hostKey`
 * (its OpenSSH private and public key) the node's only SSH host key (components/host-keys.ts).
 */
export function cloudInit(sshUser: string, hostKey?: { privateKeyOpenssh: string; publicKeyOpenssh: string }): string {
    return [
        "#cloud-config",
        ...(hostKey ? cloudInitHostKey(hostKey.privateKeyOpenssh, hostKey.publicKeyOpenssh) : []),
        "package_update: true",
        "packages:",
        "  - docker.io",
        "runcmd:",
        "  - systemctl enable --now docker",
        `  - usermod -aG docker ${sshUser}`,
        "",
    ].join("\n");
}

export class AwsNodes extends pulumi.ComponentResource {
    public readonly vpc: aws.ec2.Vpc;
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly instances: aws.ec2.Instance[];
    /** Per instance: its SSH host key, generated here and installed by cloud-init (the only key its sshd offers). */
    public readonly hostKeys: pulumi.Output<string>[];
    /** Per instance: its Docker endpoint, `ssh://<sshUser>@<public IP>` or (aws.access ssm) `ssh://<sshUser>@<instance ID>`, with its host key pinned. */
    public readonly dockerHosts: pulumi.Output<string>[];
    /** Per instance: Docker installed and answering (cloud-init finished). */
    public readonly dockerReady: (command.remote.Command | command.local.Command)[];
    public readonly loadBalancerDns: pulumi.Output<string>;

    constructor(name: string, args: AwsNodesArgs, opts?: pulumi.ComponentResourceOptions) {
        super("service-discovery:hosts:AwsNodes", name, {}, opts);
        const { settings } = args;
        const a = settings.aws;
        const o = { parent: this };
        const cluster = `${settings.project}-${settings.stack}`;
        const tags = { Project: settings.project, Stack: settings.stack };

        this.vpc = new aws.ec2.Vpc(
            `${name}-vpc`,
            {
                cidrBlock: a.vpcCidr,
                enableDnsHostnames: true,
                enableDnsSupport: true,
                tags: { ...tags, Name: cluster },
            },
            o,
        );
        const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: this.vpc.id, tags }, o);
        const routes = new aws.ec2.RouteTable(
            `${name}-public`,
            {
                vpcId: this.vpc.id,
                routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: igw.id }],
                tags,
            },
            o,
        );
        const zones = aws.getAvailabilityZonesOutput({ state: "available" }, o);
        const associations: aws.ec2.RouteTableAssociation[] = [];
        const subnets = Array.from({ length: a.availabilityZones }, (_, i) => {
            const subnet = new aws.ec2.Subnet(
                `${name}-public-${i + 1}`,
                {
                    vpcId: this.vpc.id,
                    cidrBlock: subnetCidr(a.vpcCidr, i),
                    availabilityZone: zones.names[i],
                    mapPublicIpOnLaunch: true,
                    tags: { ...tags, Name: `${cluster}-public-${i + 1}` },
                },
                o,
            );
            associations.push(new aws.ec2.RouteTableAssociation(`${name}-public-${i + 1}`, { subnetId: subnet.id, routeTableId: routes.id }, o));
            return subnet;
        });

        // Least privilege: only the gateway port is open to the world (and a tcp service's
        // listenPort when its allowedCidrs name 0.0.0.0/0).
        this.securityGroup = new aws.ec2.SecurityGroup(
            `${name}-nodes`,
            {
                vpcId: this.vpc.id,
                description: `${cluster} nodes`,
                tags: { ...tags, Name: `${cluster}-nodes` },
            },
            o,
        );
        const sg = this.securityGroup.id;
        const rule = (ruleName: string, description: string, ipProtocol: string, from: number, to: number, source: { cidrIpv4?: string; self?: boolean }) =>
            new aws.vpc.SecurityGroupIngressRule(
                `${name}-${ruleName}`,
                {
                    securityGroupId: sg,
                    description,
                    ipProtocol,
                    fromPort: from,
                    toPort: to,
                    cidrIpv4: source.cidrIpv4,
                    referencedSecurityGroupId: source.self ? sg : undefined,
                    tags,
                },
                o,
            );
        rule("gateway-http", "gateway HTTP from anywhere", "tcp", settings.gateway.httpPort, settings.gateway.httpPort, { cidrIpv4: "0.0.0.0/0" });
        const tlsOn = settings.gateway.tls.source !== "none";
        const acm = settings.gateway.tls.acm;
        if (acm) {
            // The load balancer terminates TLS and is the offload listener's only client: from the
            // VPC (the load balancer's own addresses there; its target group does not keep the
            // client's address, the PROXY header carries it), never from the world.
            rule("gateway-offload", "gateway offload listener (HTTPS terminated by the load balancer) from the VPC", "tcp", acm.offloadPort, acm.offloadPort, {
                cidrIpv4: a.vpcCidr,
            });
        } else if (tlsOn) {
            rule("gateway-https", "gateway HTTPS from anywhere", "tcp", settings.gateway.httpsPort, settings.gateway.httpsPort, { cidrIpv4: "0.0.0.0/0" });
        }
        rule("stats", "gateway stats from the admin network", "tcp", settings.gateway.statsPort, settings.gateway.statsPort, { cidrIpv4: a.adminCidr });
        rule("consul-ui", "Consul UI and HTTPS API from the admin network", "tcp", settings.consul.httpsPort, settings.consul.httpsPort, {
            cidrIpv4: a.adminCidr,
        });
        // With aws.access ssm, SSH reaches the nodes through Systems Manager sessions (the SSM agent
        // connects out, over HTTPS): port 22 is open to no one.
        if (a.access === "ssh") {
            rule("ssh", "SSH (Docker provider) from the admin network", "tcp", 22, 22, { cidrIpv4: a.adminCidr });
            // Pull-request previews: SSH only, where their key reaches a read-only Docker API (docs/development.md).
            if (a.previewCidr !== undefined)
                rule("ssh-preview", "SSH (read-only preview key) from the preview runners", "tcp", 22, 22, { cidrIpv4: a.previewCidr });
        }
        rule("consul-rpc", "Consul server RPC between nodes", "tcp", 8300, 8300, { self: true });
        rule("consul-serf-tcp", "Consul LAN gossip between nodes", "tcp", 8301, 8301, { self: true });
        rule("consul-serf-udp", "Consul LAN gossip between nodes", "udp", 8301, 8301, { self: true });
        rule("consul-http-nodes", "Consul HTTPS API between nodes", "tcp", settings.consul.httpsPort, settings.consul.httpsPort, { self: true });
        rule("services", "published service ports, gateway to replicas", "tcp", EPHEMERAL_PORTS.from, EPHEMERAL_PORTS.to, { self: true });
        // A tcp service's listener: from the cluster's own nodes (the only machines in the VPC; a
        // client on a node without a gateway reaches an edge node's), and from each CIDR block
        // its allowedCidrs names. Nothing else, not the world unless named (and then the policy
        // pack must be told: publicTcpPorts).
        for (const s of settings.services) {
            if (s.protocol !== "tcp" || s.listenPort === undefined) continue;
            rule(`tcp-${s.consulName}-nodes`, `tcp service ${s.consulName} between nodes`, "tcp", s.listenPort, s.listenPort, { self: true });
            for (const cidr of s.allowedCidrs) {
                rule(`tcp-${s.consulName}-${cidrRuleName(cidr)}`, `tcp service ${s.consulName} from ${cidr}`, "tcp", s.listenPort, s.listenPort, {
                    cidrIpv4: cidr,
                });
            }
        }
        // Outbound: what the nodes need and no more (docs/security.md, "Contained replicas"): HTTPS
        // and HTTP anywhere (images, Debian packages over HTTP, AWS APIs and SSM, ACME), anything
        // to the cluster's own nodes, and the rules aws.egress adds. DNS, NTP and instance metadata
        // go to Amazon's link-local services, which security groups do not filter. Cloud-init
        // needs the first two before Docker runs (the instances wait for them).
        const egressRule = (ruleName: string, description: string, ipProtocol: string, port: number | undefined, dest: { cidrIpv4?: string; self?: boolean }) =>
            new aws.vpc.SecurityGroupEgressRule(
                `${name}-${ruleName}`,
                {
                    securityGroupId: sg,
                    description,
                    ipProtocol,
                    fromPort: port,
                    toPort: port,
                    cidrIpv4: dest.cidrIpv4,
                    referencedSecurityGroupId: dest.self ? sg : undefined,
                    tags,
                },
                o,
            );
        const egress = [
            egressRule("egress", "HTTPS anywhere: images, AWS APIs and SSM, ACME", "tcp", 443, { cidrIpv4: "0.0.0.0/0" }),
            egressRule("egress-http", "HTTP anywhere: Debian packages", "tcp", 80, { cidrIpv4: "0.0.0.0/0" }),
            egressRule("egress-nodes", "anything to the cluster's own nodes", "-1", undefined, { self: true }),
        ];
        for (const e of a.egress) {
            egressRule(`egress-${e.protocol}-${e.port}-${cidrRuleName(e.cidr)}`, `aws.egress: ${e.protocol} ${e.port} to ${e.cidr}`, e.protocol, e.port, {
                cidrIpv4: e.cidr,
            });
        }

        // SSM gives shell access without SSH. Consul's cloud auto-join (consul.join aws-tags)
        // also reads instance tags through this role, from inside its container.
        const autoJoin = settings.consul.join === "aws-tags";
        const role = new aws.iam.Role(
            `${name}-node`,
            {
                assumeRolePolicy: JSON.stringify({
                    Version: "2012-10-17",
                    Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
                }),
                tags,
            },
            o,
        );
        if (autoJoin) {
            new aws.iam.RolePolicy(
                `${name}-consul-auto-join`,
                {
                    role: role.id,
                    policy: JSON.stringify({
                        Version: "2012-10-17",
                        Statement: [{ Effect: "Allow", Action: ["ec2:DescribeInstances"], Resource: "*" }],
                    }),
                },
                o,
            );
        }
        new aws.iam.RolePolicyAttachment(
            `${name}-ssm`,
            {
                role: role.name,
                policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            },
            o,
        );
        const profile = new aws.iam.InstanceProfile(`${name}-node`, { role: role.name, tags }, o);
        const keyPair = new aws.ec2.KeyPair(`${name}-admin`, { publicKey: a.publicKey, tags }, o);

        const ami = aws.ec2.getAmiOutput(
            {
                owners: [DEBIAN_AMI_OWNER],
                mostRecent: true,
                filters: [
                    { name: "name", values: ["debian-12-amd64-*"] },
                    { name: "architecture", values: ["x86_64"] },
                    { name: "virtualization-type", values: ["hvm"] },
                ],
            },
            o,
        );

        // Each node's SSH host key: made by Pulumi, so the program knows it before the node exists
        // and pins it (components/host-keys.ts) instead of trusting whatever answers first. The
        // private key reaches the node in its user data only (a secret in the state).
        const hostKeyPairs = args.nodeNames.map((node) => new tls.PrivateKey(`${node}-host-key`, { algorithm: "ED25519" }, o));
        this.hostKeys = hostKeyPairs.map((k) => k.publicKeyOpenssh.apply((key) => key.trim()));

        this.instances = args.nodeNames.map(
            (node, i) =>
                new aws.ec2.Instance(
                    node,
                    {
                        ami: ami.id,
                        instanceType: a.instanceType,
                        // Spread over the zones; a node's subnet never changes when nodes are added.
                        subnetId: subnets[i % subnets.length].id,
                        vpcSecurityGroupIds: [sg],
                        keyName: keyPair.keyName,
                        iamInstanceProfile: profile.name,
                        associatePublicIpAddress: true,
                        userData: pulumi.secret(
                            pulumi
                                .all([hostKeyPairs[i]!.privateKeyOpenssh, hostKeyPairs[i]!.publicKeyOpenssh])
                                .apply(([privateKeyOpenssh, publicKeyOpenssh]) => cloudInit(a.sshUser, { privateKeyOpenssh, publicKeyOpenssh })),
                        ),
                        metadataOptions: {
                            httpEndpoint: "enabled",
                            httpTokens: "required", // IMDSv2 only
                            // 1: only the instance itself gets an IMDSv2 token; a container is one hop further
                            // (the bridge), so none can read the instance role's credentials. Cloud auto-join
                            // runs inside the Consul container and needs them: 2, for every container.
                            httpPutResponseHopLimit: autoJoin ? 2 : 1,
                        },
                        rootBlockDevice: { encrypted: true, volumeType: "gp3", volumeSize: a.rootVolumeGb, deleteOnTermination: true },
                        tags: { ...tags, Name: node, "consul-cluster": cluster },
                        // cloud-init installs Docker from the network: the route out must exist first.
                    },
                    // A newer AMI must not replace running nodes, and new user data must not stop and start
                    // every running node at once (AWS applies it so; cloud-init would not run it again):
                    // both reach a node when it is replaced (docs/operations.md, "Lifecycles").
                    { ...o, ignoreChanges: ["ami", "userData"], dependsOn: [igw, ...associations, ...egress] },
                ),
        );

        this.dockerHosts = this.instances.map((instance, i) =>
            pulumi
                .all([a.access === "ssm" ? instance.id : instance.publicIp, this.hostKeys[i]!])
                .apply(([host, key]) => pinnedHost(`ssh://${a.sshUser}@${host}`, key, `${settings.project} ${settings.stack} ${args.nodeNames[i]}`)),
        );
        // sudo: this SSH session may predate cloud-init adding the user to the docker group.
        const readiness = "cloud-init status --wait >/dev/null; sudo docker info --format '{{.ServerVersion}}'";
        this.dockerReady = this.instances.map((instance, i) =>
            a.access === "ssm"
                ? // The system's ssh, as the Docker providers and image builds use it: the user's SSH
                  // config carries it through a Systems Manager session (ProxyCommand for i-*), and
                  // the host key is the pinned one. A new instance's SSM agent registers within a few
                  // minutes of boot: tried every 10 s for 10 minutes.
                  new command.local.Command(
                      `${args.nodeNames[i]}-docker-ready`,
                      {
                          create: ssmReadinessScript(readiness),
                          environment: { SD_NODE: this.dockerHosts[i]!.apply((url) => url.slice("ssh://".length)) },
                          triggers: [instance.id],
                      },
                      o,
                  )
                : new command.remote.Command(
                      `${args.nodeNames[i]}-docker-ready`,
                      {
                          // The pinned host key: a node answering with another key is refused.
                          connection: { host: instance.publicIp, user: a.sshUser, hostKey: this.hostKeys[i] },
                          create: readiness,
                      },
                      o,
                  ),
        );

        const edges = settings.edgeNodes.map((n) => this.instances[n - 1]);
        const lb = new aws.lb.LoadBalancer(
            `${name}-gateway`,
            {
                loadBalancerType: "network",
                subnets: subnets.map((s) => s.id),
                tags,
            },
            { ...o, dependsOn: [igw] },
        ); // an internet-facing load balancer needs the gateway first
        const targets = new aws.lb.TargetGroup(
            `${name}-gateway`,
            {
                port: settings.gateway.httpPort,
                protocol: "TCP",
                vpcId: this.vpc.id,
                targetType: "instance",
                healthCheck: { protocol: "HTTP", path: "/-/health", port: String(settings.gateway.httpPort), interval: 10 },
                tags,
            },
            o,
        );
        new aws.lb.Listener(
            `${name}-gateway`,
            {
                loadBalancerArn: lb.arn,
                port: 80,
                protocol: "TCP",
                defaultActions: [{ type: "forward", targetGroupArn: targets.arn }],
            },
            o,
        );
        edges.forEach(
            (instance, i) =>
                new aws.lb.TargetGroupAttachment(
                    `${name}-gateway-${settings.edgeNodes[i]}`,
                    {
                        targetGroupArn: targets.arn,
                        targetId: instance.id,
                        port: settings.gateway.httpPort,
                    },
                    o,
                ),
        );
        // HTTPS: the load balancer passes TCP 443 through to the gateways' HTTPS port, which
        // terminate TLS; PROXY protocol v2 tells them the client's address (their HTTPS listener
        // takes it: GATEWAY_ACCEPT_PROXY=https, components/gateway.ts). Health: a TCP connect there
        // (the HTTP target group checks /-/health).
        // acm: the load balancer terminates TLS on 443 with the ACM certificate (TLS 1.2+ policy,
        // HTTP/2 offered by ALPN) and sends the requests, plain, to the gateways' offload listener
        // with PROXY protocol v2 (the client's address); the target group does not keep the client's
        // address, so the security group admits the VPC only. Health: /-/health on the HTTP port.
        if (acm) {
            const offload = new aws.lb.TargetGroup(
                `${name}-gateway-offload`,
                {
                    port: acm.offloadPort,
                    protocol: "TCP",
                    vpcId: this.vpc.id,
                    targetType: "instance",
                    proxyProtocolV2: true,
                    preserveClientIp: "false",
                    healthCheck: { protocol: "HTTP", path: "/-/health", port: String(settings.gateway.httpPort), interval: 10 },
                    tags,
                },
                o,
            );
            new aws.lb.Listener(
                `${name}-gateway-https`,
                {
                    loadBalancerArn: lb.arn,
                    port: 443,
                    protocol: "TLS",
                    certificateArn: acm.certificateArn,
                    sslPolicy: acm.sslPolicy,
                    alpnPolicy: "HTTP2Preferred",
                    defaultActions: [{ type: "forward", targetGroupArn: offload.arn }],
                },
                o,
            );
            edges.forEach(
                (instance, i) =>
                    new aws.lb.TargetGroupAttachment(
                        `${name}-gateway-offload-${settings.edgeNodes[i]}`,
                        { targetGroupArn: offload.arn, targetId: instance.id, port: acm.offloadPort },
                        o,
                    ),
            );
        } else if (tlsOn) {
            const https = new aws.lb.TargetGroup(
                `${name}-gateway-https`,
                {
                    port: settings.gateway.httpsPort,
                    protocol: "TCP",
                    vpcId: this.vpc.id,
                    targetType: "instance",
                    proxyProtocolV2: true,
                    healthCheck: { protocol: "TCP", port: "traffic-port", interval: 10 },
                    tags,
                },
                o,
            );
            new aws.lb.Listener(
                `${name}-gateway-https`,
                { loadBalancerArn: lb.arn, port: 443, protocol: "TCP", defaultActions: [{ type: "forward", targetGroupArn: https.arn }] },
                o,
            );
            edges.forEach(
                (instance, i) =>
                    new aws.lb.TargetGroupAttachment(
                        `${name}-gateway-https-${settings.edgeNodes[i]}`,
                        { targetGroupArn: https.arn, targetId: instance.id, port: settings.gateway.httpsPort },
                        o,
                    ),
            );
        }
        this.loadBalancerDns = lb.dnsName;

        this.registerOutputs({ vpcId: this.vpc.id, loadBalancerDns: this.loadBalancerDns });
    }
}
