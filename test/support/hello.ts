// What the example service (components/images/hello/hello.py) answers on any path but /health.
export interface HelloResponse {
    service: string;
    version: string;
    hostname: string;
    path: string;
    forwarded_for: string;
    forwarded_prefix: string;
}
