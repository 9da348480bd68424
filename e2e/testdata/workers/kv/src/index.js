export default {
  async fetch(request, env) {
    await env.MYKV.put("greeting", "hello-kv");
    await env.AUTO_KV.put("greeting", "hello-auto");
    const [a, b] = await Promise.all([env.MYKV.get("greeting"), env.AUTO_KV.get("greeting")]);
    return new Response(`${a} ${b}`);
  },
};
