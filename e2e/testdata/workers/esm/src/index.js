export default {
  fetch(request) {
    // The line `wrangler tail` must stream.
    console.log("esm handled " + new URL(request.url).pathname);
    return new Response("hello from esm");
  },
};
