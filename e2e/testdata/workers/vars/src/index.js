export default {
  fetch(request, env) {
    return new Response(`${env.GREETING} ${JSON.stringify(env.CONF)}`);
  },
};
