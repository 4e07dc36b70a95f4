// Drives the official Odyssey JS SDK (npm @odysseyml/odyssey) in headless Chromium against an
// Odyssey-compatible API (our emulator) and prints one JSON report on stdout.
//
// Usage: node runner.mjs <api_url> <api_key> <image_path> [--scenario=flow|errors|credentials|broadcast]
//                        [--disabled-key=KEY] [--limited-key=KEY] [--credentials=JSON]
//   flow:   connect, start with the image, interact twice, end, a second (landscape, text-only) stream on
//           the same connection, getRecording of the first, listStreamRecordings.
//   errors: connect with an unknown, a disabled (403) and a zero-concurrency (429) key, then connect with
//           <api_key> and start a stream the emulator is set to refuse.
//   credentials: connect with the given client credentials (a dict minted elsewhere, e.g. by our Python
//           client), run a short stream, then mint credentials with <api_key> for someone else.
//   broadcast: start with broadcast: true, watch it through Odyssey.connectToStream (WHEP), leave, end.
// Env:   CHROMIUM_PATH (default /usr/bin/chromium), CONFORMANCE_STEP_TIMEOUT_MS (default 15000)
// Exit:  0 all steps passed, 1 a step failed (the report says which), 2 bad usage or the browser failed.
import http from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SDK_FILE = path.join(HERE, "node_modules", "@odysseyml", "odyssey", "dist", "index.js");
const SDK_PACKAGE_FILE = path.join(HERE, "node_modules", "@odysseyml", "odyssey", "package.json");
const HARNESS_FILE = path.join(HERE, "page-harness.js");
const STEP_TIMEOUT_MS = Number(process.env.CONFORMANCE_STEP_TIMEOUT_MS ?? 15000);

// From docs/loopback-webrtc.md: keep every ICE packet on 127.0.0.1 and stop background look-ups.
const CHROMIUM_ARGS = [
  "--no-sandbox",
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

const IMAGE_TYPES = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp" };

function pageHtml(apiUrl) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Odyssey JS SDK conformance</title></head>
<body>
<video id="video" muted autoplay playsinline></video>
<script>window.__ODYSSEY_API_URL__ = ${JSON.stringify(apiUrl)};</script>
<script type="module" src="/harness.js"></script>
</body></html>`;
}

// Serves the page, the SDK exactly as published, the harness and the photo from one loopback origin.
async function startPageServer(apiUrl, imagePath) {
  const files = {
    "/": { body: pageHtml(apiUrl), type: "text/html; charset=utf-8" },
    "/sdk/odyssey.js": { body: await readFile(SDK_FILE), type: "text/javascript" },
    "/harness.js": { body: await readFile(HARNESS_FILE), type: "text/javascript" },
    "/photo": {
      body: await readFile(imagePath),
      type: IMAGE_TYPES[path.extname(imagePath).toLowerCase()] ?? "application/octet-stream",
    },
  };
  const server = http.createServer((request, response) => {
    const file = files[new URL(request.url, "http://127.0.0.1").pathname];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "Content-Type": file.type, "Cache-Control": "no-store" }).end(file.body);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const { positionals, values: options } = parseArgs({
    allowPositionals: true,
    options: {
      scenario: { type: "string", default: "flow" },
      "disabled-key": { type: "string" },
      "limited-key": { type: "string" },
      credentials: { type: "string" },
    },
  });
  const [apiUrl, apiKey, imagePath] = positionals;
  const scenario = SCENARIOS[options.scenario];
  if (!apiUrl || !apiKey || !imagePath || !scenario) {
    process.stderr.write("usage: node runner.mjs <api_url> <api_key> <image_path> [--scenario=NAME]\n");
    process.exit(2);
  }
  const sdkVersion = JSON.parse(await readFile(SDK_PACKAGE_FILE, "utf8")).version;
  const report = {
    ok: false,
    scenario: options.scenario,
    sdkVersion,
    apiUrl,
    pageOrigin: null,
    steps: {},
    order: [],
    failedStep: null,
    error: null,
  };
  const diagnostics = { console: [], pageErrors: [], failedRequests: [] };
  const { server, origin } = await startPageServer(apiUrl, imagePath);
  report.pageOrigin = origin;
  let browser = null;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_ARGS,
    });
    const page = await browser.newPage();
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") {
        diagnostics.console.push(`${message.type()}: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => diagnostics.pageErrors.push(String(error)));
    page.on("requestfailed", (request) =>
      diagnostics.failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`),
    );
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.conformance !== undefined, null, { timeout: STEP_TIMEOUT_MS });

    const step = async (label, name, arg) => {
      const startedAt = Date.now();
      report.order.push(label);
      try {
        const call = page.evaluate(([fn, a]) => window.conformance[fn](a), [name, arg ?? {}]);
        const result = await withTimeout(call, STEP_TIMEOUT_MS, label);
        report.steps[label] = { ok: true, ms: Date.now() - startedAt, result };
        return result;
      } catch (error) {
        report.steps[label] = { ok: false, ms: Date.now() - startedAt, error: String(error.message ?? error) };
        report.failedStep = label;
        throw error;
      }
    };

    try {
      await scenario(step, { apiKey, ...options });
      report.ok = true;
    } catch (error) {
      report.error = String(error.message ?? error);
    } finally {
      try {
        await withTimeout(
          page.evaluate(() => window.conformance.disconnect()),
          STEP_TIMEOUT_MS,
          "disconnect",
        );
        report.events = await page.evaluate(() => window.conformance.events());
      } catch (error) {
        diagnostics.pageErrors.push(`cleanup: ${error.message ?? error}`);
      }
    }
  } catch (error) {
    report.error = `browser: ${error.message ?? error}`;
    report.failedStep = report.failedStep ?? "browser";
  } finally {
    if (browser) await browser.close().catch(() => undefined);
    server.close();
  }
  report.diagnostics = diagnostics;
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : report.failedStep === "browser" ? 2 : 1);
}

async function runFlow(step, { apiKey }) {
  await step("connect", "connect", { apiKey });
  const started = await step("startStream", "startStream", {
    prompt: "a person in a plain white t-shirt",
    imageUrl: "/photo",
    portrait: true,
  });
  await step("framesAfterStart", "waitForFrames", { more: 5, pollMs: 100 });
  await step("interact1", "interact", { prompt: "a red leather jacket" });
  await step("interact2", "interact", { prompt: "a blue denim jacket" });
  await step("framesAfterInteract", "waitForFrames", { more: 3, pollMs: 100 });
  await step("ice", "iceReport");
  await step("endStream", "endStream");
  await step("startLandscape", "startStream", { prompt: "a person in a yellow raincoat", portrait: false });
  await step("framesLandscape", "waitForFrames", { more: 5, pollMs: 100 });
  await step("endLandscape", "endStream");
  const { recording } = await step("getRecording", "getRecording", {
    streamId: started.streamId,
    retryForMs: 10000,
    pollMs: 250,
  });
  await step("recordingMedia", "loadRecordingMedia", {
    videoUrl: recording.video_url,
    thumbnailUrl: recording.thumbnail_url,
    previewUrl: recording.preview_url,
  });
  await step("listStreamRecordings", "listStreamRecordings", { limit: 10 });
}

async function runErrorPaths(step, options) {
  await step("unknownKey", "connectExpectingFailure", { apiKey: "ody_not_a_key" });
  await step("disabledKey", "connectExpectingFailure", { apiKey: options["disabled-key"] });
  await step("limitedKey", "connectExpectingFailure", { apiKey: options["limited-key"] });
  await step("connect", "connect", { apiKey: options.apiKey });
  await step("refusedStart", "startStreamExpectingFailure", { prompt: "a green raincoat" });
}

async function runCredentials(step, options) {
  const credentials = JSON.parse(options.credentials ?? "{}");
  await step("connectWithCredentials", "connectWithCredentials", { credentials });
  await step("startStream", "startStream", { prompt: "a person in a grey hoodie", portrait: true });
  await step("endStream", "endStream");
  await step("disconnectCredentialed", "disconnect");
  await step("mintCredentials", "mintCredentials", { apiKey: options.apiKey });
}

async function runBroadcast(step, { apiKey }) {
  await step("connect", "connect", { apiKey });
  await step("startStream", "startStream", { prompt: "a person in a green coat", portrait: true, broadcast: true });
  await step("spectate", "spectate", { frames: 5, pollMs: 100 });
  await step("leaveSpectating", "leaveSpectating", { pollMs: 50 });
  await step("endStream", "endStream");
}

const SCENARIOS = { flow: runFlow, errors: runErrorPaths, credentials: runCredentials, broadcast: runBroadcast };

await main();
