// Parent ("host") Worker: loads a child Worker per version id via the
// workerLoader binding and forwards the request to it.
import { WorkerEntrypoint } from "cloudflare:workers";

// RPC proxy for a KV binding of the parent (the binding object itself cannot
// be put in the child's env).
export class KVProxy extends WorkerEntrypoint {
  async get(key) { return this.env[this.ctx.props.binding].get(key); }
  async put(key, value) { return this.env[this.ctx.props.binding].put(key, value); }
}

export class Greeter extends WorkerEntrypoint {
  hello(name) { return `hello ${name}, from parent Greeter (props.who=${this.ctx.props.who})`; }
}

// A Fetcher usable as a child's globalOutbound.
export class Outbound extends WorkerEntrypoint {
  async fetch(req) {
    return new Response(`Outbound(${this.ctx.props.tag}) intercepted ${req.method} ${req.url}\n`);
  }
}

// Forwards calls to another dynamically loaded Worker (dynamic -> dynamic "service binding").
export class Dispatch extends WorkerEntrypoint {
  target() { return this.env.LOADER.get(this.ctx.props.id, codeFromService(this.env, this.ctx.props.id)).getEntrypoint(this.ctx.props.entrypoint); }
  async fetch(req) { return this.target().fetch(req); }
  async call(method, ...args) { return this.target()[method](...args); }
  async stub() { return this.target(); }
}

export class ChildTail extends WorkerEntrypoint {
  async tail(events) {
    for (const e of events) {
      console.log("CHILD-TAIL-WORKER got:", JSON.stringify(e.logs.map((l) => l.message)), "outcome", e.outcome);
    }
  }
}

function codeFromService(env, id) {
  return async () => {
    const r = await env.CODE.fetch(`http://codesrv/code/${encodeURIComponent(id)}`);
    if (!r.ok) throw new Error(`code fetch for ${id}: ${r.status}`);
    const c = await r.json();
    return {
      compatibilityDate: c.compatibilityDate,
      compatibilityFlags: c.compatibilityFlags,
      mainModule: c.mainModule,
      modules: c.modules,
      env: c.vars,
      globalOutbound: null,
    };
  };
}

const SIMPLE = (body) => ({ "index.js": body });

async function runTest(name, url, env, ctx) {
  const sfx = url.searchParams.get("sfx") || "";
  const id = `t-${name}${sfx}`;
  const load = (code) => env.LOADER.get(id, async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js", ...code }));
  const envProbe = `export default { async fetch(req, env) {
      const out = {};
      for (const [k, v] of Object.entries(env)) out[k] = { type: typeof v, ctor: v?.constructor?.name, json: (() => { try { return JSON.stringify(v); } catch (e) { return String(e); } })() };
      return Response.json(out);
    } }`;
  switch (name) {
    case "env-plain": {
      const w = load({ modules: SIMPLE(envProbe), env: { S: "str", N: 42, J: { a: [1, 2] }, BUF: new Uint8Array([1, 2, 3]), D: new Date(0), M: new Map([["k", 1]]) } });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "env-service": {
      const w = load({ modules: SIMPLE(`export default { async fetch(req, env) {
          const r = await env.CODE.fetch("http://codesrv/echo?via=child-env-service-binding");
          const s = await env.STATIC.fetch("http://static/");
          return new Response((await r.text()) + (await s.text()));
        } }`), env: { CODE: env.CODE, STATIC: env.STATIC } });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "env-exports": {
      const w = load({ modules: SIMPLE(`export default { async fetch(req, env) {
          return new Response(await env.GREETER.hello("child") + "\\n");
        } }`), env: { GREETER: ctx.exports.Greeter({ props: { who: "octo" } }) } });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "env-kv":
    case "env-r2":
    case "env-d1":
    case "env-loader": {
      const b = { "env-kv": "KV", "env-r2": "R2", "env-d1": "DB", "env-loader": "LOADER" }[name];
      try {
        const w = load({ modules: SIMPLE(envProbe), env: { X: env[b] } });
        const r = await w.getEntrypoint().fetch("http://child/");
        return new Response(`${b}: child answered ${r.status}: ${await r.text()}\n`);
      } catch (e) {
        return new Response(`${b}: ${e.name}: ${e.message}\n`);
      }
    }
    case "env-kvproxy": {
      const w = load({ modules: SIMPLE(`export default { async fetch(req, env) {
          await env.KV.put("greeting", "stored-by-child-" + Date.now());
          return new Response("child read back: " + await env.KV.get("greeting") + "\\n");
        } }`), env: { KV: ctx.exports.KVProxy({ props: { binding: "KV" } }) } });
      const r = await w.getEntrypoint().fetch("http://child/");
      return new Response((await r.text()) + "parent reads KV directly: " + (await env.KV.get("greeting")) + "\n");
    }
    case "entrypoint": {
      const w = env.LOADER.get(`ep${sfx}`, codeFromService(env, `ep${sfx}`));
      const api = w.getEntrypoint("Api");
      const sum = await api.add(2, 3);
      const ver = await api.version();
      let missing;
      try { await w.getEntrypoint("Nope").add(1, 1); } catch (e) { missing = `${e.name}: ${e.message}`; }
      return new Response(`Api.add(2,3)=${sum} Api.version()=${ver}\nmissing entrypoint -> ${missing}\n`);
    }
    case "outbound-inherit":
    case "outbound-null":
    case "outbound-fetcher": {
      const code = { modules: SIMPLE(`export default { async fetch(req, env) {
          try { const r = await fetch("http://example.com/echo?from=child"); return new Response("child fetch -> " + r.status + " " + await r.text()); }
          catch (e) { return new Response("child fetch threw " + e.name + ": " + e.message + "\\n"); }
        } }`) };
      if (name === "outbound-null") code.globalOutbound = null;
      if (name === "outbound-fetcher") code.globalOutbound = ctx.exports.Outbound({ props: { tag: "egress-policy" } });
      return load(code).getEntrypoint().fetch("http://child/");
    }
    case "limits": {
      // Busy loop ~1500 ms of CPU with a 10 ms cpu limit requested both ways.
      const w = load({
        limits: { cpuMs: 10, subRequests: 1 },
        modules: SIMPLE(`export default { async fetch(req, env) {
          let x = 0; for (let i = 0; i < 1e9; i++) { x += i & 1; }
          let sub = [];
          for (let i = 0; i < 3; i++) { try { await env.CODE.fetch("http://codesrv/echo"); sub.push("ok"); } catch (e) { sub.push(e.message); } }
          return new Response("child burned CPU (1e9 loop iterations), x=" + x + ", 3 subrequests: " + sub.join(",") + "\\n");
        } }`),
        env: { CODE: env.CODE },
      });
      const t0 = Date.now();
      const r = await w.getEntrypoint(undefined, { limits: { cpuMs: 10 } }).fetch("http://child/");
      return new Response((await r.text()) + `status=${r.status} wall=${Date.now() - t0}ms\n`);
    }
    case "console": {
      const w = load({
        modules: SIMPLE(`export default { async fetch(req, env) {
          console.log("CHILD-CONSOLE-LOG marker"); console.error("CHILD-CONSOLE-ERROR marker");
          return new Response("logged\\n");
        } }`),
        tails: url.searchParams.has("tail") ? [ctx.exports.ChildTail({})] : undefined,
      });
      console.log("PARENT-CONSOLE-LOG marker");
      return w.getEntrypoint().fetch("http://child/");
    }
    case "throw": {
      const w = load({ modules: SIMPLE(`export default { async fetch(req, env) { throw new Error("CHILD-EXCEPTION boom"); } }`) });
      try { const r = await w.getEntrypoint().fetch("http://child/"); return new Response(`status ${r.status}: ${await r.text()}\n`); }
      catch (e) { return new Response(`parent caught ${e.name}: ${e.message}\n`); }
    }
    case "modules": {
      const wasm = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0, 0, 0, 0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x03, 0x02, 0x01, 0x00, 0x07, 0x07, 0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b]);
      const w = load({
        compatibilityFlags: ["nodejs_compat"],
        modules: {
          "index.js": { js: `import cjs from "./lib.cjs"; import txt from "./hello.txt"; import bin from "./blob.bin";
              import cfg from "./cfg.json"; import mod from "./add.wasm"; import plain from "./plain.js";
              import { Buffer } from "node:buffer";
              export default { async fetch() {
                const inst = await WebAssembly.instantiate(mod);
                return Response.json({ cjs: cjs.double(21), txt, bin: [...new Uint8Array(bin)], cfg, wasmAdd: inst.exports.add(40, 2), plain, buf: Buffer.from("hi").toString("hex") });
              } }` },
          "lib.cjs": { cjs: `module.exports = { double: (x) => x * 2 };` },
          "hello.txt": { text: "hello text module" },
          "blob.bin": { data: new Uint8Array([9, 8, 7]) },
          "cfg.json": { json: { nested: { ok: true } } },
          "add.wasm": { wasm },
          "plain.js": `export default "plain string => ES module";`,
        },
      });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "module-badname": {
      try {
        const w = load({ modules: { "index.js": "export default {fetch(){return new Response('x')}}", "x.txt": "hi" } });
        const r = await w.getEntrypoint().fetch("http://child/");
        return new Response(`status ${r.status} ${await r.text()}\n`);
      } catch (e) { return new Response(`${e.name}: ${e.message}\n`); }
    }
    case "service-worker": {
      try {
        const w = load({ modules: SIMPLE(`addEventListener("fetch", (e) => e.respondWith(new Response("sw syntax ok\\n")));`) });
        const r = await w.getEntrypoint().fetch("http://child/");
        return new Response(`status ${r.status} ${await r.text()}\n`);
      } catch (e) { return new Response(`${e.name}: ${e.message}\n`); }
    }
    case "scheduled-queue": {
      const w = load({
        modules: SIMPLE(`export default {
            async fetch() { return new Response("n/a"); },
            async scheduled(ev, env, ctx) { console.log("CHILD scheduled cron=" + ev.cron + " t=" + ev.scheduledTime); },
            async queue(batch, env, ctx) { console.log("CHILD queue " + batch.queue + " n=" + batch.messages.length + " body0=" + JSON.stringify(batch.messages[0].body)); batch.messages[0].ack(); batch.messages[1].retry(); },
          }`),
      });
      const ep = w.getEntrypoint();
      const out = {};
      try { out.scheduled = await ep.scheduled({ cron: "*/5 * * * *", scheduledTime: new Date() }); } catch (e) { out.scheduled = `${e.name}: ${e.message}`; }
      try {
        out.queue = await ep.queue("jobs", [
          { id: "m1", timestamp: new Date(), body: { hello: "queue" }, attempts: 1 },
          { id: "m2", timestamp: new Date(), body: "second", attempts: 1 },
        ]);
      } catch (e) { out.queue = `${e.name}: ${e.message}`; }
      return Response.json(out);
    }
    case "rpc-handlers": {
      // Alternative without the experimental flag: child exposes RPC methods that run its handlers.
      const w = load({
        modules: SIMPLE(`import { WorkerEntrypoint } from "cloudflare:workers";
          const handlers = { async scheduled(ev) { return "ran cron " + ev.cron; } };
          export default handlers;
          export class Octo extends WorkerEntrypoint {
            async runScheduled(cron) { return handlers.scheduled({ cron, scheduledTime: Date.now() }, this.env, this.ctx); }
          }`),
      });
      return new Response((await w.getEntrypoint("Octo").runScheduled("0 * * * *")) + "\n");
    }
    case "fail-then-retry": {
      // First get() whose callback throws; a second get() with the same id and a good callback.
      const bad = env.LOADER.get(id, async () => { throw new Error("code service down"); });
      let first;
      try { first = await (await bad.getEntrypoint().fetch("http://child/")).text(); } catch (e) { first = `${e.name}: ${e.message}`; }
      const good = env.LOADER.get(id, async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("good code") } }`) }));
      let second;
      try { second = await (await good.getEntrypoint().fetch("http://child/")).text(); } catch (e) { second = `${e.name}: ${e.message}`; }
      return new Response(`first: ${first}\nsecond (same id, good callback): ${second}\n`);
    }
    case "same-id-new-code": {
      const a = env.LOADER.get(id, async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("code A") } }`) }));
      const ra = await (await a.getEntrypoint().fetch("http://child/")).text();
      const b = env.LOADER.get(id, async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("code B") } }`) }));
      const rb = await (await b.getEntrypoint().fetch("http://child/")).text();
      return new Response(`first get -> ${ra}; second get(same id, other code) -> ${rb}\n`);
    }
    case "durable-object": {
      try {
        const w = load({ modules: SIMPLE(`import { DurableObject } from "cloudflare:workers";
          export class Counter extends DurableObject { async inc() { let n = (await this.ctx.storage.get("n")) || 0; n++; await this.ctx.storage.put("n", n); return n; } }
          export default { fetch() { return new Response("x") } }`) });
        const cls = w.getDurableObjectClass("Counter");
        return new Response(`getDurableObjectClass -> ${cls?.constructor?.name}\n`);
      } catch (e) { return new Response(`${e.name}: ${e.message}\n`); }
    }
    case "console-svctail": {
      const w = load({
        modules: SIMPLE(`export default { async fetch(req, env) { console.log("CHILD-LOG-TO-SERVICE-TAIL"); return new Response("logged\\n"); } }`),
        tails: [env.TAILSVC],
      });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "compat-date": {
      const out = [];
      for (const d of ["2026-04-26", "2026-04-27", "2026-05-03", "2027-01-01"]) {
        const w = env.LOADER.get(`${id}-${d}`, async () => ({ compatibilityDate: d, mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("ok") } }`) }));
        try { const r = await w.getEntrypoint().fetch("http://child/"); out.push(`${d}: ${r.status} ${await r.text()}`); } catch (e) { out.push(`${d}: ${e.name}: ${e.message}`); }
      }
      try {
        const w = env.LOADER.get(`${id}-expflag`, async () => ({ compatibilityDate: "2026-04-01", compatibilityFlags: ["service_binding_extra_handlers"], mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("ok") } }`) }));
        const r = await w.getEntrypoint().fetch("http://child/"); out.push(`experimental flag in child: ${r.status}`);
      } catch (e) { out.push(`experimental flag in child: ${e.name}: ${e.message}`); }
      try {
        const w = env.LOADER.get(`${id}-expflag2`, async () => ({ compatibilityDate: "2026-04-01", allowExperimental: true, compatibilityFlags: ["service_binding_extra_handlers"], mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("ok") } }`) }));
        const r = await w.getEntrypoint().fetch("http://child/"); out.push(`allowExperimental:true: ${r.status}`);
      } catch (e) { out.push(`allowExperimental:true: ${e.name}: ${e.message}`); }
      return new Response(out.join("\n") + "\n");
    }
    case "syntax-error": {
      const w = load({ modules: SIMPLE(`export default { fetch() { return new Response("x") }`) });
      try { const r = await w.getEntrypoint().fetch("http://child/"); return new Response(`status ${r.status}\n`); } catch (e) { return new Response(`${e.name}: ${e.message}\n`); }
    }
    case "internal-module": {
      const w = load({ modules: SIMPLE(`import d1 from "cloudflare-internal:d1-api"; export default { fetch() { return new Response(typeof d1) } }`) });
      try { const r = await w.getEntrypoint().fetch("http://child/"); return new Response(`status ${r.status} ${await r.text()}\n`); } catch (e) { return new Response(`${e.name}: ${e.message}\n`); }
    }
    case "dyn-to-dyn": {
      const w = load({
        modules: SIMPLE(`export default { async fetch(req, env) {
          const out = [];
          out.push("fetch via Dispatch: " + (await (await env.OTHER.fetch("http://other/")).text()).trim());
          out.push("rpc via Dispatch.call: add(20,22)=" + await env.OTHER_API.call("add", 20, 22));
          try { const s = await env.OTHER_API.stub(); out.push("stub returned: " + await s.add(1, 2)); } catch (e) { out.push("returning the dynamic stub itself: " + e.name + ": " + e.message); }
          return new Response(out.join("\\n") + "\\n");
        } }`),
        env: { OTHER: ctx.exports.Dispatch({ props: { id: "other-v1" } }), OTHER_API: ctx.exports.Dispatch({ props: { id: "other-v1", entrypoint: "Api" } }) },
      });
      return w.getEntrypoint().fetch("http://child/");
    }
    case "anon-global": {
      let fresh = false;
      if (!globalThis.anonStub) { globalThis.anonStub = env.LOADER.load({ compatibilityDate: "2026-04-01", mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("anon stub kept in a global\\n") } }`) }); fresh = true; }
      try { const r = await globalThis.anonStub.getEntrypoint().fetch("http://child/"); return new Response(`fresh=${fresh} ` + await r.text()); } catch (e) { return new Response(`fresh=${fresh} ${e.name}: ${e.message}\n`); }
    }
    case "load-anon": {
      const w = env.LOADER.load({ compatibilityDate: "2026-04-01", mainModule: "index.js", modules: SIMPLE(`export default { fetch() { return new Response("anonymous load() ok\\n") } }`) });
      return w.getEntrypoint().fetch("http://child/");
    }
  }
  return new Response("unknown test\n", { status: 404 });
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/t/")) return runTest(url.pathname.slice(3), url, env, ctx);
    if (url.pathname === "/static") return env.STATIC.fetch(request);
    if (url.pathname === "/burn") {
      // child burns CPU for ?n iterations (new id each call via header)
      const n = Number(url.searchParams.get("n") || 1e9);
      const w = env.LOADER.get("burn-" + crypto.randomUUID(), async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js",
        modules: SIMPLE(`export default { fetch() { let x = 0; for (let i = 0; i < ${n}; i++) { x += i & 1; } return new Response("burned " + x + "\\n"); } }`) }));
      return w.getEntrypoint().fetch(request);
    }
    if (url.pathname === "/ws") {
      const w = env.LOADER.get("ws-child", async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js",
        modules: SIMPLE(`export default { fetch(req) {
          const [c, s] = Object.values(new WebSocketPair()); s.accept();
          s.addEventListener("message", (e) => s.send("child echo: " + e.data));
          return new Response(null, { status: 101, webSocket: c }); } }`) }));
      return w.getEntrypoint().fetch(request);
    }
    if (url.pathname === "/echo-body") {
      const w = env.LOADER.get("echo-body", async () => ({ compatibilityDate: "2026-04-01", mainModule: "index.js",
        modules: SIMPLE(`export default { async fetch(req) { const b = await req.arrayBuffer(); return new Response(req.method + " " + req.url + " ct=" + req.headers.get("content-type") + " body=" + b.byteLength + " bytes\\n"); } }`) }));
      return w.getEntrypoint().fetch(request);
    }
    const id = request.headers.get("x-octo-version");
    if (!id) return new Response("missing x-octo-version\n", { status: 400 });
    const worker = env.LOADER.get(id, codeFromService(env, id));
    return worker.getEntrypoint().fetch(request);
  },
};
