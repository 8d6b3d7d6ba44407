// Shared by the program graph tests (program.test.ts, program-variations.test.ts): the type
// tokens of the images the program builds and pulls.
export const BUILD = "docker-build:index:Image";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
