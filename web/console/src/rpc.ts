// The page's gRPC-Web clients: one transport to the server that served the
// page (same origin, so no CORS), with the bearer token of the session.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Health } from "./gen/grpc/health/v1/health_pb.js";
import { StreamingService } from "./gen/streaming/v1/streaming_pb.js";

const TOKEN_KEY = "puregrpc-streaming-token";

/** The token of this tab's session ("" when none is set). */
export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

/** Keep `value` for this tab's session (sessionStorage: gone when the tab closes). */
export function setToken(value: string): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Every call carries `authorization: Bearer TOKEN` while a token is set. */
const bearer: Interceptor = (next) => async (request) => {
  const current = token();
  if (current) request.header.set("authorization", `Bearer ${current}`);
  return next(request);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

/** streaming.v1.StreamingService over gRPC-Web. */
export const streaming = createClient(StreamingService, transport);
/** grpc.health.v1.Health of the same server. */
export const health = createClient(Health, transport);

/** The gRPC name of a status code: `Unauthenticated` -> `UNAUTHENTICATED`. */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** One line for a failed call: `NOT_FOUND: no file abc`. */
export function describe(error: unknown): string {
  const failure = ConnectError.from(error);
  return `${codeName(failure.code)}: ${failure.rawMessage}`;
}

/** True when `error` is the page's own cancellation (a stop button, a new request). */
export function cancelled(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}
