// A real gRPC-Web client (connect-es's gRPC-Web transport under node) calling a
// puregrpc server: `node echo_client.mjs PORT HTTP_VERSION` ("1.1" or "2")
// prints one JSON object with what each case saw; tests/web/test_web_node_interop.py
// checks it.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { Echo } from "./gen/puregrpc/testing/echo_pb.js";

const [port, httpVersion] = process.argv.slice(2);
const transport = createGrpcWebTransport({
  baseUrl: `http://127.0.0.1:${port}`,
  httpVersion,
});
const client = createClient(Echo, transport);

async function failure(call) {
  try {
    await call();
    return { code: "OK" };
  } catch (err) {
    const error = ConnectError.from(err);
    return { code: Code[error.code], message: error.rawMessage };
  }
}

const results = {};

const reply = await client.unary({ message: "hello", payload: new Uint8Array([0, 1, 2]) });
results.unary = { message: reply.message, payload: Array.from(reply.payload) };

results.serverStream = [];
for await (const item of client.serverStream({ message: "s", count: 4 })) {
  results.serverStream.push(item.index);
}

let initial = null;
let trailing = null;
await client.unary(
  { message: "m" },
  {
    headers: { "x-custom": "abc" },
    onHeader: (headers) => { initial = headers.get("x-initial"); },
    onTrailer: (trailers) => { trailing = trailers.get("x-trailing"); },
  },
);
results.metadata = { initial, trailing };

results.error = await failure(() => client.unary({ message: "fail" }));
results.deadline = await failure(() => client.unary({ message: "sleep" }, { timeoutMs: 200 }));
results.clientStream = await failure(() =>
  client.clientStream(
    (async function* () {
      yield { message: "a" };
    })(),
  ),
);

console.log(JSON.stringify(results));
