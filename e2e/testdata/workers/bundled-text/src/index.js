import banner from "./banner.txt";

export default {
  fetch() {
    return new Response(`text:${banner.trim()}`);
  },
};
