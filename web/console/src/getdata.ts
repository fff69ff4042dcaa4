// GetData: one record by key (unary).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { byId, say, text } from "./dom.js";
import { describe, streaming } from "./rpc.js";

/** Wire up the GetData panel. */
export function setUpGetData(): void {
  byId<HTMLFormElement>("get-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const out = byId<HTMLPreElement>("get-result");
    const key = byId<HTMLInputElement>("get-key").value;
    say(out, "…");
    streaming.getData({ key }).then(
      (record) => {
        const updated = record.updatedAt ? timestampDate(record.updatedAt).toISOString() : "";
        say(out, `${record.key} = ${text(record.value, 4000)}\nversion ${record.version}, updated ${updated}`);
      },
      (error: unknown) => say(out, describe(error), true),
    );
  });
}
