export default {
  fetch(request) {
    const code = Number(new URL(request.url).pathname.slice(1)) || 200;
    return new Response(String(code), { status: code });
  },
};
