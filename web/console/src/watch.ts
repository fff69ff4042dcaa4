// WatchEvents: the live event stream, filtered by type and expression, with
// resume after a dropped connection from the last event id (metadata
// last-event-id; the server replays what was missed, or sends a gap event).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Event } from "./gen/streaming/v1/streaming_pb.js";
import { byId, row, say, text } from "./dom.js";
import { cancelled, describe, streaming } from "./rpc.js";

/** Rows kept in the table (the oldest go first). */
const MAX_ROWS = 200;

let watching: AbortController | null = null;

function types(): string[] {
  return byId<HTMLInputElement>("watch-types")
    .value.split(",")
    .map((type) => type.trim())
    .filter((type) => type !== "");
}

function add(event: Event): void {
  const body = byId<HTMLTableSectionElement>("events");
  const when = event.timestamp ? timestampDate(event.timestamp).toLocaleTimeString() : "";
  const tr = row([when, event.type, event.id, text(event.payload)]);
  tr.dataset.type = event.type;
  body.prepend(tr);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

async function watch(signal: AbortSignal): Promise<void> {
  const status = byId<HTMLParagraphElement>("watch-status");
  const heartbeats = byId<HTMLInputElement>("watch-heartbeats");
  const request = { eventTypes: types(), filter: byId<HTMLInputElement>("watch-filter").value };
  let lastId = "";
  let seen = 0;
  let pause = 500;
  while (!signal.aborted) {
    say(status, lastId ? `reconnected, resuming after ${lastId}` : "watching");
    try {
      const headers: Record<string, string> = lastId ? { "last-event-id": lastId } : {};
      for await (const event of streaming.watchEvents(request, { signal, headers })) {
        pause = 500;
        if (event.type !== "heartbeat") lastId = event.id;
        if (event.type === "heartbeat" && !heartbeats.checked) continue;
        add(event);
        seen += 1;
        say(status, `watching: ${seen} events`);
      }
      say(status, "the server ended the watch");
      return;
    } catch (error) {
      if (cancelled(error) || signal.aborted) return;
      const failure = describe(error);
      // A refused watch (bad filter, no token) will not get better by retrying.
      if (!/^(UNAVAILABLE|DEADLINE_EXCEEDED|UNKNOWN|INTERNAL)/.test(failure)) {
        say(status, failure, true);
        return;
      }
      say(status, `${failure}; reconnecting in ${pause / 1000} s`, true);
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 10_000);
    }
  }
}

/** Wire up the WatchEvents panel. */
export function setUpWatch(): void {
  const start = byId<HTMLButtonElement>("watch-start");
  const stop = byId<HTMLButtonElement>("watch-stop");
  byId<HTMLFormElement>("watch-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    watching?.abort();
    const controller = new AbortController();
    watching = controller;
    byId<HTMLTableSectionElement>("events").replaceChildren();
    stop.disabled = false;
    start.textContent = "restart";
    void watch(controller.signal).finally(() => {
      if (watching === controller) {
        stop.disabled = true;
        start.textContent = "watch";
      }
    });
  });
  stop.addEventListener("click", () => {
    watching?.abort();
    say(byId("watch-status"), "stopped");
  });
}
