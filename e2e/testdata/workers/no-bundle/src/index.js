import { x } from "./util/lib.js";
import banner from "./banner.txt";

export default {
  fetch() {
    return new Response(`${x}:${banner.trim()}`);
  },
};
