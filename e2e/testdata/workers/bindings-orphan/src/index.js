// GET / answers what its service bindings to e2e-callee give: by fetch
// (status and body) and by RPC (the result or the error).
export default {
  async fetch(request, env) {
    const r = await env.CALLEE.fetch("http://callee/ping");
    let rpc;
    try { rpc = await env.GREETER.hello("caller"); } catch (e) { rpc = "error: " + e.message; }
    return new Response(`fetch: ${r.status} ${await r.text()}\nrpc: ${rpc}\n`);
  },
};
