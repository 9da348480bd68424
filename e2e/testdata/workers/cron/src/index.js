export default {
  // Runs at every time a cron of triggers.crons names.
  async scheduled(controller, env) {
    console.log("e2e-cron ran " + controller.cron);
    await env.MYKV.put("e2e-cron-last", controller.cron + "|" + controller.scheduledTime);
  },
  // Answers what the last scheduled run wrote.
  async fetch(request, env) {
    return new Response((await env.MYKV.get("e2e-cron-last")) ?? "never");
  },
};
