// Drives Debian's headless Chromium for the viewer tests (tests/web/browser.py): one JSON command per line
// on stdin, one JSON answer per line on stdout. playwright-core comes from the conformance test's npm
// install (tests/conformance/js, `make js-deps`); it only drives /usr/bin/chromium, never downloads one.
//
//   {"op": "open", "url": U}                       -> {"ok", "page", "status", "text"}
//   {"op": "wait", "page": N, "until": JS, "ms": T} -> {"ok", ...read}   (JS over `viewer` and `state`)
//   {"op": "read", "page": N}                      -> {"ok", "viewer", "notice", "outfit", "diagnostics"}
//   {"op": "close", "page": N} | {"op": "quit"}
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(new URL("../../conformance/js/package.json", import.meta.url));
const { chromium } = require("playwright-core");

// As tests/conformance/js/runner.mjs: WebRTC on loopback, no network beyond 127.0.0.1.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-dev-shm-usage",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_ARGS,
});
const context = await browser.newContext();
const pages = [];

async function open({ url }) {
  const page = await context.newPage();
  const diagnostics = { console: [], pageErrors: [] };
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      diagnostics.console.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => diagnostics.pageErrors.push(String(error)));
  pages.push({ page, diagnostics });
  const response = await page.goto(url);
  return {
    page: pages.length - 1,
    status: response ? response.status() : null,
    text: await page.evaluate(() => document.body.innerText),
  };
}

async function read({ page: index }) {
  const { page, diagnostics } = pages[index];
  const shown = await page.evaluate(() => ({
    viewer: window.viewer ? { ...window.viewer } : null,
    notice: document.getElementById("notice")?.innerText ?? null,
    noticeHidden: document.getElementById("notice")?.hidden ?? null,
    outfit: document.getElementById("outfit")?.innerText ?? null,
  }));
  return { ...shown, diagnostics };
}

// Polls from here: the page's Content-Security-Policy forbids evaluating strings inside it (which
// playwright's waitForFunction would), and the test must see the page under its real policy.
async function wait({ page: index, until, ms }) {
  const holds = new Function("state", "viewer", `return (${until});`);
  const deadline = Date.now() + (ms ?? 20000);
  for (;;) {
    const state = await read({ page: index });
    if (holds(state, state.viewer)) return state;
    if (Date.now() > deadline) throw new Error(`still not true after ${ms} ms: ${until}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function close({ page: index }) {
  await pages[index].page.close();
  return {};
}

const OPS = { open, read, wait, close };
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  if (command.op === "quit") break;
  let answer;
  try {
    answer = { ok: true, ...(await OPS[command.op](command)) };
  } catch (error) {
    answer = { ok: false, error: String(error.message ?? error) };
    if (command.page !== undefined && pages[command.page]) {
      try {
        answer.state = await read({ page: command.page });
      } catch (ignored) {
        // the page itself is gone
      }
    }
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
lines.close();
await browser.close();
process.exit(0); // stdin may still be open: nothing else must keep this process alive
