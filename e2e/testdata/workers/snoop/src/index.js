// GET / answers what the bound bucket holds under secret.txt.
export default {
  async fetch(request, env) {
    const o = await env.BUCKET.get("secret.txt");
    return new Response(`r2 secret.txt: ${o ? "found " + (await o.text()) : "missing"}`);
  },
};
