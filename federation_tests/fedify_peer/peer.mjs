// Archipel interop test peer: an independent ActivityPub server built on Fedify 2.3.6.
//
// Usage:  .runtime/node peer.mjs --port 8101 [--host 127.0.0.1] [--actors alice,bob]
//                               [--keys keys.json] [--first-knock rfc9421|draft-cavage-http-signatures-12]
//                               [--follow-policy accept|reject|ignore] [--log-level info]
//         (PORT, HOST, ACTORS, KEYS_FILE, FIRST_KNOCK, FOLLOW_POLICY, LOG_LEVEL env vars work too)
//
// Fedify serves the ActivityPub side (actors, WebFinger, inboxes, outbox, followers, notes);
// a small JSON control API under /_control/ drives it from the Python tests (README.md).
// Everything is in memory; logs go to stderr.  Test use only: it allows private addresses.

import http from "node:http";
import fs from "node:fs";
import { AsyncLocalStorage } from "node:async_hooks";
import { parseArgs, inspect } from "node:util";
import { randomUUID } from "node:crypto";

if (Number(process.versions.node.split(".")[0]) < 22) {
  process.stderr.write(
    `fedify peer: Node.js >= 22 is required (this is ${process.version}); ` +
      "run federation_tests/fedify_peer/install.sh and use .runtime/node\n",
  );
  process.exit(2);
}

let fedify, vocab, logtape, TemporalPolyfill;
try {
  [fedify, vocab, logtape, TemporalPolyfill] = await Promise.all([
    import("@fedify/fedify"),
    import("@fedify/vocab"),
    import("@logtape/logtape"),
    import("@js-temporal/polyfill"),
  ]);
} catch (error) {
  process.stderr.write(
    `fedify peer: cannot load Fedify (${error.message}); run federation_tests/fedify_peer/install.sh\n`,
  );
  process.exit(2);
}
const { Temporal } = TemporalPolyfill;
const {
  createFederation, MemoryKvStore, generateCryptoKeyPair, exportJwk, importJwk,
  verifyObject, verifyProof, verifyRequestDetailed, verifyJsonLd, hasProofLike, hasSignatureLike,
  detachSignature,
} = fedify;
const {
  Activity, Accept, Announce, Create, Delete, Endpoints, Follow, Like, Note, Person,
  Reject, Tombstone, Undo, Update, PUBLIC_COLLECTION, isActor,
} = vocab;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------
const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    actors: { type: "string" },
    keys: { type: "string" },
    "first-knock": { type: "string" },
    "follow-policy": { type: "string" },
    "log-level": { type: "string" },
  },
  strict: true,
});
const PORT = Number(args.port ?? process.env.PORT ?? "0");
const HOST = args.host ?? process.env.HOST ?? "127.0.0.1";
const ACTORS = (args.actors ?? process.env.ACTORS ?? "alice").split(",").map((s) => s.trim()).filter(Boolean);
const KEYS_FILE = args.keys ?? process.env.KEYS_FILE ?? null;
const FIRST_KNOCK = args["first-knock"] ?? process.env.FIRST_KNOCK ?? "rfc9421";
const FOLLOW_POLICY = args["follow-policy"] ?? process.env.FOLLOW_POLICY ?? "accept";
const LOG_LEVEL = args["log-level"] ?? process.env.LOG_LEVEL ?? "info";
const SPECS = ["rfc9421", "draft-cavage-http-signatures-12"];

function die(msg) {
  process.stderr.write(`fedify peer: ${msg}\n`);
  process.exit(2);
}
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) die("a TCP port is required: --port N or PORT=N");
if (!SPECS.includes(FIRST_KNOCK)) die(`--first-knock must be one of ${SPECS.join(", ")}`);
if (!["accept", "reject", "ignore"].includes(FOLLOW_POLICY)) die("--follow-policy must be accept, reject or ignore");
for (const a of ACTORS) if (!/^[a-z0-9_]+$/i.test(a)) die(`bad actor name ${a}`);

const ORIGIN = `http://${HOST.includes(":") ? `[${HOST}]` : HOST}:${PORT}`;
const FEDIFY_VERSION = (() => {
  for (const rel of ["./node_modules/@fedify/fedify/package.json", "./.runtime/node_modules/@fedify/fedify/package.json"]) {
    try { return JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), "utf8")).version; } catch { /* next */ }
  }
  return "unknown";
})();
// The KV prefix under which Fedify remembers, per remote origin, which HTTP signature spec
// worked last (double-knocking).  We set it explicitly so /_control/send can pre-seed it.
const SPEC_KV_PREFIX = ["_fedify", "httpMessageSignaturesSpec"];

// ---------------------------------------------------------------------------------------
// Logging (LogTape -> stderr) + per-request capture of Fedify's own log lines
// ---------------------------------------------------------------------------------------
const captureStore = new AsyncLocalStorage(); // { logs: string[], verifiedBy? } during an inbox POST / a send
const MAX_CAPTURED = 60;
// Fedify's inbox logs (at debug level) which mechanism authenticated an activity; we use
// these lines to report it, since the listener API does not tell.
const VERIFIED_BY = {
  "Linked Data Signatures are verified.": "ld_signature",
  "Object Integrity Proofs are verified.": "object_integrity_proof",
  "HTTP Signatures are verified.": "http_signature",
};

function renderMessage(record) {
  return record.message
    .map((part, i) => (i % 2 === 0 ? part : typeof part === "string" ? part : inspect(part, { depth: 2, breakLength: Infinity, maxStringLength: 500 })))
    .join("");
}
const stderrSink = logtape.withFilter(
  (record) => process.stderr.write(logtape.defaultTextFormatter(record)),
  logtape.getLevelFilter(LOG_LEVEL),
);
const captureSink = (record) => {
  const store = captureStore.getStore();
  if (store == null) return;
  const first = record.message[0];
  if (typeof first === "string" && VERIFIED_BY[first] != null) store.verifiedBy = VERIFIED_BY[first];
  // JSON-LD context cache chatter is not worth keeping.
  if (record.category.includes("kv-cache") || record.category.includes("docloader")) return;
  if (store.logs.length >= MAX_CAPTURED) return;
  store.logs.push(`${record.level} ${record.category.join("·")}: ${renderMessage(record)}`.slice(0, 2000));
};
await logtape.configure({
  contextLocalStorage: new AsyncLocalStorage(), // Fedify logs with LogTape's withContext()
  sinks: { stderr: stderrSink, capture: captureSink },
  loggers: [
    { category: ["fedify"], sinks: ["stderr", "capture"], lowestLevel: "debug" },
    { category: ["peer"], sinks: ["stderr"], lowestLevel: "debug" },
    { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
  ],
});
const log = logtape.getLogger(["peer"]);

// ---------------------------------------------------------------------------------------
// Keys: per actor one RSASSA-PKCS1-v1_5 pair (HTTP signatures, LD signatures) and one
// Ed25519 pair (Object Integrity Proofs / FEP-8b32), generated at startup or kept in --keys.
// ---------------------------------------------------------------------------------------
async function loadOrCreateKeys() {
  let stored = {};
  if (KEYS_FILE != null && fs.existsSync(KEYS_FILE)) stored = JSON.parse(fs.readFileSync(KEYS_FILE, "utf8"));
  const keys = {};
  let changed = false;
  for (const actor of ACTORS) {
    if (stored[actor] == null) {
      const rsa = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
      const ed = await generateCryptoKeyPair("Ed25519");
      stored[actor] = {
        rsa: { privateKey: await exportJwk(rsa.privateKey), publicKey: await exportJwk(rsa.publicKey) },
        ed25519: { privateKey: await exportJwk(ed.privateKey), publicKey: await exportJwk(ed.publicKey) },
      };
      changed = true;
    }
    const s = stored[actor];
    keys[actor] = [
      { privateKey: await importJwk(s.rsa.privateKey, "private"), publicKey: await importJwk(s.rsa.publicKey, "public") },
      { privateKey: await importJwk(s.ed25519.privateKey, "private"), publicKey: await importJwk(s.ed25519.publicKey, "public") },
    ];
  }
  if (KEYS_FILE != null && changed) fs.writeFileSync(KEYS_FILE, JSON.stringify(stored, null, 2), { mode: 0o600 });
  return keys;
}
const KEYS = await loadOrCreateKeys();

// ---------------------------------------------------------------------------------------
// In-memory state
// ---------------------------------------------------------------------------------------
const state = {
  seq: 0,
  received: [], // inbox deliveries (see README)
  sent: [], // outgoing deliveries made by this peer
  followers: Object.fromEntries(ACTORS.map((a) => [a, new Map()])), // followerId -> info
  following: Object.fromEntries(ACTORS.map((a) => [a, new Map()])), // targetId -> info
  outbox: Object.fromEntries(ACTORS.map((a) => [a, []])), // Activity objects, newest last
  followObjects: new Map(), // follow_id -> Follow we sent (for Undo)
  notes: new Map(), // `${actor}/${id}` -> Note
  activities: new Map(), // activity URL -> compact JSON-LD (served on GET)
  objects: new Map(), // object id -> what the peer holds of a remote object (see holdObjects)
};
const nowIso = () => new Date().toISOString();

// ---------------------------------------------------------------------------------------
// Federation
// ---------------------------------------------------------------------------------------
const kv = new MemoryKvStore();
const federation = createFederation({
  kv,
  kvPrefixes: { httpMessageSignaturesSpec: SPEC_KV_PREFIX },
  // Canonical origin: URLs Fedify builds (actor ids, inboxes, key ids) use it, whatever Host
  // a request came with.  Plain http on loopback, as our test nodes run.
  origin: ORIGIN,
  // Our peers live on 127.0.0.1: without this Fedify's document loader refuses to fetch
  // actors/keys from private/loopback addresses.  Test-only setting.
  allowPrivateAddress: true,
  // Keep Fedify verifying HTTP signatures of incoming activities (the whole point).
  skipSignatureVerification: false,
  // Which HTTP signature spec to try first with a server whose spec is not yet known
  // (Fedify double-knocks: on 4xx/5xx it retries with the other spec and remembers what worked).
  firstKnock: FIRST_KNOCK,
  // No queue: deliveries happen inline, so /_control calls report the delivery outcome.
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (!ACTORS.includes(identifier)) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: `${identifier} (Fedify ${FEDIFY_VERSION} interop peer)`,
      summary: "Archipel federation test peer built on Fedify.",
      url: ctx.getActorUri(identifier),
      inbox: ctx.getInboxUri(identifier),
      outbox: ctx.getOutboxUri(identifier),
      followers: ctx.getFollowersUri(identifier),
      following: ctx.getFollowingUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      manuallyApprovesFollowers: FOLLOW_POLICY !== "accept",
      // publicKey: the RSA key (HTTP + LD signatures); assertionMethods: the Ed25519 Multikey
      // used for Object Integrity Proofs.
      publicKey: keys.find((k) => k.privateKey.algorithm.name === "RSASSA-PKCS1-v1_5").cryptographicKey,
      assertionMethods: keys.filter((k) => k.privateKey.algorithm.name === "Ed25519").map((k) => k.multikey),
    });
  })
  .setKeyPairsDispatcher((_ctx, identifier) => KEYS[identifier] ?? []);

federation.setObjectDispatcher(Note, "/users/{identifier}/notes/{id}", (_ctx, values) =>
  state.notes.get(`${values.identifier}/${values.id}`) ?? null);

federation
  .setOutboxDispatcher("/users/{identifier}/outbox", (_ctx, identifier) =>
    ACTORS.includes(identifier) ? { items: [...state.outbox[identifier]].reverse() } : null)
  .setCounter((_ctx, identifier) => state.outbox[identifier]?.length ?? null);

federation
  .setFollowersDispatcher("/users/{identifier}/followers", (_ctx, identifier) => {
    if (!ACTORS.includes(identifier)) return null;
    return {
      items: [...state.followers[identifier].values()].map((f) => ({
        id: new URL(f.id),
        inboxId: f.inbox ? new URL(f.inbox) : null,
        endpoints: f.shared_inbox ? { sharedInbox: new URL(f.shared_inbox) } : null,
      })),
    };
  })
  .setCounter((_ctx, identifier) => state.followers[identifier]?.size ?? null);

federation
  .setFollowingDispatcher("/users/{identifier}/following", (_ctx, identifier) => {
    if (!ACTORS.includes(identifier)) return null;
    return {
      items: [...state.following[identifier].values()].filter((f) => f.state === "accepted").map((f) => new URL(f.id)),
    };
  })
  .setCounter((_ctx, identifier) =>
    ACTORS.includes(identifier) ? [...state.following[identifier].values()].filter((f) => f.state === "accepted").length : null);

// --- inbox -----------------------------------------------------------------------------

/** Marks the current delivery's record as passed to a listener (i.e. accepted by Fedify). */
function markHandled(ctx, listener) {
  const rec = ctx.data?.record;
  if (rec != null) {
    rec.fedify.verified = true;
    rec.fedify.listener = listener;
  }
  return rec;
}

function afterResponse(ctx, task) {
  const tasks = ctx.data?.afterResponse;
  if (tasks != null) tasks.push(task);
  else setTimeout(task, 0);
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Follow, async (ctx, follow) => {
    const rec = markHandled(ctx, "Follow");
    if (follow.objectId == null) return;
    const parsed = ctx.parseUri(follow.objectId);
    if (parsed?.type !== "actor" || !ACTORS.includes(parsed.identifier)) {
      log.warn("Follow for unknown object {object}", { object: follow.objectId.href });
      return;
    }
    const me = parsed.identifier;
    const follower = await follow.getActor(ctx);
    if (follower?.id == null) {
      log.warn("Follow without a resolvable actor");
      return;
    }
    const info = {
      id: follower.id.href,
      inbox: follower.inboxId?.href ?? null,
      shared_inbox: follower.endpoints?.sharedInbox?.href ?? null,
      follow_id: follow.id?.href ?? null,
      state: FOLLOW_POLICY === "accept" ? "accepted" : FOLLOW_POLICY === "reject" ? "rejected" : "pending",
      since: nowIso(),
    };
    if (FOLLOW_POLICY === "accept") state.followers[me].set(info.id, info);
    if (rec) rec.note = `follow by ${info.id}: ${info.state}`;
    if (FOLLOW_POLICY === "ignore") return;
    const Reply = FOLLOW_POLICY === "accept" ? Accept : Reject;
    const reply = new Reply({
      id: newActivityUri(ctx, me),
      actor: ctx.getActorUri(me),
      object: follow,
      to: follower.id,
    });
    // Sent after our 202 went out, as Mastodon does (from a background job).
    afterResponse(ctx, () => deliver(ctx, me, follower, reply, { kind: `${Reply.name}(Follow)` }));
  })
  .on(Accept, async (ctx, accept) => {
    markHandled(ctx, "Accept");
    settleFollow(ctx, accept, "accepted");
  })
  .on(Reject, async (ctx, reject) => {
    markHandled(ctx, "Reject");
    settleFollow(ctx, reject, "rejected");
  })
  .on(Undo, async (ctx, undo) => {
    const rec = markHandled(ctx, "Undo");
    // Undo(Follow): drop the follower.  Match by the Follow's id, or by the Undo's actor.
    const objectId = undo.objectId?.href;
    for (const me of ACTORS) {
      for (const [fid, f] of state.followers[me]) {
        if ((objectId != null && f.follow_id === objectId) || (undo.actorId?.href === fid && rec?.raw?.object?.type === "Follow")) {
          state.followers[me].delete(fid);
          if (rec) rec.note = `follower ${fid} removed from ${me}`;
        }
      }
    }
  })
  .on(Create, async (ctx) => { holdObjects(markHandled(ctx, "Create")); })
  .on(Update, async (ctx) => { applyUpdate(markHandled(ctx, "Update")); })
  .on(Delete, async (ctx, del) => {
    applyDelete(markHandled(ctx, "Delete"));
    // Deleted actor: forget it as follower.
    const id = del.objectId?.href;
    if (id != null) for (const me of ACTORS) state.followers[me].delete(id);
  })
  .on(Announce, async (ctx) => { holdObjects(markHandled(ctx, "Announce")); })
  .on(Like, async (ctx) => { markHandled(ctx, "Like"); })
  // Any other activity type (Fedify dispatches to the nearest registered superclass).
  .on(Activity, async (ctx) => { markHandled(ctx, "Activity"); })
  .onUnverifiedActivity((ctx, _activity, reason) => {
    const rec = ctx.data?.record;
    if (rec != null) {
      rec.fedify.verified = false;
      rec.fedify.unverified_reason = describeReason(reason);
    }
    // Returning nothing keeps Fedify's default 401 answer.
  })
  .onError((ctx, error) => {
    const rec = ctx.data?.record;
    if (rec != null) rec.fedify.listener_error = String(error?.stack ?? error);
    log.error("inbox listener error: {error}", { error });
  });

// --- the objects the peer holds, as a Mastodon server keeps statuses ------------------
// A Create, or an Announce embedding its object, stores the object under its id; an Update
// replaces it and a Delete removes it, only when the activity's actor owns the object (one of
// its attributedTo, else the actor of the activity that brought it).  Only verified
// deliveries get here (Fedify calls listeners after authentication).
const asList = (v) => (v == null ? [] : Array.isArray(v) ? v : [v]);
const idOf = (v) => (typeof v === "string" ? v : v?.id ?? null);

function holdObjects(rec) {
  if (rec?.raw == null || typeof rec.raw !== "object") return;
  for (const obj of asList(rec.raw.object)) {
    if (obj == null || typeof obj !== "object" || obj.id == null) continue; // a bare id: not fetched
    if (state.objects.get(obj.id)?.deleted) continue; // as Mastodon: a deleted id stays deleted
    const owners = asList(obj.attributedTo).map(idOf).filter(Boolean);
    state.objects.set(obj.id, {
      id: obj.id, type: obj.type ?? null, owners: owners.length ? owners : [rec.actor],
      via: { type: rec.type, actor: rec.actor, seq: rec.seq }, object: obj,
      received_at: nowIso(), updates: [], deleted: false, deleted_by: null, refused: [],
    });
  }
}

function ownedChange(rec, id) {
  const held = state.objects.get(id);
  if (held == null) {
    rec.note = `${rec.type} of ${id}: not held here`;
    return null;
  }
  if (!held.owners.includes(rec.actor)) {
    held.refused.push({ type: rec.type, actor: rec.actor, seq: rec.seq });
    rec.note = `${rec.type} of ${id} by ${rec.actor} refused: not an owner (${held.owners.join(", ")})`;
    return null;
  }
  return held;
}

function applyUpdate(rec) {
  if (rec?.raw == null || typeof rec.raw !== "object") return;
  for (const obj of asList(rec.raw.object)) {
    if (obj == null || typeof obj !== "object" || obj.id == null) continue;
    const held = ownedChange(rec, obj.id);
    if (held == null || held.deleted) continue;
    held.object = obj;
    held.updates.push({ actor: rec.actor, seq: rec.seq, at: nowIso() });
    rec.note = `updated ${obj.id}`;
  }
}

function applyDelete(rec) {
  if (rec?.raw == null || typeof rec.raw !== "object") return;
  for (const id of asList(rec.raw.object).map(idOf).filter(Boolean)) {
    const held = ownedChange(rec, id);
    if (held == null) continue;
    held.deleted = true;
    held.deleted_by = { actor: rec.actor, seq: rec.seq, at: nowIso() };
    held.object = null;
    rec.note = `deleted ${id}`;
  }
}

/** Accept/Reject of a Follow we sent: match it by the Follow's id, else by the target actor. */
function settleFollow(ctx, activity, newState) {
  const rec = ctx.data?.record;
  const objectId = activity.objectId?.href ?? rec?.raw?.object?.id ?? null;
  const actorId = activity.actorId?.href;
  const all = ACTORS.flatMap((me) => [...state.following[me].values()].map((f) => [me, f]));
  let matches = all.filter(([, f]) => objectId != null && f.follow_id === objectId);
  let how = "by Follow id";
  if (matches.length === 0) {
    matches = all.filter(([, f]) => f.id === actorId && f.state === "pending");
    how = "by actor (object did not name a Follow we sent)";
  }
  for (const [me, f] of matches) {
    f.state = newState;
    f.settled_at = nowIso();
    if (rec) rec.note = `follow of ${f.id} by ${me}: ${newState}, matched ${how}`;
  }
  if (matches.length === 0 && rec) rec.note = `no pending follow matches this ${activity.constructor.name}`;
}

function describeReason(reason) {
  if (reason == null) return null;
  const out = { type: reason.type };
  if (reason.keyId != null) out.key_id = reason.keyId.href;
  if (reason.result != null) {
    if ("status" in reason.result) out.key_fetch_status = reason.result.status;
    if (reason.result.error != null) out.key_fetch_error = String(reason.result.error);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Explicit verification of incoming deliveries (recorded; Fedify does its own as well)
// ---------------------------------------------------------------------------------------
function signatureScheme(headers) {
  if (headers.has("signature-input")) return "rfc9421";
  if (headers.has("signature")) return "draft-cavage-http-signatures-12";
  return null;
}

async function checkHttpSignature(request, ctx) {
  const out = { present: signatureScheme(request.headers) != null, scheme: signatureScheme(request.headers), verified: false, key_id: null, owner: null, reason: null, error: null };
  try {
    const result = await verifyRequestDetailed(request, { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader });
    out.verified = result.verified;
    if (result.verified) {
      out.key_id = result.key.id?.href ?? null;
      out.owner = result.key.ownerId?.href ?? null;
    } else out.reason = describeReason(result.reason);
  } catch (error) {
    out.error = String(error);
  }
  return out;
}

/** Verifies the Data Integrity proofs (FEP-8b32) of one JSON-LD object, each proof apart and as a whole. */
async function checkProofs(json, cls, ctx) {
  if (json == null || typeof json !== "object" || !hasProofLike(json)) return { present: false };
  // An RsaSignature2017 LD signature is added after the proof (Mastodon compat): not covered.
  json = detachSignature(json);
  const opts = { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader };
  const out = { present: true, verified: false, error: null, proofs: [] };
  try {
    const object = await verifyObject(cls, json, opts);
    out.verified = object != null;
    if (object == null) {
      out.error = "verifyObject returned null: a proof did not verify, or the actor/attributedTo is not the controller of a proof key";
    }
  } catch (error) {
    out.error = String(error);
  }
  try {
    const object = await cls.fromJsonLd(json, opts);
    for await (const proof of object.getProofs(opts)) {
      const p = {
        cryptosuite: proof.cryptosuite ?? null,
        verification_method: proof.verificationMethodId?.href ?? null,
        proof_purpose: proof.proofPurpose ?? null,
        verified: false,
        controller: null,
        error: null,
      };
      try {
        const key = await verifyProof(json, proof, opts);
        p.verified = key != null;
        p.controller = key?.controllerId?.href ?? null;
        if (key == null) p.error = "verifyProof returned null (bad signature, unsupported cryptosuite or key not found)";
      } catch (error) {
        p.error = String(error);
      }
      out.proofs.push(p);
    }
  } catch (error) {
    out.proofs_error = String(error);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Outgoing deliveries
// ---------------------------------------------------------------------------------------
const sendStore = new AsyncLocalStorage(); // { attempts: [], body } during one deliver()
const originalFetch = globalThis.fetch;
// Fedify calls the global fetch; wrap it to record each POST attempt (double-knocking shows
// as two attempts with different schemes) and the exact JSON body put on the wire.
globalThis.fetch = async function recordingFetch(input, init) {
  const store = sendStore.getStore();
  const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
  if (store == null || method !== "POST") return originalFetch(input, init);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  const attempt = { url: input instanceof Request ? input.url : String(input), scheme: signatureScheme(headers), status: null, error: null };
  store.attempts.push(attempt);
  if (store.body === undefined && input instanceof Request && init?.body == null) {
    try { store.body = await input.clone().text(); } catch { /* ignore */ }
  }
  try {
    const response = await originalFetch(input, init);
    attempt.status = response.status;
    return response;
  } catch (error) {
    attempt.error = String(error?.cause ?? error);
    throw error;
  }
};

function newActivityUri(ctx, actor) {
  return new URL(`${ctx.getActorUri(actor).href}/activities/${randomUUID()}`);
}

/**
 * Sends `activity` from local `actor` to `recipients` (Actor objects or "followers") with
 * Fedify's ctx.sendActivity, inline.  Records and returns what happened.
 */
async function deliver(ctx, actor, recipients, activity, { kind, spec = null, proof = true } = {}) {
  const entry = {
    seq: ++state.seq,
    at: nowIso(),
    kind: kind ?? activity.constructor.name,
    actor,
    activity_id: activity.id?.href ?? null,
    to: recipients === "followers" ? "followers" : [recipients].flat().map((r) => r.id?.href),
    spec_requested: spec,
    ok: false,
    error: null,
    attempts: [],
    json: null,
    fedify_log: [],
  };
  state.sent.push(entry);
  if (spec != null && recipients !== "followers") {
    // Pre-seed Fedify's per-origin memory of the spec to use first for these inboxes.
    for (const r of [recipients].flat()) {
      for (const u of [r.inboxId, r.endpoints?.sharedInbox]) {
        if (u != null) await kv.set([...SPEC_KV_PREFIX, new URL(u).origin], spec);
      }
    }
  }
  const keys = await ctx.getActorKeyPairs(actor);
  // proof=false: sign with the RSA key only, so no Object Integrity Proof is attached.
  const sender = proof ? { identifier: actor } : keys.filter((k) => k.privateKey.algorithm.name === "RSASSA-PKCS1-v1_5");
  const store = { attempts: entry.attempts, body: undefined };
  const capture = { logs: entry.fedify_log };
  try {
    await captureStore.run(capture, () =>
      sendStore.run(store, () => ctx.sendActivity(sender, recipients, activity, { immediate: true })));
    entry.ok = true;
  } catch (error) {
    entry.error = String(error?.message ?? error);
  }
  if (store.body != null) {
    try { entry.json = JSON.parse(store.body); } catch { entry.json = store.body; }
  }
  if (entry.json != null && entry.activity_id != null) state.activities.set(entry.activity_id, entry.json);
  if (recipients !== "followers") {
    const r = [recipients].flat()[0];
    if (r?.inboxId != null) entry.spec_remembered = (await kv.get([...SPEC_KV_PREFIX, new URL(r.inboxId).origin])) ?? null;
  }
  if (entry.ok) state.outbox[actor].push(activity);
  log.info("sent {kind} {id} -> {to}: {result}", {
    kind: entry.kind, id: entry.activity_id, to: entry.to,
    result: entry.ok ? `ok (${entry.attempts.map((a) => `${a.scheme}:${a.status}`).join(", ")})` : entry.error,
  });
  return entry;
}

/** Resolves an actor URL, acct: URI or handle (user@host[:port], looked up over http first). */
async function resolveActor(ctx, actor, target) {
  if (typeof target !== "string" || target.trim() === "") throw new HttpError(400, "target: an actor URL or handle is required");
  let t = target.trim();
  let url;
  if (/^https?:\/\//i.test(t)) url = new URL(t);
  else {
    t = t.replace(/^acct:/i, "").replace(/^@/, "");
    const m = /^([^@\s]+)@([^@\s]+)$/.exec(t);
    if (m == null) throw new HttpError(400, `target ${target}: not a URL or user@host handle`);
    for (const scheme of ["http", "https"]) {
      try {
        const wf = `${scheme}://${m[2]}/.well-known/webfinger?resource=${encodeURIComponent(`acct:${m[1]}@${m[2]}`)}`;
        const r = await originalFetch(wf, { headers: { Accept: "application/jrd+json" } });
        if (!r.ok) continue;
        const jrd = await r.json();
        const self = (jrd.links ?? []).find((l) => l.rel === "self" && /activity\+json|ld\+json/.test(l.type ?? ""));
        if (self?.href) { url = new URL(self.href); break; }
      } catch { /* try next scheme */ }
    }
    if (url == null) throw new HttpError(502, `WebFinger lookup of ${target} failed`);
  }
  let object;
  try {
    // Signed GET (authorized fetch), as Mastodon in secure mode would do.
    object = await ctx.lookupObject(url, { documentLoader: await ctx.getDocumentLoader({ identifier: actor }) });
  } catch (error) {
    throw new HttpError(502, `lookup of ${url.href} failed: ${error}`);
  }
  if (object == null || !isActor(object)) throw new HttpError(502, `${url.href} did not resolve to an actor (got ${object?.constructor?.name ?? "nothing: unreachable, an HTTP error, or not ActivityStreams JSON"})`);
  if (object.inboxId == null) throw new HttpError(502, `${url.href} has no inbox`);
  return object;
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// ---------------------------------------------------------------------------------------
// Control API (/_control/...)
// ---------------------------------------------------------------------------------------
function json(status, body) {
  return new Response(JSON.stringify(body, null, 2), { status, headers: { "Content-Type": "application/json" } });
}

function pickActor(body) {
  const actor = body?.actor ?? ACTORS[0];
  if (!ACTORS.includes(actor)) throw new HttpError(400, `unknown local actor ${actor}; have ${ACTORS.join(", ")}`);
  return actor;
}

async function readJsonBody(request) {
  const text = await request.text();
  if (text.trim() === "") return {};
  try { return JSON.parse(text); } catch { throw new HttpError(400, "body is not JSON"); }
}

function actorInfo(ctx, a) {
  return {
    id: ctx.getActorUri(a).href,
    inbox: ctx.getInboxUri(a).href,
    outbox: ctx.getOutboxUri(a).href,
    followers: ctx.getFollowersUri(a).href,
    handle: `${a}@${new URL(ORIGIN).host}`,
  };
}

async function control(request, url) {
  const ctx = federation.createContext(request, {});
  const route = `${request.method} ${url.pathname.replace(/\/+$/, "")}`;
  const q = url.searchParams;
  switch (route) {
    case "GET /_control/health":
      return json(200, {
        ok: true, origin: ORIGIN, fedify: FEDIFY_VERSION, node: process.version,
        first_knock: FIRST_KNOCK, follow_policy: FOLLOW_POLICY, shared_inbox: ctx.getInboxUri().href,
        actors: Object.fromEntries(ACTORS.map((a) => [a, actorInfo(ctx, a)])),
      });
    case "GET /_control/received": {
      let items = state.received;
      if (q.has("type")) items = items.filter((r) => r.type === q.get("type"));
      if (q.has("since")) items = items.filter((r) => r.seq > Number(q.get("since")));
      if (q.has("actor")) items = items.filter((r) => r.recipient === q.get("actor"));
      if (q.get("verified") === "true") items = items.filter((r) => r.fedify.verified === true);
      return json(200, items);
    }
    case "GET /_control/objects":
      return json(200, [...state.objects.values()]);
    case "GET /_control/object": {
      const held = state.objects.get(q.get("id") ?? "");
      return held == null ? json(404, { ok: false, error: "not held" }) : json(200, held);
    }
    case "GET /_control/sent": {
      let items = state.sent;
      if (q.has("since")) items = items.filter((r) => r.seq > Number(q.get("since")));
      return json(200, items);
    }
    case "GET /_control/followers": {
      const a = pickActor({ actor: q.get("actor") ?? undefined });
      return json(200, [...state.followers[a].values()]);
    }
    case "GET /_control/following": {
      const a = pickActor({ actor: q.get("actor") ?? undefined });
      return json(200, [...state.following[a].values()]);
    }
    case "POST /_control/reset": {
      state.received.length = 0;
      state.sent.length = 0;
      return json(200, { ok: true });
    }
    case "POST /_control/forget": {
      // As a new peer: nothing received, sent, followed or held (its actors and keys stay).
      state.received.length = 0;
      state.sent.length = 0;
      for (const a of ACTORS) {
        state.followers[a].clear();
        state.following[a].clear();
        state.outbox[a].length = 0;
      }
      for (const held of [state.followObjects, state.notes, state.activities, state.objects]) held.clear();
      return json(200, { ok: true });
    }
    case "POST /_control/follow": {
      const body = await readJsonBody(request);
      const me = pickActor(body);
      const target = await resolveActor(ctx, me, body.target);
      const follow = new Follow({ id: newActivityUri(ctx, me), actor: ctx.getActorUri(me), object: target.id, to: target.id });
      state.following[me].set(target.id.href, {
        id: target.id.href, inbox: target.inboxId.href, follow_id: follow.id.href, state: "pending", since: nowIso(),
      });
      state.followObjects.set(follow.id.href, follow);
      const entry = await deliver(ctx, me, target, follow, { spec: checkSpec(body.specVersion), proof: body.proof !== false });
      return json(entry.ok ? 200 : 502, { ...entry, target: target.id.href, follow_id: follow.id.href });
    }
    case "POST /_control/unfollow": {
      const body = await readJsonBody(request);
      const me = pickActor(body);
      const target = await resolveActor(ctx, me, body.target);
      const f = state.following[me].get(target.id.href);
      const follow = state.followObjects.get(f?.follow_id) ?? new Follow({ id: newActivityUri(ctx, me), actor: ctx.getActorUri(me), object: target.id });
      const undo = new Undo({ id: newActivityUri(ctx, me), actor: ctx.getActorUri(me), object: follow, to: target.id });
      const entry = await deliver(ctx, me, target, undo, { kind: "Undo(Follow)", spec: checkSpec(body.specVersion), proof: body.proof !== false });
      if (entry.ok) state.following[me].delete(target.id.href);
      return json(entry.ok ? 200 : 502, { ...entry, target: target.id.href });
    }
    case "POST /_control/send":
      return await controlSend(ctx, await readJsonBody(request));
    default:
      return json(404, { ok: false, error: `no control route ${route}` });
  }
}

function checkSpec(spec) {
  if (spec == null) return null;
  if (!SPECS.includes(spec)) throw new HttpError(400, `specVersion must be one of ${SPECS.join(", ")}`);
  return spec;
}

async function controlSend(ctx, body) {
  const me = pickActor(body);
  const spec = checkSpec(body.specVersion);
  const actorUri = ctx.getActorUri(me);
  const toFollowers = body.to === "followers";
  if (toFollowers && body.proof === false) throw new HttpError(400, "proof: false is not supported with to: followers");
  const target = toFollowers ? null : await resolveActor(ctx, me, body.to);
  const to = toFollowers ? ctx.getFollowersUri(me) : target.id;
  const cc = body.public ? [PUBLIC_COLLECTION] : [];
  const kind = body.activity ?? "Create";
  const published = Temporal.Now.instant();
  let activity;
  let objectId = null;
  const makeNote = (id, extra = {}) => new Note({
    id, attribution: actorUri, content: body.content ?? "Hello from the Fedify peer", to, ccs: cc,
    inReplyTo: body.inReplyTo ? new URL(body.inReplyTo) : null, ...extra,
  });
  switch (kind) {
    case "Create": {
      const noteId = randomUUID();
      const uri = ctx.getObjectUri(Note, { identifier: me, id: noteId });
      const note = makeNote(uri, { published });
      state.notes.set(`${me}/${noteId}`, note);
      objectId = uri.href;
      activity = new Create({ id: newActivityUri(ctx, me), actor: actorUri, object: note, to, ccs: cc, published });
      break;
    }
    case "Update": {
      const uri = new URL(requireField(body, "object"));
      const parsed = ctx.parseUri(uri);
      const note = makeNote(uri, { updated: published });
      if (parsed?.type === "object") state.notes.set(`${parsed.values.identifier}/${parsed.values.id}`, note);
      objectId = uri.href;
      activity = new Update({ id: newActivityUri(ctx, me), actor: actorUri, object: note, to, ccs: cc, updated: published });
      break;
    }
    case "Delete": {
      const uri = new URL(requireField(body, "object"));
      const parsed = ctx.parseUri(uri);
      if (parsed?.type === "object") state.notes.delete(`${parsed.values.identifier}/${parsed.values.id}`);
      objectId = uri.href;
      activity = new Delete({ id: newActivityUri(ctx, me), actor: actorUri, object: new Tombstone({ id: uri }), to, ccs: cc });
      break;
    }
    case "Like":
    case "Announce": {
      const Cls = kind === "Like" ? Like : Announce;
      objectId = requireField(body, "object");
      activity = new Cls({ id: newActivityUri(ctx, me), actor: actorUri, object: new URL(objectId), to, ccs: cc, published });
      break;
    }
    case "raw": {
      // {"activity": "raw", "json": {...}}: any activity, parsed by Fedify's vocabulary
      // (properties Fedify does not know are dropped).  id/actor default to ours.
      const j = { ...requireField(body, "json") };
      j["@context"] ??= "https://www.w3.org/ns/activitystreams";
      j.id ??= newActivityUri(ctx, me).href;
      j.actor ??= actorUri.href;
      try {
        activity = await Activity.fromJsonLd(j, { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader });
      } catch (error) {
        throw new HttpError(400, `json is not an activity Fedify can parse: ${error}`);
      }
      objectId = activity.objectId?.href ?? null;
      break;
    }
    default:
      throw new HttpError(400, `activity must be Create, Update, Delete, Like, Announce or raw (got ${kind})`);
  }
  const entry = await deliver(ctx, me, toFollowers ? "followers" : target, activity, { spec, proof: body.proof !== false });
  return json(entry.ok ? 200 : 502, { ...entry, object_id: objectId });
}

function requireField(body, name) {
  if (body[name] == null) throw new HttpError(400, `field ${name} is required`);
  return body[name];
}

// ---------------------------------------------------------------------------------------
// HTTP server: node:http <-> fetch Request/Response, inbox recording, control API
// ---------------------------------------------------------------------------------------
const INBOX_PATH = /^\/(users\/([^/]+)\/)?inbox\/?$/;
const ACTIVITY_PATH = /^\/users\/[^/]+\/activities\/[^/]+$/;

async function handleInboxPost(url, makeRequest, rawBody) {
  const m = INBOX_PATH.exec(url.pathname);
  let raw = null;
  let parseError = null;
  try { raw = JSON.parse(rawBody.toString("utf8")); } catch (error) { parseError = String(error); }
  const rec = {
    seq: ++state.seq,
    received_at: nowIso(),
    inbox: url.pathname,
    recipient: m[2] ?? null, // null: shared inbox
    type: raw?.type ?? null,
    id: raw?.id ?? null,
    actor: typeof raw?.actor === "string" ? raw.actor : raw?.actor?.id ?? null,
    object_type: raw?.object?.type ?? null,
    raw: raw ?? rawBody.toString("utf8"),
    parse_error: parseError,
    headers: Object.fromEntries(["signature", "signature-input", "digest", "content-digest", "date", "content-type", "host"]
      .filter((h) => makeRequest().headers.has(h)).map((h) => [h, makeRequest().headers.get(h)])),
    // What our explicit checks found (independent of Fedify's inbox pipeline):
    http_signature: null,
    proof: null, // the activity's own Data Integrity proofs
    object_proof: null, // the embedded object's proofs, if any
    ld_signature: null, // legacy RsaSignature2017 (Mastodon-style) signature, if any
    // What Fedify's inbox did: verified=true means a listener got the activity (Fedify only
    // calls listeners once the HTTP signature, an LD signature or an integrity proof verified).
    fedify: { status: null, verified: null, verified_by: null, listener: null, unverified_reason: null, response: null, log: [] },
  };
  state.received.push(rec);
  const data = { record: rec, afterResponse: [] };
  const ctx = federation.createContext(makeRequest(), data);
  rec.http_signature = await checkHttpSignature(makeRequest(), ctx);
  if (raw != null) {
    rec.ld_signature = { present: hasSignatureLike(raw), verified: null, error: null };
    if (rec.ld_signature.present) {
      try {
        rec.ld_signature.verified = await verifyJsonLd(raw, { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader });
      } catch (error) {
        rec.ld_signature.verified = false;
        rec.ld_signature.error = String(error);
      }
    }
    rec.proof = await checkProofs(raw, Activity, ctx);
    if (raw.object != null && typeof raw.object === "object" && !Array.isArray(raw.object) && hasProofLike(raw.object)) {
      const obj = { "@context": raw["@context"], ...detachSignature(raw.object) };
      rec.object_proof = await checkProofs(obj, vocab.Object, ctx);
    }
  }
  const capture = { logs: rec.fedify.log, verifiedBy: null };
  const response = await captureStore.run(capture, () =>
    federation.fetch(makeRequest(), { contextData: data, onNotFound: notFound, onNotAcceptable: notAcceptable }));
  rec.fedify.status = response.status;
  rec.fedify.verified_by = capture.verifiedBy;
  // A duplicate (same activity id, same inbox) is authenticated but not passed to a listener.
  if (rec.fedify.verified == null && capture.verifiedBy != null && response.ok) rec.fedify.verified = true;
  if (rec.fedify.verified == null) rec.fedify.verified = false;
  const text = await response.clone().text();
  rec.fedify.response = text.slice(0, 500);
  if (/already been processed/.test(text)) rec.fedify.duplicate = true;
  log.info("inbox {type} {id} from {actor}: fedify {status} verified={verified} http_sig={sig} proof={proof}", {
    type: rec.type, id: rec.id, actor: rec.actor, status: response.status, verified: rec.fedify.verified,
    sig: rec.http_signature.verified, proof: rec.proof?.present ? rec.proof.verified : "none",
  });
  return { response, afterResponse: data.afterResponse };
}

function notFound() { return json(404, { error: "not found" }); }
function notAcceptable() { return new Response("Not Acceptable: ask for application/activity+json", { status: 406 }); }

const server = http.createServer(async (req, res) => {
  const started = Date.now();
  let afterTasks = [];
  let response;
  try {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const rawBody = Buffer.concat(chunks);
    const url = new URL(req.url, `http://${req.headers.host ?? new URL(ORIGIN).host}`);
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
    const hasBody = !["GET", "HEAD"].includes(req.method);
    const makeRequest = () => new Request(url, { method: req.method, headers, body: hasBody ? rawBody : undefined });
    try {
      if (url.pathname.startsWith("/_control/")) {
        response = await control(makeRequest(), url);
      } else if (req.method === "POST" && INBOX_PATH.test(url.pathname)) {
        const r = await handleInboxPost(url, makeRequest, rawBody);
        response = r.response;
        afterTasks = r.afterResponse;
      } else if (req.method === "GET" && ACTIVITY_PATH.test(url.pathname) && state.activities.has(`${ORIGIN}${url.pathname}`)) {
        response = new Response(JSON.stringify(state.activities.get(`${ORIGIN}${url.pathname}`)), {
          headers: { "Content-Type": "application/activity+json" },
        });
      } else {
        response = await federation.fetch(makeRequest(), { contextData: {}, onNotFound: notFound, onNotAcceptable: notAcceptable });
      }
    } catch (error) {
      if (error instanceof HttpError) response = json(error.status, { ok: false, error: error.message });
      else {
        log.error("error handling {method} {path}: {error}", { method: req.method, path: url.pathname, error });
        response = json(500, { ok: false, error: String(error?.stack ?? error) });
      }
    }
    const body = req.method === "HEAD" ? null : Buffer.from(await response.arrayBuffer());
    const outHeaders = {};
    response.headers.forEach((v, k) => { outHeaders[k] = v; });
    res.writeHead(response.status, outHeaders);
    res.end(body);
    log.debug("{method} {path} -> {status} ({ms} ms)", { method: req.method, path: url.pathname + url.search, status: response.status, ms: Date.now() - started });
  } catch (error) {
    log.error("HTTP adapter failure: {error}", { error });
    if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
    res.end("internal error");
  }
  for (const task of afterTasks) {
    Promise.resolve().then(task).catch((error) => log.error("deferred task failed: {error}", { error }));
  }
});

server.on("error", (error) => die(`cannot listen on ${HOST}:${PORT}: ${error.message}`));
server.listen(PORT, HOST, () => {
  log.info("Fedify {version} peer listening on {origin} (node {node}); actors: {actors}; first knock {spec}", {
    version: FEDIFY_VERSION, origin: ORIGIN, node: process.version, actors: ACTORS.join(", "), spec: FIRST_KNOCK,
  });
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    log.info("{sig}: shutting down", { sig });
    server.close();
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
