// ListLargeDataset: the dataset in pages. The RPC streams every row after
// `start_cursor`; a page reads one row more than it shows (to know whether
// there is a next page), then cancels the stream. Each row's cursor resumes
// right after it: "next page" starts at the last row shown, "previous page"
// at the start it remembers, and any cursor can be pasted to resume there.
import type { DataItem } from "./gen/streaming/v1/streaming_pb.js";
import { byId, row, say, text } from "./dom.js";
import { describe, streaming } from "./rpc.js";

/** The cursor each page shown so far started after ("" = the beginning). */
let starts: string[] = [];
let nextStart: string | null = null;
let loading: AbortController | null = null;

function pageSize(): number {
  const value = Number(byId<HTMLInputElement>("list-size").value);
  return Number.isInteger(value) && value >= 1 ? Math.min(value, 1000) : 20;
}

async function fetchPage(start: string, size: number, signal: AbortSignal): Promise<DataItem[]> {
  const filter = byId<HTMLInputElement>("list-filter").value;
  const items: DataItem[] = [];
  // page_size is the server's fetch batch: one database round trip per page.
  const request = { startCursor: start, pageSize: size + 1, filter };
  for await (const item of streaming.listLargeDataset(request, { signal })) {
    items.push(item);
    if (items.length > size) break; // leaving the loop cancels the call
  }
  return items;
}

async function show(start: string): Promise<void> {
  const status = byId<HTMLParagraphElement>("list-status");
  const prev = byId<HTMLButtonElement>("list-prev");
  const next = byId<HTMLButtonElement>("list-next");
  loading?.abort();
  const controller = new AbortController();
  loading = controller;
  const size = pageSize();
  say(status, "loading…");
  try {
    const items = await fetchPage(start, size, controller.signal);
    const shown = items.slice(0, size);
    byId<HTMLTableSectionElement>("rows").replaceChildren(
      ...shown.map((item) =>
        row([String(item.id), item.category, item.value.toFixed(4), text(item.data, 40), item.cursor]),
      ),
    );
    const last = shown.at(-1);
    nextStart = items.length > size && last ? last.cursor : null;
    if (last) byId<HTMLInputElement>("list-cursor").value = last.cursor;
    const resumed = starts[0] ? ` (resumed after ${starts[0]})` : "";
    say(
      status,
      shown.length === 0
        ? `no rows${resumed}`
        : `page ${starts.length}${resumed}: ${shown.length} rows, id ${shown[0]?.id} to ${last?.id}` +
            (nextStart === null ? " (the last page)" : "") +
            ` · resume after cursor ${last?.cursor ?? ""}`,
    );
  } catch (error) {
    if (!controller.signal.aborted) say(status, describe(error), true);
  } finally {
    controller.abort(); // the stream is done with either way
    prev.disabled = starts.length <= 1;
    next.disabled = nextStart === null;
  }
}

/** Wire up the ListLargeDataset panel. */
export function setUpDataset(): void {
  byId<HTMLFormElement>("list-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const resumeAt = byId<HTMLInputElement>("list-cursor").value.trim();
    starts = [resumeAt];
    void show(resumeAt);
  });
  byId<HTMLButtonElement>("list-next").addEventListener("click", () => {
    if (nextStart === null) return;
    starts.push(nextStart);
    void show(nextStart);
  });
  byId<HTMLButtonElement>("list-prev").addEventListener("click", () => {
    if (starts.length <= 1) return;
    starts.pop();
    void show(starts[starts.length - 1] ?? "");
  });
}
