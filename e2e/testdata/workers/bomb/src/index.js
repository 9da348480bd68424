const ballast = new Uint8Array(1 << 30).fill(1);
export default {
  fetch() {
    return new Response("bomb " + ballast.length);
  },
};
