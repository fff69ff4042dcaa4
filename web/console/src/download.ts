// DownloadFile: a file in chunks with a progress bar. A stopped or broken
// download resumes from the bytes it holds (start_offset); at the end the
// page hashes what it received and compares it with the server's record
// (response metadata file-sha256), then offers the bytes to save.
import { byId, say, size } from "./dom.js";
import { cancelled, describe, streaming } from "./rpc.js";

interface Transfer {
  fileId: string;
  chunks: Uint8Array[];
  received: number;
  total: number;
  expected: string;
  filename: string;
}

let transfer: Transfer | null = null;
let running: AbortController | null = null;

async function sha256(blob: Blob): Promise<string> {
  if (!crypto.subtle) return "(unavailable: the page is not a secure context; use https or localhost)";
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function progress(current: Transfer): void {
  const bar = byId<HTMLProgressElement>("download-progress");
  bar.max = Math.max(current.total, 1);
  bar.value = current.received;
  const of = current.total ? ` of ${size(current.total)}` : "";
  say(byId("download-status"), `${size(current.received)}${of} received`);
}

async function finish(current: Transfer): Promise<void> {
  const blob = new Blob(current.chunks as BlobPart[], { type: "application/octet-stream" });
  const digest = await sha256(blob);
  byId("download-sha256").textContent = digest;
  const verdict =
    current.expected === ""
      ? "done (the server sent no file-sha256)"
      : digest === current.expected
        ? "done: sha256 verified"
        : "done, but the sha256 differs from the server's";
  say(byId("download-status"), `${size(current.received)} received; ${verdict}`, digest !== current.expected);
  const save = byId<HTMLAnchorElement>("download-save");
  if (save.href) URL.revokeObjectURL(save.href);
  save.href = URL.createObjectURL(blob);
  save.download = current.filename || current.fileId;
  save.textContent = `save ${save.download} (${size(current.received)})`;
  save.hidden = false;
}

async function run(current: Transfer): Promise<void> {
  const stop = byId<HTMLButtonElement>("download-stop");
  const resume = byId<HTMLButtonElement>("download-resume");
  running?.abort();
  const controller = new AbortController();
  running = controller;
  stop.disabled = false;
  resume.disabled = true;
  const request = { fileId: current.fileId, startOffset: BigInt(current.received) };
  const options = {
    signal: controller.signal,
    onHeader(headers: Headers): void {
      current.expected = headers.get("file-sha256") ?? current.expected;
      current.total = Number(headers.get("file-size") ?? current.total);
      byId("download-expected").textContent = current.expected;
    },
  };
  try {
    for await (const chunk of streaming.downloadFile(request, options)) {
      if (Number(chunk.offset) !== current.received) {
        throw new Error(`chunk at offset ${chunk.offset}, expected ${current.received}`);
      }
      current.chunks.push(chunk.content);
      current.received += chunk.content.length;
      if (chunk.totalSize) current.total = Number(chunk.totalSize);
      if (chunk.filename) current.filename = chunk.filename;
      progress(current);
    }
    await finish(current);
  } catch (error) {
    const why = cancelled(error) ? "stopped" : error instanceof Error && !("code" in error) ? error.message : describe(error);
    say(byId("download-status"), `${why} at ${size(current.received)}; resume continues from there`, !cancelled(error));
    resume.disabled = false;
  } finally {
    if (running === controller) stop.disabled = true;
  }
}

/** Wire up the DownloadFile panel. */
export function setUpDownload(): void {
  byId<HTMLFormElement>("download-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const fileId = byId<HTMLInputElement>("download-id").value.trim();
    transfer = { fileId, chunks: [], received: 0, total: 0, expected: "", filename: "" };
    byId("download-sha256").textContent = "";
    byId("download-expected").textContent = "";
    byId<HTMLAnchorElement>("download-save").hidden = true;
    progress(transfer);
    void run(transfer);
  });
  byId<HTMLButtonElement>("download-stop").addEventListener("click", () => running?.abort());
  byId<HTMLButtonElement>("download-resume").addEventListener("click", () => {
    if (transfer) void run(transfer);
  });
}
