export default {
  async fetch(request, env) {
    // GET /?key=K reads K from MYKV without writing: the API → Worker direction.
    const key = new URL(request.url).searchParams.get("key");
    if (key !== null) {
      const value = await env.MYKV.get(key);
      return new Response(value ?? "missing", { status: value === null ? 404 : 200 });
    }
    // Otherwise write through both bindings and read back: the Worker → API direction.
    await env.MYKV.put("greeting", "hello-kv");
    await env.AUTO_KV.put("greeting", "hello-auto");
    const [a, b] = await Promise.all([env.MYKV.get("greeting"), env.AUTO_KV.get("greeting")]);
    return new Response(`${a} ${b}`);
  },
};
