export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/api/")) {
      return Response.json({ worker: true, path: url.pathname });
    }
    if (url.pathname === "/from-binding") {
      // The assets binding applies html_handling: /docs/ is docs/index.html.
      const res = await env.ASSETS.fetch(new URL("/docs/", url));
      return new Response("binding: " + (await res.text()).trim(), { status: res.status });
    }
    if (url.pathname === "/missing-via-binding") {
      const res = await env.ASSETS.fetch(new URL("/nope", url));
      return new Response("binding status " + res.status + ": " + (await res.text()).trim());
    }
    return new Response("worker fallback " + url.pathname);
  },
};
