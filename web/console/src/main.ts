// The streaming.v1 console: a page the server itself serves (serve --web),
// calling it over gRPC-Web with the generated clients (rpc.ts).
import { setUpDataset } from "./dataset.js";
import { byId, say } from "./dom.js";
import { setUpDownload } from "./download.js";
import { setUpGetData } from "./getdata.js";
import { followHealth } from "./health.js";
import { setToken, token } from "./rpc.js";
import { setUpWatch } from "./watch.js";

function setUpToken(): void {
  const input = byId<HTMLInputElement>("token");
  const state = byId<HTMLSpanElement>("token-state");
  const describeToken = (): void =>
    say(state, token() ? "calls carry this token" : "no token: the server may refuse calls");
  input.value = token();
  describeToken();
  byId<HTMLFormElement>("token-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    setToken(input.value.trim());
    describeToken();
  });
}

setUpToken();
setUpWatch();
setUpGetData();
setUpDataset();
setUpDownload();
void followHealth();
