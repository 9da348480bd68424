// GET /?target=<url>&method=<GET|PUT|POST>&h=<name:value>&h=...&body=<text>
// fetches target from inside the pod and answers "<status>" or
// "blocked: <error>".
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    const target = q.get("target");
    if (!target) return new Response("attacker ready");
    const headers = {};
    for (const h of q.getAll("h")) {
      const i = h.indexOf(":");
      headers[h.slice(0, i)] = h.slice(i + 1);
    }
    const method = q.get("method") || "GET";
    try {
      const r = await fetch(target, { method, headers, body: method === "GET" ? undefined : q.get("body") ?? "" });
      return new Response(String(r.status));
    } catch (e) {
      return new Response("blocked: " + e.message);
    }
  },
};
