// The server's own health: grpc.health.v1.Health/Watch over gRPC-Web, a
// server-streaming call that sends the status now and on every change.
import { HealthCheckResponse_ServingStatus as ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import { byId } from "./dom.js";
import { describe, health } from "./rpc.js";

/** The name the streaming service's health is registered under. */
const SERVICE = "streaming.v1.StreamingService";

function show(status: string, title = ""): void {
  const badge = byId<HTMLSpanElement>("health");
  badge.textContent = status;
  badge.className = `badge ${status}`;
  badge.title = title;
}

/** Follow the service's health for as long as the page is open (reconnecting, 1-10 s apart). */
export async function followHealth(): Promise<never> {
  let pause = 1000;
  for (;;) {
    try {
      for await (const answer of health.watch({ service: SERVICE })) {
        show(ServingStatus[answer.status] ?? String(answer.status));
        pause = 1000;
      }
      show("UNKNOWN", "the health watch ended");
    } catch (error) {
      show("UNAVAILABLE", describe(error));
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}
