export default {
  fetch(request) {
    if (new URL(request.url).pathname === "/spin") {
      while (true) {}
    }
    return new Response("spin idle");
  },
};
