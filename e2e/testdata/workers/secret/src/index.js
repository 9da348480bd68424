export default {
  fetch(request, env) {
    return new Response(env.API_KEY ?? "API_KEY unset");
  },
};
