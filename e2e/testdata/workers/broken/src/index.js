// A top-level throw passes wrangler's bundling but fails when workerd starts the Worker.
throw new Error("broken on purpose");
export default { fetch() { return new Response("unreachable"); } };
