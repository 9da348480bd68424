export default {
  tail(events) {
    for (const e of events) {
      console.log("PARENT-TAIL-WORKER event script=" + e.scriptName + " entrypoint=" + e.entrypoint + " outcome=" + e.outcome +
        " logs=" + JSON.stringify(e.logs.map((l) => l.message)) + " exceptions=" + JSON.stringify(e.exceptions.map((x) => x.message)));
    }
  },
};
