// An HTTP proxy on 127.0.0.1 in front of quota-local that can lose or replace
// answers. For each request, `decide` says what happens:
//   "pass"                 forward it, and pass the answer back;
//   "drop"                 forward it, wait for the service's whole answer, then
//                          destroy the client's socket (the write happened, the
//                          client never learns it);
//   { reply, forward }     answer `reply` instead: after the service has
//                          handled the request (forward: true) or without it
//                          ever reaching the service (forward: false);
//   { delay }              forward it, and pass the answer back `delay` ms
//                          after it came (the write happened; its answer is late).
import { Buffer } from "node:buffer";
import { createServer, request as httpRequest } from "node:http";

/**
 * @typedef {{ method: string, path: string, target: string | null, idempotencyKey: string | null, action: string, status: number | null }} Seen
 * @typedef {{ status: number, headers?: Record<string, string>, body: unknown }} Reply
 * @typedef {"pass" | "drop" | { reply: Reply, forward: boolean } | { delay: number }} Action
 */

/**
 * @param {string} target base URL of the service (http://127.0.0.1:port)
 * @param {(seen: Seen, index: number) => Action} decide
 */
export async function startProxy(target, decide) {
  const upstream = new URL(target);
  /** @type {Seen[]} */
  const seen = [];
  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const key = req.headers["idempotency-key"];
      const target = req.headers["x-amz-target"];
      /** @type {Seen} */
      const entry = {
        method: req.method ?? "",
        path: req.url ?? "",
        target: typeof target === "string" ? target : null,
        idempotencyKey: typeof key === "string" ? key : null,
        action: "pass",
        status: null,
      };
      seen.push(entry);
      const action = decide(entry, seen.length - 1);
      entry.action = typeof action === "string" ? action : "delay" in action ? "delay" : action.forward ? "replace-after" : "replace-before";
      const reply = () => {
        if (typeof action === "string" || "delay" in action) return;
        res.writeHead(action.reply.status, { "content-type": "application/json", ...action.reply.headers });
        res.end(JSON.stringify(action.reply.body));
      };
      if (typeof action !== "string" && "reply" in action && !action.forward) return reply();

      const up = httpRequest(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (upRes) => {
          /** @type {Buffer[]} */
          const body = [];
          upRes.on("data", (chunk) => body.push(chunk));
          upRes.on("end", () => {
            entry.status = upRes.statusCode ?? null;
            if (action === "drop") return void req.socket.destroy();
            if (typeof action !== "string" && "reply" in action) return reply();
            const pass = () => {
              res.writeHead(upRes.statusCode ?? 502, upRes.headers);
              res.end(Buffer.concat(body));
            };
            if (typeof action !== "string") return void setTimeout(pass, action.delay);
            pass();
          });
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("proxy did not listen");
  return {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}
