// What runs on each node, found by the node itself, never by a position in some array: a
// component placed on some nodes only (gateways on the edge nodes, replicas round robin) then
// cannot pick up another node's agent or Registrator because two lists stopped lining up.
import { Node } from "./nodes";

export class PerNode<T> {
    private readonly byName = new Map<string, T>();

    /** `what` names the thing in errors: "no <what> on node <name>". */
    constructor(private readonly what: string) {}

    /** One `make(node)` for each of `nodes`. */
    static of<T>(what: string, nodes: readonly Node[], make: (node: Node) => T): PerNode<T> {
        const perNode = new PerNode<T>(what);
        for (const node of nodes) perNode.set(node, make(node));
        return perNode;
    }

    set(node: Node, value: T): void {
        if (this.byName.has(node.name)) throw new Error(`${this.what} on node ${node.name} declared twice`);
        this.byName.set(node.name, value);
    }

    /** The one on `node`; throws when there is none (a wiring mistake, not a config error). */
    on(node: Node): T {
        if (!this.byName.has(node.name)) throw new Error(`no ${this.what} on node ${node.name}`);
        return this.byName.get(node.name)!;
    }
}
