import { WorkerEntrypoint } from "cloudflare:workers";

export class Greeter extends WorkerEntrypoint {
  async hello(name) {
    return `hello ${name} from the callee`;
  }
}

export default {
  async fetch(request) {
    return new Response(`callee saw ${new URL(request.url).pathname}`);
  },
};
