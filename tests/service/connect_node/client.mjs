// Drives rtest.Feed with @connectrpc/connect-node:
//   node client.mjs BASE_URL DESCRIPTORS HTTP PROTOCOL [json]
// HTTP is "1.1" or "2"; PROTOCOL is connect, grpc or grpcweb; "json" sends JSON bodies
// (application/grpc+json for gRPC) instead of binary protobuf. Prints what it got as JSON.
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

const [baseUrl, descriptors, httpVersion, protocol, format] = process.argv.slice(2);
const registry = createFileRegistry(
  fromBinary(FileDescriptorSetSchema, readFileSync(descriptors)),
);
const Feed = registry.getService("rtest.Feed");
const make = {
  connect: createConnectTransport,
  grpc: createGrpcTransport,
  grpcweb: createGrpcWebTransport,
}[protocol];
const useBinaryFormat = format !== "json";
const client = createClient(Feed, make({ baseUrl, httpVersion, useBinaryFormat }));
const opts = { timeoutMs: 20000 };

const out = {};
out.count = (await client.count({ id: "abc" }, opts)).count;
out.ticks = [];
for await (const t of client.ticks({ count: 3 }, opts)) out.ticks.push(t.count);
async function* items(...counts) {
  for (const count of counts) yield { id: `i${count}`, count };
}
if (httpVersion === "2") {
  // Client and bidi streams need HTTP/2 in connect-node.
  out.sum = (await client.sum(items(1, 2, 3), opts)).count;
  out.echo = [];
  for await (const e of client.echo(items(1, 2), opts)) out.echo.push(e.count);
}
try {
  for await (const _ of client.ticks({ count: 5, failCode: "UNAVAILABLE", failAfter: 1 }, opts)) {
  }
} catch (err) {
  out.error = [err.code, err.rawMessage];
}
console.log(JSON.stringify(out));
