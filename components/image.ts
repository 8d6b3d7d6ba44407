// The program's image builds (the gateway, the Docker socket proxy, services with `build`):
// BuildKit builds a folder of the project into one node's engine and only loads the image
// there, never pushes it. Containers therefore reference it by tag, and a tag does not change
// when the image does: the image's digest in the container's environment (IMAGE_DIGEST) is
// what makes a rebuilt image replace its containers.
import * as dockerBuild from "@pulumi/docker-build";
import * as pulumi from "@pulumi/pulumi";
import { Settings } from "./config";
import { Node } from "./nodes";

export interface ImageBuildArgs {
    readonly settings: Settings;
    /** The node whose engine builds and holds the image. */
    readonly node: Node;
    /** The build context, relative to the project (Pulumi runs programs there); holds the Dockerfile. */
    readonly context: string;
    readonly tag: string;
    readonly buildArgs?: Record<string, pulumi.Input<string>>;
    /** What the build waits for besides the node being ready. */
    readonly dependsOn?: pulumi.Resource[];
}

export function buildImage(name: string, args: ImageBuildArgs, opts: { parent: pulumi.Resource }): dockerBuild.Image {
    const { settings, node } = args;
    return new dockerBuild.Image(
        name,
        {
            context: { location: args.context },
            dockerfile: { location: `${args.context}/Dockerfile` },
            ...(args.buildArgs === undefined ? {} : { buildArgs: args.buildArgs }),
            tags: [args.tag],
            network: settings.buildNetwork,
            push: false,
            load: true,
            // A preview never runs Dockerfile RUN steps on a remote node (only on this machine's engine).
            buildOnPreview: node.buildProvider === undefined,
        },
        { parent: opts.parent, provider: node.buildProvider, dependsOn: [...node.ready, ...(args.dependsOn ?? [])] },
    );
}

/**
 * A container's environment with IMAGE_DIGEST first when it runs a built `image` (see above);
 * unchanged for a pulled image, which the container references by its image ID already.
 */
export function withImageDigest(image: dockerBuild.Image | undefined, envs: pulumi.Input<pulumi.Input<string>[]>): pulumi.Output<string[]> {
    if (image === undefined) return pulumi.output(envs);
    return pulumi.all([image.digest, envs]).apply(([digest, rest]) => [`IMAGE_DIGEST=${digest}`, ...rest]);
}
