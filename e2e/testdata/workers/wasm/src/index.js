import addModule from "./add.wasm";

const instance = new WebAssembly.Instance(addModule);

export default {
  fetch() {
    return new Response(`add(2,3)=${instance.exports.add(2, 3)}`);
  },
};
