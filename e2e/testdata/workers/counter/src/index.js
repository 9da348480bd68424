import { DurableObject } from "cloudflare:workers";

// Counter is one counter per object: the count in SQLite, how many alarms
// fired in the KV storage API.
export class Counter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS counts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)");
  }

  // increment is called over RPC.
  async increment() {
    this.ctx.storage.sql.exec("INSERT INTO counts (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1");
    return this.ctx.storage.sql.exec("SELECT n FROM counts WHERE id = 1").one().n;
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/alarm") {
      await this.ctx.storage.setAlarm(Date.now() + 500);
      return new Response("alarm set");
    }
    const row = this.ctx.storage.sql.exec("SELECT n FROM counts WHERE id = 1").toArray()[0];
    const alarms = (await this.ctx.storage.get("alarms")) ?? 0;
    return new Response(`count=${row ? row.n : 0} alarms=${alarms}`);
  }

  async alarm() {
    await this.ctx.storage.put("alarms", ((await this.ctx.storage.get("alarms")) ?? 0) + 1);
  }
}

export default {
  // /inc/<name> increments the counter <name> over RPC; /<name> and
  // /alarm/<name> go to its fetch handler; /id/<name> shows that one name is one object.
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, verb, name] = url.pathname.split("/");
    if (verb === "release") return new Response(env.RELEASE);
    if (verb === "inc") {
      const stub = env.COUNTER.get(env.COUNTER.idFromName(name));
      return new Response(`${await stub.increment()} ${env.RELEASE}`);
    }
    if (verb === "unique") {
      const a = env.COUNTER.newUniqueId(), b = env.COUNTER.newUniqueId();
      return new Response(String(a.toString() !== b.toString() && env.COUNTER.idFromName(name).equals(env.COUNTER.idFromName(name))));
    }
    const stub = env.COUNTER.get(env.COUNTER.idFromName(verb === "alarm" ? name : verb));
    return stub.fetch(new Request("http://do/" + (verb === "alarm" ? "alarm" : ""), request));
  },
};

// Spare is exported but no migration makes it a Durable Object class: the
// test binds it to see the upload refused.
export class Spare extends DurableObject {}
