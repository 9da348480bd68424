// GET / answers what each binding gives, one line each (expect.txt).
export default {
  async fetch(request, env) {
    const lines = [];
    // R2: the object `wrangler r2 object put` wrote, then a round trip.
    const seeded = await env.BUCKET.get("seed.txt");
    lines.push(`r2 seed: ${seeded ? await seeded.text() : "missing"}`);
    await env.BUCKET.put("from-worker.txt", "written by the worker", {
      httpMetadata: { contentType: "text/plain" },
      customMetadata: { by: "e2e" },
    });
    const head = await env.BUCKET.head("from-worker.txt");
    lines.push(`r2 head: ${head.size} ${head.httpMetadata.contentType} ${head.customMetadata.by}`);
    const listed = await env.BUCKET.list();
    lines.push(`r2 list: ${listed.objects.map((o) => o.key).join(",")}`);
    // D1: the row `wrangler d1 execute` inserted, and a batch.
    const row = await env.DB.prepare("SELECT v FROM t WHERE id = ?").bind(1).first();
    lines.push(`d1 row: ${row ? row.v : "missing"}`);
    const [ins, count] = await env.DB.batch([
      env.DB.prepare("INSERT OR REPLACE INTO t (id, v) VALUES (?, ?)").bind(2, "from-worker"),
      env.DB.prepare("SELECT count(*) AS n FROM t"),
    ]);
    lines.push(`d1 batch: changes=${ins.meta.changes} rows=${count.results[0].n}`);
    // KV.
    await env.KV.put("k", "kv value");
    lines.push(`kv: ${await env.KV.get("k")}`);
    // Service bindings: fetch and RPC.
    lines.push(`service fetch: ${await (await env.CALLEE.fetch("http://callee/ping")).text()}`);
    lines.push(`service rpc: ${await env.GREETER.hello("caller")}`);
    return new Response(lines.join("\n") + "\n");
  },
};
