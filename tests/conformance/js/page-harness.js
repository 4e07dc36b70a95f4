// In-page half of the conformance runner: wraps the official SDK's public API in small steps that
// runner.mjs calls one at a time, and keeps a log of every SDK callback. Runs inside Chromium.
import { Odyssey, credentialsFromDict, credentialsToDict } from "/sdk/odyssey.js";

const events = [];
let client = null;

function record(name, detail) {
  events.push({ name, detail: detail === undefined ? null : detail, at_ms: Math.round(performance.now()) });
}

function describeError(error) {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

const handlers = {
  onConnected: () => record("connected"),
  onDisconnected: () => record("disconnected"),
  onStatusChange: (status, message) => record("status", { status, message: message ?? null }),
  onStreamStarted: (streamId) => record("stream_started", { streamId }),
  onStreamEnded: () => record("stream_ended"),
  onInteractAcknowledged: (prompt) => record("interact_acknowledged", { prompt }),
  onStreamError: (reason, message) => record("stream_error", { reason, message }),
  onError: (error, fatal) => record("error", { error: describeError(error), fatal }),
  onBroadcastReady: (info) => record("broadcast_ready", info),
};

function videoElement() {
  return document.getElementById("video");
}

async function statsOfType(type) {
  const report = await client.pc.getStats();
  return [...report.values()].filter((entry) => entry.type === type);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// connect() resolves once the track and the data channel are there; the SDK sets status "connected" on the
// peer connection's own state change, which the browser may report a moment later (§9.3).
async function settledStatus(timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (client.currentStatus === "connecting" && Date.now() < deadline) {
    await sleep(20);
  }
  return client.currentStatus;
}

async function connect({ apiKey }) {
  client = new Odyssey({ apiKey });
  const stream = await client.connect(handlers);
  const video = videoElement();
  video.srcObject = stream;
  await video.play().catch(() => undefined);
  return {
    status: await settledStatus(),
    sessionId: client.currentSessionId,
    apiUrl: client.config.apiUrl,
    capabilities: client.capabilities,
    videoTracks: stream.getVideoTracks().length,
    connectionState: client.connectionState,
  };
}

// With an image the SDK sends the start over the websocket; text-only starts go over the data channel.
// Two-phase auth, browser half: connect with credentials a server minted (no API key in the page).
async function connectWithCredentials({ credentials }) {
  client = new Odyssey();
  const stream = await client.connectWithCredentials(credentialsFromDict(credentials), handlers);
  videoElement().srcObject = stream;
  return {
    status: await settledStatus(),
    sessionId: client.currentSessionId,
    capabilities: client.capabilities,
    videoTracks: stream.getVideoTracks().length,
  };
}

// Two-phase auth, server half: mint credentials for someone else and hand them over as a plain dict.
async function mintCredentials({ apiKey }) {
  const minter = new Odyssey({ apiKey });
  return credentialsToDict(await minter.createClientCredentials());
}

async function startStream({ prompt, imageUrl, portrait, broadcast }) {
  const image = imageUrl ? await (await fetch(imageUrl)).blob() : undefined;
  const streamId = await client.startStream({ prompt, portrait, image, broadcast: broadcast === true });
  return {
    streamId,
    lastAppliedPrompt: client.lastAppliedPrompt,
    imageBytes: image ? image.size : null,
    imageType: image ? image.type : null,
  };
}

// Waits until the browser has decoded `more` frames beyond what it had when called.
async function waitForFrames({ more, pollMs }) {
  const decodedNow = async () => {
    const inbound = (await statsOfType("inbound-rtp")).find((entry) => entry.kind === "video");
    return inbound ?? { framesDecoded: 0 };
  };
  const start = (await decodedNow()).framesDecoded ?? 0;
  for (;;) {
    const inbound = await decodedNow();
    if ((inbound.framesDecoded ?? 0) >= start + more) {
      const codec = (await statsOfType("codec")).find((entry) => entry.id === inbound.codecId);
      const video = videoElement();
      return {
        framesDecoded: inbound.framesDecoded,
        frameWidth: inbound.frameWidth ?? null,
        frameHeight: inbound.frameHeight ?? null,
        codec: codec ? codec.mimeType : null,
        videoElementWidth: video.videoWidth,
        videoElementHeight: video.videoHeight,
      };
    }
    await sleep(pollMs);
  }
}

async function interact({ prompt }) {
  const acknowledged = await client.interact({ prompt });
  return { acknowledged, lastAppliedPrompt: client.lastAppliedPrompt };
}

function candidateLines(sdp) {
  return (sdp ?? "").split(/\r?\n/).filter((line) => line.startsWith("a=candidate:"));
}

function describeCandidate(candidate) {
  if (!candidate) return null;
  return {
    address: candidate.address ?? candidate.ip ?? null,
    port: candidate.port ?? null,
    protocol: candidate.protocol ?? null,
    candidateType: candidate.candidateType ?? null,
  };
}

// Where the media really flows: the selected ICE pair and every candidate both sides put forward.
async function iceReport() {
  const report = await client.pc.getStats();
  const byId = (id) => report.get(id);
  const transport = [...report.values()].find((entry) => entry.type === "transport");
  let pair = transport && transport.selectedCandidatePairId ? byId(transport.selectedCandidatePairId) : null;
  if (!pair) {
    pair = [...report.values()].find((entry) => entry.type === "candidate-pair" && entry.nominated && entry.state === "succeeded");
  }
  const all = (type) => [...report.values()].filter((entry) => entry.type === type).map(describeCandidate);
  return {
    selectedPair: pair
      ? {
          local: describeCandidate(byId(pair.localCandidateId)),
          remote: describeCandidate(byId(pair.remoteCandidateId)),
          bytesReceived: pair.bytesReceived ?? null,
        }
      : null,
    localCandidates: all("local-candidate"),
    remoteCandidates: all("remote-candidate"),
    offerCandidateLines: candidateLines(client.pc.remoteDescription?.sdp),
    answerCandidateLines: candidateLines(client.pc.localDescription?.sdp),
    offerHasMsid: /^a=msid:/m.test(client.pc.remoteDescription?.sdp ?? ""),
  };
}

async function endStream() {
  await client.endStream();
  return { status: client.currentStatus };
}

// The emulator may store the recording a moment after `stream_ended`, so "not found" is retried briefly.
async function getRecording({ streamId, retryForMs, pollMs }) {
  const deadline = performance.now() + retryForMs;
  let attempts = 0;
  for (;;) {
    attempts += 1;
    try {
      const recording = await client.getRecording(streamId);
      return { recording, attempts };
    } catch (error) {
      if (!String(error.message).includes("not found") || performance.now() > deadline) throw error;
    }
    await sleep(pollMs);
  }
}

function loadVideoMetadata(url) {
  return new Promise((resolve) => {
    const video = document.createElement("video");
    video.muted = true;
    video.preload = "metadata";
    video.onloadedmetadata = () =>
      resolve({ loaded: true, duration: video.duration, width: video.videoWidth, height: video.videoHeight });
    video.onerror = () => resolve({ loaded: false, error: video.error ? `${video.error.code} ${video.error.message}` : "error" });
    video.src = url;
  });
}

function loadImage(url) {
  return new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve({ loaded: true, width: image.naturalWidth, height: image.naturalHeight });
    image.onerror = () => resolve({ loaded: false });
    image.src = url;
  });
}

// What a web page does with recording URLs: play them in media elements (no CORS needed for that).
async function loadRecordingMedia({ videoUrl, thumbnailUrl, previewUrl }) {
  return {
    video: videoUrl ? await loadVideoMetadata(videoUrl) : null,
    preview: previewUrl ? await loadVideoMetadata(previewUrl) : null,
    thumbnail: thumbnailUrl ? await loadImage(thumbnailUrl) : null,
  };
}

async function listStreamRecordings({ limit }) {
  return await client.listStreamRecordings({ limit });
}

// For error paths: a fresh client whose connect() must fail; reports what the SDK raised.
async function connectExpectingFailure({ apiKey }) {
  const probe = new Odyssey({ apiKey });
  try {
    await probe.connect(handlers);
  } catch (error) {
    return {
      rejected: true,
      name: error.name,
      message: error.message,
      code: error.code ?? null,
      details: error.details ?? null,
      status: probe.currentStatus,
    };
  } finally {
    probe.disconnect();
  }
  return { rejected: false };
}

async function startStreamExpectingFailure({ prompt }) {
  try {
    const streamId = await client.startStream({ prompt });
    return { rejected: false, streamId };
  } catch (error) {
    return { rejected: true, name: error.name, message: error.message, status: client.currentStatus };
  }
}

// Broadcast: wait for onBroadcastReady, then watch as a spectator through the SDK's WHEP client.
let spectator = null;

async function spectate({ frames, pollMs }) {
  let ready = null;
  while (!(ready = events.find((event) => event.name === "broadcast_ready"))) {
    await sleep(pollMs);
  }
  const { webrtcUrl, spectatorToken } = ready.detail;
  spectator = await Odyssey.connectToStream(webrtcUrl, spectatorToken);
  const pc = spectator.pc;
  for (;;) {
    const report = [...(await pc.getStats()).values()];
    const inbound = report.find((entry) => entry.type === "inbound-rtp" && entry.kind === "video");
    if (inbound && (inbound.framesDecoded ?? 0) >= frames) {
      const codec = report.find((entry) => entry.id === inbound.codecId);
      return {
        framesDecoded: inbound.framesDecoded,
        frameWidth: inbound.frameWidth ?? null,
        frameHeight: inbound.frameHeight ?? null,
        codec: codec ? codec.mimeType : null,
        connectionState: spectator.connectionState,
        videoTracks: spectator.stream.getVideoTracks().length,
      };
    }
    await sleep(pollMs);
  }
}

// What a spectator does when it leaves while the stream still runs: WHEP DELETE (fire and forget in the
// SDK, so wait until the browser saw the response), then close.
async function leaveSpectating({ pollMs }) {
  spectator.disconnect();
  const isDelete = (entry) => /\/whep\/[^?]+$/.test(entry.name);
  while (!performance.getEntriesByType("resource").some(isDelete)) {
    await sleep(pollMs);
  }
  return { connectionState: spectator.connectionState };
}

function disconnect() {
  if (spectator) spectator.close();
  if (client) client.disconnect();
  return { status: client ? client.currentStatus : null };
}

window.conformance = {
  connect,
  startStream,
  waitForFrames,
  interact,
  iceReport,
  endStream,
  getRecording,
  loadRecordingMedia,
  listStreamRecordings,
  connectExpectingFailure,
  connectWithCredentials,
  mintCredentials,
  startStreamExpectingFailure,
  spectate,
  leaveSpectating,
  disconnect,
  events: () => events,
};
window.dispatchEvent(new Event("conformance-ready"));
